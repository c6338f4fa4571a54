"""NMEA logs become fixes; bad lines are counted, never fatal; positions interpolate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.gnss import NmeaStats, Track, haversine_m
from edge.nmea import parse_nmea

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "drives" / "sample" / "track.nmea"


def test_it_merges_gga_and_rmc_into_fixes() -> None:
    stats = NmeaStats()
    fixes = parse_nmea(SAMPLE.read_text().splitlines(), stats)
    assert stats.fixes == len(fixes) == 14 and not stats.rejected
    first = fixes[0]
    assert first.time == datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
    assert first.lat == pytest.approx(60.17074, abs=1e-4) and first.lon == pytest.approx(
        24.94548, abs=1e-4
    )
    assert (first.quality, first.satellites, first.hdop) == (1, 9, 0.9)
    assert first.speed_mps == pytest.approx(10.0, abs=0.05)


def test_it_counts_garbage_and_bad_checksums_and_keeps_going() -> None:
    lines = SAMPLE.read_text().splitlines()
    broken = lines[2][:-2] + "00"  # wrong checksum
    stats = NmeaStats()
    fixes = parse_nmea([lines[0], lines[1], "\x00\xffnot nmea at all", broken, *lines[3:]], stats)
    assert stats.rejected["bad_checksum"] == 1
    assert stats.rejected["unparseable"] == 1
    # The broken GGA's epoch still has its RMC: a fix without altitude and satellite count.
    assert len(fixes) == 14
    assert (fixes[1].alt_m, fixes[1].satellites) == (None, 0)
    assert fixes[0].alt_m == 18.0


def test_the_track_interpolates_between_fixes_and_refuses_gaps() -> None:
    fixes = parse_nmea(SAMPLE.read_text().splitlines())
    track = Track(fixes)
    mid = track.at(fixes[0].time + timedelta(milliseconds=500))
    assert mid is not None
    assert haversine_m(fixes[0].lat, fixes[0].lon, mid.lat, mid.lon) == pytest.approx(5.0, abs=0.2)
    assert track.at(fixes[0].time - timedelta(seconds=1)) is None
    gappy = Track([fixes[0], fixes[5]], max_gap=timedelta(seconds=3))
    assert gappy.at(fixes[0].time + timedelta(seconds=2)) is None
