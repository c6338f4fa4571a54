"""Map matching (ingest.mapmatch over ingest.roads): honest drives stay on the roads; shifted
tracks, off-road runs and wrong-way driving do not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingest import tracks
from ingest.fraud import Check, FraudPolicy, TrackPoint
from ingest.mapmatch import HmmMatcher, check_map_match
from ingest.roads import RoadNetwork, RoadNetworkError
from sim.drive import DriveSpec, default_start, load_context, plan_drive
from sim.world import default_world_dir

POLICY = FraudPolicy()


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return RoadNetwork.load(default_world_dir())


@pytest.fixture(scope="module")
def matcher(network: RoadNetwork) -> HmmMatcher:
    return HmmMatcher(network)


def _drive(seed: int, shift_m: tuple[float, float] = (0.0, 0.0)) -> list[TrackPoint]:
    """A simulated honest drive's receiver fixes, one every ~8 m as the edge samples them."""
    ctx = load_context()
    sim = plan_drive(ctx, DriveSpec("d", seed, default_start(1), 150.0))
    f = sim.fixes
    keep = f.valid.astype(bool)
    e, n, t = f.east[keep] + shift_m[0], f.north[keep] + shift_m[1], f.t[keep]
    lon, lat = ctx.world.frame.to_lonlat(e, n)
    pts, last = [], None
    for k in range(len(t)):
        if last is None or np.hypot(e[k] - e[last], n[k] - n[last]) >= 8.0:
            pts.append(TrackPoint(k, k, 1e9 + float(t[k]), float(lat[k]), float(lon[k])))
            last = k
    return pts


def test_the_road_network_loads_from_a_world_folder_with_its_one_ways(network: RoadNetwork) -> None:
    assert 20.0 < network.length_km() < 23.0
    assert any(w.oneway for w in network.ways) and any(not w.oneway for w in network.ways)
    with pytest.raises(RoadNetworkError):
        RoadNetwork.load(Path("/nonexistent/world"))


@pytest.mark.parametrize("seed", [3, 8])
def test_an_honest_drive_matches_its_roads_without_a_break_or_a_flag(
    matcher: HmmMatcher, seed: int
) -> None:
    pts = _drive(seed)
    m = matcher.match([p.lat for p in pts], [p.lon for p in pts])
    assert m.breaks == 0
    assert float(np.max(m.distance_m)) < 12.0
    assert m.score > 0.95 and all(w is not None for w in m.way)
    flags, _ = check_map_match(pts, tracks.trips(pts, POLICY), matcher, POLICY)
    assert flags == {}


@pytest.mark.parametrize("shift", [(0.0, 60.0), (-150.0, 150.0)])
def test_a_drive_shifted_off_its_roads_is_flagged_whole(
    matcher: HmmMatcher, shift: tuple[float, float]
) -> None:
    pts = _drive(3, shift)
    flags, matches = check_map_match(pts, tracks.trips(pts, POLICY), matcher, POLICY)
    assert set(flags) == set(range(len(pts)))
    flag = flags[0]
    assert flag.check == Check.MAP_MISMATCH and flag.score >= 0.5
    assert flag.evidence["off_road_share"] > POLICY.map_trip_offroad_share
    (m,) = matches.values()
    assert m.score < 0.9


def _line_world(tmp_path: Path, oneway: bool) -> Path:
    """One straight street 400 m north from (60.0, 25.0), as a world folder's roads.geojson."""
    coords = [[25.0, 60.0 + k * 0.0009] for k in range(5)]
    doc = {
        "type": "FeatureCollection",
        "metadata": {"origin": {"lat": 60.0, "lon": 25.0}},
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {"oneway": oneway, "osm_way_id": 7},
            }
        ],
    }
    (tmp_path / "roads.geojson").write_text(json.dumps(doc))
    return tmp_path


def _along(north_m: list[float], east_m: float = 0.0) -> list[TrackPoint]:
    return [
        TrackPoint(i, i, 1e9 + i, 60.0 + n / 111_195.0, 25.0 + east_m / 55_800.0)
        for i, n in enumerate(north_m)
    ]


def test_driving_a_one_way_against_its_direction_breaks_the_path(tmp_path: Path) -> None:
    m_one = HmmMatcher(RoadNetwork.load(_line_world(tmp_path, oneway=True)))
    legal = _along([float(x) for x in range(20, 380, 8)])
    wrong = _along([float(x) for x in range(380, 20, -8)])
    assert m_one.match([p.lat for p in legal], [p.lon for p in legal]).breaks == 0
    against = m_one.match([p.lat for p in wrong], [p.lon for p in wrong])
    assert against.breaks >= 3 and against.score < 0.5
    flags, _ = check_map_match(wrong, tracks.trips(wrong, POLICY), m_one, POLICY)
    assert {f.check for f in flags.values()} == {Check.MAP_MISMATCH}


def test_a_short_run_beside_the_road_is_an_off_road_run_not_a_mismatched_trip(
    tmp_path: Path,
) -> None:
    matcher = HmmMatcher(RoadNetwork.load(_line_world(tmp_path, oneway=False)))
    north = [float(x) for x in range(0, 400, 8)]
    pts = _along(north)
    pts[20:24] = [  # four frames 45 m east of the street (a car park the map does not know)
        TrackPoint(p.frame_id, p.seq, p.t, p.lat, p.lon + 45.0 / 55_800.0) for p in pts[20:24]
    ]
    flags, _ = check_map_match(pts, tracks.trips(pts, POLICY), matcher, POLICY)
    assert set(flags) == {20, 21, 22, 23}
    assert {f.check for f in flags.values()} == {Check.OFF_ROAD}
    assert flags[20].evidence["frames"] == 4


def test_the_audit_command_refuses_a_road_network_it_cannot_read(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ROADMESH_DATA_DIR": str(tmp_path)}
    env.pop("ROADMESH_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "roadmesh", "ingest", "audit", "--roads", str(tmp_path / "none")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--roads" in done.stderr and str(tmp_path / "none") in done.stderr


@pytest.mark.parametrize(("east_m", "flagged"), [(2.5, False), (8.0, True)])
def test_a_trip_beside_its_road_all_the_way_is_a_mismatch_though_never_off_it(
    tmp_path: Path, east_m: float, flagged: bool
) -> None:
    """8 m beside a street for 45 frames: never 20 m off, never a break, but no honest car
    drives 8 m from the centre line of a two-lane street (a track shifted along its road);
    2.5 m is a lane's offset plus GNSS error."""
    matcher = HmmMatcher(RoadNetwork.load(_line_world(tmp_path, oneway=False)))
    pts = _along([float(x) for x in range(20, 380, 8)], east_m=east_m)
    flags, _ = check_map_match(pts, tracks.trips(pts, POLICY), matcher, POLICY)
    if flagged:
        assert set(flags) == set(range(len(pts)))
        assert flags[0].check == Check.MAP_MISMATCH
        assert flags[0].evidence["off_road_frames"] == 0 and flags[0].evidence["breaks"] == 0
        assert flags[0].evidence["median_distance_m"] > POLICY.map_max_median_m
    else:
        assert flags == {}
