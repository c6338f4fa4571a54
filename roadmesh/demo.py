"""`roadmesh demo`: the whole system on its embedded defaults, driven by a simulated fleet.

Starts Mosquitto (generated config), migrates a SQLite database, starts an ingest worker
and the web server, provisions demo devices, replays their recorded drives through the
real edge uplink, and serves the map and API until Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from roadmesh.cli import CommandError

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DRIVE = REPO / "sample_data" / "drives" / "sample"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="start everything locally and drive a simulated fleet")
    parser.add_argument(
        "--run-dir", type=Path, default=Path(".run/demo"), help="state of the demo (wiped first)"
    )
    parser.add_argument("--port", type=int, default=8000, help="web port (default 8000)")
    parser.add_argument("--mqtt-port", type=int, default=18830, help="broker port (default 18830)")
    parser.add_argument(
        "--no-serve", action="store_true", help="stop after the fleet has been ingested"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ingest.broker import BrokerError
    from roadmesh.stack import LocalStack, StackError

    run_dir = args.run_dir.resolve()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    stack = LocalStack(run_dir=run_dir, mqtt_port=args.mqtt_port, web_port=args.port)
    started = time.monotonic()
    try:
        step("starting Mosquitto, ingest worker and web server")
        stack.start()
        step(
            f"broker on 127.0.0.1:{args.mqtt_port}, database {run_dir / 'data' / 'roadmesh.sqlite3'}"
        )
        drives = [("demo-car-1", SAMPLE_DRIVE)]
        for device_id, drive in drives:
            device_dir = stack.provision(device_id, owner="demo-driver")
            step(f"provisioned {device_id}; replaying {drive.relative_to(REPO)}")
            result = stack.replay(drive, device_dir)
            for line in result.stdout.strip().splitlines():
                step(f"  {device_id}: {line}")
            if result.returncode != 0:
                raise CommandError(f"replay of {drive} failed:\n{result.stderr}")
        stats = stack.wait_for_frames(1, timeout=60)
        time.sleep(1.0)
        stats = stack.stats()
        bbox = "24.90,60.15,25.00,60.20"
        url = f"http://127.0.0.1:{args.port}/api/v1/frames?bbox={bbox}"
        n = len(stack.get_json(f"/api/v1/frames?bbox={bbox}")["features"])
        step(
            f"ingested {stats['frames']} frames from {stats['devices']} devices "
            f"({sum(stats['rejected'].values())} rejected) in {time.monotonic() - started:.1f} s"
        )
        print(f"\nMap:    http://127.0.0.1:{args.port}/", flush=True)
        print(f"Frames: {url}   ({n} frames)", flush=True)
        print(f"Admin:  http://127.0.0.1:{args.port}/admin/   Logs: {run_dir / 'logs'}", flush=True)
        if args.no_serve:
            return 0
        print("\nServing; press Ctrl-C to stop.", flush=True)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        raise CommandError("a demo process exited; see the logs in " + str(run_dir / "logs"))
    except (StackError, BrokerError) as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        stack.stop()


def step(message: str) -> None:
    print(f"[demo] {message}", flush=True)
