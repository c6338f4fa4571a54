"""Which frames to keep: one every D metres travelled, moving, with a good fix, outside the
owner's privacy zones, and not in the first or last `trim_m` metres of a trip.

`Sampler.offer` is a pure decision over a frame's time and interpolated fix; the caller runs
the expensive stages on candidates only and calls `keep` for those it really kept, so a
frame that fails the quality gate lets the next one take its place. `TripBuffer` holds kept
frames until the trip has gone `trim_m` further, so the end of a trip can be trimmed too.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from edge.gnss import Fix, haversine_m
from edge.settings import EdgeSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

SPEED_WINDOW_S = 5.0  # speeds are judged on their median over this window


class PrivacyZones:
    """The owner's polygons (lon, lat rings); a frame inside any of them is never kept."""

    def __init__(self, rings: Iterable[Iterable[tuple[float, float]]]) -> None:
        from shapely import Polygon, prepare

        self.polygons = [Polygon(list(r)) for r in rings]
        for p in self.polygons:
            prepare(p)

    def contains(self, lon: float, lat: float) -> bool:
        if not self.polygons:
            return False
        from shapely import Point

        pt = Point(lon, lat)
        return any(p.contains(pt) for p in self.polygons)


def good_fix(fix: Fix, s: EdgeSettings) -> bool:
    if fix.quality <= 0 or fix.satellites < s.min_satellites:
        return False
    if fix.hdop is not None and fix.hdop > s.max_hdop:
        return False
    if fix.dim == 2 or (fix.dim == 0 and fix.alt_m is None):  # no GSA: an altitude means 3D
        return False
    return True


@dataclass(frozen=True, slots=True)
class Offer:
    keep: bool
    reason: str  # "" for a candidate, else why it is dropped
    odometer_m: float


class Sampler:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.zones = PrivacyZones(settings.privacy_zones)
        self.dropped: Counter[str] = Counter()
        self.odometer_m = 0.0
        self.trip_start_m: float | None = None
        self.last_kept_m: float | None = None
        self._last_pos: tuple[float, float] | None = None
        self._last_moving_t: float | None = None
        self._speeds: deque[tuple[float, float]] = deque()
        self._moving_since_m: float | None = None
        self._last_t: float | None = None
        self._last_speed: float | None = None
        self.trip_ended = False  # set when a trip ended since the caller last looked

    def apply(self, settings: EdgeSettings) -> None:
        """New settings (from the server's config topic) take effect at the next frame."""
        if settings.privacy_zones != self.settings.privacy_zones:
            self.zones = PrivacyZones(settings.privacy_zones)
        self.settings = settings

    def offer(self, t: float, fix: Fix | None) -> Offer:
        s = self.settings
        if fix is None:
            self._idle(t)
            return self._drop("no_fix")
        if not good_fix(fix, s):
            self._idle(t)
            return self._drop("poor_fix")
        prev_t, self._last_t = self._last_t, t
        now_speed = fix.speed_mps if fix.speed_mps is not None else 0.0
        speed = self._steady_speed(t, now_speed)
        last, self._last_pos = self._last_pos, (fix.lat, fix.lon)
        prev_speed, self._last_speed = self._last_speed, fix.speed_mps
        if now_speed >= s.min_speed_mps:
            # Standing still, GNSS noise moves the position, not the car: no odometer then.
            if self._moving_since_m is None:
                self._moving_since_m = self.odometer_m
            self.odometer_m += self._travelled(prev_t, prev_speed, last, t, fix)
        else:
            self._moving_since_m = None
        if speed < s.min_speed_mps:
            self._idle(t)
            return self._drop("stationary")
        if speed > s.max_speed_mps:
            return self._drop("too_fast")
        self._last_moving_t = t
        if self.trip_start_m is None:  # from where the car really began to move
            self.trip_start_m = (
                self._moving_since_m if self._moving_since_m is not None else self.odometer_m
            )
            logger.info("trip started at odometer %.0f m", self.odometer_m)
        if self.zones.contains(fix.lon, fix.lat):
            return self._drop("privacy_zone")
        if self.odometer_m - self.trip_start_m < s.trim_m:
            return self._drop("trip_start")
        # Keep the frame nearest the mark: this one, unless the next (about speed x frame
        # interval further on) lands closer to it. At 5 fps and 10 m/s that is within +-1 m.
        half_step = speed * min(t - prev_t, 1.0) / 2 if prev_t is not None and t > prev_t else 0.0
        if (
            self.last_kept_m is not None
            and self.odometer_m - self.last_kept_m < s.sample_distance_m - half_step
        ):
            return self._drop("spacing")
        return Offer(True, "", self.odometer_m)

    @staticmethod
    def _travelled(
        prev_t: float | None,
        prev_speed: float | None,
        last: tuple[float, float] | None,
        t: float,
        fix: Fix,
    ) -> float:
        """Metres since the previous frame: the receiver's (Doppler) speed integrated over time
        where it gives one (accurate to centimetres), else the distance between positions
        (which GNSS noise of ~1 m per fix makes wander by metres)."""
        if (
            prev_t is not None
            and prev_speed is not None
            and fix.speed_mps is not None
            and 0 < t - prev_t <= 2.0
        ):
            return (prev_speed + fix.speed_mps) / 2 * (t - prev_t)
        if last is not None:
            return haversine_m(last[0], last[1], fix.lat, fix.lon)
        return 0.0

    def _steady_speed(self, t: float, speed: float) -> float:
        """The median speed over the last `SPEED_WINDOW_S`: one noisy sample neither starts
        nor ends a movement."""
        self._speeds.append((t, speed))
        while self._speeds and t - self._speeds[0][0] > SPEED_WINDOW_S:
            self._speeds.popleft()
        return float(statistics.median(v for _, v in self._speeds))

    def keep(self, offer: Offer) -> None:
        """Marks stay on a grid of `sample_distance_m`: a frame kept a little before or after
        its mark does not shift the next one (the spacing averages exactly D)."""
        d = self.settings.sample_distance_m
        if self.last_kept_m is not None and abs(offer.odometer_m - (self.last_kept_m + d)) <= d / 2:
            self.last_kept_m += d
        else:
            self.last_kept_m = offer.odometer_m

    def end_trip(self) -> None:
        if self.trip_start_m is not None:
            logger.info("trip ended after %.0f m", self.odometer_m - self.trip_start_m)
        self.trip_start_m = None
        self.last_kept_m = None
        self._last_moving_t = None
        self.trip_ended = True

    def _idle(self, t: float) -> None:
        if self.trip_start_m is None:
            return
        if self._last_moving_t is None:
            self._last_moving_t = t
        elif t - self._last_moving_t > self.settings.trip_gap_s:
            self.end_trip()

    def _drop(self, reason: str) -> Offer:
        self.dropped[reason] += 1
        return Offer(False, reason, self.odometer_m)


class TripBuffer(Generic[T]):
    """Kept frames wait here until the trip has gone `trim_m` past them."""

    def __init__(self) -> None:
        self._items: deque[tuple[float, T]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, odometer_m: float, item: T) -> None:
        self._items.append((odometer_m, item))

    def release(self, odometer_m: float, trim_m: float) -> list[T]:
        out: list[T] = []
        while self._items and odometer_m - self._items[0][0] >= trim_m:
            out.append(self._items.popleft()[1])
        return out

    def discard(self) -> list[T]:
        """The trip ended: what is still here lies within its last `trim_m` metres."""
        out = [item for _, item in self._items]
        self._items.clear()
        return out
