"""What the renderer draws, built once per world: ground layers (roads, sidewalks, kerbs,
markings, crossings), building walls, trees, map features; plus per-drive actors (parked
cars with plates, pedestrians with faces). Everything is kept in flat numpy arrays with
KD-trees over element centres, so a frame only touches what lies within draw distance."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from sim.features import MapFeature
from sim.polyline import at_distance, resample, right_normal, segment_quads
from sim.sprites import plate_text
from sim.world import SIDEWALK_M, World

FloatArray = NDArray[np.float64]

ASPHALT = (72, 74, 76)
SIDEWALK = (150, 152, 150)
KERB = (185, 187, 185)
MARKING = (225, 228, 228)
GROUND = (96, 104, 100)
FACADES = (
    (120, 170, 205),
    (150, 190, 215),
    (175, 180, 185),
    (80, 100, 150),
    (140, 160, 190),
    (200, 205, 205),
    (95, 130, 170),
)
CAR_COLOURS = (
    (40, 40, 40),
    (200, 200, 205),
    (140, 140, 140),
    (30, 30, 140),
    (130, 70, 30),
    (235, 235, 235),
    (60, 90, 40),
    (20, 60, 120),
)


@dataclass
class GroundLayer:
    name: str
    colour: tuple[int, int, int]
    quads: FloatArray  # (n, 4, 2)
    centre: FloatArray = field(init=False)
    radius: float = field(init=False)
    tree: cKDTree = field(init=False)

    def __post_init__(self) -> None:
        q = self.quads.reshape(-1, 4, 2)
        self.quads = q
        self.centre = q.mean(axis=1) if len(q) else np.zeros((0, 2))
        self.radius = (
            float(np.max(np.linalg.norm(q - self.centre[:, None], axis=2))) if len(q) else 0.0
        )
        self.tree = cKDTree(self.centre if len(q) else np.zeros((1, 2)) + 1e9)


def _disc(c: FloatArray, r: float, n: int = 12) -> FloatArray:
    """A disc as n/2 quads (fan split into quads of 4 points sharing the centre)."""
    a = np.linspace(0, 2 * np.pi, n + 1)
    ring = c + r * np.stack([np.cos(a), np.sin(a)], axis=1)
    quads = [
        np.stack([c, ring[i], ring[i + 1], ring[i + 2 if i + 2 <= n else 0]])
        for i in range(0, n, 2)
    ]
    return np.array(quads)


def _dashes(
    xy: FloatArray, offset: float, width: float, dash: float, gap: float, trim0: float, trim1: float
) -> list[FloatArray]:
    total = float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))
    out = []
    s = trim0
    while s + dash < total - trim1:
        p, t = at_distance(xy, np.array([s, s + dash]))
        nr = right_normal(t)
        a, b = p[0] + nr[0] * offset, p[1] + nr[1] * offset
        out.append(
            np.stack(
                [
                    a - nr[0] * width / 2,
                    b - nr[1] * width / 2,
                    b + nr[1] * width / 2,
                    a + nr[0] * width / 2,
                ]
            )
        )
        s += dash + gap
    return out


@dataclass
class StaticScene:
    layers: list[GroundLayer]
    wall_a: FloatArray  # (n, 2)
    wall_b: FloatArray
    wall_h: FloatArray  # (n,)
    wall_colour: NDArray[np.uint8]  # (n, 3)
    wall_tree: cKDTree
    tree_xy: FloatArray  # roadside trees
    tree_h: FloatArray
    tree_kd: cKDTree
    features: list[MapFeature]
    feat_xy: FloatArray
    feat_kd: cKDTree
    ground: tuple[int, int, int] = GROUND  # beyond the sidewalks (the world's scenery)
    windows: bool = True  # walls taller than 5 m get window bands


def build_static_scene(world: World, features: list[MapFeature], seed: int = 3) -> StaticScene:
    rng = np.random.default_rng(seed)
    deg = world.undirected_degree
    side, road, junction, kerb, mark, stopline, zebra = ([] for _ in range(7))
    for r in world.roads:
        hw = r.width_m / 2.0
        side.append(segment_quads(r.xy, hw + SIDEWALK_M, hw + SIDEWALK_M))
        road.append(segment_quads(r.xy, hw, hw))
        t0 = world.node_max_width[r.u] / 2.0 + 1.5 if deg[r.u] >= 3 else 0.0
        t1 = world.node_max_width[r.v] / 2.0 + 1.5 if deg[r.v] >= 3 else 0.0
        if r.length_m > t0 + t1 + 1.0:
            p, s = resample(r.xy, 2.0)
            keep = (s >= t0) & (s <= s[-1] - t1)
            if keep.sum() >= 2:
                core = p[keep]
                kerb.append(segment_quads(core, -hw, hw + 0.2))
                kerb.append(segment_quads(core, hw + 0.2, -hw))
            if r.oneway:
                for k in range(1, r.lanes):
                    mark.extend(
                        _dashes(r.xy, -hw + k * r.width_m / r.lanes, 0.12, 3.0, 9.0, t0 + 2, t1 + 2)
                    )
            else:
                mark.extend(_dashes(r.xy, 0.0, 0.12, 3.0, 9.0, t0 + 2, t1 + 2))
                per_dir = max(1, r.lanes // 2)
                for k in range(1, per_dir):
                    for sgn in (-1.0, 1.0):
                        mark.extend(
                            _dashes(
                                r.xy, sgn * k * r.width_m / r.lanes, 0.12, 3.0, 9.0, t0 + 2, t1 + 2
                            )
                        )
    for n in np.nonzero(deg >= 3)[0]:
        junction.append(_disc(world.node_xy[n], world.node_max_width[n] / 2.0 + 1.0))
    # stop lines in front of lights and stop signs; zebras at pedestrian-crossing signs
    for f in features:
        if f.cls not in ("traffic_light", "stop", "pedestrian_crossing") or f.road < 0:
            continue
        r = world.roads[f.road]
        fwd = -np.array([np.sin(np.radians(f.facing_deg)), np.cos(np.radians(f.facing_deg))])
        right = np.array([fwd[1], -fwd[0]])
        # the road centre beside the sign
        c = f.xy - right * (r.width_m / 2.0 + 1.0)
        if f.cls == "pedestrian_crossing":
            if r.oneway or f.id < "f-8":  # one zebra per crossing (two signs share it)
                for across in np.arange(-r.width_m / 2 + 0.3, r.width_m / 2 - 0.3, 1.0):
                    a = c + right * float(across) + fwd * 1.0
                    zebra.append(
                        np.stack([a, a + right * 0.5, a + right * 0.5 - fwd * 3.0, a - fwd * 3.0])
                    )
            continue
        half = r.width_m / 2.0 if r.oneway else 0.0
        a = c + fwd * 1.5 - right * half
        e = c + fwd * 1.5 + right * (r.width_m / 2.0)
        stopline.append(np.stack([a, e, e + fwd * 0.4, a + fwd * 0.4]))
    layers = [
        GroundLayer("sidewalk", world.scenery.sidewalk, _cat(side)),
        GroundLayer("road", ASPHALT, _cat(road)),
        GroundLayer("junction", ASPHALT, _cat(junction)),
        GroundLayer("kerb", KERB, _cat(kerb)),
        GroundLayer("marking", MARKING, _cat(mark)),
        GroundLayer("stopline", MARKING, _cat(stopline)),
        GroundLayer("zebra", MARKING, _cat(zebra)),
    ]
    # walls (split to <= 12 m so culling by centre distance is exact enough)
    look = world.scenery
    facades = look.facades or FACADES
    wa, wb, wh, wc = [], [], [], []
    for i, b in enumerate(world.buildings):
        ring = np.vstack([b.xy, b.xy[:1]])
        col = np.array(facades[(i * 7 + int(rng.integers(0, 3))) % len(facades)])
        for a, c in itertools.pairwise(ring):
            pieces = max(1, int(np.ceil(np.linalg.norm(c - a) / 12.0)))
            t = np.linspace(0.0, 1.0, pieces + 1)[:, None]
            pts = a + t * (c - a)
            wa.append(pts[:-1])
            wb.append(pts[1:])
            wh.append(np.full(pieces, b.height_m))
            wc.append(np.repeat(col[None], pieces, axis=0))
    wall_a = np.vstack(wa) if wa else np.zeros((0, 2))
    wall_b = np.vstack(wb) if wb else np.zeros((0, 2))
    centres = (wall_a + wall_b) / 2 if len(wall_a) else np.zeros((1, 2)) + 1e9
    # trees on sidewalks of minor roads (and, where the scenery says so, major ones and rows
    # of forest behind them), away from features, building walls and other roads
    txy, th = [], []
    fxy = np.array([f.xy for f in features]).reshape(-1, 2)
    fkd = cKDTree(fxy if len(fxy) else np.zeros((1, 2)) + 1e9)
    bkd, _ = world.building_tree
    road_kd, road_half = _road_samples(world) if look.forest_rows else (None, None)
    lo, hi = look.tree_height_m
    for r in world.roads:
        if (r.highway.startswith("primary") and not look.trees_on_major) or r.length_m < 30:
            continue
        p, s = resample(r.xy, look.tree_every_m)
        _, t = at_distance(r.xy, s)
        rows = [(r.width_m / 2.0 + 1.6, look.tree_share, False)]
        rows += [
            (r.width_m / 2.0 + SIDEWALK_M + 3.0 + 5.0 * k, look.forest_share, True)
            for k in range(look.forest_rows)
        ]
        for off, share, forest in rows:
            for sgn in (-1.0, 1.0):
                pos = p + right_normal(t) * sgn * off
                if forest:  # not in a straight line
                    pos = pos + rng.normal(0.0, 1.2, pos.shape)
                ok = (
                    (fkd.query(pos)[0] > 4.0)
                    & (bkd.query(pos)[0] > 3.0)
                    & (rng.random(len(pos)) < share)
                )
                if road_kd is not None and road_half is not None and forest and ok.any():
                    # a forest row must not stand on another road
                    d, j = road_kd.query(pos)
                    ok &= d > road_half[j] + SIDEWALK_M
                txy.append(pos[ok])
                th.append(rng.uniform(lo, hi, ok.sum()))
    tree_xy = np.vstack(txy) if txy else np.zeros((0, 2))
    return StaticScene(
        layers,
        wall_a,
        wall_b,
        np.concatenate(wh) if wh else np.zeros(0),
        np.vstack(wc).astype(np.uint8) if wc else np.zeros((0, 3), np.uint8),
        cKDTree(centres),
        tree_xy,
        np.concatenate(th) if th else np.zeros(0),
        cKDTree(tree_xy if len(tree_xy) else np.zeros((1, 2)) + 1e9),
        list(features),
        fxy,
        fkd,
        look.ground,
        look.windows,
    )


def _road_samples(world: World) -> tuple[cKDTree, FloatArray]:
    """Points every 3 m along every road and each road's half width there."""
    pts, half = [], []
    for r in world.roads:
        p, _ = resample(r.xy, 3.0)
        pts.append(p)
        half.append(np.full(len(p), r.width_m / 2.0))
    return cKDTree(np.vstack(pts)), np.concatenate(half)


def _cat(parts: list[FloatArray]) -> FloatArray:
    parts = [p.reshape(-1, 4, 2) for p in parts if len(p)]
    return np.concatenate(parts) if parts else np.zeros((0, 4, 2))


# ---------------- actors (per drive / per frame) ----------------
@dataclass
class Car:
    id: str
    east: float
    north: float
    heading_deg: float
    colour: tuple[int, int, int]
    plate: str
    length: float = 4.4
    width: float = 1.8
    speed: float = 0.0  # m/s along heading (moving cars)

    def at(self, t: float) -> tuple[float, float]:
        h = np.radians(self.heading_deg)
        return self.east + self.speed * t * float(np.sin(h)), self.north + self.speed * t * float(
            np.cos(h)
        )


@dataclass
class Pedestrian:
    id: str
    east: float
    north: float
    facing_deg: float
    height: float
    face: int
    tone: int
    hair: int
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    speed: float = 0.0  # walking along facing, m/s (back and forth over +-10 m)

    def at(self, t: float) -> tuple[float, float]:
        h = np.radians(self.facing_deg)
        d = 10.0 * float(np.sin(self.speed * t / 10.0)) if self.speed else 0.0
        return self.east + d * float(np.sin(h)), self.north + d * float(np.cos(h))

    def facing_at(self, t: float) -> float:
        if self.speed and np.cos(self.speed * t / 10.0) < 0:
            return (self.facing_deg + 180.0) % 360.0
        return self.facing_deg


@dataclass
class Actors:
    cars: list[Car] = field(default_factory=list)
    people: list[Pedestrian] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self.car_xy = np.array([[c.east, c.north] for c in self.cars]).reshape(-1, 2)
        self.ped_xy = np.array([[p.east, p.north] for p in self.people]).reshape(-1, 2)
        self.car_kd = cKDTree(self.car_xy if len(self.car_xy) else np.zeros((1, 2)) + 1e9)
        self.ped_kd = cKDTree(self.ped_xy if len(self.ped_xy) else np.zeros((1, 2)) + 1e9)


def random_car(
    rng: np.random.Generator, cid: str, xy: FloatArray, heading: float, speed: float = 0.0
) -> Car:
    col = CAR_COLOURS[int(rng.integers(0, len(CAR_COLOURS)))]
    return Car(
        cid,
        float(xy[0]),
        float(xy[1]),
        float(heading),
        col,
        plate_text(rng),
        float(rng.uniform(4.0, 4.9)),
        float(rng.uniform(1.72, 1.9)),
        speed,
    )


def random_person(
    rng: np.random.Generator, pid: str, xy: FloatArray, facing: float, speed: float = 0.0
) -> Pedestrian:
    s3 = rng.integers(20, 230, 3)
    t3 = rng.integers(15, 120, 3)
    shirt = (int(s3[0]), int(s3[1]), int(s3[2]))
    trousers = (int(t3[0]), int(t3[1]), int(t3[2]))
    return Pedestrian(
        pid,
        float(xy[0]),
        float(xy[1]),
        float(facing),
        float(rng.uniform(1.55, 1.95)),
        int(rng.integers(0, 200)),
        int(rng.integers(0, 5)),
        int(rng.integers(0, 5)),
        shirt,
        trousers,
        speed,
    )  # type: ignore[arg-type]


def populate_along(
    world: World,
    scene: StaticScene,
    path_xy: FloatArray,
    rng: np.random.Generator,
    car_every_m: float = 30.0,
    person_every_m: float = 40.0,
    prefix: str = "",
) -> Actors:
    """Parked cars at the kerb and pedestrians on the sidewalks beside a driven path."""
    cars: list[Car] = []
    people: list[Pedestrian] = []
    road_pts, road_tan, road_w = [], [], []
    for r in world.roads:
        p, s = resample(r.xy, 6.0)
        _, t = at_distance(r.xy, s)
        road_pts.append(p)
        road_tan.append(t)
        road_w.append(np.full(len(p), r.width_m))
    pts = np.vstack(road_pts)
    tans = np.vstack(road_tan)
    widths = np.concatenate(road_w)
    near = cKDTree(path_xy).query(pts)[0] < 40.0
    idx = np.nonzero(near)[0]
    keep_out = [scene.feat_xy, scene.tree_xy]
    blockers = cKDTree(np.vstack([k for k in keep_out if len(k)] + [np.zeros((1, 2)) + 1e9]))
    bkd, _ = world.building_tree
    k = 0
    for i in idx:
        if rng.random() < 6.0 / car_every_m:
            sgn = 1.0 if rng.random() < 0.6 else -1.0
            pos = pts[i] + right_normal(tans[i]) * sgn * (widths[i] / 2.0 + 0.75)
            if (
                blockers.query(pos)[0] > 3.5
                and bkd.query(pos)[0] > 2.5
                and not any(np.hypot(c.east - pos[0], c.north - pos[1]) < 5.5 for c in cars[-6:])
            ):
                hd = float(
                    np.degrees(np.arctan2(tans[i, 0], tans[i, 1])) + (0.0 if sgn > 0 else 180.0)
                )
                cars.append(random_car(rng, f"{prefix}car{k}", pos, hd + rng.normal(0, 2)))
                k += 1
        if rng.random() < 6.0 / person_every_m:
            sgn = 1.0 if rng.random() < 0.5 else -1.0
            pos = pts[i] + right_normal(tans[i]) * sgn * (widths[i] / 2.0 + rng.uniform(1.6, 3.2))
            if blockers.query(pos)[0] > 1.0 and bkd.query(pos)[0] > 0.8:
                facing = float(rng.uniform(0, 360))
                speed = float(rng.uniform(0.8, 1.5)) if rng.random() < 0.5 else 0.0
                if speed:
                    facing = float(
                        np.degrees(np.arctan2(tans[i, 0], tans[i, 1]))
                        + (0 if rng.random() < 0.5 else 180)
                    )
                people.append(random_person(rng, f"{prefix}ped{len(people)}", pos, facing, speed))
    return Actors(cars, people)
