from django.contrib import admin

from webapp.mapping.models import Detection, MapFeature, ReviewTask, Vote


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    list_display = ("label", "confidence", "frame", "feature", "model_version", "created_at")
    list_filter = ("label", "model_version")


@admin.register(MapFeature)
class MapFeatureAdmin(admin.ModelAdmin):
    list_display = (
        "label",
        "lat",
        "lon",
        "uncertainty_m",
        "status",
        "n_passes",
        "n_devices",
        "last_seen_at",
    )
    list_filter = ("label", "status")


@admin.register(ReviewTask)
class ReviewTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "feature", "state", "is_gold", "decided_label", "created_at")
    list_filter = ("state", "is_gold")


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("task", "reviewer", "verdict", "label", "created_at")
    list_filter = ("verdict",)
