"""Vector tiles: roads from the basemap, features, coverage and frames, decoded back with
mapbox-vector-tile; cache headers; frames follow the frame rules."""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
from django.test import Client

from tests.webapp.people import bearer, consumer_key, device, feature, frames_along, person

pytestmark = pytest.mark.django_db


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def decode(response: object) -> dict:
    return mapbox_vector_tile.decode(response.content)  # type: ignore[attr-defined]


def test_the_roads_layer_draws_the_sample_network_offline(client: Client) -> None:
    z, x, y = tile_of(60.1699, 24.9384, 15)  # central Helsinki: the sample world
    response = client.get(f"/tiles/roads/{z}/{x}/{y}.mvt")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.mapbox-vector-tile"
    assert response["Cache-Control"].startswith("public, max-age=")
    layer = decode(response)["roads"]
    assert len(layer["features"]) > 5
    kinds = {f["geometry"]["type"] for f in layer["features"]}
    assert kinds <= {"LineString", "MultiLineString"}
    assert any("highway" in f["properties"] for f in layer["features"])


def test_the_features_layer_has_one_point_per_feature_with_class_and_state(client: Client) -> None:
    a = feature("stop", 60.1700, 24.9400)
    b = feature("speed_limit_50", 60.1702, 24.9402)
    z, x, y = tile_of(60.1701, 24.9401, 16)
    layer = decode(client.get(f"/tiles/features/{z}/{x}/{y}.mvt"))["features"]
    got = {f["properties"]["id"]: f["properties"] for f in layer["features"]}
    assert got[a.pk]["class"] == "stop" and got[b.pk]["state"] == "candidate"
    for f in layer["features"]:
        px, py = f["geometry"]["coordinates"]
        assert 0 <= px <= 4096 and 0 <= py <= 4096


def test_an_empty_tile_is_an_empty_200(client: Client) -> None:
    response = client.get("/tiles/features/16/0/0.mvt")
    assert response.status_code == 200 and response.content == b""


def test_the_coverage_layer_has_hexagons_with_freshness(client: Client) -> None:
    frames_along(device(person("driver"), "dev-a"), 4)
    z, x, y = tile_of(60.1701, 24.94, 15)
    layer = decode(client.get(f"/tiles/coverage/{z}/{x}/{y}.mvt"))["coverage"]
    assert layer["features"]
    assert layer["features"][0]["geometry"]["type"] == "Polygon"
    assert "freshness_days" in layer["features"][0]["properties"]


def test_the_frames_layer_needs_a_key_or_the_owners_login(client: Client) -> None:
    owner, other = person("owner"), person("other")
    frames_along(device(owner, "dev-mine"), 3)
    frames_along(device(other, "dev-theirs"), 2, lon=24.9401)
    z, x, y = tile_of(60.1701, 24.94, 16)
    url = f"/tiles/frames/{z}/{x}/{y}.mvt"
    anonymous = client.get(url)
    assert anonymous.status_code == 401 and "error" in anonymous.json()
    client.force_login(owner)
    mine = client.get(url)
    assert mine["Cache-Control"].startswith("private")
    assert {f["properties"]["device"] for f in decode(mine)["frames"]["features"]} == {"dev-mine"}
    client.logout()
    keyed = decode(client.get(url, **bearer(consumer_key())))["frames"]["features"]
    assert len(keyed) == 5


@pytest.mark.parametrize(
    "path", ["/tiles/nope/1/0/0.mvt", "/tiles/roads/3/8/0.mvt", "/tiles/roads/30/0/0.mvt"]
)
def test_an_unknown_layer_or_tile_is_a_json_404(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and "error" in response.json()
