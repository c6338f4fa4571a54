"""GET /api/v1/frames?bbox= returns stored frames as GeoJSON, and refuses bad queries clearly."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from broker import free_port
from tests.webapp.rows import frame_row
from webapp.config import ServerSettings
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame
from webapp.images import LocalObjectStore, S3ObjectStore

pytestmark = pytest.mark.django_db


@pytest.fixture
def frames() -> list[Frame]:
    owner = User.objects.create_user("driver")
    device = Device.objects.create(device_id="dev-one", owner=owner, public_key=b"\x00" * 32)
    rows = []
    for i, (lat, lon) in enumerate([(60.17, 24.94), (60.18, 24.95), (61.0, 25.5)]):
        at = datetime(2026, 6, 1, 9, 0, i, tzinfo=UTC)
        rows.append(frame_row(device, i + 1, at, lat=lat, lon=lon, image_sha256=f"{i:064x}"))
    return rows


def test_it_returns_the_frames_inside_the_bbox_as_geojson(
    client: Client, frames: list[Frame]
) -> None:
    response = client.get("/api/v1/frames", {"bbox": "24.9,60.1,25.0,60.2"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["truncated"] is False
    assert [f["properties"]["seq"] for f in body["features"]] == [1, 2]
    assert body["features"][0]["geometry"] == {"type": "Point", "coordinates": [24.94, 60.17]}
    assert body["features"][0]["properties"]["image_url"].endswith(f"/api/v1/images/{0:064x}.jpg")


def test_it_says_when_the_limit_cut_the_result(client: Client, frames: list[Frame]) -> None:
    body = client.get("/api/v1/frames", {"bbox": "20,55,30,65", "limit": "2"}).json()
    assert len(body["features"]) == 2 and body["truncated"] is True


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "bbox is required"),
        ({"bbox": "1,2,3"}, "four comma-separated"),
        ({"bbox": "a,b,c,d"}, "not a number"),
        ({"bbox": "25,60,24,61"}, "greater than"),
        ({"bbox": "0,0,200,10"}, "outside WGS84"),
        ({"bbox": "0,0,1,1", "limit": "0"}, "limit must be between"),
        ({"bbox": "0,0,1,1", "limit": "x"}, "limit must be an integer"),
    ],
)
def test_it_rejects_a_bad_query_with_a_clear_message(
    client: Client, query: dict[str, str], message: str
) -> None:
    response = client.get("/api/v1/frames", query)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_an_image_no_frame_refers_to_is_not_served(client: Client, frames: list[Frame]) -> None:
    assert client.get(f"/api/v1/images/{'f' * 64}.jpg").status_code == 404


def test_stats_count_frames_and_rejections(client: Client, frames: list[Frame]) -> None:
    assert client.get("/api/v1/stats").json()["frames"] == 3


def _frame_with_image(frame: Frame, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    Frame.objects.filter(pk=frame.pk).update(image_sha256=sha)
    return sha


def test_an_image_is_served_from_the_local_store(client: Client, frames: list[Frame]) -> None:
    data = b"\xff\xd8 a local jpeg \xff\xd9"
    sha = _frame_with_image(frames[0], data)
    LocalObjectStore(settings.SERVER.image_dir).put(data)
    response = client.get(f"/api/v1/images/{sha}.jpg")
    assert (response.status_code, response["Content-Type"]) == (200, "image/jpeg")
    assert response.content == data


def test_an_image_is_served_from_the_s3_store_when_that_is_the_setting(
    client: Client, frames: list[Frame], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    moto = pytest.importorskip("moto")
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ROADMESH_IMAGE_STORE": "s3",
        "ROADMESH_S3_BUCKET": "roadmesh-api-test",
    }.items():
        monkeypatch.setenv(name, value)
    settings.SERVER = ServerSettings.from_env()
    data = b"\xff\xd8 an s3 jpeg \xff\xd9"
    sha = _frame_with_image(frames[0], data)
    with moto.mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="roadmesh-api-test")
        S3ObjectStore("roadmesh-api-test").put(data)
        response = client.get(f"/api/v1/images/{sha}.jpg")
        missing = _frame_with_image(frames[1], b"never uploaded")
        assert client.get(f"/api/v1/images/{missing}.jpg").status_code == 404
    assert response.status_code == 200
    assert response.content == data
    assert not (settings.SERVER.image_dir / sha[:2]).exists()


def test_an_unreachable_image_store_answers_503(
    client: Client, frames: list[Frame], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    pytest.importorskip("boto3")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_MAX_ATTEMPTS": "1",
        "ROADMESH_IMAGE_STORE": "s3",
        "ROADMESH_S3_BUCKET": "roadmesh-api-test",
        "ROADMESH_S3_REGION": "us-east-1",
        "ROADMESH_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }.items():
        monkeypatch.setenv(name, value)
    settings.SERVER = ServerSettings.from_env()
    sha = _frame_with_image(frames[0], b"somewhere else")
    response = client.get(f"/api/v1/images/{sha}.jpg")
    assert response.status_code == 503
    assert "unavailable" in response.json()["error"]
