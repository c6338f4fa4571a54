"""Frames in the consumer API: who may read them (a key, the owner, nobody else), polygon
and week queries, cursor pages, signed image URLs, and provenance a consumer can check."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.test import Client

import protocol
from broker import free_port
from tests.webapp.people import T0, bearer, cells, consumer_key, frames_along, person
from tests.webapp.rows import frame_row
from webapp.accounts.models import User
from webapp.config import ServerSettings
from webapp.fleet.models import Device, Frame
from webapp.images import LocalObjectStore, S3ObjectStore

pytestmark = pytest.mark.django_db

BBOX = "24.9,60.1,25.0,60.2"


@pytest.fixture
def fleet() -> dict[str, Any]:
    owner, other = person("owner"), person("other")
    mine = Device.objects.create(device_id="dev-mine", owner=owner, public_key=b"\x01" * 32)
    theirs = Device.objects.create(device_id="dev-theirs", owner=other, public_key=b"\x02" * 32)
    return {
        "owner": owner,
        "other": other,
        "mine": frames_along(mine, 3),
        "theirs": frames_along(theirs, 2, lon=24.95),
    }


def _seqs(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(f["properties"]["device"], f["properties"]["seq"]) for f in body["features"]]


def test_an_anonymous_reader_gets_no_frames_but_a_401_saying_what_is_needed(
    client: Client, fleet: dict[str, Any]
) -> None:
    response = client.get("/api/v1/frames", {"bbox": BBOX})
    assert response.status_code == 401
    assert "API key" in response.json()["error"]
    assert client.get(f"/api/v1/frames/{fleet['mine'][0].pk}").status_code == 401
    assert client.get("/api/v1/drives", {"bbox": BBOX}).status_code == 401


def test_the_owner_reads_their_own_frames_and_not_another_drivers(
    client: Client, fleet: dict[str, Any]
) -> None:
    client.force_login(fleet["owner"])
    body = client.get("/api/v1/frames", {"bbox": BBOX}).json()
    assert _seqs(body) == [("dev-mine", 1), ("dev-mine", 2), ("dev-mine", 3)]
    assert client.get(f"/api/v1/frames/{fleet['mine'][0].pk}").status_code == 200
    assert client.get(f"/api/v1/frames/{fleet['theirs'][0].pk}").status_code == 404


def test_another_user_reads_none_of_the_owners_frames(
    client: Client, fleet: dict[str, Any]
) -> None:
    client.force_login(person("stranger"))
    assert client.get("/api/v1/frames", {"bbox": BBOX}).json()["features"] == []
    assert client.get(f"/api/v1/frames/{fleet['mine'][0].pk}").status_code == 404


def test_a_consumer_key_reads_every_frame(client: Client, fleet: dict[str, Any]) -> None:
    body = client.get("/api/v1/frames", {"bbox": BBOX}, **bearer(consumer_key())).json()
    assert len(body["features"]) == 5
    assert body["features"][0]["geometry"]["type"] == "Point"


def test_a_revoked_or_made_up_key_reads_nothing(client: Client, fleet: dict[str, Any]) -> None:
    raw = consumer_key()
    from webapp.api.models import ApiKey

    ApiKey.objects.get().revoke()
    assert client.get("/api/v1/frames", {"bbox": BBOX}, **bearer(raw)).status_code == 401
    fake = raw[:-4] + "AAAA"
    assert client.get("/api/v1/frames", {"bbox": BBOX}, **bearer(fake)).status_code == 401


def test_frames_are_chosen_by_polygon_and_iso_week(client: Client, fleet: dict[str, Any]) -> None:
    key = bearer(consumer_key())
    thin = "POLYGON((24.935 60.1, 24.945 60.1, 24.945 60.2, 24.935 60.2, 24.935 60.1))"
    body = client.get("/api/v1/frames", {"polygon": thin}, **key).json()
    assert {d for d, _ in _seqs(body)} == {"dev-mine"}
    week = T0.isocalendar()
    same = client.get(
        "/api/v1/frames", {"bbox": BBOX, "week": f"{week.year}-W{week.week:02d}"}, **key
    )
    assert len(same.json()["features"]) == 5
    later = T0 + timedelta(days=7)
    nxt = later.isocalendar()
    empty = client.get(
        "/api/v1/frames", {"bbox": BBOX, "week": f"{nxt.year}-W{nxt.week:02d}"}, **key
    )
    assert empty.json()["features"] == []
    assert (
        client.get("/api/v1/frames", {"bbox": BBOX, "week": "2026-W99"}, **key).status_code == 400
    )


def test_cursor_pages_of_frames_cover_each_frame_once(
    client: Client, fleet: dict[str, Any]
) -> None:
    key = bearer(consumer_key())
    seen, cursor = [], None
    for _ in range(10):
        query = {"bbox": BBOX, "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/frames", query, **key).json()
        seen += _seqs(body)
        cursor = body["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(
        [("dev-mine", i) for i in (1, 2, 3)] + [("dev-theirs", i) for i in (1, 2)]
    )
    assert len(seen) == 5


def _with_image(frame: Frame, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    Frame.objects.filter(pk=frame.pk).update(image_sha256=sha)
    LocalObjectStore(settings.SERVER.image_dir).put(data)
    return sha


def test_a_signed_image_url_serves_the_jpeg_until_it_expires(
    client: Client, fleet: dict[str, Any], web: Any
) -> None:
    _with_image(fleet["mine"][0], b"\xff\xd8 a jpeg \xff\xd9")
    key = bearer(consumer_key())
    body = client.get(f"/api/v1/frames/{fleet['mine'][0].pk}", **key).json()
    url = urlparse(body["properties"]["image_url"])
    anonymous = Client()
    response = anonymous.get(f"{url.path}?{url.query}")
    assert (response.status_code, response.content) == (200, b"\xff\xd8 a jpeg \xff\xd9")
    q = parse_qs(url.query)
    tampered = anonymous.get(
        url.path, {"expires": str(int(q["expires"][0]) + 99), "sig": q["sig"][0]}
    )
    assert tampered.status_code == 403
    expired = anonymous.get(url.path, {"expires": str(int(time.time()) - 1), "sig": q["sig"][0]})
    assert expired.status_code == 403
    assert anonymous.get(url.path).status_code == 401  # no key, no login, no signature


def test_an_image_is_served_to_its_owner_and_not_to_another_user(
    client: Client, fleet: dict[str, Any]
) -> None:
    sha = _with_image(fleet["mine"][1], b"\xff\xd8 mine \xff\xd9")
    client.force_login(fleet["owner"])
    assert client.get(f"/api/v1/images/{sha}.jpg").status_code == 200
    client.force_login(fleet["other"])
    assert client.get(f"/api/v1/images/{sha}.jpg").status_code == 404


def test_drives_are_the_owners_tracks_split_at_long_gaps(
    client: Client, fleet: dict[str, Any]
) -> None:
    mine = Device.objects.get(device_id="dev-mine")
    frame_row(
        mine,
        9,
        T0 + timedelta(hours=2),
        lat=60.171,
        lon=24.94,
        state="accepted",
        **cells(60.171, 24.94),
    )
    client.force_login(fleet["owner"])
    body = client.get("/api/v1/drives", {"bbox": BBOX}).json()
    assert [(d["properties"]["device"], d["properties"]["frames"]) for d in body["features"]] == [
        ("dev-mine", 3),
        ("dev-mine", 1),
    ]
    assert body["features"][0]["geometry"]["type"] == "LineString"


def verify_provenance(frame: dict[str, Any], jpeg: bytes) -> bool:
    """The check docs/api.md shows a consumer: rebuild the signed bytes, verify the signature."""
    p = frame["properties"]["provenance"]
    e = p["envelope"]
    message = protocol.Frame(
        device_id=e["device_id"],
        seq=e["seq"],
        captured_at_us=e["captured_at_us"],
        position=protocol.Position(
            lat=e["lat"],
            lon=e["lon"],
            alt_m=e["alt_m"],
            heading_deg=e["heading_deg"],
            speed_mps=e["speed_mps"],
            fix=protocol.FixType(e["fix"]),
            satellites=e["satellites"],
            hdop=e["hdop"],
        ),
        camera_id=e["camera_id"],
        intrinsics_ref=e["intrinsics_ref"],
        quality=protocol.Quality(**e["quality"]),
        privacy=protocol.PrivacyCounts(**e["privacy"]),
        jpeg=jpeg,
    )
    key = protocol.load_public_key(bytes.fromhex(p["public_key"]))
    try:
        key.verify(bytes.fromhex(p["signature"]), protocol.canonical_bytes(message))
    except Exception:
        return False
    return True


def test_a_consumer_can_check_a_frames_signature_from_its_provenance(client: Client) -> None:
    key = Ed25519PrivateKey.generate()
    owner = User.objects.create_user("signer")
    dev = Device.objects.create(
        device_id="dev-sig", owner=owner, public_key=protocol.public_key_bytes(key)
    )
    jpeg = b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"
    message = protocol.Frame(
        device_id="dev-sig",
        seq=7,
        captured_at_us=int(T0.timestamp() * 1_000_000) + 123_456,
        position=protocol.Position(
            lat=60.1712345,
            lon=24.9412345,
            alt_m=12.5,
            heading_deg=91.25,
            speed_mps=8.5,
            fix=protocol.FixType.FIX_3D,
            satellites=11,
            hdop=0.7,
        ),
        camera_id="cam0",
        intrinsics_ref="imx-1",
        quality=protocol.Quality(sharpness=0.8, exposure=0.5, obstruction=0.0),
        privacy=protocol.PrivacyCounts(faces=1, plates=2),
        jpeg=jpeg,
    )
    signed = protocol.decode(protocol.encode(message, key))
    m = signed.message
    assert isinstance(m, protocol.Frame)
    row = frame_row(
        dev,
        m.seq,
        m.captured_at,
        lat=m.position.lat,
        lon=m.position.lon,
        alt_m=m.position.alt_m,
        heading_deg=m.position.heading_deg,
        speed_mps=m.position.speed_mps,
        fix_type=int(m.position.fix),
        satellites=m.position.satellites,
        hdop=m.position.hdop,
        camera_id=m.camera_id,
        intrinsics_ref=m.intrinsics_ref,
        quality_sharpness=m.quality.sharpness,
        quality_exposure=m.quality.exposure,
        quality_obstruction=m.quality.obstruction,
        faces_blurred=m.privacy.faces,
        plates_blurred=m.privacy.plates,
        image_sha256=m.image_sha256.hex(),
        image_bytes=len(jpeg),
        signature=signed.signature,
    )
    body = client.get(f"/api/v1/frames/{row.pk}", **bearer(consumer_key())).json()
    assert verify_provenance(body, jpeg)
    assert not verify_provenance(body, jpeg[:-3] + b"\x00\xff\xd9")  # another picture


def test_stats_count_frames_and_features(client: Client, fleet: dict[str, Any]) -> None:
    body = client.get("/api/v1/stats").json()
    assert body["frames"] == 5 and body["devices"] == 2


def test_an_image_is_served_from_the_s3_store_when_that_is_the_setting(
    client: Client, fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Any
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
    sha = hashlib.sha256(data).hexdigest()
    Frame.objects.filter(pk=fleet["mine"][0].pk).update(image_sha256=sha)
    client.force_login(fleet["owner"])
    with moto.mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="roadmesh-api-test")
        S3ObjectStore("roadmesh-api-test").put(data)
        response = client.get(f"/api/v1/images/{sha}.jpg")
    assert response.status_code == 200
    assert response.content == data
    assert not (settings.SERVER.image_dir / sha[:2]).exists()


def test_an_unreachable_image_store_answers_503(
    client: Client, fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Any
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
    sha = hashlib.sha256(b"somewhere else").hexdigest()
    Frame.objects.filter(pk=fleet["mine"][0].pk).update(image_sha256=sha)
    client.force_login(fleet["owner"])
    response = client.get(f"/api/v1/images/{sha}.jpg")
    assert response.status_code == 503
    assert "unavailable" in response.json()["error"]


def test_a_frame_the_server_reblurred_is_shown_only_as_its_derived_image(
    client: Client, fleet: dict[str, Any]
) -> None:
    from webapp.mapping.models import DerivedImage

    frame = fleet["mine"][0]
    original = _with_image(frame, b"\xff\xd8 a face the device missed \xff\xd9")
    store = LocalObjectStore(settings.SERVER.image_dir)
    derived = store.put(b"\xff\xd8 the face blurred by the server \xff\xd9")
    DerivedImage.objects.create(
        frame=frame, image_sha256=derived, source_sha256=original, model_version="t"
    )
    key = bearer(consumer_key())
    body = client.get(f"/api/v1/frames/{frame.pk}", **key).json()["properties"]
    assert body["image_sha256"] == original  # what the device signed
    assert body["public_image_sha256"] == derived
    url = urlparse(body["image_url"])
    assert url.path == f"/api/v1/images/{derived}.jpg"
    assert Client().get(f"{url.path}?{url.query}").content.startswith(b"\xff\xd8 the face blurred")
    assert client.get(f"/api/v1/images/{original}.jpg", **key).status_code == 404
    client.force_login(fleet["owner"])
    assert client.get(f"/api/v1/images/{original}.jpg").status_code == 404
