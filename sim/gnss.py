"""GNSS receiver error model and its outputs: NMEA 0183 (GGA + RMC) and GPX.

Default model (later accuracy targets depend on it, keep it):
- a slowly drifting bias per horizontal axis: first-order Gauss-Markov, 1.5 m RMS, tau 60 s;
- white noise 1.0 m per axis per fix;
- near buildings (urban canyon): worse HDOP, fewer satellites, multipath excursions of up
  to 5 m lasting a few seconds, more dropouts;
- occasional dropouts (no fix: GGA quality 0, RMC status V).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import gpxpy
import gpxpy.gpx
import numpy as np
import pynmea2
from numpy.typing import NDArray
from scipy.spatial import cKDTree

FloatArray = NDArray[np.float64]
KNOTS_PER_MPS = 1.0 / 0.514444


@dataclass(frozen=True)
class GnssModel:
    bias_sigma_m: float = 1.5
    bias_tau_s: float = 60.0
    white_sigma_m: float = 1.0
    vertical_factor: float = 1.7
    multipath_max_m: float = 5.0
    multipath_rate_hz: float = 1.0 / 45.0  # in a full urban canyon
    multipath_duration_s: tuple[float, float] = (2.0, 8.0)
    dropout_rate_hz: float = 1.0 / 900.0  # open sky
    canyon_dropout_rate_hz: float = 1.0 / 240.0
    dropout_mean_s: float = 4.0
    canyon_range_m: float = 30.0
    speed_sigma_mps: float = 0.08

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Fixes:
    """Receiver output at fix times t (s from drive start), ENU metres."""

    t: FloatArray
    east: FloatArray
    north: FloatArray
    alt: FloatArray
    speed: FloatArray  # m/s
    course: FloatArray  # deg
    hdop: FloatArray
    nsat: NDArray[np.int64]
    valid: NDArray[np.bool_]
    multipath: FloatArray  # magnitude of the multipath error at each fix (m)
    canyon: FloatArray


def canyon_factor(xy: FloatArray, building_tree: cKDTree | None, model: GnssModel) -> FloatArray:
    """0 in open sky, 1 with building walls right beside the antenna."""
    if building_tree is None:
        return np.zeros(len(xy))
    d, _ = building_tree.query(xy, k=1)
    return np.clip((model.canyon_range_m - d) / (model.canyon_range_m - 5.0), 0.0, 1.0)


def simulate(
    t: FloatArray,
    east: FloatArray,
    north: FloatArray,
    speed: FloatArray,
    course: FloatArray,
    rng: np.random.Generator,
    model: GnssModel = GnssModel(),
    building_tree: cKDTree | None = None,
    alt0: float = 18.0,
) -> Fixes:
    """Receiver fixes for a true track sampled at fix times t (regular spacing)."""
    n = len(t)
    dt = float(np.median(np.diff(t))) if n > 1 else 1.0
    rho = math.exp(-dt / model.bias_tau_s)
    drive = model.bias_sigma_m * math.sqrt(1.0 - rho * rho)
    bias = np.zeros((n, 3))
    bias[0] = rng.standard_normal(3) * model.bias_sigma_m
    w = rng.standard_normal((n, 3))
    for k in range(1, n):
        bias[k] = rho * bias[k - 1] + drive * w[k]
    bias[:, 2] *= model.vertical_factor
    canyon = canyon_factor(np.stack([east, north], axis=1), building_tree, model)
    white = rng.standard_normal((n, 3)) * model.white_sigma_m * (1.0 + 0.5 * canyon)[:, None]
    white[:, 2] *= model.vertical_factor
    # multipath: events arrive at a rate proportional to the canyon factor
    mp = np.zeros((n, 2))
    k = 0
    while k < n:
        if rng.random() < model.multipath_rate_hz * dt * canyon[k]:
            dur = rng.uniform(*model.multipath_duration_s)
            m = int(max(1, dur / dt))
            mag = rng.uniform(1.0, model.multipath_max_m)
            ang = rng.uniform(0, 2 * math.pi)
            env = np.sin(np.linspace(0, math.pi, m + 2)[1:-1])  # ramps in and out
            seg = slice(k, min(n, k + m))
            mp[seg, 0] = np.cos(ang) * mag * env[: seg.stop - k]
            mp[seg, 1] = np.sin(ang) * mag * env[: seg.stop - k]
            k += m
        else:
            k += 1
    valid = np.ones(n, dtype=bool)
    k = 0
    while k < n:
        rate = model.dropout_rate_hz + model.canyon_dropout_rate_hz * canyon[k]
        if rng.random() < rate * dt:
            m = int(max(1, rng.exponential(model.dropout_mean_s) / dt))
            valid[k : k + m] = False
            k += m
        else:
            k += 1
    hdop = np.round(
        0.7 + 1.6 * canyon + np.abs(rng.normal(0, 0.1, n)) + np.hypot(mp[:, 0], mp[:, 1]) * 0.15, 1
    )
    nsat = np.clip(np.round(14 - 7 * canyon + rng.normal(0, 1, n)), 4, 24).astype(np.int64)
    spd = np.maximum(0.0, speed + rng.normal(0, model.speed_sigma_mps, n))
    crs = (course + rng.normal(0, 1.0, n) * (speed > 1.0)) % 360.0
    return Fixes(
        t.copy(),
        east + bias[:, 0] + white[:, 0] + mp[:, 0],
        north + bias[:, 1] + white[:, 1] + mp[:, 1],
        alt0 + bias[:, 2] + white[:, 2],
        spd,
        crs,
        hdop,
        nsat,
        valid,
        np.hypot(mp[:, 0], mp[:, 1]),
        canyon,
    )


# ------------------------------------------------------------------ NMEA
def _lat(lat: float) -> tuple[str, str]:
    a = abs(lat)
    d = int(a)
    m = (a - d) * 60.0
    if round(m, 5) >= 60.0:
        d, m = d + 1, 0.0
    return f"{d:02d}{m:08.5f}", "N" if lat >= 0 else "S"


def _lon(lon: float) -> tuple[str, str]:
    a = abs(lon)
    d = int(a)
    m = (a - d) * 60.0
    if round(m, 5) >= 60.0:
        d, m = d + 1, 0.0
    return f"{d:03d}{m:08.5f}", "E" if lon >= 0 else "W"


def _hms(ts: datetime) -> str:
    return ts.strftime("%H%M%S.") + f"{ts.microsecond // 10000:02d}"


def gga(
    ts: datetime,
    lat: float | None,
    lon: float | None,
    valid: bool,
    nsat: int,
    hdop: float,
    alt: float,
) -> str:
    if not valid or lat is None or lon is None:
        fields = (_hms(ts), "", "", "", "", "0", "00", "99.9", "", "M", "", "M", "", "")
    else:
        la, ns = _lat(lat)
        lo, ew = _lon(lon)
        fields = (
            _hms(ts),
            la,
            ns,
            lo,
            ew,
            "1",
            f"{nsat:02d}",
            f"{hdop:.1f}",
            f"{alt:.1f}",
            "M",
            "17.9",
            "M",
            "",
            "",
        )
    return str(pynmea2.GGA("GP", "GGA", fields))


def rmc(
    ts: datetime, lat: float | None, lon: float | None, valid: bool, speed_mps: float, course: float
) -> str:
    date = ts.strftime("%d%m%y")
    if not valid or lat is None or lon is None:
        fields = (_hms(ts), "V", "", "", "", "", "", "", date, "", "", "N")
    else:
        la, ns = _lat(lat)
        lo, ew = _lon(lon)
        fields = (
            _hms(ts),
            "A",
            la,
            ns,
            lo,
            ew,
            f"{speed_mps * KNOTS_PER_MPS:.2f}",
            f"{course:.1f}",
            date,
            "",
            "",
            "A",
        )
    return str(pynmea2.RMC("GP", "RMC", fields))


def nmea_lines(
    start: datetime, fixes: Fixes, lat: FloatArray, lon: FloatArray
) -> list[tuple[float, str]]:
    """(t, sentence) pairs: GGA then RMC for every fix."""
    out = []
    for k in range(len(fixes.t)):
        ts = start + timedelta(seconds=float(fixes.t[k]))
        v = bool(fixes.valid[k])
        out.append(
            (
                float(fixes.t[k]),
                gga(
                    ts,
                    float(lat[k]),
                    float(lon[k]),
                    v,
                    int(fixes.nsat[k]),
                    float(fixes.hdop[k]),
                    float(fixes.alt[k]),
                ),
            )
        )
        out.append(
            (
                float(fixes.t[k]),
                rmc(
                    ts,
                    float(lat[k]),
                    float(lon[k]),
                    v,
                    float(fixes.speed[k]),
                    float(fixes.course[k]),
                ),
            )
        )
    return out


def gpx_document(start: datetime, fixes: Fixes, lat: FloatArray, lon: FloatArray, name: str) -> str:
    g = gpxpy.gpx.GPX()
    g.creator = "roadmesh sim"
    trk = gpxpy.gpx.GPXTrack(name=name)
    g.tracks.append(trk)
    seg = gpxpy.gpx.GPXTrackSegment()
    trk.segments.append(seg)
    for k in range(len(fixes.t)):
        if not fixes.valid[k]:
            continue
        pt = gpxpy.gpx.GPXTrackPoint(
            round(float(lat[k]), 7),
            round(float(lon[k]), 7),
            elevation=round(float(fixes.alt[k]), 1),
            time=start + timedelta(seconds=float(fixes.t[k])),
        )
        pt.horizontal_dilution = float(fixes.hdop[k])
        pt.satellites = int(fixes.nsat[k])
        seg.points.append(pt)
    return str(g.to_xml())


def fix_times(start: datetime, duration_s: float, hz: float) -> FloatArray:
    """Fix epochs (s from start): receivers report on whole multiples of 1/hz of UTC."""
    if not 0.5 <= hz <= 10.0:
        raise ValueError(f"GNSS rate must be 0.5..10 Hz, got {hz}")
    frac = start.microsecond / 1e6 + start.second % 1
    period = 1.0 / hz
    first = (period - (frac % period)) % period
    return np.arange(first, duration_s + 1e-9, period)


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
