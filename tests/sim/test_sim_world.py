from __future__ import annotations

import json
from collections import Counter

import pytest

from sim.features import FEATURE_CLASSES, load_features
from sim.world import ATTRIBUTION, World, default_world_dir


@pytest.fixture(scope="module")
def world() -> World:
    return World.load(default_world_dir())


def test_the_sample_world_is_helsinki_with_odbl_attribution(world: World) -> None:
    d = default_world_dir()
    assert 20.0 < world.total_length_km() < 23.0
    assert ATTRIBUTION in (d / "README.md").read_text()
    for name in ("roads", "buildings", "controls", "features", "features_v2"):
        assert (
            json.loads((d / f"{name}.geojson").read_text())["metadata"]["attribution"]
            == ATTRIBUTION
        )


def test_routes_can_reach_most_of_the_network(world: World) -> None:
    assert len(world.drivable_nodes) > 0.7 * len(world.node_ids)


def test_ground_truth_features_cover_the_required_classes(world: World) -> None:
    feats = load_features(default_world_dir() / "features.geojson", world)
    counts = Counter(f.cls for f in feats)
    assert len(feats) >= 200
    assert set(counts) == set(FEATURE_CLASSES)
    assert len({c for c in counts if c.startswith("speed_limit_")}) >= 4
    assert len({f.id for f in feats}) == len(feats)
    signs = [f for f in feats if f.cls not in ("fire_hydrant",)]
    assert all(2.0 <= f.height_m <= 3.5 for f in signs)
    # stop signs and lights stand at junction approaches
    assert all(f.node_osm and f.from_osm for f in feats if f.cls in ("stop", "traffic_light"))


def test_the_second_version_differs_by_exactly_the_recorded_diff(world: World) -> None:
    d = default_world_dir()
    v1 = {f.id: f for f in load_features(d / "features.geojson", world)}
    v2 = {f.id: f for f in load_features(d / "features_v2.geojson", world)}
    diff = json.loads((d / "changes.json").read_text())
    removed = {x["id"] for x in diff["removed"]}
    added = {x["id"] for x in diff["added"]}
    assert set(v2) == (set(v1) - removed) | added
    assert removed and added and diff["moved"]
    for m in diff["moved"]:
        a, b = v1[m["id"]], v2[m["id"]]
        assert ((a.east - b.east) ** 2 + (a.north - b.north) ** 2) ** 0.5 == pytest.approx(
            m["distance_m"], abs=0.05
        )
    unchanged = set(v1) - removed - {m["id"] for m in diff["moved"]}
    assert all(v1[i] == v2[i] for i in unchanged)


def test_any_pbf_becomes_a_world_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sim.osm import sample_pbf_path
    from sim.worldgen import generate

    stats = generate(sample_pbf_path(), tmp_path, "class")
    assert stats["features"] >= 200
    again = World.load(tmp_path)
    assert again.total_length_km() == pytest.approx(
        World.load(default_world_dir()).total_length_km(), rel=1e-6
    )
    # the committed sample is exactly what the generator makes
    assert (tmp_path / "features.geojson").read_text() == (
        default_world_dir() / "features.geojson"
    ).read_text()
