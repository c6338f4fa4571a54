"""The simulator's live drive (sim.drive.LiveDrive) through `edge run`'s pipeline, in process."""

from __future__ import annotations

from pathlib import Path

from edge.gnss_sources import FeedSource
from sim.drive import DriveSpec, LiveDrive, default_start
from tests.edge.test_runner_faults import make_runner


def test_a_live_simulated_drive_is_geotagged_sampled_and_queued(tmp_path: Path) -> None:
    spec = DriveSpec("dev-sim", 3, default_start(3), duration_s=30.0, width=640, height=360)
    runner = make_runner(tmp_path / "device", trim_m=20.0)
    runner.run(None, FeedSource(), live=LiveDrive(spec))
    c = runner.pipeline.counters
    assert c.captured == 150  # 30 s at 5 fps
    # Frames wait for the fix after them, so only those before the first fix lack one.
    assert c.dropped["no_fix"] <= 5, dict(c.dropped)
    assert c.kept >= 8 and c.enqueued == c.kept
    assert runner.outbox.depth()[0] == c.enqueued
    assert runner.all_errors()["bad_checksum"] == 0
