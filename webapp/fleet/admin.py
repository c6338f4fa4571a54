from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from webapp.fleet import lifecycle
from webapp.fleet.models import Device, Frame, RejectedMessage


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = (
        "device_id",
        "owner",
        "status",
        "trust_score",
        "online",
        "last_seen_at",
        "created_at",
    )
    list_filter = ("status", "online")
    search_fields = ("device_id", "owner__username")
    ordering = ("trust_score", "device_id")
    readonly_fields = (
        "public_key_hex",
        "created_at",
        "last_seen_at",
        "trust_score",
        "trust_summary",
        "trust_evidence",
        "trust_updated_at",
    )
    exclude = ("public_key", "mqtt_password_hash")

    @admin.display(description="fraud evidence")
    def trust_summary(self, obj: Device) -> str:
        evidence = obj.trust_evidence or {}
        rows = [(check, n) for check, n in sorted((evidence.get("by_check") or {}).items())]
        header = f"{evidence.get('flagged', 0)} of {evidence.get('frames', 0)} frames flagged. "
        return header + format_html_join(", ", "{}: {}", rows)


@admin.register(Frame)
class FrameAdmin(admin.ModelAdmin):
    list_display = (
        "device",
        "seq",
        "captured_at",
        "lat",
        "lon",
        "state",
        "fraud_score",
        "flag_checks",
    )
    list_filter = ("state", "device")
    search_fields = ("image_sha256", "device__device_id")
    date_hierarchy = "captured_at"
    readonly_fields = (
        "state",
        "flags",
        "fraud_score",
        "phash",
        "server_sharpness",
        "server_brightness",
        "image_checked_at",
        "processed_at",
        "audited_at",
        "rewarded_epoch",
    )
    exclude = ("thumb",)
    actions = ("exclude_from_rewards",)

    @admin.action(description="Exclude from rewards (an operator flag)")
    def exclude_from_rewards(self, request: HttpRequest, queryset: QuerySet[Frame]) -> None:
        report = lifecycle.flag_by_operator(
            queryset.values_list("pk", flat=True), f"excluded by {request.user} in the admin"
        )
        self.message_user(request, f"{len(report.flagged)} frames flagged")

    @admin.display(description="flags")
    def flag_checks(self, obj: Frame) -> str:
        return ", ".join(str(f.get("check")) for f in obj.flags or [] if isinstance(f, dict))


@admin.register(RejectedMessage)
class RejectedMessageAdmin(admin.ModelAdmin):
    list_display = ("reason", "device_id", "seq", "topic", "times_seen", "last_seen_at")
    list_filter = ("reason",)
    search_fields = ("device_id", "payload_sha256", "detail")
