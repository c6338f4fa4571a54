"""Routes through the road graph and a driver model that follows them: accelerates,
brakes, slows for turns, stops at stop signs and red lights. Produces a Trajectory of the
camera (ENU position, heading, speed, pitch, roll) sampled at any times."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d

from sim.features import MapFeature
from sim.polyline import arc_length, resample, right_normal
from sim.sprites import light_offset, light_state
from sim.world import LANE_WIDTH_M, World

FloatArray = NDArray[np.float64]


@dataclass
class Stop:
    s: float  # stop line position along the path (m)
    kind: str  # "stop" | "light" | "yield"
    feature: MapFeature


@dataclass
class Path:
    nodes: list[int]
    xy: FloatArray  # (n, 2) lane-centre path, 1 m spacing
    s: FloatArray
    heading: FloatArray  # degrees, compass
    curvature: FloatArray  # 1/m
    limit_mps: FloatArray
    stops: list[Stop] = field(default_factory=list)


def plan_nodes(
    world: World,
    rng: np.random.Generator,
    min_length_m: float,
    home: int | None = None,
    radius_m: float | None = None,
) -> list[int]:
    """A chain of shortest paths between random targets (optionally within radius of home)."""
    g = world.graph
    nodes = world.drivable_nodes
    if radius_m is not None and home is not None:
        near = world.node_tree.query_ball_point(world.node_xy[home], radius_m)
        pool = np.array(sorted(set(near) & set(nodes.tolist())), dtype=np.int64)
        if len(pool) < 4:  # a sparse network: the few junctions nearest home instead
            _, idx = world.node_tree.query(world.node_xy[home], k=min(len(world.node_xy), 64))
            pool = np.array([i for i in np.atleast_1d(idx) if i in set(nodes.tolist())][:4])
    else:
        pool = nodes
    cur = int(home) if home is not None else int(rng.choice(nodes))
    route = [cur]
    length = 0.0
    tries = 0
    while length < min_length_m and tries < 500:
        tries += 1
        tgt = int(rng.choice(pool))
        if tgt == cur:
            continue
        try:
            leg = nx.shortest_path(g, cur, tgt, weight="length")
        except nx.NetworkXNoPath:
            continue
        if len(route) >= 2 and len(leg) >= 2 and leg[1] == route[-2] and tries < 400:
            continue  # no U-turns at the joins
        for a, b in itertools.pairwise(leg):
            length += g.edges[a, b]["length"]
        route.extend(leg[1:])
        cur = tgt
    return route


def plan_circuit(
    world: World,
    rng: np.random.Generator,
    min_length_m: float,
    homes: NDArray[np.int64],
    lap_m: tuple[float, float] = (300.0, 1000.0),
) -> list[int]:
    """The same few blocks over and over: a lap of about a random length within `lap_m`
    from a home junction, driven until `min_length_m`. The lap goes out to a nearby
    junction and comes back another way; where no other way back exists (a country road)
    it is the same stretch out and back. Homes are tried in random order until one has a
    lap within half to one and a half times the wanted length (a circuit before a stretch)."""
    g = world.graph
    want = float(rng.uniform(*lap_m))
    lo, hi = want * 0.5, min(want * 1.5, lap_m[1])

    def length(nodes: list[int]) -> float:
        return float(sum(g.edges[a, b]["length"] for a, b in itertools.pairwise(nodes)))

    def laps_from(home: int) -> tuple[list[int] | None, tuple[float, list[int]] | None]:
        dist, paths = nx.single_source_dijkstra(g, home, cutoff=2 * hi, weight="length")
        circuit: tuple[float, list[int]] | None = None
        stretch: tuple[float, list[int]] | None = None
        for tgt in sorted(paths):
            out = paths[tgt]
            if tgt == home or len(out) < 2:
                continue
            cost = abs(2 * dist[tgt] - want)
            if stretch is None or cost < stretch[0]:
                stretch = (cost, out + out[-2::-1])
            if dist[tgt] > hi / 2:
                continue  # no circuit through it is short enough
            used = set(itertools.pairwise(out))

            def back_weight(a: int, b: int, e: dict[str, float], used: set = used) -> float | None:
                # the way back drives none of the way out again, in either direction
                return None if (b, a) in used or (a, b) in used else e["length"]

            try:
                back = nx.shortest_path(g, tgt, home, weight=back_weight)
            except nx.NetworkXNoPath:
                continue
            lap = out + back[1:]
            if lap[1] == lap[-2]:
                continue  # it would join itself with a U-turn at home
            n = length(lap)
            if lo <= n <= hi and (circuit is None or abs(n - want) < circuit[0]):
                circuit = (abs(n - want), lap)
        return (circuit[1] if circuit else None), stretch

    order = [int(h) for h in rng.permutation(homes)]
    lap: list[int] | None = None
    best_stretch: tuple[float, list[int]] | None = None
    for home in order[:60]:
        circuit, stretch = laps_from(home)
        if circuit is not None:
            lap = circuit
            break
        if stretch is not None and (best_stretch is None or stretch[0] < best_stretch[0]):
            best_stretch = stretch
    if lap is None and best_stretch is not None:
        lap = best_stretch[1]
    if lap is None:  # an isolated junction everywhere: random targets near home
        return plan_nodes(world, rng, min_length_m, home=order[0], radius_m=lap_m[1] / 2.0)
    route = list(lap)
    for _ in range(math.ceil(min_length_m / max(1.0, length(lap))) - 1):
        route.extend(lap[1:])
    return route


def build_path(
    world: World, nodes: list[int], features: list[MapFeature], speed_factor: float = 1.0
) -> Path:
    g = world.graph
    pts: list[FloatArray] = []
    offs: list[FloatArray] = []
    lims: list[FloatArray] = []
    for a, b in itertools.pairwise(nodes):
        e = g.edges[a, b]
        r = world.roads[e["road"]]
        xy = r.xy if e["forward"] else r.xy[::-1]
        p, _ = resample(xy, 1.0)
        if pts:
            p = p[1:]
        pts.append(p)
        offs.append(np.full(len(p), r.width_m / 2.0 - LANE_WIDTH_M / 2.0))
        lims.append(np.full(len(p), r.speed_limit_kmh / 3.6 * speed_factor))
    centre = np.vstack(pts)
    off = gaussian_filter1d(np.concatenate(offs), 4.0, mode="nearest")
    lim = np.concatenate(lims)
    smooth = np.stack(
        [gaussian_filter1d(centre[:, k], 3.0, mode="nearest") for k in range(2)], axis=1
    )
    tan = np.gradient(smooth, axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-9)
    lane = smooth + right_normal(tan) * off[:, None]
    lane = np.stack([gaussian_filter1d(lane[:, k], 1.5, mode="nearest") for k in range(2)], axis=1)
    xy, s = resample(lane, 1.0)
    d = np.gradient(xy, axis=0)
    head = np.unwrap(np.arctan2(d[:, 0], d[:, 1]))
    curv = np.abs(gaussian_filter1d(np.gradient(head, s), 2.0))
    li = np.interp(s, arc_length(lane), lim)
    path = Path(nodes, xy, s, np.degrees(head) % 360.0, curv, li)
    path.stops = _stops(world, path, features)
    return path


def _stops(world: World, path: Path, features: list[MapFeature]) -> list[Stop]:
    by_app: dict[tuple[int, int], MapFeature] = {}
    for f in features:
        if f.cls in ("traffic_light", "stop", "yield") and f.node_osm:
            by_app[(f.node_osm, f.from_osm)] = f
    stops: list[Stop] = []
    ids = world.node_ids
    for a, b in zip(path.nodes[:-1], path.nodes[1:], strict=True):
        found = by_app.get((int(ids[b]), int(ids[a])))
        if found is None:
            continue
        f = found
        d = np.linalg.norm(path.xy - f.xy, axis=1)
        k = int(np.argmin(d))
        if stops and abs(path.s[k] - stops[-1].s) < 1.0:
            continue
        kind = {"traffic_light": "light", "stop": "stop", "yield": "yield"}[f.cls]
        stops.append(Stop(float(path.s[k]) + 1.0, kind, f))
    stops.sort(key=lambda st: st.s)
    return stops


@dataclass
class Trajectory:
    """Camera truth sampled on a fine clock (t in seconds from the drive start)."""

    t: FloatArray
    east: FloatArray
    north: FloatArray
    heading: FloatArray  # degrees, unwrapped
    speed: FloatArray
    accel: FloatArray
    s: FloatArray

    def at(self, times: FloatArray | float) -> dict[str, FloatArray]:
        tt = np.atleast_1d(np.asarray(times, dtype=np.float64))
        h = np.interp(tt, self.t, self.heading)
        dh = np.gradient(self.heading, self.t) if len(self.t) > 1 else np.zeros_like(self.t)
        return {
            "east": np.interp(tt, self.t, self.east),
            "north": np.interp(tt, self.t, self.north),
            "heading": h % 360.0,
            "speed": np.interp(tt, self.t, self.speed),
            "accel": np.interp(tt, self.t, self.accel),
            "yaw_rate": np.interp(tt, self.t, dh),
            "s": np.interp(tt, self.t, self.s),
        }

    @property
    def duration(self) -> float:
        return float(self.t[-1] - self.t[0])


def drive(
    path: Path,
    duration_s: float,
    rng: np.random.Generator,
    t0_day_s: float = 0.0,
    dt: float = 0.1,
    a_max: float = 1.8,
    b_comf: float = 2.2,
    a_lat: float = 2.0,
) -> Trajectory:
    """Follow the path for duration_s. t0_day_s: seconds since midnight UTC of the start (the
    traffic lights run on that clock, the same one the renderer uses)."""
    s_grid = path.s
    vmax = np.minimum(path.limit_mps, np.sqrt(a_lat / np.maximum(path.curvature, 1e-4)))
    vmax = np.maximum(vmax, 2.0)
    # backward pass: be able to brake comfortably for every slower stretch ahead
    v_prof = vmax.copy()
    for i in range(len(v_prof) - 2, -1, -1):
        v_prof[i] = min(
            v_prof[i], math.sqrt(v_prof[i + 1] ** 2 + 2 * b_comf * (s_grid[i + 1] - s_grid[i]))
        )
    v_prof[-1] = 0.0
    for i in range(len(v_prof) - 2, -1, -1):
        v_prof[i] = min(
            v_prof[i], math.sqrt(v_prof[i + 1] ** 2 + 2 * b_comf * (s_grid[i + 1] - s_grid[i]))
        )
    n = int(duration_s / dt) + 2
    ts = np.arange(n) * dt
    ss = np.zeros(n)
    vs = np.zeros(n)
    acc = np.zeros(n)
    s, v = 0.0, 0.0
    stops = list(path.stops)
    wait_until = -1.0
    served: set[int] = set()
    end = float(s_grid[-1])
    for k in range(n):
        t = ts[k]
        target = float(np.interp(s, s_grid, v_prof))
        # the next stop that still applies
        for i, st in enumerate(stops):
            if i in served or st.s < s - 0.5:
                continue
            gap = st.s - s
            if st.kind == "light":
                state = light_state(
                    t0_day_s + t, light_offset(st.feature.node_osm, st.feature.facing_deg)
                )
                must = state in ("red", "red_amber") or (
                    state == "amber" and gap > v * v / (2 * 3.5)
                )
                if not must:
                    if gap < 3.0:
                        served.add(i)
                    break
            elif st.kind == "yield":
                target = min(target, math.sqrt(4.0**2 + 2 * b_comf * max(0.0, gap - 2.0)))
                if gap < 1.0:
                    served.add(i)
                break
            target = min(target, math.sqrt(2 * b_comf * max(0.0, gap - 0.3)))
            if gap < 1.2 and v < 0.3:
                if st.kind == "stop":
                    if wait_until < 0:
                        wait_until = t + float(rng.uniform(1.5, 3.0))
                    if t >= wait_until:
                        served.add(i)
                        wait_until = -1.0
                # a light is served once it turns green (handled above)
            break
        if v < target:
            a = min(a_max * (1.0 - (v / max(target, 0.1)) ** 4), (target - v) / dt)
        else:
            a = max(-4.0, (target - v) / dt)
        v = max(0.0, v + a * dt)
        s = min(end, s + v * dt)
        ss[k], vs[k], acc[k] = s, v, a
    idx = np.clip(np.searchsorted(s_grid, ss), 0, len(s_grid) - 1)
    lo = np.clip(idx - 1, 0, len(s_grid) - 1)
    w = np.where(idx > lo, (ss - s_grid[lo]) / np.maximum(s_grid[idx] - s_grid[lo], 1e-9), 0.0)
    east = path.xy[lo, 0] * (1 - w) + path.xy[idx, 0] * w
    north = path.xy[lo, 1] * (1 - w) + path.xy[idx, 1] * w
    head_unw = np.degrees(np.unwrap(np.radians(path.heading)))
    heading = np.interp(ss, s_grid, head_unw)
    return Trajectory(np.asarray(ts, np.float64), east, north, heading, vs, acc, ss)


def parked(xy: FloatArray, heading: float, duration_s: float, dt: float = 0.5) -> Trajectory:
    n = int(duration_s / dt) + 2
    t = np.asarray(np.arange(n) * dt, dtype=np.float64)
    z = np.zeros(n)
    return Trajectory(
        t,
        np.full(n, float(xy[0])),
        np.full(n, float(xy[1])),
        np.full(n, float(heading)),
        z,
        z.copy(),
        z.copy(),
    )


def camera_attitude(
    tr: dict[str, FloatArray], rng: np.random.Generator, mount_pitch_deg: float = -2.0
) -> tuple[FloatArray, FloatArray]:
    """Pitch and roll (deg) of the camera: mount angle, nose dive under braking, body roll in
    turns and small road bumps that grow with speed."""
    n = len(tr["speed"])
    bumps = (
        gaussian_filter1d(rng.standard_normal(n), 1.0) * 0.35 * np.minimum(tr["speed"] / 10.0, 1.5)
    )
    pitch = (
        mount_pitch_deg
        - 0.25 * np.clip(-tr["accel"], -2, 5) * 0.4
        + 0.15 * np.clip(tr["accel"], 0, 3) * 0.3
        + bumps
    )
    lat_acc = tr["speed"] * np.radians(tr["yaw_rate"])
    roll = np.clip(lat_acc, -4, 4) * 0.35 + gaussian_filter1d(
        rng.standard_normal(n), 1.0
    ) * 0.2 * np.minimum(tr["speed"] / 10.0, 1.5)
    return pitch, roll
