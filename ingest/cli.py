"""`roadmesh ingest ...`: the door's worker, the image-check workers, the audit."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from webapp.django_setup import setup_django


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ingest", help="verify and store frames from the broker")
    parser.set_defaults(func=_run)
    cmds = parser.add_subparsers(dest="ingest_command", metavar="SUBCOMMAND")
    run = cmds.add_parser("run", help="run one ingest worker at the door (the default)")
    run.set_defaults(func=_run)
    checks = cmds.add_parser(
        "checks", help="run an image-check worker: decode each stored frame once, check it"
    )
    checks.add_argument(
        "--until-idle", action="store_true", help="stop when no frame waits (else run forever)"
    )
    checks.add_argument(
        "--max-frames", type=int, default=200, help="frames of one device per lease (default 200)"
    )
    checks.add_argument(
        "--lease-s",
        type=float,
        default=60.0,
        help="a job a killed worker held is due again after this (default 60)",
    )
    checks.set_defaults(func=_checks)
    audit = cmds.add_parser(
        "audit", help="track-level fraud audit and device trust scores (run periodically)"
    )
    audit.add_argument(
        "--full", action="store_true", help="re-audit every frame, not only new ones"
    )
    audit.add_argument(
        "--device", action="append", default=[], help="only this device id (repeatable)"
    )
    audit.add_argument("--no-visual", action="store_true", help="skip the checks on the pictures")
    audit.add_argument(
        "--roads",
        type=Path,
        default=os.environ.get("ROADMESH_ROADS") or None,
        help="the region's road network for map matching: a world folder (roads.geojson) or"
        " an OpenStreetMap .osm.pbf (env ROADMESH_ROADS; none: no map matching)",
    )
    audit.set_defaults(func=_audit)


def _run(args: argparse.Namespace) -> int:
    setup_django()
    from ingest.service import run_worker

    return run_worker()


def _checks(args: argparse.Namespace) -> int:
    setup_django()
    from django.conf import settings

    from ingest.image_checks import ImageCheckHandler
    from ingest.policy import IntakePolicy
    from webapp.images import store_for
    from webapp.jobs.worker import Worker

    handler = ImageCheckHandler(
        store_for(settings.SERVER), IntakePolicy.from_env(), max_frames=args.max_frames
    )
    worker = Worker(handler, lease_s=args.lease_s)

    def _stop(signum: int, frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"image checks {worker.owner}: running", flush=True)
    if args.until_idle:
        worker.run_until_idle(timeout_s=86400)
    else:
        worker.run_forever()
    s = worker.stats
    print(
        f"image checks {worker.owner}: stopped; {s.completed} jobs done, {s.failed} failed,"
        f" {handler.decodes} decodes",
        flush=True,
    )
    return 0


def _audit(args: argparse.Namespace) -> int:
    setup_django()
    from django.conf import settings

    from ingest.audit import Auditor
    from ingest.policy import IntakePolicy
    from webapp.fleet.models import Device
    from webapp.images import store_for

    devices = Device.objects.filter(device_id__in=args.device) if args.device else None
    roads = None
    if args.roads:
        from ingest.roads import RoadNetwork, RoadNetworkError

        try:
            roads = RoadNetwork.load(Path(args.roads))
        except RoadNetworkError as e:
            print(f"roadmesh ingest audit: --roads {args.roads}: {e}", file=sys.stderr)
            return 2
    auditor = Auditor(
        store_for(settings.SERVER),
        IntakePolicy.from_env().fraud,
        visual=not args.no_visual,
        roads=roads,
    )
    report = auditor.run(devices, full=args.full)
    checks = ", ".join(f"{k}={v}" for k, v in sorted(report.by_check.items())) or "none"
    print(
        f"audited {report.frames} frames of {report.devices} devices; {report.newly_flagged} newly"
        f" flagged, {report.unflagged} cleared; flags: {checks}"
    )
    return 0
