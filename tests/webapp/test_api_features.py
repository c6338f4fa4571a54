"""Map features in the consumer API: filters, cursor pages, one feature with its evidence,
the change feed and coverage. Features and coverage are public."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from tests.webapp.people import (
    T0,
    bearer,
    consumer_key,
    detection,
    device,
    feature,
    frames_along,
    person,
)
from webapp.mapping.models import MapFeature

pytestmark = pytest.mark.django_db


@pytest.fixture
def street() -> dict[str, MapFeature]:
    return {
        "stop": feature("stop", 60.1700, 24.9400),
        "limit": feature("speed_limit_50", 60.1710, 24.9410, MapFeature.Status.CONFIRMED),
        "hydrant": feature("fire_hydrant", 60.1720, 24.9420),
        "far": feature("stop", 61.0, 25.5),
    }


def test_features_in_a_bbox_come_as_geojson_with_class_value_and_state(
    client: Client, street: dict[str, MapFeature]
) -> None:
    response = client.get("/api/v1/features", {"bbox": "24.93,60.16,24.95,60.18"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/geo+json"
    body = response.json()
    assert [f["id"] for f in body["features"]] == [
        street[k].pk for k in ("stop", "limit", "hydrant")
    ]
    limit = body["features"][1]
    assert limit["properties"]["class"] == "speed_limit_50"
    assert limit["properties"]["value"] == 50
    assert limit["properties"]["state"] == "confirmed"
    assert limit["geometry"] == {"type": "Point", "coordinates": [24.941, 60.171]}
    assert body["next"] is None


def test_features_filter_by_class_state_and_polygon(
    client: Client, street: dict[str, MapFeature]
) -> None:
    bbox = "24.93,60.16,26,61.5"
    by_class = client.get("/api/v1/features", {"bbox": bbox, "class": "stop"}).json()
    assert {f["id"] for f in by_class["features"]} == {street["stop"].pk, street["far"].pk}
    by_state = client.get("/api/v1/features", {"bbox": bbox, "state": "confirmed"}).json()
    assert [f["id"] for f in by_state["features"]] == [street["limit"].pk]
    # a triangle that holds the stop and the limit sign but not the hydrant
    triangle = "POLYGON((24.939 60.169, 24.9435 60.169, 24.939 60.1735, 24.939 60.169))"
    by_polygon = client.get("/api/v1/features", {"polygon": triangle}).json()
    assert [f["id"] for f in by_polygon["features"]] == [street["stop"].pk, street["limit"].pk]


def test_cursor_pages_return_every_feature_exactly_once(client: Client) -> None:
    made = [feature("stop", 60.17 + i * 1e-4, 24.94) for i in range(7)]
    seen, cursor = [], None
    for _ in range(10):
        query = {"bbox": "24,60,25,61", "limit": "3", **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/features", query).json()
        seen += [f["id"] for f in body["features"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [f.pk for f in made]


def test_updated_since_returns_only_features_that_changed_after_it(
    client: Client, street: dict[str, MapFeature]
) -> None:
    later = street["hydrant"]
    later.lat += 0.0001  # moved: an event now
    later.save()
    since = (later.events.order_by("-id").first().at - timedelta(seconds=1)).isoformat()  # type: ignore[union-attr]
    body = client.get("/api/v1/features", {"bbox": "24,60,26,62", "updated_since": since}).json()
    assert [f["id"] for f in body["features"]] == [
        f.pk for f in MapFeature.objects.order_by("id") if f.events.filter(at__gte=since).exists()
    ]
    assert later.pk in [f["id"] for f in body["features"]]


def test_one_feature_shows_its_observations_with_boxes_and_signed_images(client: Client) -> None:
    owner = person("driver")
    frames = frames_along(device(owner, "dev-a"), 2)
    sign = feature("stop", 60.17, 24.94)
    detection(frames[0], sign)
    detection(frames[1], sign)
    anonymous = client.get(f"/api/v1/features/{sign.pk}").json()
    observations = anonymous["properties"]["observations"]
    assert len(observations) == 2
    assert observations[0]["box"] == [100, 120, 160, 180]
    assert "sig=" in observations[0]["image_url"] and "expires=" in observations[0]["image_url"]
    assert "device" not in observations[0]  # anonymous readers get no track
    keyed = client.get(f"/api/v1/features/{sign.pk}", **bearer(consumer_key())).json()
    assert keyed["properties"]["observations"][0]["device"] == "dev-a"


def test_a_missing_feature_is_a_404_in_the_one_error_shape(client: Client) -> None:
    response = client.get("/api/v1/features/999999")
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


def test_the_change_feed_reports_added_moved_and_removed_features_after_a_cursor(
    client: Client,
) -> None:
    start = client.get("/api/v1/changes").json()
    assert start["events"] == []
    sign = feature("stop", 60.17, 24.94)
    sign.lat += 0.0002
    sign.save()
    sign.status = MapFeature.Status.REMOVED
    sign.save()
    body = client.get("/api/v1/changes", {"cursor": start["next"]}).json()
    assert [e["kind"] for e in body["events"]] == ["added", "moved", "removed"]
    assert body["events"][1]["from_position"] == [24.94, 60.17]
    after = client.get("/api/v1/changes", {"cursor": body["next"]}).json()
    assert after["events"] == []


def test_coverage_by_bbox_gives_h3_hexagons_with_frames_and_freshness(client: Client) -> None:
    frames_along(device(person("driver"), "dev-a"), 5)
    body = client.get(
        "/api/v1/coverage", {"bbox": "24.93,60.16,24.95,60.18", "resolution": "9"}
    ).json()
    assert body["features"], body
    cell = body["features"][0]
    assert cell["geometry"]["type"] == "Polygon" and len(cell["geometry"]["coordinates"][0]) == 7
    assert sum(c["properties"]["frames"] for c in body["features"]) == 5
    assert cell["properties"]["last_covered_on"] == T0.date().isoformat()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "bbox or polygon is required"),
        ({"bbox": "1,2,3"}, "four comma-separated"),
        ({"bbox": "25,60,24,61"}, "greater than"),
        ({"polygon": "POINT(1 2)"}, "Polygon"),
        ({"polygon": "nonsense"}, "neither WKT"),
        ({"bbox": "0,0,1,1", "limit": "0"}, "limit must be between"),
        ({"bbox": "0,0,1,1", "cursor": "zzz"}, "cursor"),
        ({"bbox": "0,0,1,1", "state": "wobbly"}, "state must be"),
        ({"bbox": "0,0,1,1", "updated_since": "yesterday"}, "ISO 8601"),
    ],
)
def test_a_bad_feature_query_is_a_400_with_a_clear_message(
    client: Client, query: dict[str, str], message: str
) -> None:
    response = client.get("/api/v1/features", query)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_an_unknown_api_path_answers_json_not_html(client: Client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()
