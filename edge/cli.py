"""`roadmesh edge ...`: the device's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from roadmesh.cli import CommandError

DEFAULT_DEVICE_DIR = Path("~/.roadmesh/device")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("edge", help="dashcam software: replay a drive, publish frames")
    cmds = parser.add_subparsers(dest="edge_command", metavar="ACTION", required=True)
    rep = cmds.add_parser("replay", help="sign and publish the frames of a recorded drive")
    rep.add_argument("drive", type=Path, help="drive directory (frames.csv, JPEGs, track.nmea)")
    rep.add_argument(
        "--device-dir", type=Path, default=DEFAULT_DEVICE_DIR, help="device key and login"
    )
    rep.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the broker's PUBACKs"
    )
    rep.set_defaults(func=_replay)
    st = cmds.add_parser("status", help="device id and outbox depth")
    st.add_argument("--device-dir", type=Path, default=DEFAULT_DEVICE_DIR)
    st.set_defaults(func=_status)


def _replay(args: argparse.Namespace) -> int:
    import protocol
    from edge.identity import DeviceIdentity, IdentityError, load_key
    from edge.outbox import Outbox
    from edge.replay import DriveError, enqueue_drive
    from edge.uplink import MqttUplink, UplinkError

    device_dir = args.device_dir.expanduser()
    try:
        identity = DeviceIdentity.load(device_dir)
        key = load_key(device_dir)
    except (IdentityError, protocol.KeyFileError) as exc:
        raise CommandError(str(exc)) from None
    outbox = Outbox(device_dir / "outbox.sqlite3")
    try:
        report = enqueue_drive(args.drive, identity, key, outbox)
    except DriveError as exc:
        raise CommandError(str(exc)) from None
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) or "none"
    print(
        f"signed {report.enqueued} of {report.frames} frames into the outbox "
        f"({report.already_enqueued} already there; skipped: {skipped}; "
        f"NMEA lines {report.nmea.lines}, fixes {report.nmea.fixes}, bad {sum(report.nmea.rejected.values())})",
        flush=True,
    )
    uplink = MqttUplink(identity, key, outbox)
    uplink.start()
    try:
        done = uplink.drain(args.timeout)
    except UplinkError as exc:
        raise CommandError(str(exc), exit_code=3) from None
    finally:
        uplink.stop()
    depth, nbytes = outbox.depth()
    refused = outbox.refused()
    print(
        f"published to {identity.mqtt.host}:{identity.mqtt.port} as {identity.device_id}: "
        f"{uplink.acked} acknowledged, {depth} still queued ({nbytes} bytes), {len(refused)} refused",
        flush=True,
    )
    return 0 if done and not refused else 1


def _status(args: argparse.Namespace) -> int:
    from edge.identity import DeviceIdentity, IdentityError
    from edge.outbox import Outbox

    device_dir = args.device_dir.expanduser()
    try:
        identity = DeviceIdentity.load(device_dir)
    except IdentityError as exc:
        raise CommandError(str(exc)) from None
    depth, nbytes = Outbox(device_dir / "outbox.sqlite3").depth()
    print(
        f"{identity.device_id}: broker {identity.mqtt.host}:{identity.mqtt.port}, outbox {depth} messages ({nbytes} bytes)"
    )
    return 0
