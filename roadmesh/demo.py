"""`roadmesh demo`: the whole system on its embedded defaults, driven by a simulated fleet.

Starts Mosquitto (generated config), migrates a SQLite database, starts an ingest worker,
an image-check worker and the web server; renders a small simulated fleet over the sample
world (honest and adversarial drivers); provisions each device and replays its recorded
drive (MP4 + NMEA) through the real edge pipeline (sampling, privacy, signing, outbox,
MQTT, receipts); waits for the image checks, runs the fraud audit; on a local dev chain
(anvil) deploys the reward token and distributor and closes the first epoch; then serves
the map and API until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from roadmesh.cli import CommandError

REPO = Path(__file__).resolve().parent.parent
WORLD_ROADS = REPO / "sample_data" / "world" / "roads.geojson"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="start everything locally and drive a simulated fleet")
    parser.add_argument(
        "--run-dir", type=Path, default=Path(".run/demo"), help="state of the demo (wiped first)"
    )
    parser.add_argument("--port", type=int, default=8000, help="web port (default 8000)")
    parser.add_argument("--mqtt-port", type=int, default=18830, help="broker port (default 18830)")
    parser.add_argument(
        "--chain-port", type=int, default=18545, help="local chain (anvil) port (default 18545)"
    )
    parser.add_argument("--devices", type=int, default=4, help="simulated devices (default 4)")
    parser.add_argument(
        "--minutes", type=float, default=1.0, help="minutes each device drives (default 1)"
    )
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument(
        "--no-serve", action="store_true", help="stop after the fleet has been ingested"
    )
    parser.set_defaults(func=run)


def world_bbox() -> str:
    coords = [
        c
        for f in json.loads(WORLD_ROADS.read_text())["features"]
        for c in f["geometry"]["coordinates"]
    ]
    lons, lats = [c[0] for c in coords], [c[1] for c in coords]
    return f"{min(lons):.5f},{min(lats):.5f},{max(lons):.5f},{max(lats):.5f}"


def run(args: argparse.Namespace) -> int:
    from broker import BrokerError
    from contracts.anvil import Anvil
    from contracts.errors import ChainError
    from roadmesh.stack import LocalStack, StackError

    # Ctrl-C (SIGINT) stops the demo even where its parent ignored SIGINT (a shell's `cmd &`
    # does; Python then installs no KeyboardInterrupt handler and the demo would never stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.devices < 1 or args.minutes <= 0:
        raise CommandError("--devices must be >= 1 and --minutes > 0")
    run_dir = args.run_dir.resolve()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    stack = LocalStack(run_dir=run_dir, mqtt_port=args.mqtt_port, web_port=args.port)
    started = time.monotonic()
    chain: Anvil | None = None
    try:
        step("starting Mosquitto, an ingest worker, an image-check worker and the web server")
        stack.start()
        step(
            f"broker on 127.0.0.1:{args.mqtt_port}, database {run_dir / 'data' / 'roadmesh.sqlite3'}"
        )
        chain = Anvil.start(args.chain_port)
        os.environ["ROADMESH_CHAIN_RPC_URL"] = chain.url  # the commands below use it
        deployed = stack.roadmesh("rewards", "deploy")
        step(f"local chain (anvil) on {chain.url}: {deployed.stdout.strip().splitlines()[-1]}")
        fleet_dir = run_dir / "fleet"
        # Recent capture times: the server refuses frames from the future or too far back.
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=args.minutes + 10)
        step(
            f"rendering a simulated fleet: {args.devices} devices x {args.minutes:g} min (seed {args.seed})"
        )
        result = stack.roadmesh(
            "sim",
            "fleet",
            "--devices",
            str(args.devices),
            "--minutes",
            str(args.minutes),
            "--seed",
            str(args.seed),
            "--start",
            start.isoformat(),
            "--out",
            str(fleet_dir),
            timeout=1800,
        )
        for line in result.stdout.strip().splitlines()[-2:]:
            step(f"  {line}")
        drive_fleet(stack, fleet_dir)
        stack.wait_image_checked(timeout=600)
        audit = stack.roadmesh("ingest", "audit", "--roads", str(WORLD_ROADS.parent), timeout=1800)
        step(f"fraud audit: {audit.stdout.strip()}")
        closed = stack.roadmesh("rewards", "close-epoch", timeout=600)
        for line in closed.stdout.strip().splitlines()[-3:]:
            step(f"rewards: {line}")
        stats = stack.stats()
        bbox = world_bbox()
        n = len(stack.get_json(f"/api/v1/frames?bbox={bbox}&limit=10000")["features"])
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(stats["rejected"].items())) or "none"
        step(
            f"stored {stats['frames']} frames from {stats['devices']} devices, "
            f"{stats['frames_flagged']} flagged; rejected: {rejected}; "
            f"{time.monotonic() - started:.0f} s in all"
        )
        print(f"\nMap:    http://127.0.0.1:{args.port}/", flush=True)
        print(
            # frames need a key (webapp.api.access): the demo's operator key, for this machine only
            f"Frames: http://127.0.0.1:{args.port}/api/v1/frames?bbox={bbox}&limit=10000"
            f"&key={stack.api_key}   ({n} frames)",
            flush=True,
        )
        print(f"Admin:  http://127.0.0.1:{args.port}/admin/   Logs: {run_dir / 'logs'}", flush=True)
        if args.no_serve:
            return 0
        print("\nServing; press Ctrl-C to stop.", flush=True)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        raise CommandError("a demo process exited; see the logs in " + str(run_dir / "logs"))
    except (StackError, BrokerError, ChainError) as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        stack.stop()
        if chain is not None:
            chain.stop()


def drive_fleet(stack: Any, fleet_dir: Path) -> None:
    """Provision every simulated device (a cloned key shares its original's) and replay its drive."""
    fleet = json.loads((fleet_dir / "fleet.json").read_text())
    device_dirs: dict[str, Path] = {}
    for device in fleet["devices"]:
        device_id = device["device_id"]
        if device_id not in device_dirs:
            device_dirs[device_id] = stack.provision(
                device_id, owner=f"driver-{device_id}", wallet=demo_wallet(device_id)
            )
        result = stack.replay(
            fleet_dir / "devices" / device["dir"], device_dirs[device_id], timeout=600
        )
        for line in result.stdout.strip().splitlines() or ["(no output)"]:
            step(f"  {device['dir']} ({device['role']}): {line}")
        if result.returncode != 0:
            step(
                f"  {device['dir']}: replay exited {result.returncode}: {result.stderr.strip()[-500:]}"
            )


def demo_wallet(name: str) -> str:
    """A made-up wallet address for a demo owner (the first 20 bytes of SHA-256 of its name)."""
    import hashlib

    return "0x" + hashlib.sha256(f"roadmesh-demo:{name}".encode()).hexdigest()[:40]


def step(message: str) -> None:
    print(f"[demo] {message}", flush=True)
