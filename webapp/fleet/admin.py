from django.contrib import admin

from webapp.fleet.models import Device, Frame, RejectedMessage


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("device_id", "owner", "status", "online", "last_seen_at", "created_at")
    list_filter = ("status", "online")
    search_fields = ("device_id", "owner__username")
    readonly_fields = ("public_key_hex", "created_at", "last_seen_at")
    exclude = ("public_key", "mqtt_password_hash")


@admin.register(Frame)
class FrameAdmin(admin.ModelAdmin):
    list_display = ("device", "seq", "captured_at", "lat", "lon", "state", "image_sha256")
    list_filter = ("state", "device")
    search_fields = ("image_sha256", "device__device_id")
    date_hierarchy = "captured_at"


@admin.register(RejectedMessage)
class RejectedMessageAdmin(admin.ModelAdmin):
    list_display = ("reason", "device_id", "seq", "topic", "times_seen", "last_seen_at")
    list_filter = ("reason",)
    search_fields = ("device_id", "payload_sha256", "detail")
