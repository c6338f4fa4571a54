"""The world: a drivable road network, building footprints and OSM traffic controls in ENU.

Stored as GeoJSON (lon/lat, RFC 7946) under a folder such as ``sample_data/world/``:
``roads.geojson`` (one LineString per directed-or-two-way road segment), ``buildings.geojson``
and ``controls.geojson`` (OSM traffic signals / give-way / crossing nodes). Every file carries
the ODbL attribution in a top-level ``metadata`` member.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from vision.geo import LocalFrame

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
ATTRIBUTION = "© OpenStreetMap contributors"
LICENSE = "ODbL-1.0 (https://opendatacommons.org/licenses/odbl/1-0/)"
LANE_WIDTH_M = 3.25
SIDEWALK_M = 3.5


@dataclass
class Road:
    """One road segment between two graph nodes (indices into World.node_xy)."""

    u: int
    v: int
    xy: FloatArray  # (k, 2) ENU polyline from u to v
    highway: str
    lanes: int
    oneway: bool
    speed_limit_kmh: int
    name: str = ""
    osm_way_id: int = 0
    maxspeed_osm: str = ""

    @property
    def width_m(self) -> float:
        return self.lanes * LANE_WIDTH_M

    @property
    def length_m(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.xy, axis=0), axis=1)))


@dataclass
class Building:
    xy: FloatArray  # (k, 2) exterior ring, not closed
    height_m: float


@dataclass(frozen=True)
class Scenery:
    """How a world looks beyond its roads and buildings: what the renderer paints around them.

    The defaults are the sample city's (Helsinki centre). A procedural world (`sim.procgen`)
    sets its kind's: fields and forest for the countryside, lawns and front-yard trees in a
    suburb, conifers and rock faces on a mountain road, plastered facades in an old town."""

    kind: str = "city"
    ground: tuple[int, int, int] = (96, 104, 100)  # BGR beyond the sidewalks
    sidewalk: tuple[int, int, int] = (150, 152, 150)  # sidewalk, or a gravel shoulder
    facades: tuple[tuple[int, int, int], ...] = (
        (120, 170, 205),
        (150, 190, 215),
        (175, 180, 185),
        (80, 100, 150),
        (140, 160, 190),
        (200, 205, 205),
        (95, 130, 170),
    )
    windows: bool = True  # walls taller than 5 m get window bands (rock faces do not)
    tree_every_m: float = 14.0  # roadside tree spacing on minor roads ...
    tree_share: float = 0.5  # ... and the share of those spots that get one
    tree_height_m: tuple[float, float] = (6.0, 11.0)
    trees_on_major: bool = False  # also beside primary roads
    forest_rows: int = 0  # extra rows of trees behind the roadside ones (forest)
    forest_share: float = 0.0  # the share of forest spots that get a tree
    light: str = "day"  # the light a drive gets unless told otherwise

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Scenery:
        if not d:
            return cls()
        out: dict[str, Any] = {}
        for k, v in d.items():
            if k not in cls.__dataclass_fields__:
                continue
            if k == "facades":
                v = tuple(tuple(int(x) for x in c) for c in v)
            elif isinstance(v, list):
                v = tuple(v)
            out[k] = v
        return cls(**out)


@dataclass
class World:
    frame: LocalFrame
    node_ids: NDArray[np.int64]  # OSM node ids
    node_xy: FloatArray  # (N, 2)
    roads: list[Road]
    buildings: list[Building] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)  # {kind, xy, osm_id}
    source: str = ""
    scenery: Scenery = field(default_factory=Scenery)

    # ---- derived structures (built lazily, O(n log n)) ----
    @cached_property
    def node_index(self) -> dict[int, int]:
        return {int(n): i for i, n in enumerate(self.node_ids)}

    @cached_property
    def graph(self) -> nx.DiGraph:
        """Directed drivable graph on node indices; edge attr ``road`` = index into roads."""
        g = nx.DiGraph()
        g.add_nodes_from(range(len(self.node_ids)))
        for i, r in enumerate(self.roads):
            g.add_edge(r.u, r.v, road=i, forward=True, length=r.length_m)
            if not r.oneway:
                g.add_edge(r.v, r.u, road=i, forward=False, length=r.length_m)
        return g

    @cached_property
    def undirected_degree(self) -> NDArray[np.int64]:
        deg = np.zeros(len(self.node_ids), dtype=np.int64)
        for r in self.roads:
            deg[r.u] += 1
            deg[r.v] += 1
        return deg

    @cached_property
    def drivable_nodes(self) -> NDArray[np.int64]:
        """Nodes of the largest strongly connected component (routes never get stuck)."""
        comp = max(nx.strongly_connected_components(self.graph), key=len)
        return np.array(sorted(comp), dtype=np.int64)

    @cached_property
    def node_tree(self) -> cKDTree:
        return cKDTree(self.node_xy)

    @cached_property
    def building_tree(self) -> tuple[cKDTree, NDArray[np.int64]]:
        """KD-tree over building wall sample points (every ~5 m) -> building index."""
        pts, owner = [], []
        for i, b in enumerate(self.buildings):
            ring = np.vstack([b.xy, b.xy[:1]])
            for a, c in itertools.pairwise(ring):
                n = max(1, int(np.linalg.norm(c - a) / 5.0))
                t = np.linspace(0.0, 1.0, n + 1)[:, None]
                pts.append(a + t * (c - a))
                owner.append(np.full(n + 1, i))
        if not pts:
            return cKDTree(np.zeros((1, 2)) + 1e9), np.zeros(1, dtype=np.int64)
        return cKDTree(np.vstack(pts)), np.concatenate(owner)

    def total_length_km(self) -> float:
        return sum(r.length_m for r in self.roads) / 1000.0

    def road_width_at_node(self, node: int) -> float:
        widths = [r.width_m for r in self.roads if r.u == node or r.v == node]
        return max(widths) if widths else 2 * LANE_WIDTH_M

    @cached_property
    def node_max_width(self) -> FloatArray:
        w = np.zeros(len(self.node_ids))
        for r in self.roads:
            w[r.u] = max(w[r.u], r.width_m)
            w[r.v] = max(w[r.v], r.width_m)
        return w

    # ---- GeoJSON I/O ----
    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "attribution": ATTRIBUTION,
            "license": LICENSE,
            "source": self.source,
            "origin": {"lat": self.frame.origin_lat, "lon": self.frame.origin_lon},
            "generator": "roadmesh sim world",
        }
        if self.scenery != Scenery():
            meta["scenery"] = self.scenery.to_dict()
        return meta

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fr = self.frame
        feats = []
        for i, r in enumerate(self.roads):
            lon, lat = fr.to_lonlat(r.xy[:, 0], r.xy[:, 1])
            feats.append(
                {
                    "type": "Feature",
                    "id": f"r{i}",
                    "geometry": {"type": "LineString", "coordinates": _coords(lon, lat)},
                    "properties": {
                        "u": int(self.node_ids[r.u]),
                        "v": int(self.node_ids[r.v]),
                        "highway": r.highway,
                        "lanes": r.lanes,
                        "width_m": round(r.width_m, 2),
                        "oneway": r.oneway,
                        "speed_limit_kmh": r.speed_limit_kmh,
                        "maxspeed_osm": r.maxspeed_osm,
                        "name": r.name,
                        "osm_way_id": r.osm_way_id,
                    },
                }
            )
        _write_collection(folder / "roads.geojson", feats, self.metadata())
        feats = []
        for i, b in enumerate(self.buildings):
            ring = np.vstack([b.xy, b.xy[:1]])
            lon, lat = fr.to_lonlat(ring[:, 0], ring[:, 1])
            feats.append(
                {
                    "type": "Feature",
                    "id": f"b{i}",
                    "geometry": {"type": "Polygon", "coordinates": [_coords(lon, lat)]},
                    "properties": {"height_m": round(b.height_m, 1)},
                }
            )
        _write_collection(folder / "buildings.geojson", feats, self.metadata())
        feats = []
        for c in self.controls:
            lon, lat = fr.to_lonlat(c["xy"][0], c["xy"][1])
            feats.append(
                {
                    "type": "Feature",
                    "id": f"osm-node-{c['osm_id']}",
                    "geometry": {
                        "type": "Point",
                        "coordinates": _coords(np.atleast_1d(lon), np.atleast_1d(lat))[0],
                    },
                    "properties": {"kind": c["kind"], "osm_id": c["osm_id"]},
                }
            )
        _write_collection(folder / "controls.geojson", feats, self.metadata())

    @classmethod
    def load(cls, folder: Path) -> World:
        roads_fc = json.loads((folder / "roads.geojson").read_text())
        meta = roads_fc["metadata"]
        frame = LocalFrame(float(meta["origin"]["lat"]), float(meta["origin"]["lon"]))
        ids: dict[int, int] = {}
        node_xy: list[FloatArray] = []
        roads: list[Road] = []
        for f in roads_fc["features"]:
            c = np.asarray(f["geometry"]["coordinates"], dtype=np.float64)
            e, n = frame.to_enu(c[:, 0], c[:, 1])
            xy = np.stack([e, n], axis=1)
            p = f["properties"]
            ends = []
            for osm_id, pt in ((int(p["u"]), xy[0]), (int(p["v"]), xy[-1])):
                if osm_id not in ids:
                    ids[osm_id] = len(node_xy)
                    node_xy.append(pt)
                ends.append(ids[osm_id])
            roads.append(
                Road(
                    ends[0],
                    ends[1],
                    xy,
                    p["highway"],
                    int(p["lanes"]),
                    bool(p["oneway"]),
                    int(p["speed_limit_kmh"]),
                    p.get("name", ""),
                    int(p.get("osm_way_id", 0)),
                    p.get("maxspeed_osm", ""),
                )
            )
        buildings = []
        bpath = folder / "buildings.geojson"
        if bpath.exists():
            for f in json.loads(bpath.read_text())["features"]:
                c = np.asarray(f["geometry"]["coordinates"][0], dtype=np.float64)[:-1]
                e, n = frame.to_enu(c[:, 0], c[:, 1])
                buildings.append(
                    Building(np.stack([e, n], axis=1), float(f["properties"]["height_m"]))
                )
        controls = []
        cpath = folder / "controls.geojson"
        if cpath.exists():
            for f in json.loads(cpath.read_text())["features"]:
                lon, lat = f["geometry"]["coordinates"]
                e, n = frame.to_enu(lon, lat)
                controls.append(
                    {
                        "kind": f["properties"]["kind"],
                        "xy": np.array([float(e), float(n)]),
                        "osm_id": int(f["properties"]["osm_id"]),
                    }
                )
        return cls(
            frame,
            np.array(list(ids.keys()), dtype=np.int64),
            np.array(node_xy),
            roads,
            buildings,
            controls,
            str(meta.get("source", "")),
            Scenery.from_dict(meta.get("scenery")),
        )


def _coords(lon: FloatArray, lat: FloatArray) -> list[list[float]]:
    return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]


def _write_collection(path: Path, features: list[dict[str, Any]], metadata: dict[str, Any]) -> None:
    doc = {"type": "FeatureCollection", "metadata": metadata, "features": features}
    path.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")


def default_world_dir() -> Path:
    """The committed sample world (Helsinki centre)."""
    return Path(__file__).resolve().parent.parent / "sample_data" / "world"
