from django.contrib import admin

from webapp.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("kind", "key", "state", "requeue", "attempts", "leased_until", "updated_at")
    list_filter = ("kind", "state")
    search_fields = ("key", "error")
    readonly_fields = ("lease_owner", "lease_token", "leased_until", "attempts", "error")
