"""The mapper: detections -> bearing rays from the camera pose -> passes -> map features.

Plain numpy/scikit-learn over values; the database glue is `webapp.mapping.mapper_job`.

1. Geometry of one detection (`locate`): the bearing of the box centre from the camera's
   heading and the intrinsics (pinhole: atan((u - cx) / fx)); the range from the known
   physical size of the class (fx * width_m / box_px, the smaller of the width and height
   estimates, since occlusion only shrinks a box).
2. Passes (`passes`): per device and class group, detections of consecutive frames whose
   rough positions agree form one pass. Its rays are triangulated by least squares (each
   ray's perpendicular distance, plus a weak range prior), in the local metric frame.
3. Features (`cluster`): pass estimates of every device and time are clustered with DBSCAN
   on position and facing (signs back to back stay apart). A feature's position is the
   inverse-variance mean of its passes; its uncertainty ellipse combines the passes' spread
   and each pass's GNSS error; the value (speed limit 50) is the passes' vote; facing is
   the mean bearing from the feature back to the cameras that saw it.
4. State (`states`): a feature seen on `confirm_passes` passes, or on one pass with
   `confirm_single_observations` sightings over `confirm_single_span_m` of travel, is
   confirmed; a confirmed
   feature that the last `remove_after` passes that drove by it in clear view (within
   `visible_m`, inside the field of view, facing the camera) did not see is removed.

Every step is O(n log n) (sorting, KD-trees, DBSCAN's tree), so a country-sized network
(about 10,000 road nodes, millions of detections) runs the same way as the sample.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from sklearn.cluster import DBSCAN

from vision.geo import bearing_deg

FloatArray = NDArray[np.float64]

# physical face width x height (m) of each class the mapper places (sim/features.py SHAPES)
CLASS_SIZES_M: dict[str, tuple[float, float]] = {
    "stop": (0.9, 0.9),
    "yield": (0.9, 0.8),
    "no_entry": (0.64, 0.64),
    "speed_limit": (0.64, 0.64),
    "pedestrian_crossing": (0.64, 0.64),
    "traffic_light": (0.34, 0.95),
    "fire_hydrant": (0.32, 0.75),
}
PRIVACY_CLASSES = frozenset({"face", "license_plate"})
# classes whose look does not depend on the side they are seen from: facing plays no part
# in clustering them (a hydrant seen from both directions of the road is one hydrant)
NO_FACING = frozenset({"fire_hydrant"})


def split_label(label: str) -> tuple[str, str]:
    """'speed_limit_50' -> ('speed_limit', '50'); any other label -> (label, '')."""
    head, _, tail = label.rpartition("_")
    if head and tail.isdigit():
        return head, tail
    return label, ""


@dataclass(frozen=True)
class MapperSettings:
    gnss_sigma_m: float = 1.8  # per-axis GNSS error the pass estimates inherit
    bearing_sigma_deg: float = 1.5
    range_sigma: float = 0.25  # relative error of a size-based range
    max_range_m: float = 60.0
    min_box_px: float = 5.0
    min_score: float = 0.3
    pass_gap_s: float = 4.0  # frames further apart than this start a new pass
    pass_gate_m: float = 6.0  # + 0.15 x range: how far a detection may lie from its pass
    cluster_eps_m: float = 6.0  # two passes of one sign differ by ~2.5 m per axis (GNSS)
    facing_scale_m: float = 3.0  # how much facing counts in clustering (m per radian-ish)
    min_pass_observations: int = 1  # shorter passes are dropped
    confirm_passes: int = 2
    # one pass confirms alone when it has this many sightings over this much camera travel
    confirm_single_observations: int = 3
    confirm_single_span_m: float = 10.0
    border_px: float = 2.0  # a box this close to the left/right edge is cut off: no range
    outlier_m: float = 3.0  # + 15 % of range: a sighting this far off its pass's rays is dropped
    remove_after: int = 3
    visible_m: float = 30.0  # a pass within this range, in view and facing, should see it
    visible_min_m: float = 6.0
    visible_half_fov_deg: float = 45.0
    facing_tolerance_deg: float = 60.0
    visit_gap_s: float = 30.0  # frames of one device further apart are separate passes


@dataclass(frozen=True)
class Observation:
    """One detection with its frame's pose: camera position in the local metric frame."""

    id: int
    frame_id: int
    device: str
    t: float  # capture time, unix seconds
    east: float
    north: float
    heading_deg: float
    label: str
    score: float
    u: float  # box centre, pixels
    box_w: float
    box_h: float
    fx: float
    fy: float
    cx: float


@dataclass(frozen=True)
class Located:
    obs: Observation
    group: str
    value: str
    bearing_deg: float
    range_m: float
    east: float  # rough position from bearing and range
    north: float


def locate(o: Observation, s: MapperSettings) -> Located | None:
    """Bearing and size-based range of one detection; None when it cannot be placed."""
    group, value = split_label(o.label)
    size = CLASS_SIZES_M.get(group)
    if size is None or o.score < s.min_score or min(o.box_w, o.box_h) < s.min_box_px:
        return None
    width = 2.0 * o.cx + 1.0
    if o.u - o.box_w / 2 <= s.border_px or o.u + o.box_w / 2 >= width - s.border_px:
        return None
    rng = min(o.fx * size[0] / o.box_w, o.fy * size[1] / o.box_h)
    if not 0.5 < rng <= s.max_range_m:
        return None
    off = math.degrees(math.atan((o.u - o.cx) / o.fx))
    b = (o.heading_deg + off) % 360.0
    br = math.radians(b)
    # the range is along the optical axis (pinhole depth); the ray is longer off-axis
    dist = rng / math.cos(math.radians(off))
    return Located(
        o, group, value, b, dist, o.east + dist * math.sin(br), o.north + dist * math.cos(br)
    )


@dataclass
class Pass:
    """One device's consecutive sightings of one object, triangulated."""

    device: str
    group: str
    members: list[Located] = field(default_factory=list)
    east: float = 0.0
    north: float = 0.0
    cov: FloatArray = field(default_factory=lambda: np.eye(2))
    facing_deg: float = 0.0
    value: str = ""

    @property
    def t0(self) -> float:
        return self.members[0].obs.t

    @property
    def t1(self) -> float:
        return self.members[-1].obs.t

    @property
    def score(self) -> float:
        return float(np.mean([m.obs.score for m in self.members]))


def triangulate(members: Sequence[Located], s: MapperSettings) -> tuple[FloatArray, FloatArray]:
    """Least squares over rays (perpendicular distance, weighted by range x bearing error)
    and each ray's range prior. (position, covariance without the GNSS part)."""
    a = np.zeros((2, 2))
    b = np.zeros(2)
    for m in members:
        c = np.array([m.obs.east, m.obs.north])
        d = np.array([math.sin(math.radians(m.bearing_deg)), math.cos(math.radians(m.bearing_deg))])
        perp = np.eye(2) - np.outer(d, d)
        sp = max(0.2, m.range_m * math.radians(s.bearing_sigma_deg))
        sr = max(0.3, m.range_m * s.range_sigma)
        a += perp / sp**2 + np.outer(d, d) / sr**2
        b += perp @ c / sp**2 + np.outer(d, d) @ (c + m.range_m * d) / sr**2
    cov = np.asarray(np.linalg.inv(a), dtype=np.float64)
    return np.asarray(cov @ b, dtype=np.float64), cov


def _ray_distance(m: Located, xy: FloatArray) -> float:
    """How far `xy` lies from where the sighting puts it (along and across its ray)."""
    return float(np.hypot(m.east - xy[0], m.north - xy[1]))


def _circular_mean(deg: Sequence[float], weights: Sequence[float] | None = None) -> float:
    r = np.radians(np.asarray(deg, dtype=np.float64))
    w = np.ones_like(r) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(math.degrees(math.atan2((w * np.sin(r)).sum(), (w * np.cos(r)).sum())) % 360.0)


def passes(observations: Sequence[Observation], s: MapperSettings | None = None) -> list[Pass]:
    """Group each device's detections into passes and triangulate each pass."""
    s = s or MapperSettings()
    located = [x for x in (locate(o, s) for o in observations) if x is not None]
    by_key: dict[tuple[str, str], list[Located]] = defaultdict(list)
    for x in located:
        by_key[(x.obs.device, x.group)].append(x)
    out: list[Pass] = []
    for (device, group), items in by_key.items():
        items.sort(key=lambda x: (x.obs.t, x.obs.id))
        open_: list[tuple[Pass, FloatArray, float, set[int]]] = []  # pass, estimate, last t, frames
        for x in items:
            p_xy = np.array([x.east, x.north])
            open_ = [o for o in open_ if x.obs.t - o[2] <= s.pass_gap_s]
            best, best_d = None, math.inf
            for i, (_p, est, _t, frames) in enumerate(open_):
                if x.obs.frame_id in frames:
                    continue
                d = float(np.linalg.norm(est - p_xy))
                if d < s.pass_gate_m + 0.15 * x.range_m and d < best_d:
                    best, best_d = i, d
            if best is None:
                p = Pass(device, group, [x])
                open_.append((p, p_xy, x.obs.t, {x.obs.frame_id}))
                out.append(p)
            else:
                p, _est, _t, frames = open_[best]
                p.members.append(x)
                frames.add(x.obs.frame_id)
                est, _cov = triangulate(p.members, s)
                open_[best] = (p, est, x.obs.t, frames)
    for p in out:
        xy, cov = triangulate(p.members, s)
        if len(p.members) >= 3:
            kept = [m for m in p.members if _ray_distance(m, xy) <= s.outlier_m + 0.15 * m.range_m]
            if 2 <= len(kept) < len(p.members):
                p.members = kept
                xy, cov = triangulate(p.members, s)
        p.east, p.north = float(xy[0]), float(xy[1])
        p.cov = cov + np.eye(2) * s.gnss_sigma_m**2
        p.facing_deg = _circular_mean(
            [float(bearing_deg(m.obs.east - xy[0], m.obs.north - xy[1])) for m in p.members]
        )
        votes = Counter(m.value for m in p.members)
        p.value = votes.most_common(1)[0][0] if votes else ""
    return [p for p in out if len(p.members) >= s.min_pass_observations]


@dataclass
class Feature:
    """A clustered map feature (before it is matched to the rows already on the map)."""

    group: str
    value: str
    east: float
    north: float
    cov: FloatArray
    facing_deg: float
    passes: list[Pass]
    status: str = "candidate"  # candidate | confirmed | removed
    missed_passes: int = 0  # passes since the last sighting that should have seen it

    @property
    def label(self) -> str:
        return f"{self.group}_{self.value}" if self.value else self.group

    @property
    def observations(self) -> int:
        return sum(len(p.members) for p in self.passes)

    @property
    def devices(self) -> int:
        return len({p.device for p in self.passes})

    @property
    def first_seen(self) -> float:
        return min(p.t0 for p in self.passes)

    @property
    def last_seen(self) -> float:
        return max(p.t1 for p in self.passes)

    @property
    def score(self) -> float:
        return float(np.mean([p.score for p in self.passes]))

    def ellipse(self) -> tuple[float, float, float]:
        """1-sigma (major m, minor m, azimuth of the major axis, compass degrees)."""
        vals, vecs = np.linalg.eigh(self.cov)
        major = vecs[:, 1]
        return (
            float(math.sqrt(max(vals[1], 0.0))),
            float(math.sqrt(max(vals[0], 0.0))),
            float(bearing_deg(major[0], major[1]) % 180.0),
        )

    def detection_ids(self) -> list[int]:
        return [m.obs.id for p in self.passes for m in p.members]


def _combine(ps: Sequence[Pass], s: MapperSettings) -> tuple[FloatArray, FloatArray]:
    infos = [np.linalg.inv(p.cov) for p in ps]
    info = np.sum(infos, axis=0)
    cov = np.linalg.inv(info)
    xy = cov @ np.sum(
        [i @ np.array([p.east, p.north]) for i, p in zip(infos, ps, strict=True)], axis=0
    )
    if len(ps) >= 3:  # the passes' own spread, when there are enough of them to tell
        pts = np.array([[p.east, p.north] for p in ps])
        spread = np.cov(pts.T) / len(ps)
        cov = np.maximum(cov, spread) if np.all(np.linalg.eigvalsh(spread) > 0) else cov
    return xy, cov


def cluster(ps: Sequence[Pass], s: MapperSettings | None = None) -> list[Feature]:
    """Cluster pass estimates (all devices and times) into features, per class group."""
    s = s or MapperSettings()
    by_group: dict[str, list[Pass]] = defaultdict(list)
    for p in ps:
        by_group[p.group].append(p)
    features: list[Feature] = []
    for group, items in sorted(by_group.items()):
        f = np.radians([p.facing_deg for p in items])
        k = 0.0 if group in NO_FACING else s.facing_scale_m
        x = np.column_stack(
            [[p.east for p in items], [p.north for p in items], k * np.sin(f), k * np.cos(f)]
        )
        labels = DBSCAN(eps=s.cluster_eps_m, min_samples=1).fit_predict(x)
        for k in sorted(set(labels.tolist())):
            members = [p for p, lab in zip(items, labels.tolist(), strict=True) if lab == k]
            xy, cov = _combine(members, s)
            votes: Counter[str] = Counter()
            for p in members:
                votes[p.value] += len(p.members)
            facing = _circular_mean(
                [p.facing_deg for p in members], [len(p.members) for p in members]
            )
            features.append(
                Feature(
                    group,
                    votes.most_common(1)[0][0],
                    float(xy[0]),
                    float(xy[1]),
                    cov,
                    facing,
                    members,
                )
            )
    return features


@dataclass(frozen=True)
class CameraTrack:
    """Every kept frame's pose (not only those with detections): what passes drove by."""

    device: NDArray[np.str_]
    t: FloatArray
    east: FloatArray
    north: FloatArray
    heading_deg: FloatArray


def _visits(
    f: Feature, track: CameraTrack, tree: cKDTree, s: MapperSettings
) -> list[tuple[str, float, float]]:
    """Passes (device, t0, t1) that drove by `f` in clear view."""
    idx = np.asarray(tree.query_ball_point([f.east, f.north], s.visible_m), dtype=np.int64)
    if not len(idx):
        return []
    dx = f.east - track.east[idx]
    dy = f.north - track.north[idx]
    dist = np.hypot(dx, dy)
    to_feature = np.degrees(np.arctan2(dx, dy)) % 360.0
    off = (to_feature - track.heading_deg[idx] + 180.0) % 360.0 - 180.0
    back = (to_feature + 180.0) % 360.0  # from the feature to the camera
    face_off = (back - f.facing_deg + 180.0) % 360.0 - 180.0
    ok = (
        (dist >= s.visible_min_m)
        & (np.abs(off) <= s.visible_half_fov_deg)
        & (np.abs(face_off) <= s.facing_tolerance_deg)
    )
    idx = idx[ok]
    visits: list[tuple[str, float, float]] = []
    order = np.lexsort((track.t[idx], track.device[idx]))
    for i in idx[order].tolist():
        dev, t = str(track.device[i]), float(track.t[i])
        if visits and visits[-1][0] == dev and t - visits[-1][2] <= s.visit_gap_s:
            visits[-1] = (dev, visits[-1][1], t)
        else:
            visits.append((dev, t, t))
    return sorted(visits, key=lambda v: v[1])


def _travel(p: Pass) -> float:
    first, last = p.members[0].obs, p.members[-1].obs
    return float(np.hypot(last.east - first.east, last.north - first.north))


def states(
    features: Sequence[Feature], track: CameraTrack | None, s: MapperSettings | None = None
) -> None:
    """Set each feature's state: confirmed after `confirm_passes` passes; removed when the
    last `remove_after` passes that drove by it in clear view did not see it."""
    s = s or MapperSettings()
    tree = (
        cKDTree(np.column_stack([track.east, track.north]))
        if track is not None and len(track.t)
        else None
    )
    for f in features:
        strong = any(
            len(p.members) >= s.confirm_single_observations
            and _travel(p) >= s.confirm_single_span_m
            for p in f.passes
        )
        confirmed = len(f.passes) >= s.confirm_passes or strong
        f.status = "confirmed" if confirmed else "candidate"
        if tree is None or track is None:
            continue
        visits = _visits(f, track, tree, s)
        seen = [
            any(p.device == dev and p.t1 >= t0 - 1.0 and p.t0 <= t1 + 1.0 for p in f.passes)
            for dev, t0, t1 in visits
        ]
        last_seen = max((i for i, v in enumerate(seen) if v), default=-1)
        f.missed_passes = len(seen) - 1 - last_seen if last_seen >= 0 else 0
        if f.status == "confirmed" and f.missed_passes >= s.remove_after:
            f.status = "removed"


def build_map(
    observations: Sequence[Observation],
    track: CameraTrack | None = None,
    s: MapperSettings | None = None,
) -> list[Feature]:
    """The whole mapper: observations (and every kept frame's pose) -> features with states."""
    s = s or MapperSettings()
    features = cluster(passes(observations, s), s)
    states(features, track, s)
    return features


@dataclass(frozen=True)
class Match:
    feature: int  # index into the features
    truth: int  # index into the truth
    distance_m: float


def match_nearest(
    features: Sequence[tuple[str, float, float]],
    truth: Sequence[tuple[str, float, float]],
    radius_m: float = 5.0,
) -> list[Match]:
    """One-to-one matching of (label, east, north): same label, within `radius_m`, nearest
    pairs first (the map-accuracy rule)."""
    if not features or not truth:
        return []
    tt = cKDTree(np.array([[e, n] for _, e, n in truth]))
    pairs: list[tuple[float, int, int]] = []
    for i, (lab, e, n) in enumerate(features):
        for j in tt.query_ball_point([e, n], radius_m):
            if truth[j][0] == lab:
                pairs.append((math.hypot(e - truth[j][1], n - truth[j][2]), i, j))
    pairs.sort()
    used_f: set[int] = set()
    used_t: set[int] = set()
    out = []
    for d, i, j in pairs:
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        out.append(Match(i, j, d))
    return out
