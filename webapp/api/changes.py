"""The map features' change feed: what was added, moved (more than MOVE_M), changed (class
or state) or removed. `MapFeature.save()` and `.delete()` are followed by signals; a writer
that uses `bulk_create`/`bulk_update` (the mapper) calls `record(before, after)` itself."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from django.db.models.signals import post_save, pre_save

from webapp.api.models import FeatureEvent
from webapp.mapping.models import MapFeature

MOVE_M = 0.5
GONE = (MapFeature.Status.REMOVED, MapFeature.Status.REJECTED)


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    k = 111_320.0
    return math.hypot((lat2 - lat1) * k, (lon2 - lon1) * k * math.cos(math.radians(lat1)))


def event_for(before: MapFeature | None, after: MapFeature) -> FeatureEvent | None:
    """The event one write makes, or None (nothing a consumer sees changed)."""

    def of(kind: str, **extra: Any) -> FeatureEvent:
        return FeatureEvent(
            feature_id=after.pk,
            kind=kind,
            label=after.label,
            status=after.status,
            lat=after.lat,
            lon=after.lon,
            **extra,
        )

    if before is None:
        return None if after.status in GONE else of(FeatureEvent.Kind.ADDED)
    if after.status in GONE and before.status not in GONE:
        return of(FeatureEvent.Kind.REMOVED)
    if before.status in GONE and after.status not in GONE:
        return of(FeatureEvent.Kind.ADDED)
    if after.status in GONE:
        return None
    if _metres(before.lat, before.lon, after.lat, after.lon) > MOVE_M:
        return of(FeatureEvent.Kind.MOVED, from_lat=before.lat, from_lon=before.lon)
    if before.label != after.label or before.status != after.status:
        return of(FeatureEvent.Kind.CHANGED)
    return None


def record(pairs: Iterable[tuple[MapFeature | None, MapFeature]]) -> int:
    """Record the events of (before, after) writes (before None: a new feature)."""
    events = [e for b, a in pairs if (e := event_for(b, a)) is not None]
    FeatureEvent.objects.bulk_create(events)
    return len(events)


def _remember(sender: type, instance: MapFeature, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    instance._roadmesh_before = (  # type: ignore[attr-defined]
        MapFeature.objects.filter(pk=instance.pk).first() if instance.pk else None
    )


def _saved(sender: type, instance: MapFeature, created: bool, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    before = None if created else getattr(instance, "_roadmesh_before", None)
    record([(before, instance)])


def connect() -> None:
    pre_save.connect(_remember, sender=MapFeature, dispatch_uid="roadmesh-feature-before")
    post_save.connect(_saved, sender=MapFeature, dispatch_uid="roadmesh-feature-events")
