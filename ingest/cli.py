"""`roadmesh ingest ...`: run a worker; manage the embedded broker."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from webapp.django_setup import setup_django


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ingest", help="verify and store frames from the broker")
    parser.set_defaults(func=_run)
    cmds = parser.add_subparsers(dest="ingest_command", metavar="SUBCOMMAND")
    run = cmds.add_parser("run", help="run one ingest worker (the default)")
    run.set_defaults(func=_run)
    audit = cmds.add_parser(
        "audit", help="track-level fraud audit and device trust scores (run periodically)"
    )
    audit.add_argument(
        "--full", action="store_true", help="re-audit every frame, not only new ones"
    )
    audit.add_argument(
        "--device", action="append", default=[], help="only this device id (repeatable)"
    )
    audit.add_argument(
        "--no-visual", action="store_true", help="skip the image-vs-track check (no image reads)"
    )
    audit.set_defaults(func=_audit)

    broker = cmds.add_parser("broker", help="the embedded Mosquitto broker")
    bcmds = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("init", _broker_init, "write config, ACL and a fresh ingest login"),
        ("sync", _broker_sync, "rewrite the password file from the registered devices and reload"),
        ("run", _broker_run, "run Mosquitto in the foreground with the generated config"),
    ):
        p = bcmds.add_parser(name, help=help_text)
        p.add_argument(
            "--run-dir",
            type=Path,
            default=Path(".run/broker"),
            help="broker files (default .run/broker)",
        )
        p.add_argument("--port", type=int, default=1883)
        if name == "run":
            p.add_argument(
                "--hold-s",
                type=float,
                default=None,
                help="hold devices off at start until an ingest worker subscribed, at most this long"
                " (default ROADMESH_BROKER_HOLD_S or 300; 0: no hold)",
            )
            p.add_argument(
                "--hold-members",
                type=int,
                default=None,
                help="ingest workers (client ids) to wait for (default ROADMESH_BROKER_HOLD_MEMBERS or 1)",
            )
        p.set_defaults(func=func)


def _run(args: argparse.Namespace) -> int:
    setup_django()
    from ingest.service import run_worker

    return run_worker()


def _audit(args: argparse.Namespace) -> int:
    setup_django()
    from django.conf import settings

    from ingest.audit import Auditor
    from ingest.policy import IntakePolicy
    from ingest.store import store_from_env
    from webapp.fleet.models import Device

    devices = Device.objects.filter(device_id__in=args.device) if args.device else None
    auditor = Auditor(
        store_from_env(settings.PATHS.image_dir),
        IntakePolicy.from_env().fraud,
        visual=not args.no_visual,
    )
    report = auditor.run(devices, full=args.full)
    checks = ", ".join(f"{k}={v}" for k, v in sorted(report.by_check.items())) or "none"
    print(
        f"audited {report.frames} frames of {report.devices} devices; {report.newly_flagged} newly"
        f" flagged, {report.unflagged} cleared; flags: {checks}"
    )
    return 0


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ingest.broker import BrokerConfig

    return BrokerConfig(run_dir=args.run_dir.resolve(), port=args.port)


def _broker_init(args: argparse.Namespace) -> int:
    setup_django()
    from ingest.broker_sync import INGEST_SECRET_FILE, init_broker

    config = _config(args)
    init_broker(config)
    print(
        f"broker config written to {config.conf_path}; ingest password in {config.run_dir / INGEST_SECRET_FILE}"
    )
    return 0


def _broker_sync(args: argparse.Namespace) -> int:
    setup_django()
    from ingest.broker_sync import sync_password_file

    n = sync_password_file(_config(args))
    print(f"password file rewritten with {n} logins")
    return 0


def _broker_run(args: argparse.Namespace) -> int:
    from ingest.broker import Broker, DeviceHold
    from webapp.config import env_int

    hold_s = (
        args.hold_s
        if args.hold_s is not None
        else env_int("BROKER_HOLD_S", 300, minimum=0, maximum=86400)
    )
    members = (
        args.hold_members
        if args.hold_members is not None
        else env_int("BROKER_HOLD_MEMBERS", 1, minimum=1, maximum=1000)
    )
    hold = DeviceHold(timeout_s=hold_s, members=members) if hold_s > 0 else None
    broker = Broker(_config(args), hold)
    broker.start()
    print(f"mosquitto running on 127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    if hold is not None:
        print(
            f"devices held off until {members} ingest worker(s) subscribe to devices/+/frames"
            f" (at most {hold_s:.0f} s)",
            flush=True,
        )
    announced = hold is None
    try:
        while broker.running:
            if not announced and broker.released.wait(1):
                print("devices let in", flush=True)
                announced = True
            elif announced:
                time.sleep(1)
    finally:
        broker.stop()
    return 0
