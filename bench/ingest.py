"""Ingest throughput: publish -> committed row, one and two workers, beside a bare paho subscriber.

    python bench/ingest.py [--frames 1500] [--database sqlite|postgresql] [--size 1280x720] [--quality 70]

Same broker, same run, same kind of frames (synthetic 1280x720 dashcam-sized JPEGs, about
240 KB at quality 70, signed; the sample drive's rendered 720p frames are about 105 KB). Phase 0: a
bare paho subscriber (separate process, plain subscription, auto ack) receives the stream;
phase 1: one `roadmesh ingest run`; phase 2: two workers on the shared subscription. Rates
are frames / (first publish -> last frame received or committed). Prints each process's
CPU time per phase; the last line is `RESULT one_worker_vs_bare=<x> two_vs_one=<x>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

import protocol  # noqa: E402
from edge.identity import DeviceIdentity, load_key  # noqa: E402
from roadmesh.stack import LocalStack  # noqa: E402
from tests.conftest import traversable_tmpdir  # noqa: E402
from tests.ingest.streams import HonestDrive  # noqa: E402

BARE = r"""
import sys, time, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
port, password, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
got = [0, 0.0]
def on_message(c, u, m):
    got[0] += 1; got[1] = time.time()
def on_connect(c, u, f, r, p):
    print(f"connected {r} session_present={f.session_present}", file=sys.stderr, flush=True)
    if not f.session_present:
        c.subscribe([("devices/+/frames", 1)])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-subscriber", protocol=mqtt.MQTTv5)
c.username_pw_set("svc_ingest", password)
c.on_message = on_message
c.on_connect = on_connect
c.on_subscribe = lambda *a: print("ready", flush=True)
c.on_disconnect = lambda c, u, f, r, p: print(f"disconnected {r}", file=sys.stderr, flush=True)
props = Properties(PacketTypes.CONNECT); props.SessionExpiryInterval = 600
c.connect("127.0.0.1", port, clean_start=False, properties=props); c.loop_start()
last = 0
while got[0] < n:
    time.sleep(0.01)
print(f"done {got[1]:.6f}", flush=True)
c.disconnect(); c.loop_stop()
"""


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, IndexError):
        return 0.0


def publish(
    stack: LocalStack, device_id: str, frames: int, size: tuple[int, int], quality: int
) -> tuple[float, float]:
    """Provision, pre-sign `frames` frames, publish them QoS 1; returns (first publish, all PUBACKed)."""
    device_dir = stack.provision(device_id)
    identity, key = DeviceIdentity.load(device_dir), load_key(device_dir)
    seed = sum(device_id.encode()) % 10_000
    drive = HonestDrive(device_id, key, seed=seed, width=size[0], height=size[1], quality=quality)
    payloads = [drive.payload(s) for s in range(1, frames + 1)]
    print(
        f"{device_id}: {frames} frames of {size[0]}x{size[1]}, mean payload"
        f" {sum(map(len, payloads)) / len(payloads) / 1000:.0f} KB",
        flush=True,
    )
    topic = protocol.topic_for(device_id, protocol.Channel.FRAMES)
    acked = threading.Semaphore(0)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(identity.mqtt.username, identity.mqtt.password)
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    c.on_publish = lambda *a: acked.release()
    c.connect("127.0.0.1", stack.mqtt_port)
    c.loop_start()
    t0 = time.time()
    for p in payloads:
        c.publish(topic, p, qos=1)
    for _ in payloads:
        acked.acquire()
    t1 = time.time()
    c.disconnect()
    c.loop_stop()
    return t0, t1


def frames_of(stack: LocalStack, device_id: str) -> int:
    code = (
        "from webapp.django_setup import setup_django; setup_django();"
        "from webapp.fleet.models import Frame;"
        f"print(Frame.objects.filter(device__device_id='{device_id}').count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=stack.env(), capture_output=True, text=True, cwd=REPO
    )
    return int(out.stdout.strip() or 0)


def wait_committed(stack: LocalStack, device_id: str, n: int, timeout: float = 600) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stack.stats()["frames"] >= n:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"{device_id}: not all {n} frames committed in {timeout}s")


def pids(stack: LocalStack) -> dict[str, int]:
    out = {
        name: p.pid
        for name, p in stack.processes.items()
        if name.startswith("ingest") and p.poll() is None
    }
    if stack.broker is not None and stack.broker.process is not None:
        out["mosquitto"] = stack.broker.process.pid
    return out


def phase_cpu(before: dict[str, float], procs: dict[str, int]) -> str:
    return " ".join(
        f"{k}={cpu_s(pid) - before.get(k, 0.0):.2f}s" for k, pid in sorted(procs.items())
    )


def worker_phase(
    stack: LocalStack, label: str, device_id: str, n: int, size: tuple[int, int], quality: int
) -> float:
    """Publish n frames as a new device; frames/s from the first publish to the last commit."""
    base_frames = stack.stats()["frames"]
    procs = pids(stack)
    before = {k: cpu_s(p) for k, p in procs.items()}
    t0, _ = publish(stack, device_id, n, size, quality)
    t1 = wait_committed(stack, device_id, base_frames + n)
    rate = n / (t1 - t0)
    print(
        f"{label:<16}: {n} frames in {t1 - t0:.2f}s = {rate:.0f}/s; cpu {phase_cpu(before, procs)}",
        flush=True,
    )
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    ap.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720, 720p)")
    ap.add_argument(
        "--quality", type=int, default=70, help="JPEG quality (default 70: about 240 KB at 720p)"
    )
    args = ap.parse_args()
    size = (int(args.size.split("x")[0]), int(args.size.split("x")[1]))
    pg = None
    database_url = ""
    if args.database == "postgresql":
        from tests.support.postgres import PostgresServer

        pg = PostgresServer.start(traversable_tmpdir("bench-pg-"))
        database_url = pg.create_database("bench")
    base = traversable_tmpdir("bench-ingest-")
    stack = LocalStack(run_dir=base, database_url=database_url)
    n = args.frames
    try:
        stack.start()
        password = (stack.broker_config.run_dir / "ingest.secret").read_text().strip()
        # Phase 0: bare subscriber.
        bare = subprocess.Popen(
            [sys.executable, "-c", BARE, str(stack.mqtt_port), password, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert bare.stdout is not None and bare.stdout.readline().strip() == "ready"
        procs = {**pids(stack), "bare": bare.pid}
        before = {k: cpu_s(p) for k, p in procs.items()}
        t0, _ = publish(stack, "bench-dev0", n, size, args.quality)
        cpu0 = phase_cpu(before, procs)
        line = ""
        while not line.startswith("done"):
            line = bare.stdout.readline()
            if not line:
                raise RuntimeError("the bare subscriber exited early")
        t_last = float(line.split()[1])
        bare.wait(30)
        rate_bare = n / (t_last - t0)
        print(
            f"bare subscriber : {n} frames in {t_last - t0:.2f}s = {rate_bare:.0f}/s; cpu {cpu0}",
            flush=True,
        )
        stack.wait_for_frames(n, timeout=600)  # the workers also consume phase 0: let them finish
        # Phase 1: one worker.
        rate_one = worker_phase(stack, "one worker", "bench-dev1", n, size, args.quality)
        # Phase 2: two workers.
        stack.start_ingest_worker(1)
        rate_two = worker_phase(stack, "two workers", "bench-dev2", n, size, args.quality)
        print(
            f"database={args.database} cores={os.cpu_count()} frames={n} size={args.size} quality={args.quality}"
        )
        print(
            f"RESULT one_worker_vs_bare={rate_one / rate_bare:.2f} two_vs_one={rate_two / rate_one:.2f}"
        )
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
