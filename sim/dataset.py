"""YOLO training sets and preview contact sheets from rendered scenes.

Scenes are sampled for variety: the camera stands 3-45 m before a map feature (classes
drawn evenly, extra signs of rare classes planted beside the road), or anywhere on a lane;
light, distance, viewing angle, occlusion (parked cars, people, trees) and image quality
(motion blur, noise, JPEG) all vary.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from sim.conditions import CameraFaults
from sim.drive import WorldContext, load_context
from sim.features import CLASS_ID, CLASS_NAMES, FEATURE_CLASSES, SHAPES, MapFeature, shape_key
from sim.polyline import at_distance, right_normal
from sim.render import Label, Renderer
from sim.scene import Actors, Car, Pedestrian, random_car, random_person
from sim.world import LANE_WIDTH_M
from vision.camera import Intrinsics, Pose
from vision.geo import bearing_deg

logger = logging.getLogger(__name__)
LIGHTS = ("day", "day", "day", "overcast", "dusk", "night", "glare")


@dataclass
class Scene:
    pose: Pose
    light: str
    actors: Actors
    extra: list[MapFeature]
    speed: float
    t: float
    faults: CameraFaults | None
    jpeg: int


def sample_scene(
    ctx: WorldContext,
    rng: np.random.Generator,
    light: str | None = None,
    max_distance: float = 45.0,
    cls: str | None = None,
) -> Scene:
    world = ctx.world
    feats = ctx.features
    extra: list[MapFeature] = []
    if (rng.random() < 0.75 or cls is not None) and feats:
        cls = cls or str(rng.choice(FEATURE_CLASSES))
        pool = [f for f in feats if f.cls == cls and f.road >= 0]
        if not pool:
            pool = [f for f in feats if f.road >= 0]
        f = pool[int(rng.integers(0, len(pool)))]
        r = world.roads[f.road]
        b = math.radians(f.facing_deg)
        n = np.array([math.sin(b), math.cos(b)])
        fwd = -n
        right = np.array([fwd[1], -fwd[0]])
        if f.cls == "fire_hydrant":  # the hydrant faces the road; look along the road instead
            _, t = at_distance(r.xy, 0.0)
            fwd = t[0] if rng.random() < 0.5 else -t[0]
            right = np.array([fwd[1], -fwd[0]])
            n = -fwd
        d = float(rng.uniform(3.0 if max_distance > 20 else 7.0, max_distance))
        lateral = (
            -(r.width_m / 2 + 1.0) + (r.width_m / 2 - LANE_WIDTH_M / 2) + float(rng.normal(0, 0.6))
        )
        if f.cls == "fire_hydrant":
            side = float(np.sign((f.xy - r.xy[len(r.xy) // 2]) @ right)) or 1.0
            lateral = -side * (r.width_m / 2 + 0.6) + (r.width_m / 2 - LANE_WIDTH_M / 2)
        cam = f.xy + n * d + right * lateral
        heading = float(bearing_deg(fwd[0], fwd[1])) + float(rng.normal(0, 8))
        road_w = r.width_m
        if rng.random() < 0.35:  # plant a sign of a random class beside the road ahead
            kind = str(rng.choice([c for c in FEATURE_CLASSES if c != "fire_hydrant"]))
            w, h, z = SHAPES[shape_key(kind)]
            pos = (
                cam
                + fwd * float(rng.uniform(5, 35))
                + right * (r.width_m / 2 + 1.0 - lateral) * (1 if rng.random() < 0.8 else -1)
            )
            extra.append(
                MapFeature(
                    f"x-{kind}",
                    kind,
                    float(pos[0]),
                    float(pos[1]),
                    z + float(rng.normal(0, 0.15)),
                    float(bearing_deg(-fwd[0], -fwd[1]) + rng.normal(0, 12)),
                    w,
                    h,
                )
            )
    else:
        r = world.roads[int(rng.integers(0, len(world.roads)))]
        s = float(rng.uniform(0, r.length_m))
        p, t = at_distance(r.xy if rng.random() < 0.5 or r.oneway else r.xy[::-1], s)
        fwd = t[0]
        right = right_normal(fwd)
        cam = p[0] + right * (r.width_m / 2 - LANE_WIDTH_M / 2)
        heading = float(bearing_deg(fwd[0], fwd[1])) + float(rng.normal(0, 4))
        right = np.array([fwd[1], -fwd[0]])
        road_w = r.width_m
    cars: list[Car] = []
    people: list[Pedestrian] = []
    for k in range(int(rng.integers(1, 6))):
        along = float(rng.uniform(4, 35))
        where = rng.random()
        if where < 0.4:  # parked at the kerb, right side
            pos, hd, spd = (
                cam + fwd * along + right * float(rng.uniform(2.6, 3.4)),
                float(bearing_deg(*fwd)) + float(rng.normal(0, 3)),
                0.0,
            )
        elif where < 0.7:  # oncoming lane
            pos, hd, spd = (
                cam + fwd * along - right * float(rng.uniform(3.0, 3.6)),
                float(bearing_deg(*(-fwd))) + float(rng.normal(0, 3)),
                0.0,
            )
        else:  # ahead in our lane
            pos, hd, spd = (
                cam + fwd * (along + 4) + right * float(rng.normal(0, 0.3)),
                float(bearing_deg(*fwd)) + float(rng.normal(0, 2)),
                0.0,
            )
        cars.append(random_car(rng, f"car{k}", pos, hd, spd))
    for k in range(int(rng.integers(1, 7))):
        along = (
            float(rng.uniform(1.8, 22.0)) if rng.random() < 0.7 else float(rng.uniform(2.0, 6.0))
        )
        kerb = LANE_WIDTH_M / 2 if rng.random() < 0.6 else -(road_w - LANE_WIDTH_M / 2)
        pos = cam + fwd * along + right * (kerb + np.sign(kerb) * float(rng.uniform(0.6, 3.2)))
        facing = float(bearing_deg(*(cam - pos))) + float(rng.normal(0, 35))
        people.append(random_person(rng, f"ped{k}", pos, facing))
    lt = light or str(rng.choice(LIGHTS))
    pose = Pose(
        float(cam[0]),
        float(cam[1]),
        float(rng.uniform(1.2, 1.6)),
        heading,
        float(rng.normal(-2.0, 1.5)),
        float(rng.normal(0, 0.8)),
    )
    faults = CameraFaults(blur_sigma=float(rng.uniform(0.8, 2.0))) if rng.random() < 0.08 else None
    return Scene(
        pose,
        lt,
        Actors(cars, people),
        extra,
        float(rng.uniform(0, 14)),
        float(rng.uniform(0, 600)),
        faults,
        int(rng.integers(55, 96)),
    )


def render_scene(renderer: Renderer, sc: Scene, seed: int) -> tuple[NDArray[np.uint8], list[Label]]:
    res = renderer.render(
        sc.pose,
        sc.t,
        sc.light,
        sc.actors,
        speed=sc.speed,
        faults=sc.faults,
        frame_seed=seed,
        jpeg_quality=sc.jpeg,
        extra_features=sc.extra,
    )
    return res.image, res.labels


def yolo_lines(
    labels: list[Label], width: int, height: int, min_visible: float = 0.4, min_px: float = 4.0
) -> list[str]:
    out = []
    for lb in labels:
        x1, y1, x2, y2 = lb.box
        if (
            lb.visible < min_visible
            or x2 - x1 < min_px
            or y2 - y1 < min_px
            or lb.cls not in CLASS_ID
        ):
            continue
        out.append(
            f"{CLASS_ID[lb.cls]} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )
    return out


_ctx_args: tuple[Path | None, int, int, float, int] | None = None


def _dataset_chunk(args: tuple[list[int], str, str | None, int, int, float, int, float]) -> int:
    idxs, out, world_dir, width, height, hfov, seed, val_fraction = args
    cv2.setNumThreads(1)
    ctx = load_context(Path(world_dir) if world_dir else None)
    renderer = Renderer(ctx.scene, Intrinsics.from_hfov(width, height, hfov), seed=seed)
    n = 0
    for i in idxs:
        rng = np.random.default_rng([seed, i])
        split = "val" if rng.random() < val_fraction else "train"
        sc = sample_scene(ctx, rng)
        img, labels = render_scene(renderer, sc, seed * 1000003 + i)
        cv2.imwrite(
            str(Path(out) / "images" / split / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        (Path(out) / "labels" / split / f"{i:06d}.txt").write_text(
            "".join(s + "\n" for s in yolo_lines(labels, width, height))
        )
        n += 1
    return n


def write_dataset(
    out: Path,
    images: int,
    seed: int = 0,
    width: int = 1280,
    height: int = 720,
    hfov: float = 120.0,
    val_fraction: float = 0.1,
    workers: int | None = None,
    world_dir: Path | None = None,
    show_progress: bool = True,
) -> dict[str, object]:
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (out / "data.yaml").write_text(
        f"# RoadMesh synthetic street scenes (roadmesh sim dataset, seed {seed}); map data (c) OpenStreetMap contributors, ODbL\n"
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnc: {len(CLASS_NAMES)}\nnames:\n{names}\n"
    )
    workers = max(1, min(workers or os.cpu_count() or 1, images))
    chunk = 20
    chunks = [list(range(a, min(images, a + chunk))) for a in range(0, images, chunk)]
    args = [
        (
            c,
            str(out),
            str(world_dir) if world_dir else None,
            width,
            height,
            hfov,
            seed,
            val_fraction,
        )
        for c in chunks
    ]
    bar = tqdm(total=images, unit="img", desc="sim dataset", disable=not show_progress)
    if workers == 1:
        for a in args:
            bar.update(_dataset_chunk(a))
    else:
        with mp.get_context("forkserver").Pool(workers) as pool:  # see sim.fleet.run_fleet
            for n in pool.imap_unordered(_dataset_chunk, args):
                bar.update(n)
    bar.close()
    counts = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    for p in (out / "labels").rglob("*.txt"):
        for line in p.read_text().splitlines():
            counts[int(line.split()[0])] += 1
    return {"images": images, "boxes": {CLASS_NAMES[i]: int(c) for i, c in enumerate(counts)}}


def contact_sheet(
    out: Path,
    seed: int = 0,
    tiles: int = 12,
    cols: int = 4,
    tile_w: int = 480,
    boxes: bool = False,
    width: int = 1280,
    height: int = 720,
    world_dir: Path | None = None,
) -> Path:
    ctx = load_context(world_dir)
    renderer = Renderer(ctx.scene, Intrinsics.from_hfov(width, height), seed=seed)
    lights = (
        "day",
        "day",
        "overcast",
        "day",
        "dusk",
        "day",
        "night",
        "day",
        "glare",
        "day",
        "dusk",
        "night",
    )
    classes = (
        "stop",
        "traffic_light",
        "speed_limit_50",
        "yield",
        "pedestrian_crossing",
        "no_entry",
        "traffic_light",
        "speed_limit_30",
        "fire_hydrant",
        "speed_limit_40",
        "stop",
        "speed_limit_60",
    )
    imgs = []
    for i in range(tiles):
        rng = np.random.default_rng([seed, 500 + i])
        sc = sample_scene(
            ctx, rng, lights[i % len(lights)], max_distance=16.0, cls=classes[i % len(classes)]
        )
        sc = replace(sc, jpeg=92, faults=None)
        img, labels = render_scene(renderer, sc, i)
        if boxes:
            for lb in labels:
                if lb.visible < 0.4:
                    continue
                x1, y1, x2, y2 = (int(v) for v in lb.box)
                cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 1)
        th = round(tile_w * height / width)
        imgs.append(cv2.resize(img, (tile_w, th), interpolation=cv2.INTER_AREA))
    rows = [np.hstack(imgs[r * cols : (r + 1) * cols]) for r in range(math.ceil(tiles / cols))]
    sheet = np.vstack(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return out
