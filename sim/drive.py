"""A simulated drive, recorded the way a dashcam records it, or streamed live.

On disk (one folder per drive; format in docs/sim.md):
    manifest.json  video.mp4  gnss.nmea  gnss.gpx          <- what a real dashcam card holds
    truth/track.csv  truth/fixes.csv  truth/boxes.jsonl    <- ground truth, kept apart
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from sim.conditions import CameraFaults
from sim.features import MapFeature, load_features
from sim.gnss import Fixes, GnssModel, fix_times, gpx_document, nmea_lines, simulate
from sim.render import Label, Renderer
from sim.route import (
    Trajectory,
    build_path,
    camera_attitude,
    drive,
    parked,
    plan_circuit,
    plan_nodes,
)
from sim.scene import Actors, StaticScene, build_static_scene, populate_along
from sim.world import ATTRIBUTION, World, default_world_dir
from vision.camera import Intrinsics, Pose
from vision.geo import LocalFrame

logger = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
FORMAT = "roadmesh-drive/1"


@dataclass
class WorldContext:
    world: World
    features: list[MapFeature]
    scene: StaticScene
    world_dir: Path


@lru_cache(maxsize=2)
def load_context(
    world_dir: Path | None = None, features_file: str = "features.geojson"
) -> WorldContext:
    d = Path(world_dir) if world_dir is not None else default_world_dir()
    world = World.load(d)
    feats = load_features(d / features_file, world)
    return WorldContext(world, feats, build_static_scene(world, feats), d)


@dataclass(frozen=True)
class DriveSpec:
    device_id: str
    seed: int
    start_utc: datetime
    duration_s: float
    fps: float = 5.0
    width: int = 1280
    height: int = 720
    hfov_deg: float = 120.0
    gnss_hz: float = 1.0
    light: str = "day"
    mode: str = "random"  # random | loop | parked
    spoof: bool = False
    replay: bool = False
    faults: CameraFaults | None = None
    key_id: str = ""
    # a shifted-track replayer: every fix it reports is moved by this (east, north) in metres
    shift_m: tuple[float, float] | None = None
    # a track thief: it reports the receiver track of this other drive (time-aligned)
    track_of: DriveSpec | None = None
    mount_height_m: float = 1.35
    mount_pitch_deg: float = -2.0
    gnss: GnssModel = field(default_factory=GnssModel)

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics.from_hfov(self.width, self.height, self.hfov_deg)


@dataclass
class SimDrive:
    """Everything about a drive except its pixels (cheap to plan, deterministic)."""

    spec: DriveSpec
    traj: Trajectory
    frame_t: FloatArray  # capture time of frame i (s from start)
    source: NDArray[np.int64]  # frame i shows the scene as it was at frame source[i]
    poses: list[Pose]  # true pose of the scene each frame shows
    speed: FloatArray
    yaw_rate: FloatArray
    actors: Actors
    fixes: Fixes
    fix_lat: FloatArray
    fix_lon: FloatArray
    fix_truth: dict[str, FloatArray]  # true east/north at fix times
    fix_note: list[str]  # "", "teleport", "impossible_speed", "fake_track", "replay:<k>"

    @property
    def frame_count(self) -> int:
        return len(self.frame_t)

    def t0_day(self) -> float:
        s = self.spec.start_utc
        return s.hour * 3600 + s.minute * 60 + s.second + s.microsecond / 1e6


def plan_drive(ctx: WorldContext, spec: DriveSpec) -> SimDrive:
    rng = np.random.default_rng([spec.seed, 1])
    world = ctx.world
    T = spec.duration_s
    t0_day = (
        spec.start_utc.hour * 3600
        + spec.start_utc.minute * 60
        + spec.start_utc.second
        + spec.start_utc.microsecond / 1e6
    )
    if spec.mode == "parked":
        r = world.roads[int(rng.integers(0, len(world.roads)))]
        k = len(r.xy) // 2
        t = r.xy[min(k + 1, len(r.xy) - 1)] - r.xy[max(k - 1, 0)]
        t = t / max(1e-9, float(np.linalg.norm(t)))
        pos = (r.xy[k] + r.xy[max(k - 1, 0)]) / 2 + np.array([t[1], -t[0]]) * (r.width_m / 2 + 0.75)
        traj = parked(pos, float(np.degrees(np.arctan2(t[0], t[1]))), T)
        path_xy = np.array([pos, pos + t * 30.0])
    else:
        homes = world.drivable_nodes
        if spec.mode == "loop":  # the same few blocks, lap after lap
            nodes = plan_circuit(world, rng, min_length_m=T * 17.0 + 300.0, homes=homes)
        else:
            home = int(rng.choice(homes))
            nodes = plan_nodes(world, rng, min_length_m=T * 17.0 + 300.0, home=home)
        path = build_path(world, nodes, ctx.features, speed_factor=float(rng.uniform(0.9, 1.05)))
        traj = drive(path, T, rng, t0_day)
        path_xy = path.xy[: int(np.searchsorted(path.s, traj.s[-1] + 80.0))]
    actors = populate_along(
        world,
        ctx.scene,
        path_xy,
        np.random.default_rng([spec.seed, 2]),
        prefix=f"{spec.device_id}-",
    )
    n = round(T * spec.fps)
    frame_t = np.arange(n) / spec.fps
    source = np.arange(n)
    if spec.replay:
        half = n // 2
        source[half:] = np.arange(n - half) % max(1, half)
    st = traj.at(frame_t[source])
    pitch, roll = camera_attitude(st, np.random.default_rng([spec.seed, 3]), spec.mount_pitch_deg)
    poses = [
        Pose(float(e), float(nn), spec.mount_height_m, float(h), float(p), float(r))
        for e, nn, h, p, r in zip(st["east"], st["north"], st["heading"], pitch, roll, strict=True)
    ]
    # --- what the receiver reports ---
    ft = fix_times(spec.start_utc, T - 1e-6, spec.gnss_hz)
    true = traj.at(ft)
    claim_e, claim_n = true["east"].copy(), true["north"].copy()
    claim_v, claim_c = true["speed"].copy(), true["heading"].copy()
    note = [""] * len(ft)
    if spec.spoof:
        claim_e, claim_n, claim_v, claim_c, note = _spoofed(ctx, spec, ft, true, rng)
    bt, _ = world.building_tree
    fixes = simulate(
        ft, claim_e, claim_n, claim_v, claim_c, np.random.default_rng([spec.seed, 4]), spec.gnss, bt
    )
    if spec.track_of is not None:
        fixes, note = _stolen_track(ctx, fixes, spec.track_of)
    if spec.shift_m is not None:
        fixes, note = _shifted(fixes, note, spec.shift_m)
    if spec.replay:
        per = round(spec.gnss_hz * (n // 2) / spec.fps)
        for k in range(len(ft)):
            j = k - per
            if j >= 0 and ft[k] >= frame_t[n // 2]:
                for arr in (
                    fixes.east,
                    fixes.north,
                    fixes.alt,
                    fixes.speed,
                    fixes.course,
                    fixes.hdop,
                    fixes.nsat,
                    fixes.valid,
                    fixes.multipath,
                ):
                    arr[k] = arr[j]
                note[k] = f"replay:{j}"
    lon, lat = world.frame.to_lonlat(fixes.east, fixes.north)
    return SimDrive(
        spec,
        traj,
        frame_t,
        source,
        poses,
        st["speed"],
        st["yaw_rate"],
        actors,
        fixes,
        lat,
        lon,
        {"east": true["east"], "north": true["north"]},
        note,
    )


def _spoofed(
    ctx: WorldContext,
    spec: DriveSpec,
    ft: FloatArray,
    true: dict[str, FloatArray],
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, list[str]]:
    """Honest for a third, then a teleport, then 20 s at an impossible speed, then a smooth
    fake drive elsewhere that the images contradict."""
    world = ctx.world
    T = spec.duration_s
    e, n = true["east"].copy(), true["north"].copy()
    v, c = true["speed"].copy(), true["heading"].copy()
    note = [""] * len(ft)
    a, b = T / 3.0, T / 2.0
    k_a = int(np.searchsorted(ft, a))
    here = np.array([e[min(k_a, len(e) - 1)], n[min(k_a, len(n) - 1)]])
    far = world.node_xy[world.drivable_nodes]
    far_node = int(world.drivable_nodes[int(np.argmax(np.linalg.norm(far - here, axis=1)))])
    D = world.node_xy[far_node] - here
    fake_nodes = plan_nodes(world, rng, min_length_m=T * 15.0, home=far_node)
    fake = drive(build_path(world, fake_nodes, ctx.features), T, rng)
    for k, t in enumerate(ft):
        if t < a:
            continue
        if t < b:
            e[k] += D[0]
            n[k] += D[1]
            note[k] = "teleport"
        elif t < b + 20.0:
            base = np.array(
                [np.interp(b, ft, true["east"]) + D[0], np.interp(b, ft, true["north"]) + D[1]]
            )
            head = math.radians(float(c[k]))
            e[k], n[k] = base + (t - b) * 80.0 * np.array([math.sin(head), math.cos(head)])
            v[k] = 80.0
            note[k] = "impossible_speed"
        else:
            fs = fake.at(t - b - 20.0)
            e[k], n[k], v[k], c[k] = fs["east"][0], fs["north"][0], fs["speed"][0], fs["heading"][0]
            note[k] = "fake_track"
    return e, n, v, c, note


def shift_vector(offset_m: float, seed: int) -> tuple[float, float]:
    """A constant (east, north) offset of `offset_m` metres in a direction the seed picks."""
    a = float(np.random.default_rng([seed, 31]).uniform(0.0, 2.0 * math.pi))
    return (round(offset_m * math.sin(a), 3), round(offset_m * math.cos(a), 3))


def _shifted(fixes: Fixes, note: list[str], shift: tuple[float, float]) -> tuple[Fixes, list[str]]:
    """Every fix moved by one constant offset: a real drive claimed somewhere else."""
    dist = math.hypot(*shift)
    tag = f"shift:{dist:.0f}"
    out = replace(fixes, east=fixes.east + shift[0], north=fixes.north + shift[1])
    return out, [f"{n};{tag}" if n else tag for n in note]


def _stolen_track(ctx: WorldContext, fixes: Fixes, victim: DriveSpec) -> tuple[Fixes, list[str]]:
    """The fixes another drive's receiver reported, at this receiver's fix times (same
    time since the start): a real, drivable track of somewhere this car is not."""
    other = plan_drive(ctx, victim).fixes
    j = np.clip(np.searchsorted(other.t, fixes.t), 0, len(other.t) - 1)
    prev = np.clip(j - 1, 0, len(other.t) - 1)
    j = np.where(np.abs(other.t[prev] - fixes.t) < np.abs(other.t[j] - fixes.t), prev, j)
    pick = {
        name: getattr(other, name)[j].copy()
        for name in ("alt", "speed", "course", "hdop", "nsat", "valid", "multipath", "canyon")
    }
    out = replace(
        fixes,
        east=np.interp(fixes.t, other.t, other.east),
        north=np.interp(fixes.t, other.t, other.north),
        **pick,
    )
    return out, [f"thief:{victim.device_id}"] * len(fixes.t)


# ------------------------------------------------------------------ frames
def frame_seed(spec: DriveSpec, j: int) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{spec.seed}:{j}".encode(), digest_size=4).digest(), "little"
    )


def render_frame(
    renderer: Renderer, sim: SimDrive, i: int
) -> tuple[NDArray[np.uint8], list[Label]]:
    j = int(sim.source[i])
    spec = sim.spec
    res = renderer.render(
        sim.poses[i],
        sim.t0_day() + float(sim.frame_t[j]),
        spec.light,
        sim.actors,
        speed=float(sim.speed[i]),
        yaw_rate_deg=float(sim.yaw_rate[i]),
        faults=spec.faults,
        frame_seed=frame_seed(spec, j),
    )
    return res.image, res.labels


def alter_copy(img: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """What a duplicate farmer does to a stolen frame: a slight crop, tone change, recompression."""
    h, w = img.shape[:2]
    c = float(rng.uniform(0.01, 0.03))
    x0, y0 = int(w * c * rng.random()), int(h * c * rng.random())
    crop = img[y0 : y0 + int(h * (1 - c)), x0 : x0 + int(w * (1 - c))]
    out = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.convertScaleAbs(
        out, alpha=float(rng.uniform(0.92, 1.08)), beta=float(rng.uniform(-8, 8))
    )
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 90))])
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return np.asarray(dec if dec is not None else out, dtype=np.uint8)


# ------------------------------------------------------------------ writing
class DriveWriter:
    """Writes one drive folder; frames are pushed one at a time."""

    def __init__(
        self,
        out: Path,
        sim: SimDrive,
        frame: LocalFrame,
        device_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.out = out
        self.sim = sim
        spec = sim.spec
        self.device_id = device_id or spec.device_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "truth").mkdir(exist_ok=True)
        self.video = cv2.VideoWriter(
            str(out / "video.mp4"),
            cv2.VideoWriter.fourcc(*"mp4v"),
            spec.fps,
            (spec.width, spec.height),
        )
        if not self.video.isOpened():
            raise RuntimeError("OpenCV cannot write mp4v video here")
        self.boxes = (out / "truth" / "boxes.jsonl").open("w")
        self.track = (out / "truth" / "track.csv").open("w", newline="")
        self.track_csv = csv.writer(self.track)
        self.track_csv.writerow(
            [
                "frame",
                "t_s",
                "time_utc",
                "east",
                "north",
                "lat",
                "lon",
                "heading_deg",
                "pitch_deg",
                "roll_deg",
                "speed_mps",
                "source_frame",
            ]
        )
        self._lon, self._lat = frame.to_lonlat(
            [p.east for p in sim.poses], [p.north for p in sim.poses]
        )
        self.extra = extra or {}

    def push(
        self, i: int, image: NDArray[np.uint8], labels: list[Label], source: str | None = None
    ) -> None:
        sim = self.sim
        self.video.write(image)
        p = sim.poses[i]
        t = float(sim.frame_t[i])
        ts = sim.spec.start_utc + timedelta(seconds=t)
        self.track_csv.writerow(
            [
                i,
                f"{t:.3f}",
                ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                f"{p.east:.3f}",
                f"{p.north:.3f}",
                f"{self._lat[i]:.8f}",
                f"{self._lon[i]:.8f}",
                f"{p.heading_deg % 360:.3f}",
                f"{p.pitch_deg:.3f}",
                f"{p.roll_deg:.3f}",
                f"{sim.speed[i]:.3f}",
                source if source is not None else int(sim.source[i]),
            ]
        )
        self.boxes.write(
            json.dumps(
                {"frame": i, "t_s": round(t, 3), "labels": [lb.to_dict() for lb in labels]},
                separators=(",", ":"),
            )
            + "\n"
        )

    def close(self) -> None:
        self.video.release()
        self.boxes.close()
        self.track.close()
        sim = self.sim
        spec = sim.spec
        nmea = nmea_lines(spec.start_utc, sim.fixes, sim.fix_lat, sim.fix_lon)
        (self.out / "gnss.nmea").write_text("".join(s + "\r\n" for _, s in nmea))
        (self.out / "gnss.gpx").write_text(
            gpx_document(spec.start_utc, sim.fixes, sim.fix_lat, sim.fix_lon, self.device_id)
        )
        with (self.out / "truth" / "fixes.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "t_s",
                    "true_east",
                    "true_north",
                    "reported_east",
                    "reported_north",
                    "error_m",
                    "valid",
                    "hdop",
                    "nsat",
                    "multipath_m",
                    "canyon",
                    "note",
                ]
            )
            f = sim.fixes
            for k in range(len(f.t)):
                err = math.hypot(
                    f.east[k] - sim.fix_truth["east"][k], f.north[k] - sim.fix_truth["north"][k]
                )
                w.writerow(
                    [
                        f"{f.t[k]:.3f}",
                        f"{sim.fix_truth['east'][k]:.3f}",
                        f"{sim.fix_truth['north'][k]:.3f}",
                        f"{f.east[k]:.3f}",
                        f"{f.north[k]:.3f}",
                        f"{err:.3f}",
                        int(f.valid[k]),
                        f"{f.hdop[k]:.1f}",
                        int(f.nsat[k]),
                        f"{f.multipath[k]:.3f}",
                        f"{f.canyon[k]:.2f}",
                        sim.fix_note[k],
                    ]
                )
        (self.out / "manifest.json").write_text(
            json.dumps(manifest(sim, self.device_id, self.extra), indent=2) + "\n"
        )


def manifest(sim: SimDrive, device_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    spec = sim.spec
    intr = spec.intrinsics
    return {
        "format": FORMAT,
        "device_id": device_id,
        "key_id": spec.key_id or device_id,
        "start_time_utc": spec.start_utc.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "fps": spec.fps,
        "frame_count": sim.frame_count,
        "width": spec.width,
        "height": spec.height,
        "camera": {
            **intr.to_dict(),
            "hfov_deg": round(intr.hfov_deg, 3),
            "model": "pinhole",
            "distortion": [0, 0, 0, 0, 0],
            "mount_height_m": spec.mount_height_m,
            "mount_pitch_deg": spec.mount_pitch_deg,
        },
        "video": "video.mp4",
        "nmea": "gnss.nmea",
        "gpx": "gnss.gpx",
        "gnss_hz": spec.gnss_hz,
        "seed": spec.seed,
        "light": spec.light,
        "generator": "roadmesh sim",
        "map_attribution": ATTRIBUTION,
        **extra,
    }


def record(
    ctx: WorldContext,
    sim: SimDrive,
    out: Path,
    renderer: Renderer | None = None,
    progress: Callable[[int], None] | None = None,
    copy_to: tuple[Path, str, DriveSpec] | None = None,
) -> None:
    """Render and write a drive. copy_to=(folder, device_id, spec): also write a duplicate
    farmer's drive made of slightly altered copies of these frames and a jittered track."""
    renderer = renderer or Renderer(ctx.scene, sim.spec.intrinsics, seed=sim.spec.seed)
    w = DriveWriter(out, sim, ctx.world.frame)
    w2 = None
    rng2 = np.random.default_rng([sim.spec.seed, 9])
    if copy_to is not None:
        folder, dev, spec2 = copy_to
        sim2 = replace(
            sim,
            spec=spec2,
            fixes=_jitter(sim.fixes, rng2),
            fix_note=[f"copy:{sim.spec.device_id}"] * len(sim.fix_note),
        )
        if spec2.shift_m is not None:  # a copy whose track is shifted too
            sim2.fixes, sim2.fix_note = _shifted(sim2.fixes, sim2.fix_note, spec2.shift_m)
        lon2, lat2 = ctx.world.frame.to_lonlat(sim2.fixes.east, sim2.fixes.north)
        sim2.fix_lat, sim2.fix_lon = lat2, lon2
        w2 = DriveWriter(folder, sim2, ctx.world.frame, dev)
    done = 0
    for i in range(sim.frame_count):
        img, labels = render_frame(renderer, sim, i)
        w.push(i, img, labels)
        if w2 is not None:
            w2.push(i, alter_copy(img, rng2), labels, source=f"copy:{sim.spec.device_id}:{i}")
        done += 1
        if progress is not None and done % 10 == 0:
            progress(10 * (2 if w2 is not None else 1))
    if progress is not None and done % 10:
        progress((done % 10) * (2 if w2 is not None else 1))
    w.close()
    if w2 is not None:
        w2.close()


def _jitter(f: Fixes, rng: np.random.Generator) -> Fixes:
    n = len(f.t)
    return replace(f, east=f.east + rng.normal(0, 0.7, n), north=f.north + rng.normal(0, 0.7, n))


# ------------------------------------------------------------------ live source
class LiveDrive:
    """A drive as a live camera + GNSS receiver: no files in between.

    ``frames()`` yields (capture_time_utc, BGR image); ``nmea()`` yields (time_utc, sentence);
    ``events()`` merges both in time order as ("frame", t, image) / ("nmea", t, sentence).
    """

    def __init__(self, spec: DriveSpec, ctx: WorldContext | None = None) -> None:
        self.ctx = ctx or load_context()
        self.spec = spec
        self.sim = plan_drive(self.ctx, spec)
        self.renderer = Renderer(self.ctx.scene, spec.intrinsics, seed=spec.seed)
        self.labels: list[Label] = []  # ground truth of the last frame yielded

    def frames(self) -> Iterator[tuple[datetime, NDArray[np.uint8]]]:
        for i in range(self.sim.frame_count):
            img, self.labels = render_frame(self.renderer, self.sim, i)
            yield self.spec.start_utc + timedelta(seconds=float(self.sim.frame_t[i])), img

    def nmea(self) -> Iterator[tuple[datetime, str]]:
        for t, s in nmea_lines(
            self.spec.start_utc, self.sim.fixes, self.sim.fix_lat, self.sim.fix_lon
        ):
            yield self.spec.start_utc + timedelta(seconds=t), s

    def events(self) -> Iterator[tuple[str, datetime, Any]]:
        sentences = list(self.nmea())
        k = 0
        for ts, img in self.frames():
            while k < len(sentences) and sentences[k][0] <= ts:
                yield "nmea", sentences[k][0], sentences[k][1]
                k += 1
            yield "frame", ts, img
        for ts, s in sentences[k:]:
            yield "nmea", ts, s


def default_start(seed: int, today: datetime | None = None) -> datetime:
    """A start time for a seed: yesterday morning (UTC) at a time of day the seed picks.

    Recent, so a recorded drive replayed through the edge is inside the server's time
    window (it refuses frames over a year old); the same for every run on the same day."""
    rng = np.random.default_rng([seed, 77])
    day = (today or datetime.now(UTC)).astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - timedelta(days=1)
    return day + timedelta(
        hours=6,
        minutes=30,
        seconds=int(rng.integers(0, 3600)),
        milliseconds=int(rng.integers(0, 1000)),
    )
