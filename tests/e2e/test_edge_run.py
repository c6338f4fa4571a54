"""`roadmesh edge run` as a process against the real stack (Mosquitto, ingest, web).

A recorded video played at its frame rate stands in for the camera and an NMEA log for the
receiver. The server side publishes a retained config that changes the sampling distance
mid-run, telemetry arrives on its topic, and a device whose login the broker refuses
counts it, logs it and keeps running until it is told to stop.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from broker import INGEST_USER
from roadmesh.stack import LocalStack
from tests.edge.stack_support import edge_stack
from tests.edge.synthetic import M_PER_DEG_LAT, START, write_drive

pytestmark = pytest.mark.e2e
__all__ = ["edge_stack"]


class ServerClient:
    """The server's own MQTT login (svc_ingest): reads devices/#, writes devices/+/config."""

    def __init__(self, stack: LocalStack) -> None:
        password = (stack.broker_config.run_dir / "ingest.secret").read_text().strip()
        self.telemetry: list[tuple[float, protocol.Telemetry]] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="svc-test-config", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(INGEST_USER, password)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = protocol.decode(bytes(msg.payload)).message
        if isinstance(message, protocol.Telemetry):
            self.telemetry.append((time.monotonic(), message))

    def watch_telemetry(self, device_id: str) -> None:
        self.client.subscribe(f"devices/{device_id}/telemetry", qos=1)
        assert self.subscribed.wait(10)

    def publish_config(self, device_id: str, config: dict[str, Any]) -> None:
        info = self.client.publish(
            f"devices/{device_id}/config", json.dumps(config), qos=1, retain=True
        )
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def spacings_m(features: list[dict[str, Any]]) -> list[float]:
    lats = [f["geometry"]["coordinates"][1] for f in features]
    return [(b - a) * M_PER_DEG_LAT for a, b in itertools.pairwise(lats)]


def kept(log: str) -> int:
    """Kept frames in the last status line."""
    found = re.findall(r"captured \d+ kept (\d+)", log)
    return int(found[-1]) if found else 0


RUN_ENV = {
    "ROADMESH_EDGE_TRIM_M": "20",
    "ROADMESH_EDGE_RECONNECT_MIN_S": "0.3",
    "ROADMESH_EDGE_RECONNECT_MAX_S": "2",
}


def spawn_video_run(
    stack: LocalStack, name: str, device_dir: Path, drive: Path, **env: str
) -> subprocess.Popen[bytes]:
    """`roadmesh edge run` on a recorded video played in real time, GNSS from its NMEA log."""
    return stack.spawn(
        name,
        "-v",
        "edge",
        "run",
        "--device-dir",
        str(device_dir),
        "--source",
        f"video:{drive / 'video.mp4'}",
        "--start",
        START.isoformat(),
        "--realtime",
        ROADMESH_EDGE_GNSS=f"log:{drive / 'gnss.nmea'}",
        **RUN_ENV,
        **env,
    )


def test_a_running_device_delivers_frames_obeys_a_new_sampling_distance_and_reports_telemetry(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    stack = edge_stack
    device_dir = stack.provision("dev-run")
    drive = write_drive(tmp_path / "drive", duration_s=70, fps=5, width=640, height=360)
    server = ServerClient(stack)
    try:
        server.watch_telemetry("dev-run")
        proc = spawn_video_run(
            stack, "edge-run", device_dir, drive.path, ROADMESH_EDGE_TELEMETRY_INTERVAL_S="2"
        )
        stack.wait_for(lambda: len(stack.device_frames("dev-run")) >= 5, 60, "the first frames")
        server.publish_config("dev-run", {"sample_distance_m": 30, "covered_cells": []})
        stack.wait_for(
            lambda: "applied server config: {'sample_distance_m': 30}" in stack.log("edge-run"),
            20,
            "the device to apply the config",
        )
        stack.wait_for(
            lambda: sum(g > 25 for g in spacings_m(stack.device_frames("dev-run"))) >= 4,
            60,
            "four frames 30 m apart",
        )
        stack.stop_process("edge-run", signal.SIGTERM)
        assert proc.returncode == 0, stack.log("edge-run")[-3000:]
    finally:
        server.close()
    log = stack.log("edge-run")
    assert "stopped: captured" in log
    frames = stack.device_frames("dev-run")
    gaps = spacings_m(frames)
    assert all(6 < g < 14 for g in gaps[:4]), gaps  # 8 m: every 4th frame, 9.6 m apart
    assert all(28 < g < 36 for g in gaps[-4:]), gaps  # 30 m: every 13th frame, 31.2 m apart
    assert [f["properties"]["seq"] for f in frames] == list(range(1, len(frames) + 1))

    assert len(server.telemetry) >= 3, log[-2000:]
    # Every 2 s by the device's own clock (receive times vary with the machine's load);
    # the first snapshot follows the connection and the last one may be the stop's.
    sent = [m.sent_at_us / 1e6 for _, m in server.telemetry]
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(sent[1:-1])), sent
    seqs = [m.seq for _, m in server.telemetry]
    assert seqs == sorted(set(seqs))
    last = server.telemetry[-1][1].data
    assert isinstance(last["outbox"]["depth"], int) and "bytes" in last["outbox"]
    assert last["frames"]["dropped"]["spacing"] > 0
    assert last["frames"]["kept"] >= len(frames) - 1
    assert last["gnss"]["satellites"] == 9


def test_a_device_whose_login_is_refused_counts_it_logs_it_and_keeps_running(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    stack = edge_stack
    device_dir = stack.provision("dev-badpw")
    login = json.loads((device_dir / "device.json").read_text())
    login["mqtt"]["password"] = "not-the-password"
    (device_dir / "device.json").write_text(json.dumps(login))
    drive = write_drive(tmp_path / "drive", duration_s=60, fps=5, width=640, height=360)
    proc = spawn_video_run(stack, "edge-badpw", device_dir, drive.path)
    stack.wait_for(
        lambda: stack.log("edge-badpw").count("broker refused login for dev-badpw") >= 3,
        60,
        "three refused logins",
    )
    stack.wait_for(lambda: kept(stack.log("edge-badpw")) >= 5, 60, "capture to go on")
    assert proc.poll() is None  # still running: capture goes on into the outbox
    stack.stop_process("edge-badpw", signal.SIGTERM)
    assert proc.returncode == 0
    log = stack.log("edge-badpw")
    assert "Traceback" not in log
    assert "check device.json" in log
    refused = int(re.findall(r"errors \{.*'login_refused': (\d+)", log)[-1])
    assert refused >= 3  # counted, and in the telemetry snapshot the device sends once let in
    status = stack.roadmesh("edge", "status", "--device-dir", str(device_dir)).stdout
    queued = int(status.split("outbox ")[1].split(" ")[0])
    assert queued >= 1  # kept frames wait in the outbox for a working login
    assert stack.device_frames("dev-badpw") == []


def test_the_simulators_live_drive_plugs_into_the_edge_runner_from_outside(
    edge_stack: LocalStack,
) -> None:
    stack = edge_stack
    device_dir = stack.provision("dev-simlive")
    proc = stack.spawn(
        "edge-sim",
        "-v",
        "sim",
        "live",
        "--device-dir",
        str(device_dir),
        "--seed",
        "4",
        **RUN_ENV,
    )
    stack.wait_for(lambda: len(stack.device_frames("dev-simlive")) >= 3, 90, "simulated frames")
    stack.stop_process("edge-sim", signal.SIGTERM)
    assert proc.returncode == 0, stack.log("edge-sim")[-3000:]
    frames = stack.device_frames("dev-simlive")
    assert [f["properties"]["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert "Traceback" not in stack.log("edge-sim")
