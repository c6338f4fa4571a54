"""Ingest at the door: publish -> committed row, one and two workers, beside a bare subscriber.

    python bench/ingest.py [--frames 1000] [--repeat 3] [--database postgresql|sqlite]
                           [--size 1280x720] [--quality 70]

Same broker, same run, same kind of frames (synthetic 1280x720 dashcam-sized JPEGs, about
240 KB at quality 70, signed; the sample drive's rendered 720p frames are about 105 KB).
Each round has three phases, each publishing `--frames` frames as a new device: a bare paho
subscriber (separate process, plain subscription, auto ack) receives the stream while no
ingest worker runs; then one `roadmesh ingest run`; then two workers on the shared
subscription; then both workers stop (leaving the share group). Then the image-check job
(`roadmesh ingest checks --until-idle`, its own process) checks the frames the two worker
phases stored. Rates are frames / (first publish -> last frame received, or last row
inserted).

It prints each process's CPU time per phase, and per frame:
* the door's CPU per committed frame: Mosquitto, the ingest workers and the database
  (PostgreSQL with its backends) of the one-worker phase;
* the bare path's: Mosquitto and the bare subscriber;
* the image-check job's, on its own line (the worker process and the database while it
  runs): that decode is the one the vision job will share, so it is not the door's;
* the publisher's and the web server's (it answers the bench's polls), outside both sums;
then what the door's and the image check's per-frame steps cost run alone in this
process. The last line, from the medians of the rounds:
`RESULT cpu_ratio=<door CPU per frame / bare CPU per frame> one_worker_vs_bare=<x> two_vs_one=<x>`.
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
from broker.process import running_pid  # noqa: E402
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
        if name.startswith(("ingest", "checks")) and p.poll() is None
    }
    mosquitto = running_pid(stack.broker_config)
    if mosquitto is not None:
        out["mosquitto"] = mosquitto
    if "web" in stack.processes:
        out["web"] = stack.processes["web"].pid  # answers the bench's polls
    return {**out, **SERVICES}


@dataclass(frozen=True)
class Phase:
    rate: float  # frames/s
    path_ms: float  # CPU per frame of the path measured (door or bare), see `path_cpu`
    all_ms: float  # CPU of every process of the phase (the publisher's too) per frame


def is_path(name: str) -> bool:
    """Processes the door's (or the bare path's) cost is summed over: not the publisher, not
    the web server answering the bench's polls."""
    return name in ("mosquitto", "bare", "postgres") or name.startswith(("ingest", "checks"))


def phase_cpu(
    before: dict[str, float], procs: dict[str, int], n: int, publisher_s: float
) -> tuple[str, float, float]:
    """Each process's CPU during the phase as text; the path's and everything's, in ms a frame."""
    after = cpu_times(procs)
    used = {k: after[k] - before.get(k, 0.0) for k in sorted(procs)}
    text = " ".join(f"{k}={t:.2f}s ({t / n * 1e3:.2f} ms/frame)" for k, t in used.items())
    path = sum(t for k, t in used.items() if is_path(k)) / n * 1e3
    return text, path, (sum(used.values()) + publisher_s) / n * 1e3


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
    cpu, path_ms, all_ms = phase_cpu(before, procs, n, publisher_s)
    t_last = float(line.split()[1])
    bare.wait(30)
    rate = n / (t_last - t0)
    print(f"bare subscriber : {n} frames in {t_last - t0:.2f}s = {rate:.0f}/s; cpu {cpu}")
    return Phase(rate, path_ms, all_ms)


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
    cpu, path_ms, all_ms = phase_cpu(before, procs, n, publisher_s)
    print(f"{label:<16}: {n} frames in {t1 - t0:.2f}s = {rate:.0f}/s; cpu {cpu}", flush=True)
    return Phase(rate, path_ms, all_ms)


def checks_phase(stack: LocalStack, n: int) -> float:
    """`roadmesh ingest checks --until-idle` over the `n` frames still pending; the database's
    CPU seconds meanwhile (the worker's own is its exit's rusage, see `main`)."""
    procs = {k: v for k, v in pids(stack).items() if k == "postgres"}
    before = cpu_times(procs)
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "roadmesh", "ingest", "checks", "--until-idle"],
        env=stack.env(),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    after = cpu_times(procs)
    db = sum(after[k] - before[k] for k in procs)
    print(
        f"image checks    : {n} frames in {time.time() - t0:.2f}s; "
        + proc.stdout.strip().splitlines()[-1],
        flush=True,
    )
    return db


def step_costs(size: tuple[int, int], quality: int, frames: int = 100) -> str:
    """CPU per frame of the worker's pure steps, each run alone in this process on fresh frames."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ingest.imaging import facts_of, reduced_grey, thumbnail, visual_motion
    from ingest.jpeg import parse_header

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    drive = HonestDrive("bench-steps", key, seed=99, width=size[0], height=size[1], quality=quality)
    payloads = [drive.payload(s) for s in range(1, frames + 1)]
    signed = [protocol.decode(p) for p in payloads]
    jpegs = [s.message.jpeg for s in signed if isinstance(s.message, protocol.Frame)]
    greys = [reduced_grey(j) for j in jpegs]
    steps = {
        "door: envelope decode + image SHA-256": lambda i: protocol.decode(payloads[i]),
        "door: Ed25519 signature": lambda i: protocol.verify(signed[i], public),
        "door: JPEG header": lambda i: parse_header(jpegs[i], max_side=8192, max_pixels=50_000_000),
        "checks: reduced grey decode": lambda i: reduced_grey(jpegs[i]),
        "checks: pHash + quality": lambda i: facts_of(greys[i]),
        "checks: thumbnail": lambda i: thumbnail(greys[i]),
        "checks: picture motion": lambda i: visual_motion(greys[i - 1], greys[i]),
    }
    parts = []
    for name, step in steps.items():
        step(0)
        t0 = time.process_time()
        for i in range(frames):
            step(i)
        parts.append(f"{name} {(time.process_time() - t0) / frames * 1e3:.2f}")
    return "steps alone, ms CPU/frame: " + ", ".join(parts)


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
    stack = LocalStack(run_dir=base, database_url=database_url)
    n = args.frames
    try:
        stack.prepare()
        stack.start_broker()
        stack.start_web()
        password = (stack.broker_config.run_dir / "ingest.secret").read_text().strip()
        rounds: list[tuple[Phase, Phase, Phase]] = []
        checks_ms: list[tuple[float, float]] = []
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
            before_children = _children_cpu()
            db_s = checks_phase(stack, 2 * n)
            worker_s = _children_cpu() - before_children
            checks_ms.append((worker_s / (2 * n) * 1e3, db_s / (2 * n) * 1e3))
            rounds.append((bare, one, two))
            print(
                f"round {r}: cpu_ratio={one.path_ms / bare.path_ms:.2f}"
                f" (door {one.path_ms:.2f} ms, bare {bare.path_ms:.2f} ms a frame)"
                f" one_worker_vs_bare={one.rate / bare.rate:.2f}"
                f" two_vs_one={two.rate / one.rate:.2f}",
                flush=True,
            )
        bare_m, one_m, two_m = (
            statistics.median(p.rate for p in phases) for phases in zip(*rounds, strict=True)
        )
        cores = os.cpu_count() or 1
        for label, k in (("bare path", 0), ("one worker", 1), ("two workers", 2)):
            path = statistics.median(r[k].path_ms for r in rounds)
            ms = statistics.median(r[k].all_ms for r in rounds)
            what = "Mosquitto + subscriber" if k == 0 else "Mosquitto + workers + database"
            print(
                f"{label}: {what} {path:.2f} ms CPU a frame; every process with the publisher"
                f" and the web server {ms:.2f} ms, so at most {cores * 1000 / ms:.0f} frames/s"
                f" on {cores} cores"
            )
        worker_ms = statistics.median(c[0] for c in checks_ms)
        db_ms = statistics.median(c[1] for c in checks_ms)
        print(
            f"image-check job (not the door's; the vision job shares its decode): "
            f"{worker_ms + db_ms:.2f} ms CPU a frame (worker {worker_ms:.2f}, database {db_ms:.2f})"
        )
        door_ms = statistics.median(r[1].path_ms for r in rounds)
        bare_ms = statistics.median(r[0].path_ms for r in rounds)
        print(
            f"database={args.database} cores={os.cpu_count()} frames={n} size={args.size}"
            f" quality={args.quality} rounds={args.repeat}; medians: bare {bare_m:.0f}/s,"
            f" one worker {one_m:.0f}/s, two workers {two_m:.0f}/s"
        )
        print(step_costs(size, args.quality), flush=True)
        print(
            f"RESULT cpu_ratio={door_ms / bare_ms:.2f} one_worker_vs_bare={one_m / bare_m:.2f}"
            f" two_vs_one={two_m / one_m:.2f}"
        )
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
