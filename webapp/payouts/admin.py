from django.contrib import admin

from webapp.payouts.models import Allocation, CellCoverage, Epoch


@admin.register(Epoch)
class EpochAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "starts_at",
        "ends_at",
        "state",
        "frames",
        "new_amount",
        "merkle_root",
    )
    list_filter = ("state",)
    readonly_fields = [f.name for f in Epoch._meta.fields]


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ("epoch", "wallet_address", "account", "amount", "cumulative_amount")
    list_filter = ("epoch",)
    search_fields = ("wallet_address",)
    readonly_fields = [f.name for f in Allocation._meta.fields]


@admin.register(CellCoverage)
class CellCoverageAdmin(admin.ModelAdmin):
    list_display = ("h3_r12", "last_covered_at", "epoch")
