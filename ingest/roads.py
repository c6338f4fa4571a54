"""A region's drivable road network, for map matching (`ingest.mapmatch`).

Loaded from what a region is described by: an OpenStreetMap extract (`.osm.pbf`, through
pyrosm: its `driving` network, one-ways in their legal direction; map data
(c) OpenStreetMap contributors, ODbL), or a world folder made by `roadmesh sim world`
(its `roads.geojson`, the same data already converted). Everything is projected into one
local metric frame (transverse Mercator at the network's centre, `vision.geo.LocalFrame`)
and kept as directed straight segments with a KD-tree over their midpoints, so looking up
the roads near a point is O(log n) on a country-sized network.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from vision.geo import LocalFrame

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
ONEWAY_TAGS = ("yes", "true", "1")


class RoadNetworkError(ValueError):
    """The road network cannot be read (missing file, no drivable roads)."""


@dataclass
class Way:
    """One road as drawn: its points in the local frame (in the legal direction of a one-way)."""

    way_id: int
    xy: FloatArray  # (k, 2)
    oneway: bool
    name: str = ""


@dataclass
class RoadNetwork:
    frame: LocalFrame
    ways: list[Way]
    source: str = ""
    # directed straight segments: start, end, the way they belong to
    seg_a: FloatArray = field(init=False)
    seg_b: FloatArray = field(init=False)
    seg_way: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        if not self.ways:
            raise RoadNetworkError(f"{self.source or 'road network'}: no drivable roads")
        a, b, w = [], [], []
        for k, way in enumerate(self.ways):
            a.append(way.xy[:-1])
            b.append(way.xy[1:])
            w.append(np.full(len(way.xy) - 1, k, dtype=np.int64))
        self.seg_a, self.seg_b = np.vstack(a), np.vstack(b)
        self.seg_way = np.concatenate(w)
        keep = np.linalg.norm(self.seg_b - self.seg_a, axis=1) > 1e-3
        self.seg_a, self.seg_b, self.seg_way = (
            self.seg_a[keep],
            self.seg_b[keep],
            self.seg_way[keep],
        )

    @cached_property
    def _tree(self) -> tuple[cKDTree, float]:
        mid = (self.seg_a + self.seg_b) / 2
        half = float(np.max(np.linalg.norm(self.seg_b - self.seg_a, axis=1))) / 2
        return cKDTree(mid), half

    def to_xy(self, lat: Any, lon: Any) -> FloatArray:
        e, n = self.frame.to_enu(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        return np.stack([np.atleast_1d(e), np.atleast_1d(n)], axis=1)

    def nearest(self, xy: FloatArray, radius_m: float) -> tuple[FloatArray, NDArray[np.int64]]:
        """For each point (n, 2): the distance to the nearest road segment within `radius_m`
        (inf where none) and that segment's way index (-1 where none)."""
        tree, half = self._tree
        dist = np.full(len(xy), np.inf)
        way = np.full(len(xy), -1, dtype=np.int64)
        for i, cand in enumerate(tree.query_ball_point(xy, radius_m + half)):
            if not cand:
                continue
            idx = np.asarray(cand, dtype=np.int64)
            d = point_segment_distance(xy[i], self.seg_a[idx], self.seg_b[idx])
            j = int(np.argmin(d))
            if d[j] <= radius_m:
                dist[i], way[i] = float(d[j]), int(self.seg_way[idx[j]])
        return dist, way

    def segments_near(self, xy: FloatArray, radius_m: float) -> NDArray[np.int64]:
        tree, half = self._tree
        idx = np.asarray(tree.query_ball_point(xy, radius_m + half), dtype=np.int64)
        if not len(idx):
            return idx
        d = point_segment_distance(xy, self.seg_a[idx], self.seg_b[idx])
        return idx[d <= radius_m]

    def length_km(self) -> float:
        return float(np.linalg.norm(self.seg_b - self.seg_a, axis=1).sum() / 1000.0)

    # -- loading ----------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> RoadNetwork:
        """From a world folder (roads.geojson), a roads.geojson itself, or an .osm.pbf."""
        path = Path(path)
        if path.is_dir():
            path = path / "roads.geojson"
        if not path.exists():
            raise RoadNetworkError(
                f"{path}: no such file (a world folder, roads.geojson or .osm.pbf)"
            )
        if path.name.endswith(".pbf"):
            return cls.from_pbf(path)
        return cls.from_geojson(path)

    @classmethod
    def from_geojson(cls, path: Path) -> RoadNetwork:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RoadNetworkError(f"{path}: {exc}") from None
        lines = [
            f for f in doc.get("features", []) if f.get("geometry", {}).get("type") == "LineString"
        ]
        if not lines:
            raise RoadNetworkError(f"{path}: no LineString roads")
        origin = (doc.get("metadata") or {}).get("origin")
        if origin:
            frame = LocalFrame(float(origin["lat"]), float(origin["lon"]))
        else:
            allc = np.vstack([np.asarray(f["geometry"]["coordinates"]) for f in lines])
            frame = LocalFrame(float(allc[:, 1].mean()), float(allc[:, 0].mean()))
        ways = []
        for k, f in enumerate(lines):
            c = np.asarray(f["geometry"]["coordinates"], dtype=np.float64)
            e, n = frame.to_enu(c[:, 0], c[:, 1])
            p = f.get("properties") or {}
            oneway = p.get("oneway", False)
            if isinstance(oneway, str):
                oneway = oneway in ONEWAY_TAGS
            ways.append(
                Way(
                    int(p.get("osm_way_id") or k),
                    np.stack([e, n], axis=1),
                    bool(oneway),
                    str(p.get("name") or ""),
                )
            )
        return cls(frame, ways, str(path))

    @classmethod
    def from_pbf(cls, path: Path) -> RoadNetwork:
        import pyrosm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            edges = pyrosm.OSM(str(path)).get_network(network_type="driving")
        if edges is None or len(edges) == 0:
            raise RoadNetworkError(f"{path}: no drivable roads")
        b = edges.total_bounds  # minx, miny, maxx, maxy
        frame = LocalFrame(round(float(b[1] + b[3]) / 2, 6), round(float(b[0] + b[2]) / 2, 6))
        ways = []
        for geom, tag, wid, name in zip(
            edges.geometry,
            edges["oneway"],
            edges["id"],
            edges.get("name", [None] * len(edges)),
            strict=True,
        ):
            parts = list(geom.geoms) if geom.geom_type == "MultiLineString" else [geom]
            tag = "" if tag is None or (isinstance(tag, float) and math.isnan(tag)) else str(tag)
            for part in parts:
                c = np.asarray(part.coords, dtype=np.float64)
                if len(c) < 2:
                    continue
                if tag == "-1":
                    c = c[::-1]
                e, n = frame.to_enu(c[:, 0], c[:, 1])
                ways.append(
                    Way(
                        int(wid),
                        np.stack([e, n], axis=1),
                        tag in (*ONEWAY_TAGS, "-1"),
                        str(name or ""),
                    )
                )
        logger.info("road network from %s: %d ways", path.name, len(ways))
        return cls(frame, ways, str(path))


def point_segment_distance(p: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """Distance from point p (2,) to each segment a[i]-b[i] (n, 2)."""
    ab = b - a
    t = np.clip(
        np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1
    )
    return np.linalg.norm(a + t[:, None] * ab - p, axis=1)
