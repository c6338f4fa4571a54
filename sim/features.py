"""Ground-truth map features: placed as they stand in real streets, saved as GeoJSON.

Rules (right-hand traffic, European practice):
- traffic lights on every approach of a signalised junction (OSM ``traffic_signals`` nearby),
  on the right, just before the junction, facing oncoming traffic, housing centre at 3.0 m;
- stop / yield signs on minor approaches of unsignalised junctions (OSM ``give_way`` -> yield);
- no-entry signs at the exit end of one-way streets, facing would-be wrong-way entrants;
- speed-limit signs where the limit changes and as repeaters on long roads;
- pedestrian-crossing signs at uncontrolled OSM crossings, both directions;
- fire hydrants on the kerb every ~120 m, alternating sides.
Signs stand 1 m beyond the kerb, face centre ~2.3 m above the road. Ids are stable hashes
of the placement rule and the OSM ids it used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from sim.polyline import at_distance, right_normal
from sim.world import ATTRIBUTION, World
from vision.geo import bearing_deg, bearing_vector

# posted limits that get signs (the detector's classes cover 30-60; 20 and 80 km/h roads of
# the procedural worlds get signs too, which the detector does not know: `SIGN_CLASSES`)
SPEED_VALUES = (20, 30, 40, 50, 60, 80)
FEATURE_CLASSES = (
    "stop",
    "yield",
    "no_entry",
    "speed_limit_30",
    "speed_limit_40",
    "speed_limit_50",
    "speed_limit_60",
    "pedestrian_crossing",
    "traffic_light",
    "fire_hydrant",
)
CLASS_NAMES = (*FEATURE_CLASSES, "license_plate", "face")
SIGN_CLASSES = (*FEATURE_CLASSES, "speed_limit_20", "speed_limit_80")  # what can stand in a street
CLASS_ID = {c: i for i, c in enumerate(CLASS_NAMES)}

# face width x height (m), centre height above ground (m)
SHAPES: dict[str, tuple[float, float, float]] = {
    "stop": (0.9, 0.9, 2.4),
    "yield": (0.9, 0.8, 2.4),
    "no_entry": (0.64, 0.64, 2.3),
    "speed_limit": (0.64, 0.64, 2.3),
    "pedestrian_crossing": (0.64, 0.64, 2.4),
    "traffic_light": (0.34, 0.95, 2.9),
    "fire_hydrant": (0.32, 0.75, 0.375),
}
MAJOR_RANK = {
    "motorway": 6,
    "trunk": 5,
    "primary": 4,
    "secondary": 3,
    "tertiary": 2,
    "unclassified": 1,
    "residential": 1,
}


def shape_key(cls: str) -> str:
    return "speed_limit" if cls.startswith("speed_limit") else cls


@dataclass(frozen=True)
class MapFeature:
    id: str
    cls: str
    east: float
    north: float
    height_m: float  # centre of the face above ground
    facing_deg: float  # compass bearing the face points to (towards the traffic it serves)
    width_m: float
    face_height_m: float
    road: int = -1
    node_osm: int = 0  # junction this feature controls (0 if none)
    from_osm: int = 0  # the approach it controls comes from this node

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.east, self.north])


def _fid(*key: object) -> str:
    return "f-" + hashlib.blake2b("|".join(map(str, key)).encode(), digest_size=5).hexdigest()


def _make(
    cls: str,
    key: tuple[object, ...],
    xy: np.ndarray,
    facing: float,
    road: int = -1,
    node: int = 0,
    frm: int = 0,
) -> MapFeature:
    w, h, z = SHAPES[shape_key(cls)]
    return MapFeature(
        _fid(cls, *key),
        cls,
        float(xy[0]),
        float(xy[1]),
        z,
        float(facing) % 360.0,
        w,
        h,
        road,
        node,
        frm,
    )


def _approach_point(
    world: World, road_i: int, towards_v: bool, setback: float, lateral: float
) -> tuple[np.ndarray, float] | None:
    """Point `setback` m before the road's end (in travel direction) and `lateral` m to the right."""
    r = world.roads[road_i]
    xy = r.xy if towards_v else r.xy[::-1]
    total = r.length_m
    if total < setback + 3.0:
        return None
    p, t = at_distance(xy, total - setback)
    pos = p[0] + right_normal(t[0]) * lateral
    return pos, float(bearing_deg(-t[0, 0], -t[0, 1]))


def place_features(world: World, seed: int = 7) -> list[MapFeature]:
    rng = np.random.default_rng(seed)
    out: list[MapFeature] = []
    deg = world.undirected_degree
    signal_xy = np.array(
        [c["xy"] for c in world.controls if c["kind"] == "traffic_signals"]
    ).reshape(-1, 2)
    giveway_xy = np.array([c["xy"] for c in world.controls if c["kind"] == "give_way"]).reshape(
        -1, 2
    )
    sig_tree = cKDTree(signal_xy) if len(signal_xy) else None
    gw_tree = cKDTree(giveway_xy) if len(giveway_xy) else None
    junctions = np.nonzero(deg >= 3)[0]
    signalised = set()
    if sig_tree is not None:
        d, _ = sig_tree.query(world.node_xy[junctions], k=1)
        signalised = {int(j) for j, dd in zip(junctions, d, strict=True) if dd < 25.0}

    # approaches: (road index, arriving at node, coming from node)
    approaches: dict[int, list[tuple[int, bool]]] = {int(j): [] for j in junctions}
    for i, r in enumerate(world.roads):
        if r.v in approaches:
            approaches[r.v].append((i, True))
        if not r.oneway and r.u in approaches:
            approaches[r.u].append((i, False))

    for node, apps in approaches.items():
        setback = world.node_max_width[node] / 2.0 + 2.5
        incident = [world.roads[i] for i, r in enumerate(world.roads) if node in (r.u, r.v)]
        major = max(MAJOR_RANK.get(r.highway.removesuffix("_link"), 1) for r in incident)
        near_gw = gw_tree is not None and gw_tree.query(world.node_xy[node])[0] < 25.0
        node_rng = np.random.default_rng([seed, int(world.node_ids[node]) % (2**31)])
        for road_i, towards_v in apps:
            r = world.roads[road_i]
            frm = r.u if towards_v else r.v
            got = _approach_point(world, road_i, towards_v, setback, r.width_m / 2.0 + 1.0)
            if got is None:
                continue
            pos, facing = got
            key = (world.node_ids[node], world.node_ids[frm])
            if node in signalised:
                out.append(
                    _make(
                        "traffic_light",
                        key,
                        pos,
                        facing,
                        road_i,
                        int(world.node_ids[node]),
                        int(world.node_ids[frm]),
                    )
                )
                continue
            rank = MAJOR_RANK.get(r.highway.removesuffix("_link"), 1)
            if rank >= major:
                continue
            roll = node_rng.random()
            cls = "yield" if near_gw or roll < 0.4 else ("stop" if roll < 0.9 else "")
            if cls:
                out.append(
                    _make(
                        cls,
                        key,
                        pos,
                        facing,
                        road_i,
                        int(world.node_ids[node]),
                        int(world.node_ids[frm]),
                    )
                )

    # no entry at the exit end of one-way streets
    for i, r in enumerate(world.roads):
        if not r.oneway or deg[r.v] < 3 or r.length_m < 15.0:
            continue
        # a wrong-way entrant travels v -> u; its right side is the legal flow's left side
        got = _approach_point(world, i, False, r.length_m - 4.0, r.width_m / 2.0 + 1.0)
        if got is None:
            continue
        pos, _ = got
        _, t = at_distance(r.xy, r.length_m - 4.0)
        out.append(
            _make(
                "no_entry",
                ("ne", r.osm_way_id, world.node_ids[r.v]),
                pos,
                float(bearing_deg(t[0, 0], t[0, 1])),
                i,
            )
        )

    # speed limits where the limit changes, and repeaters
    for i, r in enumerate(world.roads):
        for forward in (True,) if r.oneway else (True, False):
            start = r.u if forward else r.v
            if r.length_m < 45.0:
                continue
            upstream = [
                q.speed_limit_kmh
                for q in world.roads
                if (q.v == start) or (not q.oneway and q.u == start)
            ]
            upstream = [x for x, q in zip(upstream, world.roads, strict=False) if q is not r]
            changes = any(x != r.speed_limit_kmh for x in upstream) or not upstream
            repeat = r.length_m > 150.0 and rng.random() < 0.5
            if not (changes or repeat) or r.speed_limit_kmh not in SPEED_VALUES:
                continue
            xy = r.xy if forward else r.xy[::-1]
            s = min(12.0 + world.node_max_width[start] / 2.0, r.length_m / 2.0)
            p, t = at_distance(xy, s)
            pos = p[0] + right_normal(t[0]) * (r.width_m / 2.0 + 1.0)
            out.append(
                _make(
                    f"speed_limit_{r.speed_limit_kmh}",
                    ("sl", r.osm_way_id, world.node_ids[start], forward),
                    pos,
                    float(bearing_deg(-t[0, 0], -t[0, 1])),
                    i,
                )
            )

    # pedestrian crossings (uncontrolled), both directions
    crossings = np.array([c["xy"] for c in world.controls if c["kind"] == "crossing"]).reshape(
        -1, 2
    )
    seen: list[np.ndarray] = []
    for cx in crossings:
        if sig_tree is not None and sig_tree.query(cx)[0] < 35.0:
            continue
        if world.node_tree.query(cx)[0] < 12.0 or any(np.linalg.norm(cx - q) < 40.0 for q in seen):
            continue
        best = _nearest_road_point(world, cx)
        if best is None or best[3] > 2.5:
            continue
        road_i, s, _, _ = best
        r = world.roads[road_i]
        if s < 15.0 or s > r.length_m - 15.0:
            continue
        seen.append(cx)
        for forward in (True,) if r.oneway else (True, False):
            xy = r.xy if forward else r.xy[::-1]
            p, t = at_distance(xy, s if forward else r.length_m - s)
            pos = p[0] + right_normal(t[0]) * (r.width_m / 2.0 + 1.0)
            out.append(
                _make(
                    "pedestrian_crossing",
                    ("pc", int(cx[0] * 10), int(cx[1] * 10), forward),
                    pos,
                    float(bearing_deg(-t[0, 0], -t[0, 1])),
                    road_i,
                )
            )

    # hydrants along kerbs
    acc = 60.0
    side = 1.0
    for i, r in enumerate(world.roads):
        s = acc
        while s < r.length_m - 5.0:
            p, t = at_distance(r.xy, s)
            pos = p[0] + right_normal(t[0]) * side * (r.width_m / 2.0 + 0.6)
            facing = float(bearing_deg(*(-right_normal(t[0]) * side)))
            out.append(
                _make(
                    "fire_hydrant",
                    ("hy", r.osm_way_id, world.node_ids[r.u], int(s)),
                    pos,
                    facing,
                    i,
                )
            )
            side = -side
            s += float(rng.uniform(100.0, 150.0))
        acc = max(5.0, s - r.length_m)
    return _dedupe(out)


def _nearest_road_point(
    world: World, xy: np.ndarray
) -> tuple[int, float, np.ndarray, float] | None:
    best = None
    for i, r in enumerate(world.roads):
        a, b = r.xy[:-1], r.xy[1:]
        if np.min(np.linalg.norm(a - xy, axis=1)) > r.length_m + 10.0:
            continue
        d = b - a
        ll = np.maximum(np.sum(d * d, axis=1), 1e-12)
        t = np.clip(np.sum((xy - a) * d, axis=1) / ll, 0.0, 1.0)
        proj = a + t[:, None] * d
        dist = np.linalg.norm(proj - xy, axis=1)
        k = int(np.argmin(dist))
        if best is None or dist[k] < best[3]:
            cum = np.concatenate([[0.0], np.cumsum(np.sqrt(ll))])
            best = (i, float(cum[k] + t[k] * np.sqrt(ll[k])), proj[k], float(dist[k]))
    return best


def _dedupe(feats: list[MapFeature]) -> list[MapFeature]:
    """Drop features standing within 1.2 m of an earlier one, and duplicate ids."""
    kept: list[MapFeature] = []
    ids: set[str] = set()
    pts = np.array([[f.east, f.north] for f in feats]).reshape(-1, 2)
    if not len(pts):
        return kept
    tree = cKDTree(pts)
    dropped = np.zeros(len(feats), dtype=bool)
    for i, f in enumerate(feats):
        if dropped[i] or f.id in ids:
            continue
        kept.append(f)
        ids.add(f.id)
        for j in tree.query_ball_point(pts[i], 1.2):
            if j > i:
                dropped[j] = True
    return kept


def changed_version(
    world: World, feats: list[MapFeature], seed: int = 8, fraction: float = 0.05
) -> tuple[list[MapFeature], dict[str, Any]]:
    """A later version of the world: some features removed, some added, some moved 3-10 m."""
    rng = np.random.default_rng(seed)
    n = max(5, int(len(feats) * fraction))
    order = rng.permutation(len(feats))
    removed = {feats[i].id for i in order[:n]}
    moved_idx = set(order[n : 2 * n].tolist())
    out: list[MapFeature] = []
    moved = []
    for i, f in enumerate(feats):
        if f.id in removed:
            continue
        if i in moved_idx:
            r = world.roads[f.road] if f.road >= 0 else None
            _, t = at_distance(r.xy, 0.0) if r is not None else (None, np.array([[1.0, 0.0]]))
            d = float(rng.uniform(3.0, 10.0)) * (1 if rng.random() < 0.5 else -1)
            # move along the road (the usual real-world change: a sign re-planted down the street)
            v = bearing_vector(f.facing_deg + 90.0) if f.cls != "fire_hydrant" else t[0]
            g = replace(f, east=f.east + d * float(v[0]), north=f.north + d * float(v[1]))
            moved.append({"id": f.id, "class": f.cls, "distance_m": round(abs(d), 2)})
            out.append(g)
        else:
            out.append(f)
    added = []
    # new features: copies of the rules at new spots (new hydrants and speed repeaters)
    roads = rng.choice(len(world.roads), size=n, replace=True)
    for k, ri in enumerate(roads):
        r = world.roads[int(ri)]
        if r.length_m < 40.0:
            continue
        s = float(rng.uniform(15.0, r.length_m - 15.0))
        p, t = at_distance(r.xy, s)
        if k % 2 == 0:
            cls = "fire_hydrant"
            pos = p[0] + right_normal(t[0]) * (r.width_m / 2.0 + 0.6)
            facing = float(bearing_deg(*(-right_normal(t[0]))))
        else:
            cls = (
                f"speed_limit_{r.speed_limit_kmh}"
                if r.speed_limit_kmh in SPEED_VALUES
                else "speed_limit_30"
            )
            pos = p[0] + right_normal(t[0]) * (r.width_m / 2.0 + 1.0)
            facing = float(bearing_deg(-t[0, 0], -t[0, 1]))
        g = _make(cls, ("v2", r.osm_way_id, int(s)), pos, facing, int(ri))
        if any(np.hypot(g.east - q.east, g.north - q.north) < 2.0 for q in out):
            continue
        out.append(g)
        added.append({"id": g.id, "class": g.cls})
    diff = {
        "removed": [{"id": f.id, "class": f.cls} for f in feats if f.id in removed],
        "added": added,
        "moved": moved,
    }
    return out, diff


# ---- GeoJSON I/O ----
def save_features(path: Path, world: World, feats: list[MapFeature], version: int) -> None:
    lon, lat = world.frame.to_lonlat([f.east for f in feats], [f.north for f in feats])
    out = []
    for f, lo, la in zip(feats, lon, lat, strict=True):
        props = asdict(f)
        for k in ("east", "north"):
            props.pop(k)
        props["class"] = props.pop("cls")
        props["id"] = f.id
        props["road"] = f"r{f.road}" if f.road >= 0 else None
        for k in ("height_m", "facing_deg", "width_m", "face_height_m"):
            props[k] = round(float(props[k]), 2)
        out.append(
            {
                "type": "Feature",
                "id": f.id,
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(float(lo), 8), round(float(la), 8)],
                },
                "properties": props,
            }
        )
    meta = {
        **world.metadata(),
        "version": version,
        "count": len(feats),
        "classes": list(FEATURE_CLASSES),
    }
    path.write_text(
        json.dumps(
            {"type": "FeatureCollection", "metadata": meta, "features": out},
            ensure_ascii=False,
            indent=None,
            separators=(",", ":"),
        )
        + "\n"
    )


def load_features(path: Path, world: World) -> list[MapFeature]:
    doc = json.loads(path.read_text())
    feats = []
    for f in doc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        e, n = world.frame.to_enu(lon, lat)
        p = f["properties"]
        road = int(str(p["road"])[1:]) if p.get("road") else -1
        feats.append(
            MapFeature(
                p["id"],
                p["class"],
                float(e),
                float(n),
                float(p["height_m"]),
                float(p["facing_deg"]),
                float(p["width_m"]),
                float(p["face_height_m"]),
                road,
                int(p.get("node_osm", 0)),
                int(p.get("from_osm", 0)),
            )
        )
    return feats


ATTRIBUTION_NOTE = ATTRIBUTION
