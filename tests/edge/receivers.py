"""Captures of real receivers' output, written with pynmeagps (NMEA) and pyubx2 (UBX binary).

Each capture is what a documented receiver sends, sentence for sentence, for a car driving
north at 10 m/s, together with the truth: which epochs hold a GNSS fix. The sentence sets
and orders follow the receivers' manuals:

* u-blox M8/M9, NMEA 4.10 (u-blox 8 receiver description, "NMEA messages overview"):
  RMC, VTG, GGA, GSA (one per constellation, with systemId), GSV, GLL, talker GN.
  Dead reckoning (ADR) epochs: GGA quality 6, RMC/GLL/VTG mode E.
* u-blox in dual protocol (UBX + NMEA on one port): UBX-NAV-PVT frames between sentences.
* SiRFstarIV (NMEA reference manual): GGA, GSA, GSV, RMC, talker GP; GSA after GGA.
* Survey/marine receivers configured for GGA + ZDA (Trimble, Septentrio): no RMC.
* GGA-only, RMC-only (track loggers) and GNS-only (NMEA 4.x) configurations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

import pynmea2
from pynmeagps import GET, NMEAMessage
from pyubx2 import UBXMessage

from tests.edge.synthetic import LAT0, LON0, M_PER_DEG_LAT

SPEED_MPS = 10.0
KNOTS = round(SPEED_MPS / 0.514444, 3)


@dataclass(frozen=True)
class Truth:
    """One epoch of a capture: where the car was, and whether the receiver had a GNSS fix."""

    time: datetime
    lat: float
    lon: float
    fix: bool = True
    dim: int = 3
    satellites: int = 12
    hdop: float = 0.8
    quality: int = 1  # GGA quality the receiver reports
    leap: bool = False  # 23:59:60: written as such, kept as 23:59:59.999999


@dataclass
class Capture:
    name: str
    data: bytes
    truth: list[Truth] = field(default_factory=list)

    def lines(self) -> list[bytes]:
        return self.data.splitlines(keepends=True)

    @property
    def fixes(self) -> list[Truth]:
        return [t for t in self.truth if t.fix]


def drive(start: datetime, seconds: int, step_s: float = 1.0) -> list[Truth]:
    return [
        Truth(
            start + timedelta(seconds=i * step_s),
            LAT0 + i * step_s * SPEED_MPS / M_PER_DEG_LAT,
            LON0,
        )
        for i in range(seconds)
    ]


def with_checksum(body: str) -> bytes:
    return f"${body}*{pynmea2.NMEASentence.checksum(body):02X}\r\n".encode()


def edited(sentence: bytes, field_index: int, value: str) -> bytes:
    """A sentence with one field replaced (0 is the first field after the address)."""
    body = sentence.decode().strip()[1:].split("*")[0].split(",")
    body[field_index + 1] = value
    return with_checksum(",".join(body))


def _t(t: Truth) -> time:
    return t.time.time().replace(tzinfo=None)


def _leap(sentence: bytes, t: Truth, field_index: int) -> bytes:
    """23:59:59.x written as 23:59:60.x (pynmeagps, like Python, has no 60th second)."""
    if not t.leap:
        return sentence
    return edited(sentence, field_index, "235960.00")


def gga(talker: str, t: Truth) -> bytes:
    # no fix: quality 0, unless the receiver says what else it is (6 estimated, 7 manual, 8 sim)
    quality = t.quality if t.fix or t.quality in (6, 7, 8) else 0
    msg = NMEAMessage(
        talker, "GGA", GET, time=_t(t), lat=t.lat, NS="N", lon=t.lon, EW="E",
        quality=quality, numSV=t.satellites, HDOP=t.hdop, alt=18.0, altUnit="M",
        sep=17.9, sepUnit="M",
    )  # fmt: skip
    return _leap(msg.serialize(), t, 0)


def rmc(
    talker: str, t: Truth, mode: str = "A", nmea41: bool = True, day: date | None = None
) -> bytes:
    status = "A" if t.fix else "V"
    kwargs = {"navStatus": "V"} if nmea41 else {}
    msg = NMEAMessage(
        talker, "RMC", GET, time=_t(t), status=status, lat=t.lat, NS="N", lon=t.lon, EW="E",
        spd=KNOTS, cog=0.0, date=day or t.time.date(), posMode=mode if t.fix else "N", **kwargs,
    )  # fmt: skip
    return _leap(msg.serialize(), t, 0)


def gsa(talker: str, t: Truth, system: int | None, svids: list[int]) -> bytes:
    mode = t.dim if t.fix else 1
    sv = {f"svid_{i + 1:02d}": s for i, s in enumerate(svids[:12])}
    kwargs = {"systemId": system} if system is not None else {}
    msg = NMEAMessage(
        talker,
        "GSA",
        GET,
        opMode="A",
        navMode=mode,
        **sv,
        PDOP=1.4,
        HDOP=t.hdop,
        VDOP=1.1,
        **kwargs,
    )
    raw = msg.serialize()
    # pynmeagps writes 0 for unused satellite slots; receivers leave them empty
    body = raw.decode().strip()[1:].split("*")[0].split(",")
    body[3:15] = [s if s not in ("0", "") else "" for s in body[3:15]]
    if system is None:
        body = body[:18]
    return with_checksum(",".join(body))


def gsv(talker: str, svids: list[int]) -> bytes:
    sats = {}
    for i, s in enumerate(svids[:4]):
        sats.update(
            {
                f"svid_{i + 1:02d}": s,
                f"elv_{i + 1:02d}": 45,
                f"az_{i + 1:02d}": 90 * i,
                f"cno_{i + 1:02d}": 40,
            }
        )
    return NMEAMessage(talker, "GSV", GET, numMsg=1, msgNum=1, numSV=len(svids), **sats).serialize()


def vtg(talker: str, t: Truth, mode: str = "A") -> bytes:
    return NMEAMessage(
        talker, "VTG", GET, cogt=0.0, cogtUnit="T", cogm="", cogmUnit="M", sogn=KNOTS,
        sognUnit="N", sogk=SPEED_MPS * 3.6, sogkUnit="K", posMode=mode if t.fix else "N",
    ).serialize()  # fmt: skip


def gll(talker: str, t: Truth, mode: str = "A") -> bytes:
    msg = NMEAMessage(
        talker, "GLL", GET, lat=t.lat, NS="N", lon=t.lon, EW="E", time=_t(t),
        status="A" if t.fix else "V", posMode=mode if t.fix else "N",
    )  # fmt: skip
    return _leap(msg.serialize(), t, 4)


def gns(talker: str, t: Truth, modes: str = "AAN") -> bytes:
    msg = NMEAMessage(
        talker, "GNS", GET, time=_t(t), lat=t.lat, NS="N", lon=t.lon, EW="E",
        posMode=modes if t.fix else "NNN", numSV=t.satellites, HDOP=t.hdop, alt=18.0, sep=17.9,
    )  # fmt: skip
    return _leap(msg.serialize(), t, 0)


def zda(talker: str, t: Truth) -> bytes:
    d = t.time.date()
    msg = NMEAMessage(
        talker, "ZDA", GET, time=_t(t), day=d.day, month=d.month, year=d.year, ltzh="00", ltzn="00"
    )
    return _leap(msg.serialize(), t, 0)


def nav_pvt(t: Truth) -> bytes:
    return UBXMessage(
        "NAV", "NAV-PVT", GET, iTOW=int(t.time.timestamp() * 1000) % 604_800_000,
        year=t.time.year, month=t.time.month, day=t.time.day, hour=t.time.hour,
        min=t.time.minute, second=t.time.second, validDate=1, validTime=1, fixType=3 if t.fix else 0,
        gnssFixOk=1 if t.fix else 0, numSV=t.satellites, lon=t.lon, lat=t.lat, height=35900,
        hMSL=18000, gSpeed=int(SPEED_MPS * 1000), headMot=0,
    ).serialize()  # fmt: skip


GPS_SVIDS = [2, 5, 7, 13, 15, 18, 20, 24]
GLONASS_SVIDS = [65, 66, 72, 80]


# -- receivers --------------------------------------------------------------------------------
def ublox_m8(
    truth: list[Truth], *, ubx: bool = False, dead_reckoning: set[int] | None = None
) -> Capture:
    """u-blox M8, NMEA 4.10, default messages; `ubx` adds UBX-NAV-PVT before each epoch's NMEA.

    Epochs in `dead_reckoning` are the receiver coasting on wheel ticks in a tunnel: GGA
    quality 6 and mode E, which must never become fixes.
    """
    out = b""
    marked: list[Truth] = []
    for i, t in enumerate(truth):
        mode = "A"
        if dead_reckoning and i in dead_reckoning:
            t = replace(t, fix=False, quality=6)
            mode = "E"
        marked.append(t)
        epoch = b""
        if ubx:
            epoch += nav_pvt(t)  # binary, no line end: the next `$` follows it on one line
        if t.quality == 6:
            epoch += edited(rmc("GN", replace(t, fix=True), "E"), 11, "E")
            epoch += vtg("GN", replace(t, fix=True), "E")
            epoch += gga("GN", t)
            epoch += gsa("GN", replace(t, fix=True, dim=3), 1, GPS_SVIDS)
            epoch += gll("GN", replace(t, fix=True), "E")
        else:
            epoch += rmc("GN", t, mode)
            epoch += vtg("GN", t, mode)
            epoch += gga("GN", t)
            epoch += gsa("GN", t, 1, GPS_SVIDS)
            epoch += gsa("GN", t, 2, GLONASS_SVIDS)
            epoch += gsv("GP", GPS_SVIDS) + gsv("GL", GLONASS_SVIDS)
            epoch += gll("GN", t, mode)
        out += epoch
    return Capture("u-blox M8" + (" UBX+NMEA" if ubx else ""), out, marked)


def sirf(truth: list[Truth], *, gsa_first: bool = False) -> Capture:
    """SiRFstarIV: GGA, GSA, GSV, RMC (GP, NMEA 3.0); `gsa_first` puts GSA before GGA."""
    out = b""
    for t in truth:
        g = gsa("GP", t, None, GPS_SVIDS)
        out += (g + gga("GP", t)) if gsa_first else (gga("GP", t) + g)
        out += gsv("GP", GPS_SVIDS)
        out += rmc("GP", t, "A", nmea41=False)
    return Capture("SiRFstarIV", out, truth)


def gga_zda(truth: list[Truth]) -> Capture:
    return Capture("GGA+ZDA", b"".join(gga("GP", t) + zda("GP", t) for t in truth), truth)


def gga_only(truth: list[Truth]) -> Capture:
    return Capture("GGA only", b"".join(gga("GP", t) for t in truth), truth)


def rmc_only(truth: list[Truth]) -> Capture:
    out = b"".join(rmc("GP", t, "A", nmea41=False) for t in truth)
    return Capture("RMC only", out, [replace(t, satellites=0, dim=0) for t in truth])


def gns_only(truth: list[Truth]) -> Capture:
    return Capture(
        "GNS only", b"".join(gns("GN", t) for t in truth), [replace(t, dim=0) for t in truth]
    )


TALKERS = ("GP", "GN", "GL", "GA", "GB", "BD", "GQ")


def every_talker(truth: list[Truth]) -> Capture:
    """Each epoch from another constellation's talker (a receiver set to one system at a time)."""
    out = b""
    for i, t in enumerate(truth):
        talker = TALKERS[i % len(TALKERS)]
        out += gga(talker, t) + rmc(talker, t)
    return Capture("every talker", out, truth)


def doubled_dollar(capture: Capture) -> Capture:
    """Every line starting `$$` (seen from loggers that prefix their own `$`)."""
    return Capture(
        capture.name + " $$", b"".join(b"$" + line for line in capture.lines()), capture.truth
    )


def week_rollover(truth: list[Truth]) -> Capture:
    """RMC dates 1024 weeks early, as receivers with the GPS week rollover bug report them."""
    early = timedelta(weeks=1024)
    out = b"".join(gga("GP", t) + rmc("GP", t, day=(t.time - early).date()) for t in truth)
    return Capture("week rollover", out, truth)


def mutate(capture: Capture, how: Callable[[int, bytes], bytes]) -> Capture:
    return Capture(
        capture.name,
        b"".join(how(i, line) for i, line in enumerate(capture.lines())),
        capture.truth,
    )


START = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
LEAP = datetime(2016, 12, 31, 23, 59, 58, tzinfo=UTC)  # a real leap second: 2016-12-31 23:59:60


def across_the_leap_second() -> list[Truth]:
    """23:59:58, 23:59:59, 23:59:60, 00:00:00, 00:00:01 (the car drives on through it)."""
    out = []
    for i in range(5):
        lat = LAT0 + i * SPEED_MPS / M_PER_DEG_LAT
        if i == 2:
            out.append(Truth(LEAP.replace(second=59, microsecond=999999), lat, LON0, leap=True))
        else:
            out.append(Truth(LEAP + timedelta(seconds=i if i < 2 else i - 1), lat, LON0))
    return out
