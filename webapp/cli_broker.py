"""`roadmesh broker ...`: the embedded Mosquitto broker (init, run, sync, status).

The broker itself lives in `broker/`; these commands add what only the server knows: the
registered devices, whose logins the broker must hold (the database is the source of
truth, and `run` writes every login from it before Mosquitto starts).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from webapp.django_setup import setup_django


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("broker", help="the embedded Mosquitto broker")
    cmds = parser.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("init", _init, "write the config and fresh service logins (ingest, admin)"),
        ("run", _run, "run Mosquitto in the foreground with every registered device's login"),
        ("sync", _sync, "make the broker's device logins match the registered devices"),
        ("status", _status, "is the broker of this run directory running, on which port"),
    ):
        p = cmds.add_parser(name, help=help_text)
        p.add_argument(
            "--run-dir",
            type=Path,
            default=Path(".run/broker"),
            help="broker files (default .run/broker)",
        )
        if name == "init":
            p.add_argument("--port", type=int, default=1883)
            p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
            p.add_argument("--tls-cert", type=Path, help="server certificate (enables TLS)")
            p.add_argument("--tls-key", type=Path, help="its private key")
            p.add_argument("--tls-ca", type=Path, help="CA of client certificates")
            p.add_argument(
                "--require-certificate",
                action="store_true",
                help="refuse clients without a certificate signed by --tls-ca",
            )
        p.set_defaults(func=func)


def _fail(message: str) -> int:
    print(f"roadmesh broker: {message}", file=sys.stderr)
    return 2


def _init(args: argparse.Namespace) -> int:
    setup_django()
    from broker import BrokerConfig, BrokerError, init_broker
    from webapp.fleet.provisioning import device_logins

    try:
        config = BrokerConfig(
            run_dir=args.run_dir,
            port=args.port,
            host=args.host,
            tls_certfile=args.tls_cert,
            tls_keyfile=args.tls_key,
            tls_cafile=args.tls_ca,
            require_certificate=args.require_certificate,
        )
        devices = device_logins()
        services = init_broker(config, devices)
    except BrokerError as exc:
        return _fail(str(exc))
    print(
        f"broker config written to {config.conf_path} ({len(devices)} device logins);"
        f" ingest password in {services.secret_path('svc_ingest')}"
        + (f"; Mosquitto's own files in {config.state}" if config.state != config.run_dir else "")
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    setup_django()
    from broker import Broker, BrokerConfig, BrokerError, EmbeddedBrokerLogins
    from webapp.fleet.provisioning import device_logins

    try:
        config = BrokerConfig.load(args.run_dir)
        devices = device_logins()
        EmbeddedBrokerLogins(config).write_state(devices)
        broker = Broker(config)
        broker.start()
    except BrokerError as exc:
        return _fail(str(exc))
    stopping = False

    def _stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if broker.process is not None and broker.process.poll() is None:
            broker.process.terminate()  # Mosquitto saves its persistence file and exits

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"mosquitto (pid {broker.pid}) running on {config.host}:{config.port} with"
        f" {len(devices)} device logins (wrapper pid {os.getpid()}; Ctrl-C to stop)",
        flush=True,
    )
    code = broker.wait()
    broker.stop()
    if stopping:
        print("mosquitto stopped", flush=True)
        return 0
    return _fail(f"mosquitto exited unexpectedly (status {code}); see {config.log_path}")


def _sync(args: argparse.Namespace) -> int:
    setup_django()
    from broker import BrokerConfig, BrokerError, EmbeddedBrokerLogins
    from webapp.fleet.provisioning import device_logins

    try:
        logins = EmbeddedBrokerLogins(BrokerConfig.load(args.run_dir))
        wanted = device_logins()
        if not logins.running():
            logins.write_state(wanted)
            print(f"broker logins rewritten: {len(wanted)} devices")
            return 0
        have = set(logins.device_ids())
        extra = sorted(have - set(wanted))
        for device_id in extra:
            logins.remove_device(device_id)
    except BrokerError as exc:
        return _fail(str(exc))
    missing = sorted(set(wanted) - have)
    print(f"removed {len(extra)} logins of devices no longer registered: {', '.join(extra) or '-'}")
    if missing:
        print(
            f"{len(missing)} registered devices have no login in the running broker"
            f" ({', '.join(missing[:10])}): restart it (`broker run` writes every login) or"
            " provision them again"
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    from broker import BrokerConfig, BrokerError
    from broker.process import running_pid

    try:
        config = BrokerConfig.load(args.run_dir)
    except BrokerError as exc:
        return _fail(str(exc))
    pid = running_pid(config)
    state = f"running (pid {pid})" if pid else "stopped"
    print(f"broker {config.run_dir}: {state} on {config.host}:{config.port}")
    return 0 if pid else 1
