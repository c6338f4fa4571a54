"""Ingest throughput: publish -> committed row, one and two workers, beside a bare paho subscriber.

    python bench/ingest.py [--frames 1000] [--repeat 3] [--database postgresql|sqlite]
                           [--size 1280x720] [--quality 70]

Same broker, same run, same kind of frames (synthetic 1280x720 dashcam-sized JPEGs, about
240 KB at quality 70, signed; the sample drive's rendered 720p frames are about 105 KB).
Each round has three phases, each publishing `--frames` frames as a new device: a bare paho
subscriber (separate process, plain subscription, auto ack) receives the stream while no
ingest worker runs; then one `roadmesh ingest run`; then two workers on the shared
subscription; then both workers stop (leaving the share group). Rates are
frames / (first publish -> last frame received, or last row inserted). Prints each
process's CPU time per phase (and per frame), the ratios of every round, then what the
worker's per-frame steps cost when run alone in this process on the same kind of frames, so
the gap to the bare subscriber can be read. The last line, from the medians of the rounds'
rates, is `RESULT one_worker_vs_bare=<x> two_vs_one=<x>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
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
port, password, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
got = [0, 0.0]
def on_message(c, u, m):
    got[0] += 1; got[1] = time.time()
def on_connect(c, u, f, r, p):
    print(f"connected {r}", file=sys.stderr, flush=True)
    c.subscribe([("devices/+/frames", 1)])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-subscriber", protocol=mqtt.MQTTv5)
c.username_pw_set("svc_ingest", password)
c.on_message = on_message
c.on_connect = on_connect
c.on_subscribe = lambda *a: print("ready", flush=True)
c.on_disconnect = lambda c, u, f, r, p: print(f"disconnected {r}", file=sys.stderr, flush=True)
c.connect("127.0.0.1", port, clean_start=True); c.loop_start()  # session ends with the connection
while got[0] < n:
    time.sleep(0.01)
print(f"done {got[1]:.6f}", flush=True)
c.disconnect(); c.loop_stop()
"""


SERVICES: dict[str, int] = {}  # more processes whose CPU each phase reports (the database)


def cpu_times(procs: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each process with all its descendants, living and exited (the reaped
    children's time is in the parent's cutime/cstime): PostgreSQL forks a backend per
    connection. One pass over /proc."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    tick = os.sysconf("SC_CLK_TCK")

    def tree(pid: int) -> float:
        own = sum(int(x) for x in stats[pid][11:15]) / tick if pid in stats else 0.0
        return own + sum(tree(c) for c in children.get(pid, []))

    return {name: tree(pid) for name, pid in procs.items()}


def publish(
    stack: LocalStack, device_id: str, frames: int, size: tuple[int, int], quality: int
) -> tuple[float, float, float]:
    """Provision, pre-sign `frames` frames, publish them QoS 1; returns (first publish, all
    PUBACKed, the publisher's CPU seconds)."""
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
    cpu0 = time.process_time()
    t0 = time.time()
    for p in payloads:
        c.publish(topic, p, qos=1)
    for _ in payloads:
        acked.acquire()
    t1 = time.time()
    c.disconnect()
    c.loop_stop()
    used = time.process_time() - cpu0
    print(f"  publisher cpu {used:.2f}s ({used / frames * 1e3:.2f} ms/frame)", flush=True)
    return t0, t1, used


def last_insert(stack: LocalStack, device_id: str) -> tuple[int, float]:
    """(frames stored for the device, when the last of them was inserted: max received_at)."""
    code = (
        "from webapp.django_setup import setup_django; setup_django();"
        "from django.db.models import Count, Max;"
        "from webapp.fleet.models import Frame;"
        f"a = Frame.objects.filter(device__device_id='{device_id}')"
        ".aggregate(n=Count('id'), t=Max('received_at'));"
        "print(a['n'], a['t'].timestamp() if a['t'] else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=stack.env(),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    n, t = out.stdout.split()
    return int(n), float(t)


def wait_committed(
    stack: LocalStack, device_id: str, total: int, n: int, timeout: float = 600
) -> float:
    """Wait until `total` frames are stored (polling twice a second, so the poll costs the
    workers little); returns when the device's last row was inserted (its max received_at)."""
    deadline = time.time() + timeout
    while stack.stats()["frames"] < total:
        if time.time() > deadline:
            raise RuntimeError(f"{device_id}: not all {n} frames committed in {timeout}s")
        time.sleep(0.5)
    count, t_last = last_insert(stack, device_id)
    if count != n:
        raise RuntimeError(f"{device_id}: {count} frames stored, expected {n}")
    return t_last


def pids(stack: LocalStack) -> dict[str, int]:
    out = {
        name: p.pid
        for name, p in stack.processes.items()
        if name.startswith("ingest") and p.poll() is None
    }
    if stack.broker is not None and stack.broker.process is not None:
        out["mosquitto"] = stack.broker.process.pid
    if "web" in stack.processes:
        out["web"] = stack.processes["web"].pid  # answers the bench's polls
    return {**out, **SERVICES}


@dataclass(frozen=True)
class Phase:
    rate: float  # frames/s
    cpu_ms: float  # CPU of every process of the phase (the publisher's too) per frame


def phase_cpu(
    before: dict[str, float], procs: dict[str, int], n: int, publisher_s: float
) -> tuple[str, float]:
    """Each process's CPU during the phase as text, and all of it with the publisher's, in ms a frame."""
    after = cpu_times(procs)
    used = {k: after[k] - before.get(k, 0.0) for k in sorted(procs)}
    text = " ".join(f"{k}={t:.2f}s ({t / n * 1e3:.2f} ms/frame)" for k, t in used.items())
    return text, (sum(used.values()) + publisher_s) / n * 1e3


def bare_phase(
    stack: LocalStack, password: str, device_id: str, n: int, size: tuple[int, int], quality: int
) -> Phase:
    """A bare paho subscriber (its own process) receives n frames; frames/s from the first
    publish to the last frame received."""
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE, str(stack.mqtt_port), password, str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bare.stdout is not None and bare.stdout.readline().strip() == "ready"
    procs = {**pids(stack), "bare": bare.pid}
    before = cpu_times(procs)
    t0, _, publisher_s = publish(stack, device_id, n, size, quality)
    line = ""
    while not line.startswith("done"):
        line = bare.stdout.readline()
        if not line:
            raise RuntimeError("the bare subscriber exited early")
    cpu, cpu_ms = phase_cpu(before, procs, n, publisher_s)
    t_last = float(line.split()[1])
    bare.wait(30)
    rate = n / (t_last - t0)
    print(f"bare subscriber : {n} frames in {t_last - t0:.2f}s = {rate:.0f}/s; cpu {cpu}")
    return Phase(rate, cpu_ms)


def worker_phase(
    stack: LocalStack, label: str, device_id: str, n: int, size: tuple[int, int], quality: int
) -> Phase:
    """Publish n frames as a new device; frames/s from the first publish to the last commit."""
    base_frames = stack.stats()["frames"]
    procs = pids(stack)
    before = cpu_times(procs)
    t0, _, publisher_s = publish(stack, device_id, n, size, quality)
    t1 = wait_committed(stack, device_id, base_frames + n, n)
    rate = n / (t1 - t0)
    cpu, cpu_ms = phase_cpu(before, procs, n, publisher_s)
    print(f"{label:<16}: {n} frames in {t1 - t0:.2f}s = {rate:.0f}/s; cpu {cpu}", flush=True)
    return Phase(rate, cpu_ms)


def step_costs(size: tuple[int, int], quality: int, frames: int = 100) -> str:
    """CPU per frame of the worker's pure steps, each run alone in this process on fresh frames."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ingest.imaging import facts_of, reduced_grey
    from ingest.jpeg import parse_header

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    drive = HonestDrive("bench-steps", key, seed=99, width=size[0], height=size[1], quality=quality)
    payloads = [drive.payload(s) for s in range(1, frames + 1)]
    signed = [protocol.decode(p) for p in payloads]
    jpegs = [s.message.jpeg for s in signed if isinstance(s.message, protocol.Frame)]
    greys = [reduced_grey(j) for j in jpegs]
    steps = {
        "envelope decode + image SHA-256": lambda i: protocol.decode(payloads[i]),
        "Ed25519 signature": lambda i: protocol.verify(signed[i], public),
        "JPEG header": lambda i: parse_header(jpegs[i], max_side=8192, max_pixels=50_000_000),
        "reduced grey decode": lambda i: reduced_grey(jpegs[i]),
        "pHash + quality": lambda i: facts_of(greys[i]),
    }
    parts = []
    for name, step in steps.items():
        step(0)
        t0 = time.process_time()
        for i in range(frames):
            step(i)
        parts.append(f"{name} {(time.process_time() - t0) / frames * 1e3:.2f}")
    return "worker steps alone, ms CPU/frame: " + ", ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="frames per phase (default 1000)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="rounds of the three phases; medians (default 3)"
    )
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
        SERVICES["postgres"] = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    base = traversable_tmpdir("bench-ingest-")
    # No device hold: phase 0 runs before any ingest worker exists.
    stack = LocalStack(run_dir=base, database_url=database_url, hold_s=0)
    n = args.frames
    try:
        stack.prepare()
        stack.start_broker()
        stack.start_web()
        password = (stack.broker_config.run_dir / "ingest.secret").read_text().strip()
        rounds: list[tuple[Phase, Phase, Phase]] = []
        for r in range(1, args.repeat + 1):
            print(f"-- round {r} of {args.repeat}", flush=True)
            bare = bare_phase(stack, password, f"bench-r{r}-bare", n, size, args.quality)
            stack.start_ingest_worker(0)
            one = worker_phase(stack, "one worker", f"bench-r{r}-one", n, size, args.quality)
            stack.start_ingest_worker(1)
            two = worker_phase(stack, "two workers", f"bench-r{r}-two", n, size, args.quality)
            # SIGTERM: a worker leaves the share group before it exits, so nothing is queued
            # for it while the next round's bare subscriber runs alone.
            stack.stop_process("ingest-0")
            stack.stop_process("ingest-1")
            rounds.append((bare, one, two))
            print(
                f"round {r}: one_worker_vs_bare={one.rate / bare.rate:.2f}"
                f" two_vs_one={two.rate / one.rate:.2f}",
                flush=True,
            )
        bare_m, one_m, two_m = (
            statistics.median(p.rate for p in phases) for phases in zip(*rounds, strict=True)
        )
        cores = os.cpu_count() or 1
        for label, k in (("bare path", 0), ("one worker", 1), ("two workers", 2)):
            ms = statistics.median(r[k].cpu_ms for r in rounds)
            print(
                f"{label}: all processes together spent {ms:.2f} ms CPU a frame,"
                f" so at most {cores * 1000 / ms:.0f} frames/s on {cores} cores"
            )
        print(
            f"database={args.database} cores={os.cpu_count()} frames={n} size={args.size}"
            f" quality={args.quality} rounds={args.repeat}; medians: bare {bare_m:.0f}/s,"
            f" one worker {one_m:.0f}/s, two workers {two_m:.0f}/s"
        )
        print(step_costs(size, args.quality), flush=True)
        print(f"RESULT one_worker_vs_bare={one_m / bare_m:.2f} two_vs_one={two_m / one_m:.2f}")
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
