from django.contrib import admin

from webapp.payouts.models import Allocation, Epoch


@admin.register(Epoch)
class EpochAdmin(admin.ModelAdmin):
    list_display = ("number", "starts_at", "ends_at", "state", "merkle_root")
    list_filter = ("state",)


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ("epoch", "account", "wallet_address", "amount", "cumulative_amount")
    list_filter = ("epoch",)
