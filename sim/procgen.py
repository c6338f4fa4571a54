"""Procedural worlds unlike the sample city: `roadmesh sim world --kind KIND`.

Each kind is a road network with its own shape, speeds, buildings and scenery, built
deterministically from a seed, in the same `World` the OSM extracts become (so every
command that takes `--world` takes these too):

| kind | network | buildings | scenery, light |
|---|---|---|---|
| `rural` | a jittered lattice of long winding country roads (80 and 60 km/h) and a village grid (30, some 20 km/h) | farmsteads far apart, a village | fields, tree lines and patches of forest; day |
| `suburban` | a gently bent grid of residential streets (30-40, some 20 km/h), arterials (60 km/h, 4 lanes, signals), some one-way | detached houses on lots, shops on the arterials | lawns and front-yard trees; day |
| `mountain` | a valley road (80 km/h) and a pass road with switchbacks (60 km/h legs, 20 km/h hairpins), hamlets | chalets, rock faces at the hairpins | conifer forest; overcast |
| `oldtown` | a dense irregular grid of narrow one-way lanes (20-30 km/h) inside a two-way ring (40 km/h), a square | attached 3-6 storey facades along every street | plaster colours, few trees; dusk |

Node and way ids are the generator's own (positive, small); `World.source` names the kind
and seed. Nothing here is OpenStreetMap data.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from shapely.geometry import Polygon

from sim.polyline import arc_length, at_distance, right_normal
from sim.world import SIDEWALK_M, Building, Road, Scenery, World
from vision.geo import LocalFrame

FloatArray = NDArray[np.float64]

KINDS = ("rural", "suburban", "mountain", "oldtown")

# where each kind's local frame sits on the globe (any place works; these look plausible)
ORIGINS = {
    "rural": (61.05, 25.60),
    "suburban": (60.28, 24.85),
    "mountain": (61.62, 8.30),
    "oldtown": (43.77, 11.25),
}

SCENERY = {
    "rural": Scenery(
        kind="rural",
        ground=(85, 150, 140),  # fields (BGR)
        sidewalk=(125, 138, 145),  # a gravel shoulder
        facades=((45, 45, 150), (220, 225, 225), (90, 190, 220), (60, 60, 120)),
        tree_every_m=12.0,
        tree_share=0.2,
        tree_height_m=(8.0, 16.0),
        trees_on_major=True,
        forest_rows=3,
        forest_share=0.3,
        light="day",
    ),
    "suburban": Scenery(
        kind="suburban",
        ground=(75, 145, 95),  # lawns
        sidewalk=(165, 168, 168),
        facades=(
            (200, 220, 235),
            (170, 200, 160),
            (215, 215, 210),
            (150, 180, 210),
            (120, 150, 190),
        ),
        tree_every_m=10.0,
        tree_share=0.6,
        tree_height_m=(5.0, 12.0),
        forest_rows=1,
        forest_share=0.25,
        light="day",
    ),
    "mountain": Scenery(
        kind="mountain",
        ground=(70, 95, 85),
        sidewalk=(112, 118, 122),
        facades=((105, 110, 112), (90, 96, 100), (120, 124, 125), (40, 70, 110)),
        windows=False,  # rock faces
        tree_every_m=8.0,
        tree_share=0.7,
        tree_height_m=(12.0, 22.0),
        trees_on_major=True,
        forest_rows=4,
        forest_share=0.6,
        light="overcast",
    ),
    "oldtown": Scenery(
        kind="oldtown",
        ground=(95, 110, 125),  # cobbles
        sidewalk=(150, 160, 172),
        facades=((80, 160, 210), (70, 100, 190), (180, 215, 230), (150, 150, 210), (160, 165, 170)),
        tree_every_m=14.0,
        tree_share=0.05,
        tree_height_m=(6.0, 10.0),
        light="dusk",
    ),
}


@dataclass
class _Net:
    """A road network under construction (ENU metres)."""

    nodes: list[FloatArray] = field(default_factory=list)
    roads: list[Road] = field(default_factory=list)
    controls: list[tuple[str, FloatArray]] = field(default_factory=list)
    buildings: list[Building] = field(default_factory=list)

    def node(self, xy: FloatArray | tuple[float, float]) -> int:
        self.nodes.append(np.asarray(xy, dtype=np.float64))
        return len(self.nodes) - 1

    def road(
        self,
        a: int,
        b: int,
        mid: FloatArray | None,
        highway: str,
        lanes: int,
        limit: int,
        oneway: bool = False,
        name: str = "",
    ) -> int:
        pts = [self.nodes[a][None]]
        if mid is not None and len(mid):
            pts.append(np.asarray(mid, dtype=np.float64))
        pts.append(self.nodes[b][None])
        xy = np.vstack(pts)
        keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 0.05])
        xy = xy[keep]
        if len(xy) < 2:
            raise ValueError("a road needs two distinct points")
        self.roads.append(
            Road(a, b, xy, highway, lanes, oneway, limit, name, len(self.roads) + 1, "")
        )
        return len(self.roads) - 1

    def world(self, kind: str, seed: int) -> World:
        lat, lon = ORIGINS[kind]
        xy = np.array(self.nodes)
        centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
        for r in self.roads:
            r.xy = r.xy - centre
        for b in self.buildings:
            b.xy = b.xy - centre
        controls = [
            {"kind": k, "xy": p - centre, "osm_id": 900_000 + i}
            for i, (k, p) in enumerate(self.controls)
        ]
        return World(
            LocalFrame(lat, lon),
            np.arange(1, len(xy) + 1, dtype=np.int64),
            xy - centre,
            self.roads,
            self.buildings,
            controls,
            f"procedural:{kind}:seed{seed}",
            SCENERY[kind],
        )


def _bend(
    a: FloatArray, b: FloatArray, rng: np.random.Generator, amplitude: float, step: float = 6.0
) -> FloatArray:
    """Interior points of a smooth curve from a to b: a sum of sines across the chord,
    zero at both ends, never more than `amplitude` off it."""
    d = b - a
    length = float(np.linalg.norm(d))
    n = max(2, int(length / step))
    t = np.linspace(0.0, 1.0, n + 1)[1:-1]
    if amplitude <= 0 or not len(t):
        return a + t[:, None] * d
    waves = int(rng.integers(1, 4))
    off = np.zeros_like(t)
    for k in range(waves):
        off += rng.normal(0, 1) / (k + 1) * np.sin(np.pi * (k + 1) * t + rng.uniform(0, 0.3))
    off *= np.sin(np.pi * t)  # pinned at the ends
    off *= amplitude / max(1e-9, float(np.max(np.abs(off))))
    normal = np.array([d[1], -d[0]]) / max(length, 1e-9)
    return a + t[:, None] * d + off[:, None] * normal


# -- buildings --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Lots:
    width: tuple[float, float]  # lot frontage
    gap: tuple[float, float]  # between buildings
    depth: tuple[float, float]
    setback: tuple[float, float]  # from the road edge + sidewalk
    height: tuple[float, float]
    share: float = 1.0  # of the lots that get a building
    trim_m: float = 14.0  # keep this far from either end of a road


class _Placer:
    """Places building footprints along roads, clear of every road and of each other."""

    def __init__(self, net: _Net) -> None:
        pts, half = [], []
        for r in net.roads:
            n = max(2, int(r.length_m / 2.0) + 1)
            s = np.linspace(0, r.length_m, n)
            p, _ = at_distance(r.xy, s)
            pts.append(p)
            half.append(np.full(len(p), r.width_m / 2.0))
        self.kd = cKDTree(np.vstack(pts))
        self.half = np.concatenate(half)
        self.cells: dict[tuple[int, int], list[Polygon]] = defaultdict(list)
        self.net = net

    def clear_of_roads(self, ring: FloatArray) -> bool:
        probe = np.vstack([ring, ring.mean(axis=0)[None], (ring + np.roll(ring, 1, axis=0)) / 2])
        d, j = self.kd.query(probe)
        return bool(np.all(d > self.half[j] + SIDEWALK_M - 0.3))

    def add(self, ring: FloatArray, height: float) -> bool:
        poly = Polygon(ring)
        if not poly.is_valid or poly.area < 20.0 or not self.clear_of_roads(ring):
            return False
        c = ring.mean(axis=0)
        key = (int(c[0] // 40), int(c[1] // 40))
        near = [
            q
            for dx, dy in itertools.product((-1, 0, 1), repeat=2)
            for q in self.cells[(key[0] + dx, key[1] + dy)]
        ]
        if any(poly.intersects(q) for q in near):
            return False
        self.cells[key].append(poly.buffer(0.3))
        if not poly.exterior.is_ccw:
            ring = ring[::-1]
        self.net.buildings.append(Building(np.asarray(ring, dtype=np.float64), float(height)))
        return True

    def along(self, road: Road, side: float, lots: _Lots, rng: np.random.Generator) -> None:
        """Lots down one side of a road (side +1: right of its digitised direction)."""
        length = road.length_m
        s = lots.trim_m + float(rng.uniform(0, lots.gap[1]))
        while s < length - lots.trim_m:
            w = float(rng.uniform(*lots.width))
            if s + w > length - lots.trim_m:
                break
            if rng.random() < lots.share:
                p, t = at_distance(road.xy, np.array([s, s + w]))
                n = right_normal(t[0]) * side
                back = road.width_m / 2.0 + SIDEWALK_M + float(rng.uniform(*lots.setback))
                depth = float(rng.uniform(*lots.depth))
                ring = np.array(
                    [
                        p[0] + n * back,
                        p[1] + n * back,
                        p[1] + n * (back + depth),
                        p[0] + n * (back + depth),
                    ]
                )
                self.add(ring, float(rng.uniform(*lots.height)))
            s += w + float(rng.uniform(*lots.gap))

    def box(self, centre: FloatArray, along: FloatArray, w: float, d: float, height: float) -> bool:
        u = along / max(1e-9, float(np.linalg.norm(along)))
        v = np.array([-u[1], u[0]])
        ring = np.array(
            [
                centre - u * w / 2 - v * d / 2,
                centre + u * w / 2 - v * d / 2,
                centre + u * w / 2 + v * d / 2,
                centre - u * w / 2 + v * d / 2,
            ]
        )
        return self.add(ring, height)


def _connected_after_drop(n_nodes: int, edges: list[tuple[int, int]], drop: set[int]) -> bool:
    g = nx.Graph()
    g.add_nodes_from(range(n_nodes))
    g.add_edges_from(e for i, e in enumerate(edges) if i not in drop)
    return nx.is_connected(g)


def _drop_some(
    n_nodes: int,
    edges: list[tuple[int, int]],
    share: float,
    rng: np.random.Generator,
    keep: set[int] | None = None,
) -> set[int]:
    """Indices of edges to leave out (about `share` of them), keeping the graph connected."""
    drop: set[int] = set()
    for i in rng.permutation(len(edges)):
        if len(drop) >= share * len(edges):
            break
        if keep and int(i) in keep:
            continue
        if _connected_after_drop(n_nodes, edges, drop | {int(i)}):
            drop.add(int(i))
    return drop


# -- the kinds --------------------------------------------------------------------------
def rural(seed: int) -> World:
    rng = np.random.default_rng([seed, 501])
    net = _Net()
    n, spacing = 5, 1700.0
    grid: dict[tuple[int, int], int] = {}
    centre = (n // 2, n // 2)
    for i, j in itertools.product(range(n), repeat=2):
        if (i, j) == centre:
            continue
        jitter = rng.uniform(-300, 300, 2)
        grid[(i, j)] = net.node(np.array([i * spacing, j * spacing]) + jitter)
    # the village: a 4 x 4 grid of streets, 100 m apart, where the centre node would be
    vc = np.array(centre, dtype=np.float64) * spacing
    vg = {
        (a, b): net.node(vc + (np.array([a, b]) - 1.5) * 100.0 + rng.uniform(-6, 6, 2))
        for a, b in itertools.product(range(4), repeat=2)
    }
    village_roads = []
    for a, b in itertools.product(range(4), repeat=2):
        for da, db in ((1, 0), (0, 1)):
            if (a + da, b + db) in vg:
                through = (db == 0 and b in (1, 2)) or (da == 0 and a in (1, 2))
                limit = 40 if through else (20 if rng.random() < 0.25 else 30)
                hw = "tertiary" if through else ("living_street" if limit == 20 else "residential")
                k = net.road(
                    vg[(a, b)], vg[(a + da, b + db)], None, hw, 2, limit, name=f"Kylätie {a}{b}"
                )
                village_roads.append(k)
    net.controls.append(("traffic_signals", net.nodes[vg[(1, 1)]]))
    for a, b in ((2, 1), (1, 2), (2, 2)):
        net.controls.append(("crossing", (net.nodes[vg[(a, b)]] + net.nodes[vg[(a, b - 1)]]) / 2))
    # where the lattice meets the village: the middle of each side
    gate = {(-1, 0): vg[(0, 1)], (1, 0): vg[(3, 2)], (0, -1): vg[(2, 0)], (0, 1): vg[(1, 3)]}
    edges: list[tuple[int, int]] = []
    kinds: list[str] = []
    for i, j in itertools.product(range(n), repeat=2):
        for di, dj in ((1, 0), (0, 1)):
            ca, cb = (i, j), (i + di, j + dj)
            if cb[0] >= n or cb[1] >= n:
                continue
            main = (dj == 0 and j == centre[1]) or (di == 0 and i == centre[0])
            ua = gate[(di, dj)] if ca == centre else grid[ca]
            ub = gate[(-di, -dj)] if cb == centre else grid[cb]
            edges.append((ua, ub))
            kinds.append("main" if main else "side")
    must = {k for k, kind in enumerate(kinds) if kind == "main"}
    drop = _drop_some(len(net.nodes), edges, 0.25, rng, keep=must)
    country = []
    for k, ((ua, ub), kind) in enumerate(zip(edges, kinds, strict=True)):
        if k in drop:
            continue
        pa, pb = net.nodes[ua], net.nodes[ub]
        mid = _bend(pa, pb, rng, 90.0 if kind == "main" else 160.0, 8.0)
        if kind == "main":
            ri = net.road(ua, ub, mid, "secondary", 2, 80, name="Maantie")
        else:
            ri = net.road(ua, ub, mid, "unclassified", 2, 60, name="Kylänraitti")
            net.controls.append(("give_way", net.nodes[ub]))
        country.append(ri)
    place = _Placer(net)
    village = _Lots((12, 18), (4, 9), (9, 12), (3, 7), (5.5, 9.0), 0.9)
    for k in village_roads:
        for side in (1.0, -1.0):
            place.along(net.roads[k], side, village, rng)
    for k in country:  # farmsteads: a house and a barn or two, far apart
        road = net.roads[k]
        for s in np.arange(150.0, road.length_m - 150.0, 650.0):
            if rng.random() > 0.45:
                continue
            p, t = at_distance(road.xy, float(s + rng.uniform(-100, 100)))
            side = 1.0 if rng.random() < 0.5 else -1.0
            nrm = right_normal(t[0]) * side
            c = p[0] + nrm * (road.width_m / 2 + SIDEWALK_M + rng.uniform(12, 22))
            place.box(
                c,
                t[0],
                float(rng.uniform(9, 12)),
                float(rng.uniform(7, 9)),
                float(rng.uniform(5, 7)),
            )
            c2 = c + t[0] * rng.uniform(16, 22) + nrm * rng.uniform(2, 10)
            place.box(
                c2,
                t[0],
                float(rng.uniform(16, 24)),
                float(rng.uniform(10, 14)),
                float(rng.uniform(7, 9.5)),
            )
    return net.world("rural", seed)


def suburban(seed: int) -> World:
    rng = np.random.default_rng([seed, 502])
    net = _Net()
    cols, rows, dx, dy = 12, 16, 150.0, 95.0
    node = {
        (i, j): net.node(np.array([i * dx, j * dy]) + rng.uniform(-8, 8, 2))
        for i, j in itertools.product(range(cols), range(rows))
    }
    art_c, art_r = {3, 8}, {4, 11}
    coll_c, coll_r = {0, 11}, {0, 8, 15}
    edges, info = [], []
    for i, j in itertools.product(range(cols), range(rows)):
        for di, dj in ((1, 0), (0, 1)):
            if (i + di, j + dj) not in node:
                continue
            line_is = ("row", j) if dj == 0 else ("col", i)
            art = (line_is[0] == "row" and j in art_r) or (line_is[0] == "col" and i in art_c)
            coll = (line_is[0] == "row" and j in coll_r) or (line_is[0] == "col" and i in coll_c)
            edges.append((node[(i, j)], node[(i + di, j + dj)]))
            info.append(("art" if art else "coll" if coll else "res", line_is))
    keep = {k for k, (cls, _) in enumerate(info) if cls != "res"}
    drop = _drop_some(len(net.nodes), edges, 0.08, rng, keep=keep)
    oneway_rows = {j for j in range(rows) if j not in art_r | coll_r and rng.random() < 0.2}
    houses, shops = [], []
    for k, ((ua, ub), (cls, (axis, idx))) in enumerate(zip(edges, info, strict=True)):
        if k in drop:
            continue
        a, b = net.nodes[ua], net.nodes[ub]
        if cls == "art":
            r = net.road(ua, ub, None, "secondary", 4, 60, name="Arterial")
            shops.append(r)
        elif cls == "coll":
            r = net.road(ua, ub, _bend(a, b, rng, 3.0), "tertiary", 2, 40, name="Collector")
            houses.append(r)
        else:
            one = axis == "row" and idx in oneway_rows
            if one and idx % 2:
                ua, ub = ub, ua
            limit = 20 if rng.random() < 0.06 else 30
            r = net.road(
                ua,
                ub,
                _bend(net.nodes[ua], net.nodes[ub], rng, 6.0),
                "residential",
                1 if one else 2,
                limit,
                oneway=one,
                name="Residential",
            )
            houses.append(r)
    for i in art_c:
        for j in range(rows):
            if j in art_r or j in coll_r:
                net.controls.append(("traffic_signals", net.nodes[node[(i, j)]]))
    for i in range(cols):
        for j in art_r:
            if i in coll_c:
                net.controls.append(("traffic_signals", net.nodes[node[(i, j)]]))
            elif i not in art_c and rng.random() < 0.5:
                p = net.nodes[node[(i, j)]] + np.array([dx / 2, 0.0])
                net.controls.append(("crossing", p))
    place = _Placer(net)
    house = _Lots((16, 22), (5, 9), (9, 12), (6, 10), (5.5, 9.0), 0.85, trim_m=16.0)
    shop = _Lots((25, 40), (10, 25), (15, 22), (12, 18), (5.0, 8.0), 0.5, trim_m=20.0)
    for k in houses:
        for side in (1.0, -1.0):
            place.along(net.roads[k], side, house, rng)
    for k in shops:
        for side in (1.0, -1.0):
            place.along(net.roads[k], side, shop, rng)
    return net.world("suburban", seed)


def _switchbacks(
    start: FloatArray, heading: float, lateral: float, legs: int, rng: np.random.Generator
) -> list[tuple[str, FloatArray]]:
    """Pieces of a pass road climbing a slope: legs back and forth up the `heading`, joined by
    hairpins, each hairpin 2 radii further to the `lateral` side (+1 right of the heading,
    -1 left). The legs up reach 850-950 m, the legs down end 60-140 m above the start, so no
    leg crosses another or the road it starts from. Returns ("leg" | "hairpin", points) in
    order; each piece starts where the last ended."""
    up = np.array([math.sin(math.radians(heading)), math.cos(math.radians(heading))])
    side = np.array([up[1], -up[0]]) * lateral

    def at(x: float, y: float) -> FloatArray:
        return np.asarray(start, dtype=np.float64) + side * x + up * y

    out: list[tuple[str, FloatArray]] = []
    x, y = 0.0, 0.0
    for k in range(legs):
        going_up = k % 2 == 0
        y1 = float(rng.uniform(850, 950)) if going_up else float(rng.uniform(60, 140))
        ys = np.linspace(y, y1, max(3, int(abs(y1 - y) / 8.0)))
        wobble = 3.0 * np.sin(np.linspace(0, np.pi, len(ys))) * rng.normal()
        out.append(("leg", np.array([at(x + w, yy) for w, yy in zip(wobble, ys, strict=True)])))
        if k == legs - 1:
            break
        radius = float(rng.uniform(26, 32))
        angles = np.linspace(0.0, math.pi, 16)
        sgn = 1.0 if going_up else -1.0
        arc = [
            at(x + radius - radius * math.cos(a), y1 + sgn * radius * math.sin(a)) for a in angles
        ]
        out.append(("hairpin", np.array(arc)))
        x, y = x + 2 * radius, y1
    return out


def mountain(seed: int) -> World:
    rng = np.random.default_rng([seed, 503])
    net = _Net()
    # the valley road: 9 km, west to east, gently winding
    xs = (0.0, 1800.0, 4050.0, 6300.0, 9000.0)
    valley = [
        net.node(np.array([x, 0.0 if x in (0.0, 9000.0) else rng.uniform(-100, 100)])) for x in xs
    ]
    for a, b in itertools.pairwise(valley):
        net.road(
            a,
            b,
            _bend(net.nodes[a], net.nodes[b], rng, 60.0, 8.0),
            "primary",
            2,
            80,
            name="Dalvegen",
        )
    rocks: list[tuple[FloatArray, FloatArray]] = []

    def pass_road(a: int, lateral: float) -> int:
        cur = a
        for kind, pts in _switchbacks(net.nodes[a], 0.0, lateral, 5, rng):
            nxt = net.node(pts[-1])
            limit = 60 if kind == "leg" else 20
            net.road(cur, nxt, pts[1:-1], "secondary", 2, limit, name="Fjellvegen")
            if kind == "hairpin":
                mid = pts[len(pts) // 2]
                out = mid - (pts[0] + pts[-1]) / 2
                rocks.append((mid, out / max(1e-9, float(np.linalg.norm(out)))))
            cur = nxt
        return cur

    # the pass: up from the second valley stop, along the top, down to the fourth; each
    # climbs towards the other so the road over the top passes no hairpin
    top_a = pass_road(valley[1], 1.0)
    top_b = pass_road(valley[3], -1.0)
    net.road(
        top_a,
        top_b,
        _bend(net.nodes[top_a], net.nodes[top_b], rng, 100.0, 8.0),
        "secondary",
        2,
        60,
        name="Fjellvegen",
    )
    # hamlets: a loop of lanes south of the valley road, from one valley stop to the next
    for k in (0, 2, 3):
        a, b = valley[k], valley[k + 1]
        pa = net.nodes[a] + (net.nodes[b] - net.nodes[a]) * 0.35
        pb = net.nodes[a] + (net.nodes[b] - net.nodes[a]) * 0.65
        ha = net.node(pa + np.array([0.0, -700.0]))
        hb = net.node(pb + np.array([0.0, -700.0]))
        for u, v, amp, limit in ((a, ha, 60.0, 40), (ha, hb, 30.0, 30), (hb, b, 60.0, 40)):
            net.road(
                u,
                v,
                _bend(net.nodes[u], net.nodes[v], rng, amp, 8.0),
                "unclassified",
                2,
                limit,
                name="Grend",
            )
    place = _Placer(net)
    chalet = _Lots((18, 30), (20, 60), (8, 10), (4, 10), (5.0, 7.5), 0.7, trim_m=40.0)
    for road in list(net.roads):
        if road.highway == "unclassified":
            for side in (1.0, -1.0):
                place.along(road, side, chalet, rng)
    for mid, out in rocks:  # a rock face beyond each hairpin
        along = np.array([out[1], -out[0]])
        c = mid + out * float(rng.uniform(14, 20))
        place.box(
            c,
            along,
            float(rng.uniform(45, 70)),
            float(rng.uniform(5, 8)),
            float(rng.uniform(12, 26)),
        )
    return net.world("mountain", seed)


def oldtown(seed: int) -> World:
    rng = np.random.default_rng([seed, 504])
    net = _Net()
    n, step = 14, 58.0
    node = {
        (i, j): net.node(np.array([i * step, j * step]) + rng.uniform(-13, 13, 2))
        for i, j in itertools.product(range(n), repeat=2)
    }
    square = {(6, 6), (6, 7), (7, 6), (7, 7)}
    edges, info = [], []
    for i, j in itertools.product(range(n), repeat=2):
        for di, dj in ((1, 0), (0, 1)):
            b = (i + di, j + dj)
            if b not in node:
                continue
            ring = (dj == 0 and j in (0, n - 1)) or (di == 0 and i in (0, n - 1))
            main = (dj == 0 and j == 5) or (di == 0 and i == 8)
            if (i, j) in square and b in square:
                continue  # the square is open
            edges.append((node[(i, j)], node[b]))
            info.append(
                ("ring" if ring else "main" if main else "lane", (dj == 0, j if dj == 0 else i))
            )
    keep = {k for k, (c, _) in enumerate(info) if c != "lane"}
    drop = _drop_some(len(net.nodes), edges, 0.10, rng, keep=keep)
    streets = []
    for k, ((ua, ub), (cls, (_horizontal, idx))) in enumerate(zip(edges, info, strict=True)):
        if k in drop:
            continue
        pa, pb = net.nodes[ua], net.nodes[ub]
        if cls == "ring":
            ri = net.road(ua, ub, _bend(pa, pb, rng, 3.0), "tertiary", 2, 40, name="Viale")
        elif cls == "main":
            ri = net.road(ua, ub, _bend(pa, pb, rng, 3.0), "tertiary", 2, 30, name="Via Maggiore")
        else:
            if idx % 2:  # alternate one-way directions, like a Manhattan grid
                ua, ub = ub, ua
            limit = 20 if rng.random() < 0.6 else 30
            ri = net.road(
                ua,
                ub,
                _bend(net.nodes[ua], net.nodes[ub], rng, 4.0),
                "residential",
                1,
                limit,
                oneway=True,
                name="Vicolo",
            )
        streets.append(ri)
    for i, j in ((0, 5), (n - 1, 5), (8, 0), (8, n - 1), (8, 5)):
        net.controls.append(("traffic_signals", net.nodes[node[(i, j)]]))
    for road in net.roads:
        if road.highway == "residential" and rng.random() < 0.3:
            net.controls.append(("crossing", at_distance(road.xy, road.length_m / 2)[0][0]))
    place = _Placer(net)
    facade = _Lots((7, 12), (0.0, 0.4), (10, 14), (0.0, 0.5), (10.0, 22.0), 0.97, trim_m=6.0)
    for k in streets:
        for side in (1.0, -1.0):
            place.along(net.roads[k], side, facade, rng)
    return net.world("oldtown", seed)


BUILDERS = {"rural": rural, "suburban": suburban, "mountain": mountain, "oldtown": oldtown}


def build(kind: str, seed: int = 1) -> World:
    if kind not in BUILDERS:
        raise ValueError(f"unknown world kind {kind!r} (choose from {', '.join(KINDS)})")
    world = BUILDERS[kind](seed)
    _check(world)
    return world


def _check(world: World) -> None:
    for r in world.roads:
        if len(r.xy) < 2 or not np.all(np.isfinite(r.xy)):
            raise ValueError("bad road geometry")
    if arc_length(np.vstack([r.xy for r in world.roads]))[-1] <= 0:
        raise ValueError("empty network")
