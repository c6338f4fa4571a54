"""GNSS fixes, what a receiver gave (`NmeaStats`), and the position at any instant between fixes.

`edge/nmea.py` reads NMEA 0183 into fixes; `edge/gnss_sources.py` and `edge/imports/` get
them from receivers, logs and the telemetry cameras record.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

logger = logging.getLogger(__name__)

KNOTS_TO_MPS = 0.514444
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Fix:
    time: datetime
    lat: float
    lon: float
    alt_m: float | None
    speed_mps: float | None
    course_deg: float | None
    quality: int  # GGA fix quality: 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float
    satellites: int  # 0 when the source does not say
    hdop: float | None
    dim: int = 0  # 2 or 3 from GSA (or the camera's fix type); 0 when the source does not say


@dataclass
class NmeaStats:
    """What one receiver (or log, or camera file) gave: lines, epochs, fixes and why not.

    `rejected` counts what was lost or doubtful: `bad_checksum`, `unparseable` (a line with
    no NMEA sentence in it, or a sentence whose fields cannot be read), `unknown_sentence`,
    `void_fix` (an epoch the receiver itself marks invalid or not from satellites; the reason
    is in `void`), `no_position`, `no_date` (an epoch whose run carried no date: dated from the
    configured date or the host clock) and `late_sentence`. `notes` counts what was handled:
    `leap_second`, `week_rollover`, `ignored_sentence` (GSV, TXT, proprietary ...).
    """

    lines: int = 0
    fixes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    receiver: str = ""
    epochs: int = 0
    sentences: int = 0
    talkers: Counter[str] = field(default_factory=Counter)
    void: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line: what this receiver gave (the CLI prints it per receiver)."""
        r = self.rejected
        talkers = ",".join(t for t, _ in self.talkers.most_common()) or "-"
        line = (
            f"fixes {self.fixes} of {self.epochs} epochs, without a date {r['no_date']}, "
            f"void fixes {r['void_fix']}, bad checksums {r['bad_checksum']}, "
            f"unknown sentences {r['unknown_sentence']}, unreadable lines {r['unparseable']} "
            f"(talkers {talkers})"
        )
        extra = {**{k: v for k, v in self.notes.items() if v and k != "ignored_sentence"}}
        if extra:
            line += "; " + ", ".join(f"{k} {v}" for k, v in sorted(extra.items()))
        return line

    def as_dict(self) -> dict[str, object]:
        return {
            "receiver": self.receiver,
            "lines": self.lines,
            "sentences": self.sentences,
            "epochs": self.epochs,
            "fixes": self.fixes,
            "rejected": dict(self.rejected),
            "void": dict(self.void),
            "notes": dict(self.notes),
            "talkers": dict(self.talkers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NmeaStats:
        def counter(key: str) -> Counter[str]:
            raw = data.get(key)
            if not isinstance(raw, dict):
                return Counter()
            return Counter({str(k): int(v) for k, v in raw.items() if isinstance(v, int)})

        def number(key: str) -> int:
            v = data.get(key)
            return v if isinstance(v, int) else 0

        return cls(
            lines=number("lines"),
            fixes=number("fixes"),
            rejected=counter("rejected"),
            receiver=str(data.get("receiver", "")),
            epochs=number("epochs"),
            sentences=number("sentences"),
            talkers=counter("talkers"),
            void=counter("void"),
            notes=counter("notes"),
        )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


class Track:
    """Fixes in time order; position, speed and heading at any instant by interpolation."""

    def __init__(self, fixes: list[Fix], max_gap: timedelta = timedelta(seconds=3)) -> None:
        self.fixes = fixes
        self.times = [f.time.timestamp() for f in fixes]
        self.max_gap_s = max_gap.total_seconds()

    def at(self, when: datetime) -> Fix | None:
        """The interpolated fix at `when`, or None outside the track or across a dropout."""
        t = when.timestamp()
        i = bisect.bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            return self._with_motion(i, self.fixes[i], t)
        if i == 0 or i == len(self.times):
            return None
        a, b = self.fixes[i - 1], self.fixes[i]
        span = self.times[i] - self.times[i - 1]
        if span > self.max_gap_s:
            return None
        w = (t - self.times[i - 1]) / span
        alt = (
            a.alt_m + w * (b.alt_m - a.alt_m)
            if a.alt_m is not None and b.alt_m is not None
            else a.alt_m
        )
        # The receiver's own (Doppler) speed and course are far steadier than differences of
        # noisy positions: interpolate them where both neighbours carry them.
        speed = (
            a.speed_mps + w * (b.speed_mps - a.speed_mps)
            if a.speed_mps is not None and b.speed_mps is not None
            else None
        )
        course = (
            (a.course_deg + w * ((b.course_deg - a.course_deg + 180.0) % 360.0 - 180.0)) % 360.0
            if a.course_deg is not None and b.course_deg is not None
            else None
        )
        fix = Fix(
            time=when,
            lat=a.lat + w * (b.lat - a.lat),
            lon=a.lon + w * (b.lon - a.lon),
            alt_m=alt,
            speed_mps=speed,
            course_deg=course,
            quality=min(a.quality, b.quality),
            satellites=min(a.satellites, b.satellites),
            hdop=max(a.hdop, b.hdop) if a.hdop is not None and b.hdop is not None else None,
            dim=min(a.dim, b.dim),
        )
        return self._with_motion(i, fix, t)

    def _with_motion(self, i: int, fix: Fix, t: float) -> Fix:
        """Speed and heading from the neighbouring fixes where the receiver gave none."""
        if fix.speed_mps is not None and fix.course_deg is not None:
            return fix
        lo, hi = max(i - 1, 0), min(i, len(self.fixes) - 1)
        if lo == hi:
            hi = min(lo + 1, len(self.fixes) - 1)
        a, b = self.fixes[lo], self.fixes[hi]
        dt = self.times[hi] - self.times[lo]
        if dt <= 0:
            return fix
        dist = haversine_m(a.lat, a.lon, b.lat, b.lon)
        speed = fix.speed_mps if fix.speed_mps is not None else dist / dt
        course = fix.course_deg
        if course is None and dist > 0.5:
            course = bearing_deg(a.lat, a.lon, b.lat, b.lon)
        return Fix(
            fix.time,
            fix.lat,
            fix.lon,
            fix.alt_m,
            speed,
            course,
            fix.quality,
            fix.satellites,
            fix.hdop,
            fix.dim,
        )

    # -- live use: fixes arrive one at a time ---------------------------------------------
    def append(self, fix: Fix, keep: int = 3600) -> bool:
        """Add a fix newer than the last one (older ones are ignored: False). Keeps `keep`."""
        t = fix.time.timestamp()
        if self.times and t <= self.times[-1]:
            return False
        self.fixes.append(fix)
        self.times.append(t)
        if len(self.fixes) > keep * 2:
            del self.fixes[:-keep], self.times[:-keep]
        return True

    @property
    def last_time(self) -> float | None:
        return self.times[-1] if self.times else None
