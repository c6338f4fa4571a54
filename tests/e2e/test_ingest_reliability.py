"""Ingest loses nothing and stores nothing twice: broker restarts and crashes, killed
workers, two workers, bursts; and every frame has a receipt on its device.

Real Mosquitto (supervised by `roadmesh broker run`), real `roadmesh ingest run`
processes, SQLite and a real PostgreSQL; the devices are the real edge outbox + uplink
(tests.ingest.fleet), which drop a frame only on a signed receipt.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter

import pytest

from broker import free_port
from roadmesh.stack import LocalStack
from tests.ingest.fleet import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

BBOX = "24.0,60.0,26.0,61.0"


def stored_seqs(stack: LocalStack, prefix: str) -> dict[str, list[int]]:
    body = stack.get_json(f"/api/v1/frames?bbox={BBOX}&limit=10000")
    seqs: dict[str, list[int]] = {}
    for f in body["features"]:
        device = f["properties"]["device"]
        if device.startswith(prefix + "-"):
            seqs.setdefault(device, []).append(f["properties"]["seq"])
    return {k: sorted(v) for k, v in seqs.items()}


def assert_stored_exactly_once(
    stack: LocalStack, fleet: Fleet, prefix: str, timeout: float = 60
) -> None:
    expected = fleet.sent
    total = sum(len(v) for v in expected.values())
    stack.wait_for(
        lambda: sum(len(v) for v in stored_seqs(stack, prefix).values()) >= total,
        timeout,
        f"{total} frames",
    )
    time.sleep(0.5)  # anything stored twice would show up now
    stored = stored_seqs(stack, prefix)
    for device, seqs in expected.items():
        doubles = [s for s, n in Counter(stored.get(device, [])).items() if n > 1]
        assert not doubles, f"{device}: stored twice: {doubles}"
        assert stored.get(device, []) == seqs, (
            f"{device}: missing {sorted(set(seqs) - set(stored.get(device, [])))}"
        )
    body = stack.get_json(f"/api/v1/frames?bbox={BBOX}&limit=10000")
    flagged = [
        f
        for f in body["features"]
        if f["properties"]["device"].startswith(prefix + "-")
        and f["properties"]["state"] == "flagged"
    ]
    assert not flagged, f"honest frames flagged: {flagged[:3]}"
    assert fleet.receipted() == expected  # every frame has a receipt on its device


def test_every_frame_is_stored_once_when_the_broker_restarts_mid_stream_under_two_workers(
    stack: LocalStack,
) -> None:
    # Two workers on the shared subscription, which Mosquitto 2.0 does not restore on a
    # restart (see the next test): until a worker subscribes again, frames get PUBACK 16
    # (no matching subscribers), and the devices keep them and send them again.
    if "ingest-0" not in stack.processes:
        stack.start_ingest_worker(0)
    stack.start_ingest_worker(1)
    fleet = Fleet(stack, "brk", 3, seed=1, receipt_timeout_s=5)
    try:
        streaming = fleet.stream_in_background(frames_per_device=40, rate_per_device=10)
        time.sleep(2.0)
        stack.restart_broker(down_s=1.5)
        streaming.join()
        fleet.drain(90)
        assert_stored_exactly_once(stack, fleet, "brk")
        assert all("consuming" in stack.log(f"ingest-{i}") for i in (0, 1))
    finally:
        fleet.close()
        stack.stop_process("ingest-1")


def test_every_frame_is_stored_once_when_the_broker_is_killed_mid_stream_again_and_again(
    stack: LocalStack,
) -> None:
    """SIGKILL, not a polite stop: Mosquitto loses what it acknowledged since its last save.
    The devices send again what no receipt named; the server stores it once."""
    if "ingest-0" not in stack.processes:
        stack.start_ingest_worker(0)
    fleet = Fleet(stack, "crash", 3, seed=5, receipt_timeout_s=4)
    try:
        streaming = fleet.stream_in_background(frames_per_device=60, rate_per_device=8)
        for _ in range(3):
            time.sleep(1.5)
            stack.restart_broker(down_s=0.5, crash=True)
        streaming.join()
        fleet.drain(120)
        assert_stored_exactly_once(stack, fleet, "crash")
        assert stack.log("broker").count("exited unexpectedly") >= 3
    finally:
        fleet.close()


def test_mosquitto_forgets_shared_subscriptions_of_offline_sessions_on_restart(
    stack: LocalStack,
) -> None:
    """Pins the broker behaviour docs/ingest.md builds on; when it fails, Mosquitto was fixed.
    (Receipts make it harmless: a device sends again what no receipt named.)"""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from broker import INGEST_USER
    from edge.identity import DeviceIdentity

    password = (stack.broker_config.run_dir / "ingest.secret").read_text().strip()
    probe = DeviceIdentity.load(stack.provision("dev-probe"))
    got: dict[str, list[bytes]] = {"plain": [], "shared": []}

    def session(kind: str, subscribe: bool) -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"probe-{kind}", protocol=mqtt.MQTTv5
        )
        c.username_pw_set(INGEST_USER, password)
        c.on_message = lambda _c, _u, m: got[kind].append(m.payload)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", stack.mqtt_port, clean_start=False, properties=props)
        c.loop_start()
        if subscribe:
            topic = "devices/+/frames" if kind == "plain" else "$share/probe/devices/+/frames"
            c.subscribe([(topic, 1)])
        time.sleep(0.5)
        return c

    for kind in got:
        c = session(kind, True)
        c.disconnect()
        c.loop_stop()
    stack.restart_broker(down_s=0.5)
    publisher = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="dev-probe", protocol=mqtt.MQTTv5
    )
    publisher.username_pw_set("dev-probe", probe.mqtt.password)
    publisher.connect("127.0.0.1", stack.mqtt_port)
    publisher.loop_start()
    publisher.publish("devices/dev-probe/frames", b"while-offline", qos=1).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    clients = [session(kind, False) for kind in got]
    time.sleep(1.0)
    for c in clients:
        c.disconnect()
        c.loop_stop()
    assert got == {"plain": [b"while-offline"], "shared": []}


def test_every_frame_is_stored_once_when_a_worker_is_killed_mid_batch(stack: LocalStack) -> None:
    # Slow batches (up to 0.5 s to fill) make sure the kill lands with uncommitted work in hand.
    stack.stop_process("ingest-0")
    stack.start_ingest_worker(
        0, ROADMESH_INGEST_BATCH_WAIT_MS="500", ROADMESH_INGEST_BATCH_SIZE="100"
    )
    fleet = Fleet(stack, "kill", 3, seed=2)
    try:
        streaming = fleet.stream_in_background(frames_per_device=40, rate_per_device=10)
        time.sleep(2.0)
        stack.kill_process("ingest-0")
        time.sleep(1.0)
        # The same client id: the broker hands the restarted worker its unacked messages.
        stack.start_ingest_worker(0)
        streaming.join()
        fleet.drain(90)
        assert_stored_exactly_once(stack, fleet, "kill")
    finally:
        fleet.close()


def test_two_workers_share_the_stream_and_store_every_frame_once(stack: LocalStack) -> None:
    ports = [free_port(), free_port()]
    stack.stop_process("ingest-0")
    for i, port in enumerate(ports):
        stack.start_ingest_worker(i, ROADMESH_INGEST_METRICS_PORT=str(port))
    fleet = Fleet(stack, "pair", 4, seed=3)
    try:
        fleet.stream(frames_per_device=30, rate_per_device=10)
        fleet.drain(90)
        assert_stored_exactly_once(stack, fleet, "pair")
        accepted = []
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                assert resp.status == 200 and json.loads(resp.read())["connected"] is True
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            line = next(
                x for x in text.splitlines() if x.startswith("roadmesh_frames_accepted_total ")
            )
            accepted.append(float(line.split()[1]))
            assert (
                "roadmesh_image_check_jobs_pending" in text
                and "roadmesh_receipts_published_total" in text
                and "roadmesh_capture_to_commit_seconds_bucket" in text
            )
        assert all(n > 0 for n in accepted), f"one worker got nothing: {accepted}"
        assert sum(accepted) >= 120
    finally:
        fleet.close()
        stack.stop_process("ingest-1")


def test_a_burst_ten_times_the_steady_rate_is_stored_completely(stack: LocalStack) -> None:
    if "ingest-0" not in stack.processes:
        stack.start_ingest_worker(0)
    fleet = Fleet(stack, "burst", 4, seed=4)
    try:
        fleet.stream(frames_per_device=10, rate_per_device=2)  # steady
        fleet.stream(frames_per_device=60, rate_per_device=20)  # 10x
        fleet.drain(90)
        assert_stored_exactly_once(stack, fleet, "burst")
    finally:
        fleet.close()


def test_an_image_check_worker_killed_mid_job_loses_no_frame_and_runs_no_job_twice(
    stack: LocalStack,
) -> None:
    """SIGKILL the image-check worker while it works; another takes the job once the lease
    expires, and every stored frame leaves `pending` (no job row is duplicated)."""
    if "ingest-0" not in stack.processes:
        stack.start_ingest_worker(0)
    stack.stop_process("checks-0")
    # enough frames (several seconds of checks, more on a loaded machine) that the worker
    # cannot finish between the poll that sees it started and the kill
    fleet = Fleet(stack, "chk", 4, seed=6)
    try:
        fleet.stream(frames_per_device=100, rate_per_device=20)
        fleet.drain(120)
    finally:
        fleet.close()
    assert stack.stats()["frames_pending"] >= 400
    stack.start_checks(0, "--max-frames", "5", "--lease-s", "3")
    stack.wait_for(lambda: stack.stats()["frames_pending"] < 390, 90, "some checks")
    stack.kill_process("checks-0")
    left = stack.stats()["frames_pending"]
    assert left > 0, "the worker finished before it was killed"
    stack.start_checks(0)
    stats = stack.wait_image_checked(300)
    assert stats["frames_pending"] == 0
    code = (
        "from webapp.django_setup import setup_django; setup_django()\n"
        "from django.db.models import Count\n"
        "from webapp.jobs.models import Job\n"
        "rows = Job.objects.filter(key__startswith='chk-').values('key').annotate(n=Count('id'))\n"
        "print(sorted((r['key'], r['n']) for r in rows))\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], env=stack.env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str([(f"chk-{i}", 1) for i in range(4)])
