"""GNSS fixes from NMEA 0183 logs, and the position at any instant between fixes.

A fix is assembled from the GGA (position, altitude, fix quality, satellites, HDOP) and RMC
(date, speed, course) sentences of the same second. Lines that are garbage or fail their
checksum are counted, never fatal.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pynmea2

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
    quality: int  # GGA fix quality: 0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float
    satellites: int
    hdop: float | None
    dim: int = 0  # 2 or 3 from GSA; 0 when the receiver sends no GSA


@dataclass
class NmeaStats:
    lines: int = 0
    fixes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


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


def parse_nmea(lines: Iterable[str], stats: NmeaStats | None = None) -> list[Fix]:
    """Fixes in time order from NMEA lines (GGA + RMC of the same UTC second are merged)."""
    reader = NmeaReader(stats)
    fixes: list[Fix] = []
    for raw in lines:
        fixes.extend(reader.feed(raw))
    fixes.extend(reader.flush())
    fixes.sort(key=lambda f: f.time)
    reader.stats.fixes = len(fixes)
    return fixes


class NmeaReader:
    """Incremental NMEA parser for a live receiver: feed lines, get fixes as they complete.

    A GGA waits for the RMC of the same second (date, speed, course); a GSA sets the fix
    dimension (2D/3D) of the fixes that follow. Bad lines are counted in `stats.rejected`.
    """

    def __init__(self, stats: NmeaStats | None = None) -> None:
        self.stats = stats if stats is not None else NmeaStats()
        self.current_date: date | None = None
        self.dim = 0  # 0 unknown (no GSA seen), 2 or 3
        self._gga: dict[time, tuple[pynmea2.GGA, int]] = {}
        self._rmc: dict[time, pynmea2.RMC] = {}

    def feed(self, raw: str | bytes) -> list[Fix]:
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", errors="replace")
        line = raw.strip()
        if not line:
            return []
        self.stats.lines += 1
        try:
            msg = pynmea2.parse(line, check=True)
        except pynmea2.ChecksumError:
            self.stats.rejected["bad_checksum"] += 1
            return []
        except (pynmea2.ParseError, ValueError, AttributeError, TypeError):
            self.stats.rejected["unparseable"] += 1
            return []
        out: list[Fix] = []
        try:
            if isinstance(msg, pynmea2.RMC):
                if msg.status != "A" or msg.datestamp is None or msg.timestamp is None:
                    self.stats.rejected["rmc_void"] += 1
                    return []
                self.current_date = msg.datestamp
                self._rmc[msg.timestamp] = msg
                if msg.timestamp in self._gga:
                    gga, dim = self._gga.pop(msg.timestamp)
                    out.extend(self._emit(gga, dim, msg.datestamp))
            elif isinstance(msg, pynmea2.GGA):
                if msg.timestamp is None or not msg.gps_qual:
                    self.stats.rejected["no_fix"] += 1
                    return []
                rmc = self._rmc.get(msg.timestamp)
                if rmc is not None:
                    out.extend(self._emit(msg, self.dim, rmc.datestamp))
                else:
                    self._gga[msg.timestamp] = (msg, self.dim)
            elif isinstance(msg, pynmea2.GSA):
                mode = str(msg.mode_fix_type or "")
                self.dim = 3 if mode == "3" else 2 if mode == "2" else 0
        except (ValueError, TypeError, AttributeError):
            self.stats.rejected["unparseable"] += 1
        if len(self._gga) > 2:
            out.extend(self._expire(keep=1))
        if len(self._rmc) > 8:
            for t in sorted(self._rmc)[:-4]:
                del self._rmc[t]
        return out

    def flush(self) -> list[Fix]:
        """Fixes still waiting for an RMC (end of a log)."""
        return self._expire(keep=0)

    def _expire(self, keep: int) -> list[Fix]:
        out: list[Fix] = []
        for t in sorted(self._gga)[: max(0, len(self._gga) - keep)]:
            gga, dim = self._gga.pop(t)
            if self.current_date is None:
                self.stats.rejected["no_date"] += 1
                continue
            out.extend(self._emit(gga, dim, self.current_date))
        return out

    def _emit(self, gga: pynmea2.GGA, dim: int, day: date) -> list[Fix]:
        rmc = self._rmc.get(gga.timestamp)
        try:
            speed = (
                float(rmc.spd_over_grnd) * KNOTS_TO_MPS
                if rmc is not None and rmc.spd_over_grnd
                else None
            )
            course = float(rmc.true_course) if rmc is not None and rmc.true_course else None
            return [
                Fix(
                    time=datetime.combine(day, gga.timestamp.replace(tzinfo=None), tzinfo=UTC),
                    lat=float(gga.latitude),
                    lon=float(gga.longitude),
                    alt_m=float(gga.altitude) if gga.altitude is not None else None,
                    speed_mps=speed,
                    course_deg=course,
                    quality=int(gga.gps_qual),
                    satellites=int(gga.num_sats or 0),
                    hdop=float(gga.horizontal_dil) if gga.horizontal_dil else None,
                    dim=dim,
                )
            ]
        except (ValueError, TypeError):
            self.stats.rejected["unparseable"] += 1
            return []


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
