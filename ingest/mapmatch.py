"""Map matching: each trip matched to the region's drivable roads, and the checks on it.

One seam, `MapMatcher.match(lat, lon) -> TripMatch`, with one implementation here:
`HmmMatcher`, the hidden-Markov-model matcher of the `leuvenmapmatching` library (KU Leuven,
Apache-2.0; `DistanceMatcher`, after Newson & Krumm 2009): candidate positions on the road
segments near each point (Gaussian emission on the distance), transitions that follow the
directed road graph (one-ways only in their legal direction) and prefer routes as long as
the straight line between the points, Viterbi for the best sequence. Where no drivable
route continues the best paths (the trip leaves the roads, or goes the wrong way down a
one-way), the library stops; the matcher counts a *break* and starts again at the next
point. Production may put Valhalla's or OSRM's matcher behind the same seam.

Per point a `TripMatch` gives the distance to the road it was matched to (or, unmatched,
to the nearest road), that road (the OSM way id), whether the point was reached from the
one before along drivable roads in the claimed order, and, per trip, a score: the share of
points matched within the GNSS allowance on a continuous path.

`check_map_match` turns that into flags: `off_road` on runs of points far from any road it
could be on, `map_mismatch` on a whole trip that drives off the roads or breaks the road
graph too often to be a real drive (a track shifted by a constant offset, a fabricated one).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ingest.fraud import Check, Flag, FraudPolicy, TrackPoint, distance_m
from ingest.roads import RoadNetwork

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
FAR_M = 200.0  # distances to the nearest road are measured up to this


@dataclass
class TripMatch:
    distance_m: FloatArray  # per point: to its matched road position, else to the nearest road
    way: list[int | None]  # per point: the matched road's way id (None: unmatched)
    continuous: NDArray[np.bool_]  # per point: reached from the previous one along the roads
    lost_at: list[int]  # the points not reached from the one before (a restart, a reversal)
    score: float  # share of points matched within `ok_m` on a continuous path

    @property
    def breaks(self) -> int:
        """Times the drivable path was lost (and matching started again)."""
        return len(self.lost_at)

    @property
    def matched(self) -> NDArray[np.bool_]:
        return np.array([w is not None for w in self.way], dtype=bool)


class MapMatcher(Protocol):
    network: RoadNetwork

    def match(self, lat: Sequence[float], lon: Sequence[float]) -> TripMatch: ...


class HmmMatcher:
    """`leuvenmapmatching.DistanceMatcher` over a `RoadNetwork` (see the module docstring).

    `obs_noise_m`: the GNSS error the emission allows (sigma); `max_dist_m`: candidates are
    road positions at most this far from a point (a hard cut: farther points break the
    path); `ok_m`: a point matched within this counts for the score; `back_m`: a point
    matched this far behind the previous one on the same directed edge drove it backwards
    (the library tolerates going back along an edge; GNSS noise of a standing car stays
    within a few metres): a break of the drivable order too."""

    def __init__(
        self,
        network: RoadNetwork,
        *,
        obs_noise_m: float = 6.0,
        max_dist_m: float = 40.0,
        ok_m: float = 20.0,
        lattice_width: int = 6,
        back_m: float = 12.0,
    ) -> None:
        self.network = network
        self.back_m = back_m
        self.obs_noise_m = obs_noise_m
        self.max_dist_m = max_dist_m
        self.ok_m = ok_m
        self.lattice_width = lattice_width
        self._map = _leuven_map(network)

    def match(self, lat: Sequence[float], lon: Sequence[float]) -> TripMatch:
        from leuvenmapmatching.matcher.distance import DistanceMatcher

        xy = self.network.to_xy(lat, lon)
        n = len(xy)
        dist = np.full(n, np.nan)
        way: list[int | None] = [None] * n
        cont = np.zeros(n, dtype=bool)
        lost_at: list[int] = []
        path = [(float(y), float(x)) for x, y in xy]
        i = 0
        while i < n:
            mm = DistanceMatcher(
                self._map,
                max_dist=self.max_dist_m,
                max_dist_init=self.max_dist_m,
                obs_noise=self.obs_noise_m,
                obs_noise_ne=2 * self.obs_noise_m,
                dist_noise=self.obs_noise_m,
                non_emitting_states=True,
                max_lattice_width=self.lattice_width,
                only_edges=True,
                avoid_goingback=True,
            )
            _, last = mm.match(path[i:])
            best = [m for m in (mm.lattice_best or []) if m.obs_ne == 0]
            if not best:  # nothing within reach of this point: unmatched, try the next
                if i and (not lost_at or lost_at[-1] != i):
                    lost_at.append(i)
                i += 1
                continue
            prev: Any = None  # the edge of the last point ...
            peak = 0.0  # ... the farthest along it the trip got ...
            backwards = False  # ... and whether it is now going back along it
            for m in best:
                k = i + int(m.obs)
                if k >= n or way[k] is not None:
                    continue
                edge = (m.edge_m.l1, m.edge_m.l2)
                along = float(m.edge_m.ti or 0.0) * _length(m.edge_m)
                dist[k] = float(m.dist_obs)
                way[k] = self._map.way_of.get(edge)
                cont[k] = k > i
                if edge != prev:
                    prev, peak, backwards = edge, along, False
                elif along < peak - self.back_m:
                    # backwards along a directed edge: against a one-way (a two-way road's
                    # other direction is another edge, which the matcher would have chosen)
                    cont[k] = False
                    if not backwards:
                        lost_at.append(k)
                    backwards = True
                else:
                    peak, backwards = max(peak, along), False
            stop = i + max(int(last), max(int(m.obs) for m in best))
            if stop + 1 >= n:
                break
            i = stop + 1
            lost_at.append(i)
        # unmatched points: the distance to the nearest road at all, for the evidence
        lost = np.isnan(dist)
        if lost.any():
            near, _ = self.network.nearest(xy[lost], FAR_M)
            dist[lost] = np.minimum(near, FAR_M)
        good = cont & (dist <= self.ok_m)
        if n:
            good[0] = way[0] is not None and dist[0] <= self.ok_m
        return TripMatch(dist, way, cont, sorted(set(lost_at)), float(good.mean()) if n else 1.0)


def _length(seg: Any) -> float:
    return float(np.hypot(seg.p2[0] - seg.p1[0], seg.p2[1] - seg.p1[1]))


def _leuven_map(network: RoadNetwork) -> Any:
    """The library's in-memory map of the network (points (y, x) in the network's metric
    frame; every drawn point a node, every segment a directed edge, both ways unless the
    road is one-way), its first lookup of the roads near a point served by the network's
    KD-tree instead of a linear scan. `way_of[(a, b)]`: the OSM way of edge a -> b."""
    from leuvenmapmatching.map.inmem import InMemMap

    ids: dict[tuple[float, float], int] = {}
    way_of: dict[tuple[int, int], int] = {}

    def key(p: FloatArray) -> tuple[float, float]:
        return (round(float(p[0]), 2), round(float(p[1]), 2))

    class KdMap(InMemMap):  # type: ignore[misc]
        def edges_closeto(self, loc: Any, max_dist: Any = None, max_elmt: Any = None) -> Any:
            y, x = float(loc[0]), float(loc[1])
            out = []
            for s in network.segments_near(np.array([x, y]), float(max_dist or 50.0)):
                a, b = seg_nodes[int(s)]
                for u, v in ((a, b), (b, a)):
                    if (u, v) not in way_of:
                        continue  # a one-way, against its direction
                    pu, pv = self.graph[u][0], self.graph[v][0]
                    d, pi, ti = self.distance_point_to_segment(loc, pu, pv)
                    if d < max_dist:
                        out.append((d, u, pu, v, pv, pi, ti))
            out.sort()
            return out[:max_elmt] if max_elmt else out

    m = KdMap("roads", use_latlon=False, index_edges=True)

    def node(p: FloatArray) -> int:
        k = key(p)
        if k not in ids:
            ids[k] = len(ids)
            m.add_node(ids[k], (k[1], k[0]))  # (y, x)
        return ids[k]

    for w in network.ways:
        nodes = [node(p) for p in w.xy]
        for a, b in itertools.pairwise(nodes):
            if a == b:
                continue
            m.add_edge(a, b)
            way_of[(a, b)] = w.way_id
            if not w.oneway:
                m.add_edge(b, a)
                way_of[(b, a)] = w.way_id
    seg_nodes = [
        (ids[key(a)], ids[key(b)]) for a, b in zip(network.seg_a, network.seg_b, strict=True)
    ]
    m.way_of = way_of
    return m


# -- the checks --------------------------------------------------------------------------
def check_map_match(
    points: Sequence[TrackPoint],
    trips: Sequence[tuple[int, int]],
    matcher: MapMatcher,
    policy: FraudPolicy,
) -> tuple[dict[int, Flag], dict[int, TripMatch]]:
    """Flags from matching each trip (index ranges [start, end) of `points`) to the roads.

    * `off_road`: a run of `map_offroad_min_frames` or more consecutive points each more
      than `map_offroad_m` from the road they were matched to (or from any road);
    * `map_mismatch`: a trip of `map_min_frames` or more in which more than
      `map_trip_offroad_share` of the points are off the road, or whose points lie more
      than `map_max_median_m` from their matched roads at the median, or the drivable order breaks
      between points on the roads (no legal route joins them: a wrong-way one-way, a jump
      between parallel roads) more than `map_max_breaks_per_km` times a km (and at least
      twice): every point of it.
    Returns the flags by index and each trip's match by its start index."""
    out: dict[int, Flag] = {}
    matches: dict[int, TripMatch] = {}
    for start, end in trips:
        seg = points[start:end]
        if len(seg) < 2:
            continue
        m = matcher.match([p.lat for p in seg], [p.lon for p in seg])
        matches[start] = m
        off = m.distance_m > policy.map_offroad_m
        run_start = None
        for k in range(len(seg) + 1):
            if k < len(seg) and off[k]:
                run_start = k if run_start is None else run_start
                continue
            if run_start is not None and k - run_start >= policy.map_offroad_min_frames:
                worst = float(np.max(m.distance_m[run_start:k]))
                ev = {
                    "frames": k - run_start,
                    "max_distance_m": round(worst, 1),
                    "median_distance_m": round(float(np.median(m.distance_m[run_start:k])), 1),
                    "first_frame": seg[run_start].frame_id,
                }
                flag = Flag(
                    Check.OFF_ROAD,
                    0.7,
                    f"{k - run_start} frames in a row {policy.map_offroad_m:g} m or more from any road they could be on",
                    ev,
                )
                for j in range(run_start, k):
                    out[start + j] = flag
            run_start = None
        if len(seg) < policy.map_min_frames:
            continue
        km = max(_path_km(seg), 0.05)
        share = float(off.mean())
        # where the drivable order broke between two points on the roads (a break at an
        # excursion off them is counted by the share already)
        on_road = [k for k in m.lost_at if k and not off[k] and not off[k - 1]]
        median = float(np.median(m.distance_m))
        if (
            share <= policy.map_trip_offroad_share
            and median <= policy.map_max_median_m
            and not (len(on_road) >= 2 and len(on_road) / km > policy.map_max_breaks_per_km)
        ):
            continue
        ev = {
            "frames": len(seg),
            "off_road_frames": int(off.sum()),
            "off_road_share": round(share, 3),
            "breaks": m.breaks,
            "breaks_on_road": len(on_road),
            "breaks_on_road_per_km": round(len(on_road) / km, 2),
            "median_distance_m": round(median, 1),
            "p90_distance_m": round(float(np.percentile(m.distance_m, 90)), 1),
            "match_score": round(m.score, 3),
        }
        flag = Flag(
            Check.MAP_MISMATCH,
            0.8,
            f"the trip does not follow the roads: {share:.0%} of its frames off the road,"
            f" {median:.1f} m from them at the median, the drivable path lost"
            f" {len(on_road)} times on them",
            ev,
        )
        for j in range(start, end):
            out[j] = flag
    return out, matches


def _path_km(seg: Sequence[TrackPoint]) -> float:
    return sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(seg)) / 1000.0
