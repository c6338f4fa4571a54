from __future__ import annotations

import functools
import operator
from datetime import UTC, datetime

import numpy as np
import pynmea2
import pytest

from sim.gnss import GnssModel, fix_times, gpx_document, nmea_lines, simulate
from vision.geo import LocalFrame


def _straight(n: int, hz: float = 1.0) -> tuple[np.ndarray, ...]:
    t = np.arange(n) / hz
    return t, 10.0 * t, np.zeros(n), np.full(n, 10.0), np.full(n, 90.0)


def test_nmea_sentences_have_valid_checksums_and_parse_with_pynmea2() -> None:
    frame = LocalFrame(60.17, 24.94)
    t, e, n, v, c = _straight(120)
    fixes = simulate(t, e, n, v, c, np.random.default_rng(0), GnssModel(dropout_rate_hz=0.02))
    lon, lat = frame.to_lonlat(fixes.east, fixes.north)
    start = datetime(2025, 6, 2, 7, 0, 0, tzinfo=UTC)
    lines = nmea_lines(start, fixes, lat, lon)
    assert len(lines) == 240
    kinds = set()
    for k, (_, s) in enumerate(lines):
        body, checksum = s[1:].split("*")
        assert int(checksum, 16) == functools.reduce(operator.xor, body.encode(), 0)
        msg = pynmea2.parse(s, check=True)
        kinds.add(msg.sentence_type)
        fix = k // 2
        if fixes.valid[fix]:
            assert msg.latitude == pytest.approx(lat[fix], abs=2e-7)
            assert msg.longitude == pytest.approx(lon[fix], abs=2e-7)
    assert kinds == {"GGA", "RMC"}
    assert not fixes.valid.all()  # dropouts are written as no-fix sentences
    gpx = gpx_document(start, fixes, lat, lon, "dev")
    assert gpx.count("<trkpt") == int(fixes.valid.sum())


def test_gnss_errors_match_the_configured_model() -> None:
    model = GnssModel()
    t, e, n, v, c = _straight(60_000)
    fixes = simulate(t, e, n, v, c, np.random.default_rng(42), model)
    err = np.stack([fixes.east - e, fixes.north - n], axis=1)
    total = np.sqrt(model.bias_sigma_m**2 + model.white_sigma_m**2)
    assert err.std(axis=0) == pytest.approx([total, total], rel=0.1)
    # white noise from first differences: var(d) = 2 w^2 + 2 b^2 (1 - exp(-dt/tau))
    d = np.diff(err, axis=0)
    w2 = (d.var(axis=0) - 2 * model.bias_sigma_m**2 * (1 - np.exp(-1 / model.bias_tau_s))) / 2
    assert np.sqrt(w2) == pytest.approx([model.white_sigma_m] * 2, rel=0.08)
    assert fixes.multipath.max() == 0.0  # open sky: no multipath
    assert 0.9 < fixes.valid.mean() < 1.0


def test_multipath_near_buildings_stays_within_five_metres() -> None:
    from scipy.spatial import cKDTree

    model = GnssModel()
    t, e, n, v, c = _straight(20_000)
    walls = cKDTree(np.stack([e, n + 6.0], axis=1))  # a wall 6 m beside the whole track
    fixes = simulate(t, e, n, v, c, np.random.default_rng(1), model, walls)
    assert 0 < fixes.multipath.max() <= model.multipath_max_m
    assert (fixes.multipath > 0).mean() > 0.05
    assert fixes.hdop.mean() > 1.8 and fixes.nsat.mean() < 10
    assert fixes.valid.mean() < 0.99


def test_fixes_fall_on_whole_receiver_epochs() -> None:
    start = datetime(2025, 6, 2, 7, 0, 0, 300_000, tzinfo=UTC)
    assert fix_times(start, 3.0, 1.0) == pytest.approx([0.7, 1.7, 2.7])
    assert fix_times(start, 0.6, 5.0) == pytest.approx([0.1, 0.3, 0.5])
    with pytest.raises(ValueError):
        fix_times(start, 1.0, 50.0)
