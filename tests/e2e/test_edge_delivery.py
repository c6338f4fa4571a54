"""A replayed drive arrives exactly once through a broker outage and a SIGKILL of the device."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from roadmesh.stack import LocalStack
from tests.edge.stack_support import assert_exactly_once, edge_stack
from tests.edge.synthetic import write_drive

pytestmark = pytest.mark.e2e
__all__ = ["edge_stack"]

SLOW_UPLINK = {
    "ROADMESH_EDGE_BANDWIDTH_BYTES_PER_S": "400000",
    "ROADMESH_EDGE_RECONNECT_MIN_S": "0.5",
    "ROADMESH_EDGE_RECONNECT_MAX_S": "4",
}


def enqueued_total(stdout: str) -> int:
    m = re.search(r"signed (\d+) of \d+ frames into the outbox \((\d+) already there", stdout)
    assert m, stdout
    return int(m.group(1)) + int(m.group(2))


def test_every_frame_arrives_exactly_once_when_the_broker_is_down_for_a_minute(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    stack = edge_stack
    device_dir = stack.provision("dev-outage")
    drive = write_drive(tmp_path / "drive", duration_s=40, speed_mps=12.0)
    proc = stack.spawn(
        "edge-outage",
        "-v",
        "edge",
        "replay",
        str(drive.path),
        "--device-dir",
        str(device_dir),
        "--timeout",
        "240",
        **SLOW_UPLINK,
    )
    stack.wait_for(lambda: len(stack.device_frames("dev-outage")) >= 3, 90, "the first frames")
    stack.stop_broker()
    time.sleep(60)
    stack.start_broker()
    assert proc.wait(180) == 0, stack.log("edge-outage")[-3000:]
    log = stack.log("edge-outage")
    total = enqueued_total(log)
    assert total >= 20
    assert_exactly_once(stack, "dev-outage", total)
    assert "disconnected" in log or "cannot reach broker" in log


def test_every_frame_arrives_exactly_once_when_the_device_is_killed_while_publishing(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    stack = edge_stack
    device_dir = stack.provision("dev-kill")
    drive = write_drive(tmp_path / "drive", duration_s=40, speed_mps=12.0)
    stack.spawn(
        "edge-kill",
        "edge",
        "replay",
        str(drive.path),
        "--device-dir",
        str(device_dir),
        "--timeout",
        "120",
        **SLOW_UPLINK,
    )
    stack.wait_for(lambda: len(stack.device_frames("dev-kill")) >= 4, 90, "the first frames")
    stack.stop_process("edge-kill", signal.SIGKILL)
    stored_at_kill = len(stack.device_frames("dev-kill"))
    again = stack.replay(drive.path, device_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    total = enqueued_total(again.stdout)
    assert stored_at_kill < total
    assert "signed 0 of" in again.stdout  # everything was already in the durable outbox
    assert_exactly_once(stack, "dev-kill", total)
