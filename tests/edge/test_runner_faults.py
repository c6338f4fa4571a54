"""`edge run` under bad conditions: a camera that disconnects, a disk that fills up.

Each is counted and logged with a clear message, and the runner keeps going. The camera
is faked behind `CameraSource._open` (its seam); the full disk is a real 4 MB tmpfs
(skipped where mounting is not permitted), the uplink a real paho client with no broker.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

import protocol
from broker import free_port
from edge.gnss_sources import FeedSource, LogSource
from edge.identity import DeviceIdentity, MqttLogin
from edge.outbox import COUNTER_BLOCK, Outbox
from edge.pipeline import Captured
from edge.run import EdgeRunner
from edge.settings import EdgeSettings
from edge.sources import CameraSource
from edge.uplink import MqttUplink
from tests.edge.synthetic import START, scene, write_drive
from vision.privacy import Redactor

SERVER_KEY = protocol.public_key_hex(protocol.generate_private_key())


class NoBoxes:
    def detect(self, image: Any) -> list[Any]:
        return []


def make_runner(device_dir: Path, **settings: Any) -> EdgeRunner:
    identity = DeviceIdentity(
        "dev-faults",
        MqttLogin("127.0.0.1", free_port(), "dev-faults", "x"),
        server_public_key=SERVER_KEY,
    )
    base = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5, "telemetry_interval_s": 3600.0}
    return EdgeRunner(
        EdgeSettings(**{**base, **settings}),
        identity,
        protocol.generate_private_key(),
        device_dir,
        redactor=Redactor(NoBoxes(), NoBoxes()),
    )


def stop_when(runner: EdgeRunner, cond: Callable[[], bool], timeout: float = 30.0) -> list[bool]:
    """Stop `runner` from another thread once `cond()` holds; the list says whether it did."""
    met: list[bool] = []

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            time.sleep(0.02)
        met.append(cond())
        runner.stop()

    threading.Thread(target=watch, daemon=True).start()
    return met


# -- a camera that disconnects -----------------------------------------------------------
class FakeCapture:
    def __init__(self, n: int) -> None:
        self.left = n
        self.released = False

    def read(self) -> tuple[bool, Any]:
        if self.left <= 0:
            return False, None  # what OpenCV returns once the USB camera is unplugged
        self.left -= 1
        return True, np.full((48, 64, 3), 128, np.uint8)

    def release(self) -> None:
        self.released = True


class ScriptedCamera(CameraSource):
    """Each open takes the next entry: a number of frames, or None (cannot be opened)."""

    def __init__(self, script: list[int | None]) -> None:
        super().__init__("0", 64, 48, 30.0, max_retry_s=0.4, min_retry_s=0.05)
        self.script = script
        self.opens: list[FakeCapture | None] = []

    def _open(self) -> FakeCapture | None:
        frames = self.script.pop(0) if self.script else None
        cap = FakeCapture(frames) if frames is not None else None
        self.opens.append(cap)
        return cap


def test_a_camera_that_disconnects_is_counted_logged_and_reopened_while_the_runner_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    camera = ScriptedCamera([5, None, 0, 7])  # 5 frames, unplugged, opens but dead, 7 frames
    runner = make_runner(tmp_path / "device")
    met = stop_when(
        runner, lambda: runner.pipeline.counters.captured >= 12 and len(camera.opens) >= 6
    )
    runner.run(camera, FeedSource(), max_fix_wait_s=0.0)
    assert met == [True]
    assert runner.pipeline.counters.captured == 12  # every frame delivered reached the pipeline
    assert all(c.released for c in camera.opens if c is not None)
    assert camera.errors["camera_disconnected"] == 3  # after 5, after 0 and after 7 frames
    assert camera.errors["camera_unavailable"] >= 2  # the unplugged open, and the end
    assert "camera 0 stopped delivering frames after 5; reopening" in caplog.text
    assert "camera 0 cannot be opened; retrying" in caplog.text
    errors = runner.all_errors()  # what telemetry carries
    assert errors["camera_disconnected"] == 3 and errors["camera_unavailable"] >= 2


def test_a_camera_that_never_comes_back_does_not_keep_the_runner_from_stopping(
    tmp_path: Path,
) -> None:
    camera = ScriptedCamera([])
    camera.max_retry_s = 30.0  # a long backoff wait, as after minutes without a camera
    camera.min_retry_s = 30.0
    runner = make_runner(tmp_path / "device")
    stop_when(runner, lambda: camera.errors["camera_unavailable"] >= 1)
    t0 = time.monotonic()
    runner.run(camera, FeedSource(), max_fix_wait_s=0.0)
    assert time.monotonic() - t0 < 10  # SIGTERM's path: stop() interrupts the backoff wait


# -- a full disk -------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB filesystem (tmpfs); mounting needs root and a permissive container."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace')}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; delete it to give the space back."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler


class ScriptedFrames:
    """Frames of a synthetic drive (times match its NMEA), with a hook before each one."""

    def __init__(self, n: int, fps: float, before: Callable[[int], None]) -> None:
        self.n, self.fps, self.before = n, fps, before
        self.errors: Counter[str] = Counter()
        self.base = scene(320, 240)

    def frames(self) -> Iterator[Captured]:
        for i in range(self.n):
            self.before(i)
            image = np.roll(self.base, i * 17, axis=1).copy()
            yield Captured(image, START + timedelta(seconds=i / self.fps))


def test_a_full_disk_loses_frames_with_a_count_and_a_message_and_recovers_when_space_returns(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    drive = write_drive(tmp_path / "drive", duration_s=12, fps=1, speed_mps=12.0)
    runner = make_runner(small_disk / "device", sample_distance_m=1.0, trim_m=0.0)
    filler: list[Path] = []

    def before(i: int) -> None:
        if i == 8:
            filler.append(fill(small_disk))
            runner.send_telemetry()  # telemetry is still built on a full disk
        elif i == 16:
            filler[0].unlink()

    frames = ScriptedFrames(24, 2.0, before)
    runner.run(frames, LogSource(drive.path / "gnss.nmea"), max_fix_wait_s=0.0)
    c = runner.pipeline.counters
    # The first frame may go as `stationary` when its next fix is not read yet (no wait here).
    assert c.captured == 24 and c.kept >= 23
    assert 1 <= c.errors["outbox_write"] <= 8  # frames 8..15, less any the WAL still had room for
    assert c.enqueued == c.kept - c.errors["outbox_write"]
    assert runner.outbox.depth()[0] == c.enqueued  # frames after the disk recovered are queued
    assert "frame lost, the outbox cannot store it (disk full?)" in caplog.text
    assert "database or disk is full" in caplog.text
    assert runner.all_errors()["outbox_write"] == c.errors["outbox_write"]


def test_pubacks_that_cannot_be_written_to_a_full_disk_are_kept_and_written_later(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(small_disk / "outbox.sqlite3")
    seqs = [outbox.put(lambda s: ("devices/d/frames", os.urandom(50_000))) for _ in range(4)]
    identity = DeviceIdentity(
        "dev-acks",
        MqttLogin("127.0.0.1", free_port(), "dev-acks", "x"),
        server_public_key=SERVER_KEY,
    )
    uplink = MqttUplink(identity, protocol.generate_private_key(), outbox)
    ok = ReasonCode(PacketTypes.PUBACK, "Success")
    for mid, seq in enumerate(seqs, start=1):
        uplink._register(mid, seq)
    filler = fill(small_disk)
    for mid in range(1, 5):  # the broker's PUBACKs arrive while the disk is full
        uplink._on_publish(uplink.client, None, mid, ok, None)
    assert uplink.errors["outbox_write"] >= 1
    assert "cannot record the broker's PUBACK (disk full?)" in caplog.text
    unsaved = set(uplink._unsaved)
    assert unsaved and unsaved <= uplink._sent  # not published again meanwhile
    filler.unlink()
    uplink.pump()  # the next pump writes them
    assert not uplink._unsaved and uplink.acked == 4
    assert outbox.awaiting_receipt() == 4  # taken by the broker; a receipt will settle them


def test_telemetry_numbers_keep_coming_for_a_while_on_a_full_disk(small_disk: Path) -> None:
    outbox = Outbox(small_disk / "outbox.sqlite3")
    first = outbox.next_counter("telemetry")
    filler = fill(small_disk)
    more = [outbox.next_counter("telemetry") for _ in range(COUNTER_BLOCK - 1)]
    assert more == list(range(first + 1, first + COUNTER_BLOCK))
    filler.unlink()
    outbox.close()
    again = Outbox(small_disk / "outbox.sqlite3")  # a restart never repeats a number
    assert again.next_counter("telemetry") >= first + COUNTER_BLOCK
