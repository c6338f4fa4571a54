"""Sampling keeps one frame every 8 m of a trip, none while parked, none with a poor fix."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from edge.gnss import Fix, Track, haversine_m
from edge.sampling import Sampler, TripBuffer
from edge.settings import EdgeSettings

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
M_PER_DEG = 111_195.0


def track(
    seconds: int,
    speed: float,
    park_s: int = 0,
    park_end_s: int = 0,
    sats: int = 9,
    hdop: float = 0.9,
    dim: int = 3,
) -> Track:
    fixes = []
    for s in range(seconds + 1):
        # Without a parked start the recording begins at cruising speed.
        moving = (s > park_s or park_s == 0) and s <= seconds - park_end_s
        d = min(max(0, s - park_s), seconds - park_end_s - park_s) * speed
        fixes.append(
            Fix(
                T0 + timedelta(seconds=s),
                60.17 + d / M_PER_DEG,
                24.94,
                18.0,
                speed if moving else 0.0,
                0.0,
                1,
                sats,
                hdop,
                dim,
            )
        )
    return Track(fixes)


def run(
    tr: Track, settings: EdgeSettings, seconds: int, fps: float = 30.0
) -> tuple[list[Fix], Sampler]:
    sampler = Sampler(settings)
    buffer: TripBuffer[Fix] = TripBuffer()
    kept: list[Fix] = []
    for i in range(int(seconds * fps)):
        when = T0 + timedelta(seconds=i / fps)
        fix = tr.at(when)
        offer = sampler.offer(when.timestamp(), fix)
        if sampler.trip_ended:
            sampler.trip_ended = False
            buffer.discard()
        if offer.keep:
            assert fix is not None
            sampler.keep(offer)
            buffer.push(offer.odometer_m, fix)
            kept += buffer.release(sampler.odometer_m, settings.trim_m)
    return kept, sampler


def spacing(kept: list[Fix]) -> list[float]:
    return [haversine_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(kept)]


def test_it_keeps_one_frame_every_eight_metres_at_city_speed() -> None:
    kept, _ = run(track(120, 16.7), EdgeSettings(), 120)
    gaps = spacing(kept)
    assert len(gaps) > 150
    assert all(7.0 <= g <= 9.0 for g in gaps), (min(gaps), max(gaps))
    assert sum(gaps) / len(gaps) == pytest.approx(8.0, abs=0.6)


def test_the_sampling_distance_comes_from_the_settings() -> None:
    kept, _ = run(track(60, 10.0), EdgeSettings(sample_distance_m=20.0), 60)
    assert all(19.0 <= g <= 21.0 for g in spacing(kept))


def test_it_keeps_nothing_while_parked_and_counts_why() -> None:
    kept, sampler = run(track(90, 10.0, park_s=90), EdgeSettings(), 90)
    assert kept == []
    assert sampler.dropped["stationary"] > 2000


def test_the_first_and_last_hundred_metres_of_a_trip_are_trimmed() -> None:
    # 30 s parked, 60 s at 10 m/s (600 m), then parked past the trip gap.
    tr = track(200, 10.0, park_s=30, park_end_s=110)
    kept, sampler = run(tr, EdgeSettings(trip_gap_s=60.0), 200)
    start = tr.fixes[0]
    end_m = 600.0
    dist = [haversine_m(start.lat, start.lon, k.lat, k.lon) for k in kept]
    assert min(dist) >= 100.0 and max(dist) <= end_m - 100.0 + 1.0
    assert sampler.dropped["trip_start"] > 0
    assert 380 <= max(dist) - min(dist) <= 410


def test_poor_fixes_and_implausible_speed_are_dropped() -> None:
    for tr, reason in [
        (track(30, 10.0, sats=3), "poor_fix"),
        (track(30, 10.0, hdop=6.0), "poor_fix"),
        (track(30, 10.0, dim=2), "poor_fix"),
        (track(30, 45.0), "too_fast"),
    ]:
        kept, sampler = run(tr, EdgeSettings(trim_m=0.0), 30)
        assert kept == [] and sampler.dropped[reason] > 800


def test_frames_inside_a_privacy_zone_are_never_kept() -> None:
    # A zone around the first 300 m north of the start.
    zone = (
        (24.93, 60.169),
        (24.95, 60.169),
        (24.95, 60.17 + 300 / M_PER_DEG),
        (24.93, 60.17 + 300 / M_PER_DEG),
    )
    tr = track(60, 10.0)
    kept, sampler = run(tr, EdgeSettings(trim_m=0.0, privacy_zones=(zone,)), 60)
    start = tr.fixes[0]
    assert kept and all(haversine_m(start.lat, start.lon, k.lat, k.lon) >= 299.0 for k in kept)
    assert sampler.dropped["privacy_zone"] > 800


def test_a_parked_car_with_noisy_gnss_keeps_nothing_and_its_odometer_stands_still() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    fixes = [
        Fix(
            T0 + timedelta(seconds=s),
            60.17 + rng.normal(0, 1.5) / M_PER_DEG,  # ~1.5 m of position noise per fix
            24.94 + rng.normal(0, 1.5) / (M_PER_DEG / 2),
            18.0,
            float(abs(rng.normal(0, 0.08))),  # the receiver's Doppler speed while parked
            float(rng.uniform(0, 360)),
            1,
            9,
            0.9,
            3,
        )
        for s in range(121)
    ]
    kept, sampler = run(Track(fixes), EdgeSettings(trim_m=0.0), 120)
    assert kept == []
    assert sampler.odometer_m < 8.0  # the odd noisy speed sample may add a step, never a trip


def test_at_the_simulators_five_frames_a_second_it_keeps_the_frame_nearest_each_eight_metres() -> (
    None
):
    kept, _ = run(track(120, 10.0), EdgeSettings(), 120, fps=5.0)
    gaps = spacing(kept)
    assert len(gaps) > 100
    assert all(7.0 <= g <= 9.0 for g in gaps), (min(gaps), max(gaps))
    assert sum(gaps) / len(gaps) == pytest.approx(8.0, abs=0.3)
