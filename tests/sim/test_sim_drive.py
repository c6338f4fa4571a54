from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pynmea2
import pytest

from sim.drive import DriveSpec, LiveDrive, load_context, plan_drive, record

START = datetime(2025, 6, 2, 7, 15, 3, 400_000, tzinfo=UTC)


def _spec(**kw: object) -> DriveSpec:
    base = dict(
        device_id="t1", seed=5, start_utc=START, duration_s=4.0, fps=5.0, width=320, height=180
    )
    base.update(kw)
    return DriveSpec(**base)  # type: ignore[arg-type]


def test_a_recorded_drive_looks_like_a_dashcam_card_with_truth_beside_it(tmp_path: Path) -> None:
    ctx = load_context()
    sim = plan_drive(ctx, _spec())
    record(ctx, sim, tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["start_time_utc"] == "2025-06-02T07:15:03.400Z"
    assert (m["fps"], m["width"], m["height"], m["frame_count"]) == (5.0, 320, 180, 20)
    assert m["camera"]["fx"] > 0 and m["device_id"] == "t1"
    cap = cv2.VideoCapture(str(tmp_path / "video.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 20
    sentences = (tmp_path / "gnss.nmea").read_text().splitlines()
    assert len(sentences) == 8  # 4 fixes, GGA + RMC
    assert all(pynmea2.parse(s, check=True) for s in sentences)
    assert len((tmp_path / "truth" / "boxes.jsonl").read_text().splitlines()) == 20
    assert len((tmp_path / "truth" / "track.csv").read_text().splitlines()) == 21


def test_the_live_source_yields_frames_and_sentences_in_time_order() -> None:
    live = LiveDrive(_spec(duration_s=2.0))
    events = list(live.events())
    frames = [e for e in events if e[0] == "frame"]
    nmea = [e for e in events if e[0] == "nmea"]
    assert len(frames) == 10 and len(nmea) == 4
    assert frames[1][1] - frames[0][1] == timedelta(milliseconds=200)
    assert frames[0][2].shape == (180, 320, 3)
    times = [e[1] for e in events]
    assert times == sorted(times)


def test_drivers_keep_to_the_speed_limit_and_stop_when_needed() -> None:
    ctx = load_context()
    sim = plan_drive(ctx, _spec(duration_s=240.0, seed=11))
    v = sim.traj.speed
    assert v.max() < 60 / 3.6 * 1.06
    assert v.mean() > 3.0
    assert (abs(sim.traj.accel) < 4.01).all()


@pytest.mark.parametrize("mode", ["parked", "loop"])
def test_farmers_and_campers_stay_put(mode: str) -> None:
    ctx = load_context()
    sim = plan_drive(ctx, _spec(duration_s=120.0, seed=3, mode=mode))
    e, n = sim.traj.east, sim.traj.north
    extent = max(e.max() - e.min(), n.max() - n.min())
    assert extent < (0.01 if mode == "parked" else 900.0)


def test_a_drive_starts_yesterday_by_default_so_the_server_takes_its_frames() -> None:
    from datetime import UTC, datetime, timedelta

    from sim.drive import default_start

    start = default_start(3)
    assert timedelta(hours=12) < datetime.now(UTC) - start < timedelta(days=2)
    assert default_start(3) == start  # the same for a seed (on the same day)


@pytest.mark.parametrize("world", ["sample", "mountain:3"])
def test_a_loop_camper_laps_a_few_blocks_that_the_novelty_check_catches_and_honest_drives_do_not(
    world: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The camper drives one short lap over and over, in a grid town and on a mountain road
    with hardly a junction (there: out and back along one stretch)."""
    from ingest import tracks
    from ingest.fraud import FraudPolicy, TrackPoint
    from sim.worlds import resolve

    monkeypatch.setenv("ROADMESH_SIM_WORLDS", str(tmp_path))
    ctx = load_context(resolve(world))
    pol = FraudPolicy()

    def points(sim: object) -> list[TrackPoint]:
        f = sim.fixes  # type: ignore[attr-defined]
        ok = f.valid.astype(bool)
        t, lat, lon = f.t[ok], sim.fix_lat[ok], sim.fix_lon[ok]  # type: ignore[attr-defined]
        return [
            TrackPoint(i, i, 1.7e9 + float(t[i]), float(lat[i]), float(lon[i]))
            for i in range(0, len(t), 2)
        ]

    for seed in (3, 4):
        camper = plan_drive(ctx, _spec(duration_s=240.0, seed=seed, mode="loop"))
        honest = plan_drive(ctx, _spec(duration_s=240.0, seed=seed))
        # after the first lap the camper is back on road it drove a minute or more before
        xy = np.column_stack([camper.traj.east, camper.traj.north])
        t = camper.traj.t
        again = [
            bool((np.hypot(*(xy[: np.searchsorted(t, t[k] - 60.0)] - xy[k]).T) < 10.0).any())
            for k in range(0, len(t), 10)
        ]
        assert np.mean(again) > 0.5
        pts = points(camper)
        flags = tracks.check_novelty(pts, pol)
        assert len(flags) == len(pts), (world, seed)
        assert tracks.check_novelty(points(honest), pol) == {}, (world, seed)
