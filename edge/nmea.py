"""NMEA 0183 from real receivers: epochs assembled from every sentence of the same second.

A receiver reports one *epoch* (one instant) in several sentences: GGA, RMC, GNS and GLL
carry the position, RMC and ZDA the date, GGA, GNS, RMC, GLL and GSA say whether the fix
is valid, GSA the 2D/3D mode and the satellites used, VTG speed and course. Which of them
a receiver sends, in which order and with which talker (GP, GN, GL, GA, GB, BD, GQ ...)
differs from one receiver to the next, so the reader assumes none of it:

* Sentences are found anywhere in a line (binary bytes of a second protocol before them,
  `$$`, two sentences run together) and their checksum is verified with pynmea2.
* Sentences with a time (GGA RMC GNS GLL ZDA) belong to the epoch of that time. GSA and
  VTG carry none: they belong to the epoch being reported. The reader learns where a
  receiver's cycle ends (the same sequence of sentences ending two epochs in a row), so an
  epoch is published when its last sentence arrives, not a second later, and a GSA that a
  receiver sends *before* its GGA goes to the next epoch, not to the previous one.
* An epoch is a fix only if it has a position and nothing in it says the fix is void:
  RMC/GLL status `V`, GGA quality 0 (no fix), 6 (estimated), 7 (manual) or 8 (simulator),
  an equivalent GNS/RMC/GLL mode letter, GSA mode 1, an empty position, or (0, 0).
* The date comes from RMC or ZDA; an epoch without one takes the date of the run (rolling
  over at midnight), else the configured date, else the host clock (counted as `no_date`,
  with a warning). A leap second (`23:59:60`) is kept as 23:59:59.999999 (POSIX time has
  no 60th second). A date more than 1024 weeks behind (a receiver's GPS week rollover) is
  moved forward by 1024 weeks.

Nothing a receiver sends makes `feed` raise: every line ends in a counter of `NmeaStats`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pynmea2

from edge.gnss import KNOTS_TO_MPS, Fix, NmeaStats

logger = logging.getLogger(__name__)

# A sentence: `$`, address (talker + type, or P + maker's code), printable fields, `*hh`.
# Bounded, so a long line full of `$` is still scanned in linear time.
SENTENCE = re.compile(
    r"\$([A-Z][A-Z0-9]{1,5}(?:,[\x20-\x23\x25-\x29\x2b-\x7e]{0,200})?)\*([0-9A-Fa-f]{2})"
)

TIMED = frozenset({"GGA", "RMC", "GNS", "GLL", "ZDA"})
UNTIMED = frozenset({"GSA", "VTG"})
READ = TIMED | UNTIMED

DAY_US = 86_400_000_000
MAX_PARTS = 32  # sentences in one epoch (a receiver sends about 10)
HALF_DAY_US = DAY_US // 2
GPS_WEEK_ROLLOVER = timedelta(weeks=1024)
# Receivers with the rollover bug report dates 1024 weeks early; the last rollover was on
# 2019-04-07, so a correct date before it is an old log and is kept as it is.
LAST_ROLLOVER = date(2019, 4, 7)

# GGA quality -> (valid, quality kept in Fix). 6 estimated (dead reckoning), 7 manual
# input, 8 simulator: not from satellites, never a fix.
GGA_QUALITY = {"0": "no_fix", "6": "estimated", "7": "manual", "8": "simulator"}
GGA_VALID = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
# Mode letters of RMC/GLL/VTG (NMEA 2.3+) and GNS (one letter per constellation).
MODE_VOID = {"N": "no_fix", "E": "estimated", "M": "manual", "S": "simulator"}
MODE_QUALITY = {"A": 1, "D": 2, "P": 3, "R": 4, "F": 5}


@dataclass(slots=True)
class Part:
    """What one sentence says about its epoch."""

    kind: str  # sentence type: GGA, RMC, ...
    key: str  # kind plus what tells two sentences of one kind in one epoch apart (GSA)
    tod_us: int | None = None  # time of day in microseconds (a leap second is >= DAY_US)
    day: date | None = None
    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    quality: int | None = None  # GGA-style quality when the sentence says the fix is valid
    void: str | None = None  # why the sentence says the fix is void
    satellites: int | None = None
    hdop: float | None = None
    dim: int | None = None
    prns: frozenset[str] = frozenset()


@dataclass
class Epoch:
    tod_us: int
    parts: list[Part] = field(default_factory=list)

    def has(self, key: str) -> bool:
        return any(p.key == key for p in self.parts)

    def signature(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.parts)


class NmeaReader:
    """Incremental NMEA reader: feed lines (str or bytes), get fixes as their epochs complete.

    `day` is the date to assume when the receiver sends none (GGA-only receivers);
    `today` replaces the host clock (tests). Counters go to `stats`.
    """

    def __init__(
        self,
        stats: NmeaStats | None = None,
        *,
        day: date | None = None,
        today: date | None = None,
    ) -> None:
        self.stats = stats if stats is not None else NmeaStats()
        self.configured_day = day
        self.today = today
        self.current_date: date | None = None  # the run's date, as of `_date_tod`
        self._date_tod: int = 0
        self._epoch: Epoch | None = None
        self._pending: list[Part] = []  # GSA/VTG that came before their epoch's first time
        self._closed_tod: int | None = None
        self._cycle: tuple[str, ...] | None = None  # the learned sequence of one epoch
        self._candidate: tuple[str, ...] | None = None
        self._assumed: tuple[date, int] | None = None  # configured or host date, as used

    # -- input ------------------------------------------------------------------------------
    def feed(self, raw: str | bytes) -> list[Fix]:
        """Fixes completed by this line (often none). Never raises on any input."""
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if not text.strip():
            return []
        self.stats.lines += 1
        out: list[Fix] = []
        found = False
        for m in SENTENCE.finditer(text):
            found = True
            try:
                out.extend(self._sentence(m.group(1), m.group(2).upper()))
            except Exception:  # a reader bug must not end a receiver's thread: count it
                logger.exception("NMEA reader failed on %r", m.group(0)[:100])
                self.stats.rejected["reader_error"] += 1
        if not found:
            self.stats.rejected["unparseable"] += 1
        return out

    def flush(self) -> list[Fix]:
        """The epoch still open (end of a log, or a receiver that went quiet)."""
        return self._close()

    # -- one sentence -------------------------------------------------------------------------
    def _sentence(self, body: str, checksum: str) -> list[Fix]:
        self.stats.sentences += 1
        try:
            msg = pynmea2.parse(f"${body}*{checksum}", check=True)
        except pynmea2.ChecksumError:
            self.stats.rejected["bad_checksum"] += 1
            return []
        except pynmea2.SentenceTypeError:
            self.stats.rejected["unknown_sentence"] += 1
            return []
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
            self.stats.rejected["unparseable"] += 1
            return []
        if not isinstance(msg, pynmea2.TalkerSentence):
            self.stats.notes["ignored_sentence"] += 1  # proprietary ($PUBX, $PSRF ...)
            return []
        kind = str(msg.sentence_type)
        if kind not in READ:
            self.stats.notes["ignored_sentence"] += 1  # GSV, TXT, GST ...
            return []
        self.stats.talkers[str(msg.talker)] += 1
        try:
            part = read_part(kind, str(msg.talker), [str(f) for f in msg.data])
        except ValueError:
            self.stats.rejected["unparseable"] += 1
            return []
        if part.tod_us is None:
            if kind in TIMED:
                self.stats.rejected["unparseable"] += 1  # a timed sentence with no time
                return []
            return self._untimed(part)
        return self._timed(part)

    def _timed(self, part: Part) -> list[Fix]:
        assert part.tod_us is not None
        out: list[Fix] = []
        epoch = self._epoch
        if epoch is not None and epoch.tod_us != part.tod_us:
            out.extend(self._close(learn=True))
            epoch = None
        if epoch is None:
            if part.tod_us == self._closed_tod:
                # The epoch was published already: the learned cycle was wrong. Learn again.
                self.stats.rejected["late_sentence"] += 1
                self._cycle = self._candidate = None
                return out
            epoch = self._epoch = Epoch(part.tod_us, self._pending)
            self._pending = []
        if len(epoch.parts) >= MAX_PARTS:  # a receiver repeating one instant forever
            self.stats.rejected["late_sentence"] += 1
            return out
        epoch.parts.append(part)
        if self._cycle is not None and epoch.signature() == self._cycle:
            out.extend(self._close())
        return out

    def _untimed(self, part: Part) -> list[Fix]:
        epoch = self._epoch
        if epoch is None or epoch.has(part.key):
            # Before the first timed sentence of its epoch (or a second one of a kind the
            # open epoch already holds): it belongs to the epoch that comes next.
            self._pending = [*[p for p in self._pending if p.key != part.key][-MAX_PARTS:], part]
            return []
        if len(epoch.parts) >= MAX_PARTS:
            self.stats.rejected["late_sentence"] += 1
            return []
        epoch.parts.append(part)
        if self._cycle is not None and epoch.signature() == self._cycle:
            return self._close()
        return []

    # -- closing an epoch ---------------------------------------------------------------------
    def _close(self, learn: bool = False) -> list[Fix]:
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return []
        if learn:
            sig = epoch.signature()
            if sig == self._candidate and self._cycle is None:
                self._cycle = sig
            self._candidate = sig
        self._closed_tod = epoch.tod_us
        fix = self._fix(epoch)
        if fix is None:
            return []
        self.stats.fixes += 1
        return [fix]

    def _fix(self, epoch: Epoch) -> Fix | None:
        parts = epoch.parts
        if not any(p.kind in ("GGA", "RMC", "GNS", "GLL") for p in parts):
            return None  # ZDA/GSA/VTG alone: time or status, not a position epoch
        self.stats.epochs += 1
        void = next((p.void for p in parts if p.void), None)
        if void is None and not any(p.quality for p in parts):
            void = "no_fix"
        if void is not None:
            self.stats.rejected["void_fix"] += 1
            self.stats.void[void] += 1
            return None
        pos = next(
            (
                p
                for kind in ("GGA", "GNS", "RMC", "GLL")
                for p in parts
                if p.kind == kind and p.lat is not None and p.lon is not None
            ),
            None,
        )
        if pos is None or pos.lat is None or pos.lon is None:
            self.stats.rejected["void_fix"] += 1
            self.stats.void["empty_position"] += 1
            return None
        if pos.lat == 0.0 and pos.lon == 0.0:
            self.stats.rejected["void_fix"] += 1
            self.stats.void["zero_position"] += 1
            return None
        day = self._day_of(epoch.tod_us, next((p.day for p in parts if p.day), None))
        when = _utc(day, epoch.tod_us)
        if epoch.tod_us >= DAY_US:
            self.stats.notes["leap_second"] += 1

        def first(attr: str, kinds: tuple[str, ...]) -> float | int | None:
            for kind in kinds:
                for p in parts:
                    value = getattr(p, attr)
                    if p.kind == kind and value is not None:
                        return value  # type: ignore[no-any-return]
            return None

        sats = first("satellites", ("GGA", "GNS"))
        if sats is None:
            prns = frozenset().union(*(p.prns for p in parts if p.kind == "GSA"))
            sats = len(prns)
        dims = [p.dim for p in parts if p.dim is not None]
        quality = first("quality", ("GGA", "GNS", "RMC", "GLL")) or 1
        return Fix(
            time=when,
            lat=pos.lat,
            lon=pos.lon,
            alt_m=first("alt_m", ("GGA", "GNS")),  # type: ignore[arg-type]
            speed_mps=first("speed_mps", ("RMC", "VTG")),  # type: ignore[arg-type]
            course_deg=first("course_deg", ("RMC", "VTG")),  # type: ignore[arg-type]
            quality=int(quality),
            satellites=int(sats),
            hdop=first("hdop", ("GGA", "GNS", "GSA")),  # type: ignore[arg-type]
            dim=max(dims) if dims else 0,
        )

    def _day_of(self, tod_us: int, own: date | None) -> date:
        """The date of an epoch at `tod_us`: its own, the run's, the configured one, the host's."""
        if own is not None:
            day = self._rolled_over(own)
        elif self.current_date is not None:
            day = _near(self.current_date, self._date_tod, tod_us)
        else:
            self.stats.rejected["no_date"] += 1
            if self._assumed is None:
                if self.configured_day is not None:
                    self._assumed, source = (self.configured_day, tod_us), "the configured date"
                else:
                    now = datetime.now(UTC)
                    self._assumed, source = (
                        (self.today or now.date(), _tod_us(now.time())),
                        ("the host clock"),
                    )
                logger.warning(
                    "GNSS %s sends no date (no RMC or ZDA): dating its fixes from %s",
                    self.stats.receiver or "receiver",
                    source,
                )
            day = _near(self._assumed[0], self._assumed[1], tod_us)
            self._assumed = (day, tod_us)  # an assumed date is never the run's own
            return day
        self.current_date, self._date_tod = day, tod_us
        return day

    def _rolled_over(self, day: date) -> date:
        today = self.today or datetime.now(UTC).date()
        moved = day
        while moved < LAST_ROLLOVER and moved + GPS_WEEK_ROLLOVER <= today + timedelta(days=1):
            moved += GPS_WEEK_ROLLOVER
        if moved != day:
            self.stats.notes["week_rollover"] += 1
        return moved


# -- fields -------------------------------------------------------------------------------------
def read_part(kind: str, talker: str, f: list[str]) -> Part:
    """The meaning of one sentence's fields; ValueError when they cannot be read."""
    f = f + [""] * 20  # optional trailing fields are absent in older NMEA versions
    if kind == "GGA":
        part = Part(kind, kind, tod_us=parse_tod(f[0]))
        part.lat, part.lon = parse_position(f[1], f[2], f[3], f[4])
        q = f[5].strip()
        if q in GGA_VALID:
            part.quality = GGA_VALID[q]
        else:
            part.void = GGA_QUALITY.get(q, "no_fix")
        part.satellites = parse_int(f[6])
        part.hdop = parse_float(f[7])
        part.alt_m = parse_float(f[8])
        return part
    if kind == "RMC":
        part = Part(kind, kind, tod_us=parse_tod(f[0]))
        status = f[1].strip()
        part.lat, part.lon = parse_position(f[2], f[3], f[4], f[5])
        knots = parse_float(f[6])
        part.speed_mps = knots * KNOTS_TO_MPS if knots is not None else None
        part.course_deg = parse_float(f[7])
        part.day = parse_date(f[8])
        _status(part, status, f[11].strip())
        return part
    if kind == "GNS":
        part = Part(kind, kind, tod_us=parse_tod(f[0]))
        part.lat, part.lon = parse_position(f[1], f[2], f[3], f[4])
        modes = f[5].strip().upper()
        valid = [MODE_QUALITY[c] for c in modes if c in MODE_QUALITY]
        if valid:
            part.quality = max(valid)
        else:
            part.void = next((MODE_VOID[c] for c in modes if c in MODE_VOID), "no_fix")
        part.satellites = parse_int(f[6])
        part.hdop = parse_float(f[7])
        part.alt_m = parse_float(f[8])
        return part
    if kind == "GLL":
        part = Part(kind, kind, tod_us=parse_tod(f[4]))
        part.lat, part.lon = parse_position(f[0], f[1], f[2], f[3])
        _status(part, f[5].strip(), f[6].strip())
        return part
    if kind == "ZDA":
        part = Part(kind, kind, tod_us=parse_tod(f[0]))
        if f[1].strip() and f[2].strip() and f[3].strip():
            try:
                part.day = date(int(f[3]), int(f[2]), int(f[1]))
            except ValueError:
                raise ValueError("bad ZDA date") from None
        return part
    if kind == "GSA":
        prns = frozenset(p.strip().lstrip("0") for p in f[2:14] if p.strip().lstrip("0"))
        system = f[17].strip() or _constellation(talker, prns)
        part = Part(kind, f"GSA:{talker}:{system}", prns=prns)
        mode = f[1].strip()
        if mode == "1":
            part.void = "no_fix"
        elif mode in ("2", "3"):
            part.dim = int(mode)
        part.hdop = parse_float(f[15])
        return part
    if kind == "VTG":
        part = Part(kind, kind)
        if f[1].strip() in ("T", ""):  # NMEA 2.3+: value,T,value,M,knots,N,km/h,K,mode
            part.course_deg = parse_float(f[0])
            kmh, knots, mode = parse_float(f[6]), parse_float(f[4]), f[8].strip()
        else:  # NMEA 1.5: course true, course magnetic, knots, km/h
            part.course_deg = parse_float(f[0])
            kmh, knots, mode = parse_float(f[3]), parse_float(f[2]), ""
        part.speed_mps = (
            kmh / 3.6 if kmh is not None else (knots * KNOTS_TO_MPS if knots is not None else None)
        )
        if mode in MODE_VOID:
            part.void = MODE_VOID[mode]
        return part
    raise ValueError(kind)


def _status(part: Part, status: str, mode: str) -> None:
    """RMC/GLL: status A/V and the optional mode letter (NMEA 2.3+)."""
    if status != "A":
        part.void = "status_void"
    elif mode and mode in MODE_VOID:
        part.void = MODE_VOID[mode]
    else:
        part.quality = MODE_QUALITY.get(mode, 1) if mode else 1


def _constellation(talker: str, prns: frozenset[str]) -> str:
    """Which system a GSA of a GN talker is about, from its satellite numbers (NMEA 4.0)."""
    if talker != "GN" or not prns:
        return talker
    n = min(int(p) for p in prns if p.isdigit()) if any(p.isdigit() for p in prns) else 0
    if n <= 32:
        return "GPS"
    if n <= 64:
        return "SBAS"
    if n <= 96:
        return "GLONASS"
    if n <= 200:
        return "QZSS"
    if n <= 300:
        return "BeiDou"
    return "Galileo" if n <= 400 else "BeiDou"


def parse_tod(text: str) -> int | None:
    """hhmmss[.sss] as microseconds of the day; 23:59:60 (a leap second) is DAY_US and up."""
    text = text.strip()
    if not text:
        return None
    whole, _, frac = text.partition(".")
    if len(whole) != 6 or not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"bad time {text!r}")
    h, m, s = int(whole[:2]), int(whole[2:4]), int(whole[4:])
    if h > 23 or m > 59 or s > 60 or (s == 60 and (h, m) != (23, 59)):
        raise ValueError(f"bad time {text!r}")
    us = int((frac + "000000")[:6]) if frac else 0
    return ((h * 60 + m) * 60 + s) * 1_000_000 + us


def parse_date(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"bad date {text!r}")
    day, month, yy = int(text[:2]), int(text[2:4]), int(text[4:])
    # Two-digit years: NMEA has no century. 80-99 are 1980-1999 (GPS began in 1980).
    return date(1900 + yy if yy >= 80 else 2000 + yy, month, day)


def parse_position(lat: str, ns: str, lon: str, ew: str) -> tuple[float | None, float | None]:
    lat, ns, lon, ew = lat.strip(), ns.strip().upper(), lon.strip(), ew.strip().upper()
    if not lat or not lon:
        return None, None
    la = _degrees(lat, 2, 90.0)
    lo = _degrees(lon, 3, 180.0)
    if ns not in ("N", "S") or ew not in ("E", "W"):
        raise ValueError("bad hemisphere")
    return (-la if ns == "S" else la), (-lo if ew == "W" else lo)


def _degrees(text: str, width: int, limit: float) -> float:
    whole, _, _frac = text.partition(".")
    if len(whole) < width + 2 or not whole.isdigit():
        raise ValueError(f"bad coordinate {text!r}")
    deg = int(text[: len(whole) - 2])
    minutes = float(text[len(whole) - 2 :])
    if minutes >= 60.0:
        raise ValueError(f"bad coordinate {text!r}")
    value = deg + minutes / 60.0
    if value > limit:
        raise ValueError(f"bad coordinate {text!r}")
    return value


def parse_float(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a number")
    return value


def parse_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text else None


def _tod_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _near(base: date, base_tod: int, tod_us: int) -> date:
    """The date of `tod_us`, given a nearby instant `base` + `base_tod`: across midnight too."""
    if tod_us - base_tod < -HALF_DAY_US:
        return base + timedelta(days=1)
    if tod_us - base_tod > HALF_DAY_US:
        return base - timedelta(days=1)
    return base


def _utc(day: date, tod_us: int) -> datetime:
    # POSIX time has no leap second: 23:59:60.x is kept as the last instant of 23:59:59.
    us = min(tod_us, DAY_US - 1)
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(microseconds=us)


# -- logs -----------------------------------------------------------------------------------------
def parse_nmea(
    lines: Iterable[str | bytes],
    stats: NmeaStats | None = None,
    *,
    day: date | None = None,
    today: date | None = None,
) -> list[Fix]:
    """Fixes in time order from a recorded log (one fix per instant).

    A log whose first epochs carry no date takes it from the first RMC or ZDA further on.
    """
    materialized = list(lines)
    reader = NmeaReader(stats, day=day, today=today)
    seed = _first_date(materialized, today)
    if seed is not None:
        reader.current_date, reader._date_tod = seed
    fixes: list[Fix] = []
    for raw in materialized:
        fixes.extend(reader.feed(raw))
    fixes.extend(reader.flush())
    fixes.sort(key=lambda f: f.time)
    unique = [f for i, f in enumerate(fixes) if i == 0 or f.time != fixes[i - 1].time]
    reader.stats.fixes = len(unique)
    return unique


def _first_date(lines: list[str | bytes], today: date | None) -> tuple[date, int] | None:
    """The first (date, time of day) a log's RMC or ZDA sentences give (checksums verified)."""
    probe = NmeaReader(NmeaStats(), today=today)
    for raw in lines:
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if "RMC" not in text and "ZDA" not in text:
            continue
        for part in _parts(text):
            if part.day is not None and part.tod_us is not None:
                return probe._rolled_over(part.day), part.tod_us
    return None


def _parts(text: str) -> Iterator[Part]:
    for m in SENTENCE.finditer(text):
        try:
            msg = pynmea2.parse(f"${m.group(1)}*{m.group(2).upper()}", check=True)
            if isinstance(msg, pynmea2.TalkerSentence) and msg.sentence_type in ("RMC", "ZDA"):
                yield read_part(str(msg.sentence_type), str(msg.talker), [str(x) for x in msg.data])
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
            continue
