"""`roadmesh edge ...`: the device's commands. One small function per subcommand."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path

DEFAULT_DEVICE_DIR = Path("~/.roadmesh/device")
CONFIG_FILE = "edge.toml"
REJECTED_SHOWN = 20  # `edge status` lists this many refused frames, then counts the rest


class CommandError(Exception):
    """A fatal user error of an edge command: `roadmesh` prints it and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("edge", help="dashcam software: provision, run, replay a drive")
    cmds = parser.add_subparsers(dest="edge_command", metavar="ACTION", required=True)

    prov = cmds.add_parser(
        "provision", help="create this device's key and register it with the server"
    )
    prov.add_argument(
        "--server", required=True, help="web server URL, e.g. https://roadmesh.example.org"
    )
    prov.add_argument(
        "--token", required=True, help="owner's enrolment credential USERNAME:PASSWORD"
    )
    prov.add_argument("--device-id", help="requested device id (default: the server picks one)")
    prov.add_argument("--tls-ca", default="", help="CA file for the broker's TLS certificate")
    prov.add_argument("--device-dir", type=Path, default=DEFAULT_DEVICE_DIR)
    prov.set_defaults(func=_provision)

    run = cmds.add_parser("run", help="capture, sample, blur, sign and publish continuously")
    run.add_argument("--device-dir", type=Path, default=DEFAULT_DEVICE_DIR)
    run.add_argument(
        "--config", type=Path, help=f"settings file (default: DEVICE_DIR/{CONFIG_FILE})"
    )
    run.add_argument(
        "--source",
        default="camera",
        help="camera (default; ROADMESH_EDGE_CAMERA), video:PATH or folder:PATH"
        " (the simulator's live drive plugs in from outside: `roadmesh sim live`)",
    )
    run.add_argument(
        "--start", help="capture time of the first frame of a video or folder (ISO 8601)"
    )
    run.add_argument(
        "--realtime",
        action="store_true",
        help="play a video at its own frame rate, as a camera delivers frames (demos, tests)",
    )
    run.set_defaults(func=_run)

    rep = cmds.add_parser("replay", help="run a recorded drive through the pipeline and publish it")
    rep.add_argument(
        "drive",
        type=Path,
        help="drive dir: manifest.json + video + NMEA, or frames.csv + JPEGs + track.nmea",
    )
    rep.add_argument(
        "--device-dir", type=Path, default=DEFAULT_DEVICE_DIR, help="device key and login"
    )
    rep.add_argument(
        "--config", type=Path, help=f"settings file (default: DEVICE_DIR/{CONFIG_FILE})"
    )
    rep.add_argument(
        "--sample",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="distance sampling (default: on for videos, off for frames.csv folders)",
    )
    rep.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the server's receipts",
    )
    rep.set_defaults(func=_replay)

    imp = cmds.add_parser(
        "import",
        help="what a camera recorded (geotagged JPEGs, GoPro, CAMM, BlackVue, video + GPX/NMEA)"
        " through the pipeline, then publish it",
    )
    imp.add_argument(
        "path", type=Path, help="a folder of geotagged JPEGs, or a video (MP4/MOV/INSV)"
    )
    imp.add_argument(
        "--gnss", type=Path, help="GPX or NMEA log of the video (default: the file named like it)"
    )
    imp.add_argument(
        "--clock-offset",
        default=None,
        help="seconds to add to the camera clock to get GNSS time, or 'auto' to apply the"
        " estimate (default: the clock_offset_s setting; the estimate is always printed)",
    )
    imp.add_argument("--start", help="camera time of the video's first frame (ISO 8601)")
    imp.add_argument("--date", help="date of an NMEA log that has none (YYYY-MM-DD; GGA-only)")
    imp.add_argument(
        "--sample",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="distance sampling (default: on for videos, off for a camera's JPEG time-lapse)",
    )
    imp.add_argument("--device-dir", type=Path, default=DEFAULT_DEVICE_DIR)
    imp.add_argument(
        "--config", type=Path, help=f"settings file (default: DEVICE_DIR/{CONFIG_FILE})"
    )
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the upload")
    imp.set_defaults(func=_import)

    st = cmds.add_parser(
        "status", help="device id, broker, outbox depth, and the frames the server refused"
    )
    st.add_argument("--device-dir", type=Path, default=DEFAULT_DEVICE_DIR)
    st.set_defaults(func=_status)


def _settings(device_dir: Path, config: Path | None):  # type: ignore[no-untyped-def]
    from edge.settings import EdgeSettings, SettingsError

    try:
        return EdgeSettings.load(config or device_dir / CONFIG_FILE)
    except SettingsError as exc:
        raise CommandError(str(exc)) from None


def _identity(device_dir: Path):  # type: ignore[no-untyped-def]
    import protocol
    from edge.identity import DeviceIdentity, IdentityError, load_key

    try:
        return DeviceIdentity.load(device_dir), load_key(device_dir)
    except (IdentityError, protocol.KeyFileError) as exc:
        raise CommandError(str(exc)) from None


def _provision(args: argparse.Namespace) -> int:
    from edge.provision import ProvisionError, provision

    device_dir = args.device_dir.expanduser()
    try:
        identity = provision(args.server, args.token, device_dir, args.device_id, args.tls_ca)
    except ProvisionError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"provisioned {identity.device_id}: key {device_dir / 'device.key'} (0600), "
        f"login {device_dir / 'device.json'} (0600), broker {identity.mqtt.host}:{identity.mqtt.port}"
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from edge.outbox import Outbox, OutboxError
    from edge.replay import DriveError, enqueue_drive
    from vision.privacy import PrivacyError

    device_dir = args.device_dir.expanduser()
    settings = _settings(device_dir, args.config)
    identity, key = _identity(device_dir)
    try:
        outbox = Outbox(device_dir / "outbox.sqlite3", max_bytes=settings.outbox_max_bytes)
        report = enqueue_drive(args.drive, identity, key, outbox, settings, sample=args.sample)
    except (DriveError, PrivacyError, OutboxError) as exc:
        raise CommandError(str(exc)) from None
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) or "none"
    print(
        f"signed {report.enqueued} of {report.frames} frames into the outbox "
        f"({report.already_enqueued} already there; skipped: {skipped}; "
        f"blurred faces {report.faces}, plates {report.plates}; "
        f"NMEA lines {report.nmea.lines}, fixes {report.nmea.fixes}, bad {sum(report.nmea.rejected.values())})",
        flush=True,
    )
    _print_receivers(device_dir, [report.nmea])
    return _publish(identity, key, outbox, settings, args.timeout)


def _publish(identity, key, outbox, settings, timeout_s: float) -> int:  # type: ignore[no-untyped-def]
    """Drain the outbox to the broker until receipts named every frame (or the timeout);
    print what the receipts said. 0 when nothing is left waiting."""
    from edge.uplink import MqttUplink, UplinkError

    try:
        uplink = MqttUplink(
            identity,
            key,
            outbox,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            bandwidth_bytes_per_s=settings.bandwidth_bytes_per_s,
            reconnect_min_s=settings.reconnect_min_s,
            reconnect_max_s=settings.reconnect_max_s,
        )
    except UplinkError as exc:
        raise CommandError(str(exc)) from None
    uplink.start()
    try:
        done = uplink.drain(timeout_s)
    except UplinkError as exc:
        raise CommandError(str(exc), exit_code=3) from None
    finally:
        uplink.stop()
    _print_delivery(identity, uplink, outbox)
    return 0 if done else 1


def _print_delivery(identity, uplink, outbox) -> None:  # type: ignore[no-untyped-def]
    """What the receipts said: stored, rejected (with reasons), still waiting."""
    depth, nbytes = outbox.depth()
    print(
        f"published to {identity.mqtt.host}:{identity.mqtt.port} as {identity.device_id}: "
        f"{uplink.stored} stored and {uplink.rejected} rejected (receipts), {depth} still"
        f" waiting ({nbytes} bytes), broker took {uplink.acked}"
        f" and turned away {uplink.refused_by_broker}",
        flush=True,
    )
    reasons = _reasons(outbox.rejected())
    if reasons:
        print(f"rejected by the server: {reasons} (`roadmesh edge status` lists them)", flush=True)


def _reasons(rejected: list[tuple[int, str]]) -> str:
    counts: dict[str, int] = {}
    for _, error in rejected:
        reason = error.split(":", 1)[0]
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _run(args: argparse.Namespace) -> int:
    from edge.run import EdgeRunner, camera_source, gnss_from_setting
    from edge.settings import SettingsError
    from edge.sources import FrameSource, ImageFolderSource, VideoFileSource
    from edge.uplink import UplinkError
    from vision.privacy import PrivacyError

    device_dir = args.device_dir.expanduser()
    settings = _settings(device_dir, args.config)
    identity, key = _identity(device_dir)
    kind, _, value = args.source.partition(":")
    start = (
        datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        if args.start
        else datetime.now().astimezone()
    )
    frames: FrameSource
    try:
        gnss = gnss_from_setting(settings.gnss, settings.gnss_baud)
        if kind == "camera":
            frames = camera_source(settings)
        elif kind == "video":
            frames = VideoFileSource(Path(value), start, realtime=args.realtime)
        elif kind == "folder":
            frames = ImageFolderSource(Path(value), start)
        else:
            raise CommandError(
                f"--source {args.source!r}: use camera, video:PATH or folder:PATH"
                " (the simulator's live drive: `roadmesh sim live`)"
            )
        runner = EdgeRunner(settings, identity, key, device_dir)
    except (SettingsError, UplinkError, PrivacyError) as exc:
        raise CommandError(str(exc)) from None
    print(
        f"{identity.device_id}: running (source {args.source}, GNSS {settings.gnss}, "
        f"broker {identity.mqtt.host}:{identity.mqtt.port})",
        flush=True,
    )
    runner.run(frames, gnss)
    print_summary(runner)
    return 0


def print_summary(runner) -> None:  # type: ignore[no-untyped-def]
    """The one line `run` prints when it stops (also used by `roadmesh sim live`)."""
    c = runner.pipeline.counters
    errors = {k: v for k, v in sorted(runner.all_errors().items()) if v}
    print(
        f"\nstopped: captured {c.captured}, kept {c.kept}, dropped {dict(c.dropped)}, "
        f"outbox {runner.outbox.depth()[0]}, stored {runner.uplink.stored},"
        f" rejected {runner.uplink.rejected}, errors {errors or 'none'}",
        flush=True,
    )


def _status(args: argparse.Namespace) -> int:
    from edge.identity import DeviceIdentity, IdentityError
    from edge.outbox import Outbox

    device_dir = args.device_dir.expanduser()
    try:
        identity = DeviceIdentity.load(device_dir)
    except IdentityError as exc:
        raise CommandError(str(exc)) from None
    outbox = Outbox(device_dir / "outbox.sqlite3")
    depth, nbytes = outbox.depth()
    rejected = outbox.rejected()
    print(
        f"{identity.device_id}: broker {identity.mqtt.host}:{identity.mqtt.port}, "
        f"outbox {depth} messages ({nbytes} bytes; {outbox.awaiting_receipt()} sent, waiting"
        f" for their receipt), {len(rejected)} rejected by the server,"
        f" {len(outbox.receipts())} receipts kept"
    )
    for seq, error in rejected[:REJECTED_SHOWN]:
        print(f"  rejected frame {seq}: {error}")
    if len(rejected) > REJECTED_SHOWN:
        print(f"  ... and {len(rejected) - REJECTED_SHOWN} more: {_reasons(rejected)}")
    from edge.gnss_sources import recorded_receivers

    for stats in recorded_receivers(device_dir):
        print(f"  GNSS {stats.receiver}: {stats.summary()}")
    return 0


def _print_receivers(device_dir: Path, receivers: list) -> None:  # type: ignore[type-arg]
    """One line per GNSS receiver (or camera log): what it gave; kept for `edge status`."""
    from edge.gnss_sources import record_receiver

    for stats in receivers:
        print(f"GNSS {stats.receiver or 'receiver'}: {stats.summary()}", flush=True)
        record_receiver(device_dir, stats)


def _import(args: argparse.Namespace) -> int:
    from datetime import date

    from edge.importers import ImportFailure, enqueue_import, open_camera_recording
    from edge.outbox import Outbox, OutboxError
    from vision.privacy import PrivacyError

    device_dir = args.device_dir.expanduser()
    settings = _settings(device_dir, args.config)
    identity, key = _identity(device_dir)
    offset: float | str | None = args.clock_offset
    try:
        if offset not in (None, "auto"):
            offset = float(str(offset))
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError as exc:
        raise CommandError(f"--clock-offset, --start or --date: {exc}") from None
    if start is not None and start.tzinfo is None:
        raise CommandError("--start must carry a time zone (use Z for UTC)")
    try:
        rec = open_camera_recording(args.path, args.gnss, start, day)
        camera = f" ({rec.camera})" if rec.camera else ""
        print(f"{args.path}: {rec.kind}{camera}, {len(rec.track.fixes)} fixes", flush=True)
        outbox = Outbox(device_dir / "outbox.sqlite3", max_bytes=settings.outbox_max_bytes)
        report = enqueue_import(
            rec, identity, key, outbox, settings, clock_offset=offset, sample=args.sample
        )
    except (ImportFailure, PrivacyError, OutboxError) as exc:
        raise CommandError(str(exc)) from None
    if report.clock is not None:
        hint = "" if offset == "auto" else " (--clock-offset auto applies the estimate)"
        print(
            f"clock: {report.clock.describe()}; applied {report.applied_offset_s:+.2f} s{hint}",
            flush=True,
        )
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) or "none"
    print(
        f"signed {report.enqueued} of {report.frames} frames into the outbox "
        f"({report.already_enqueued} already there; skipped: {skipped}; "
        f"blurred faces {report.faces}, plates {report.plates})",
        flush=True,
    )
    _print_receivers(device_dir, [report.gnss])
    return _publish(identity, key, outbox, settings, args.timeout)
