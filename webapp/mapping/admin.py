from django.contrib import admin

from webapp.mapping.models import (
    DerivedImage,
    Detection,
    MapFeature,
    PrivacyTally,
    ReviewTask,
    Vote,
)


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    list_display = (
        "label",
        "confidence",
        "frame",
        "feature",
        "bearing_deg",
        "range_m",
        "model_version",
        "created_at",
    )
    list_filter = ("label", "model_version")


@admin.register(MapFeature)
class MapFeatureAdmin(admin.ModelAdmin):
    list_display = (
        "label",
        "lat",
        "lon",
        "uncertainty_m",
        "status",
        "status_by",
        "n_passes",
        "n_devices",
        "missed_passes",
        "last_seen_at",
    )
    list_filter = ("label", "status", "status_by")


@admin.register(ReviewTask)
class ReviewTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "feature", "state", "is_gold", "decided_label", "created_at")
    list_filter = ("state", "is_gold")


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("task", "reviewer", "verdict", "label", "created_at")
    list_filter = ("verdict",)


@admin.register(DerivedImage)
class DerivedImageAdmin(admin.ModelAdmin):
    list_display = ("frame", "faces", "plates", "image_sha256", "source_sha256", "model_version")
    readonly_fields = ("boxes",)


@admin.register(PrivacyTally)
class PrivacyTallyAdmin(admin.ModelAdmin):
    """Devices whose own privacy step misses faces or plates: a fact operators need."""

    list_display = (
        "device",
        "frames_checked",
        "frames_with_misses",
        "faces_missed",
        "plates_missed",
        "updated_at",
    )
    ordering = ("-frames_with_misses",)
