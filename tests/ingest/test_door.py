"""The door decides and records; it never raises for bad input, and never decodes an image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.door import Door
from tests.ingest.streams import frame_jpeg, world_strip
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.fleet.provisioning import register_device, revoke_device
from webapp.images import LocalObjectStore

pytestmark = pytest.mark.django_db

JPEG = frame_jpeg(world_strip(7), 0.0)
OTHER_JPEG = frame_jpeg(world_strip(7), 40.0)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "images")


@pytest.fixture
def door(store: LocalObjectStore) -> Door:
    return Door(store)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return protocol.generate_private_key()


@pytest.fixture
def device(key: Ed25519PrivateKey) -> Device:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    device, _password = register_device(owner, "dev-one", protocol.public_key_bytes(key))
    return device


def frame(
    seq: int = 1, jpeg: bytes = JPEG, device_id: str = "dev-one", lat: float = 60.17
) -> protocol.Frame:
    return protocol.Frame(
        device_id=device_id,
        seq=seq,
        captured_at_us=1_780_000_000_000_000,
        position=protocol.Position(
            lat=lat, lon=24.94, heading_deg=90.0, speed_mps=10.0, satellites=8, hdop=0.9
        ),
        camera_id="cam0",
        intrinsics_ref="test",
        quality=protocol.Quality(sharpness=120.0, exposure=0.5, obstruction=0.0),
        privacy=protocol.PrivacyCounts(faces=1, plates=2),
        jpeg=jpeg,
    )


TOPIC = "devices/dev-one/frames"


def test_it_stores_a_valid_frame_with_its_image_and_h3_cells(
    door: Door, store: LocalObjectStore, device: Device, key: Ed25519PrivateKey
) -> None:
    outcome = door.handle(TOPIC, protocol.encode(frame(), key))
    assert outcome.status == "stored"
    row = Frame.objects.get(pk=outcome.frame_id)
    assert (row.device_id, row.seq, row.faces_blurred, row.plates_blurred) == (device.pk, 1, 1, 2)
    assert row.image_sha256 == hashlib.sha256(JPEG).hexdigest()
    assert store.get(row.image_sha256) == JPEG
    import h3

    assert h3.int_to_str(row.h3_r12) == h3.latlng_to_cell(row.lat, row.lon, 12)
    assert h3.cell_to_parent(h3.int_to_str(row.h3_r12), 9) == h3.int_to_str(row.h3_r9)


def test_it_stores_a_frame_delivered_twice_once(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    payload = protocol.encode(frame(), key)
    first = door.handle(TOPIC, payload)
    second = door.handle(TOPIC, payload)
    assert (first.status, second.status) == ("stored", "duplicate")
    assert second.frame_id == first.frame_id
    assert Frame.objects.count() == 1


def test_it_rejects_a_sequence_number_reused_for_another_image(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    door.handle(TOPIC, protocol.encode(frame(seq=5), key))
    outcome = door.handle(TOPIC, protocol.encode(frame(seq=5, jpeg=OTHER_JPEG), key))
    assert (outcome.status, outcome.reason) == ("rejected", "seq_replay")
    assert Frame.objects.count() == 1
    assert RejectedMessage.objects.get().reason == "seq_replay"


def test_it_rejects_a_frame_signed_by_another_key(door: Door, device: Device) -> None:
    outcome = door.handle(TOPIC, protocol.encode(frame(), protocol.generate_private_key()))
    assert (outcome.status, outcome.reason) == ("rejected", "bad_signature")
    rejected = RejectedMessage.objects.get()
    assert (rejected.device_id, rejected.seq, rejected.reason) == ("dev-one", 1, "bad_signature")
    assert Frame.objects.count() == 0


def test_it_rejects_a_frame_from_an_unregistered_device(door: Door, key: Ed25519PrivateKey) -> None:
    outcome = door.handle(
        "devices/dev-ghost/frames", protocol.encode(frame(device_id="dev-ghost"), key)
    )
    assert (outcome.status, outcome.reason) == ("rejected", "unregistered_device")
    assert RejectedMessage.objects.get().device_id == "dev-ghost"


def test_it_rejects_frames_from_a_revoked_device(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    revoke_device("dev-one")
    outcome = door.handle(TOPIC, protocol.encode(frame(), key))
    assert (outcome.status, outcome.reason) == ("rejected", "revoked_device")


def test_it_rejects_a_frame_published_under_another_devices_topic(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    outcome = door.handle("devices/dev-two/frames", protocol.encode(frame(), key))
    assert (outcome.status, outcome.reason) == ("rejected", "topic_mismatch")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "truncated"),
        (b"XX\x01\x01" + b"\x00" * 100, "bad_magic"),
        (b"RM\x09\x01" + b"\x00" * 100, "unsupported_version"),
        (b"RM" + bytes([1]) + b"\x01" + b"\x00" * (protocol.MAX_FRAME_BYTES + 1), "oversized"),
    ],
)
def test_it_rejects_malformed_payloads_with_a_reason(
    door: Door, device: Device, payload: bytes, reason: str
) -> None:
    outcome = door.handle(TOPIC, payload)
    assert (outcome.status, outcome.reason) == ("rejected", reason)
    assert RejectedMessage.objects.get().payload_bytes == len(payload)


def test_it_stores_a_new_frame_pending_its_image_checks_without_decoding_it(
    door: Door, device: Device, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the door decoded an image")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    outcome = door.handle(TOPIC, protocol.encode(frame(), key))
    row = Frame.objects.get(pk=outcome.frame_id)
    assert (row.state, row.image_checked_at, row.phash) == (Frame.State.PENDING, None, None)
    from webapp.jobs.models import Job

    assert list(Job.objects.values_list("kind", "key", "state")) == [
        ("image_check", "dev-one", "pending")
    ]


def test_it_refuses_a_small_jpeg_that_claims_far_more_pixels_than_its_bytes_can_hold(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    """A 600-byte file that says 8192x4880: a decompression bomb, refused from its header."""
    sof = b"\xff\xc0\x00\x11\x08" + (4880).to_bytes(2, "big") + (8192).to_bytes(2, "big")
    sof += b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    bomb = b"\xff\xd8" + sof + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    bomb += bytes(600 - len(bomb) - 2) + b"\xff\xd9"
    assert len(bomb) == 600
    outcome = door.handle(TOPIC, protocol.encode(frame(jpeg=bomb), key))
    assert (outcome.status, outcome.reason) == ("rejected", "image_too_large")
    assert "pixels a byte" in outcome.detail
    assert not Frame.objects.exists()


def test_it_counts_a_rejected_payload_seen_again_instead_of_storing_it_twice(
    door: Door, device: Device
) -> None:
    door.handle(TOPIC, b"garbage")
    door.handle(TOPIC, b"garbage")
    rejected = RejectedMessage.objects.get()
    assert rejected.times_seen == 2


def test_it_rejects_a_malformed_topic(door: Door, device: Device, key: Ed25519PrivateKey) -> None:
    outcome = door.handle("devices/dev-one/frames/extra", protocol.encode(frame(), key))
    assert (outcome.status, outcome.reason) == ("rejected", "bad_topic")


def test_it_flags_the_same_image_sent_by_a_second_device(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    other_key = protocol.generate_private_key()
    register_device(device.owner, "dev-two", protocol.public_key_bytes(other_key))
    door.handle(TOPIC, protocol.encode(frame(), key))
    outcome = door.handle(
        "devices/dev-two/frames", protocol.encode(frame(device_id="dev-two"), other_key)
    )
    assert outcome.status == "stored"
    row = Frame.objects.get(pk=outcome.frame_id)
    assert row.state == Frame.State.FLAGGED
    assert [f["check"] for f in row.flags] == ["duplicate_image"]
    assert row.flags[0]["evidence"]["other_device"] == "dev-one"


def test_a_status_message_marks_the_device_online_and_offline(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    topic = "devices/dev-one/status"
    door.handle(
        topic,
        protocol.encode(
            protocol.Status("dev-one", 1_780_000_000_000_000, protocol.DeviceState.ONLINE), key
        ),
    )
    device.refresh_from_db()
    assert device.online and device.last_seen_at is not None
    door.handle(
        topic,
        protocol.encode(
            protocol.Status("dev-one", 1_780_000_000_000_001, protocol.DeviceState.OFFLINE), key
        ),
    )
    device.refresh_from_db()
    assert not device.online


def test_the_newest_telemetry_is_kept_for_the_dashboard_and_an_older_one_does_not_replace_it(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    topic = "devices/dev-one/telemetry"
    t0 = 1_780_000_000_000_000

    def send(seq: int, sent_at_us: int, data: dict[str, object]) -> str:
        message = protocol.Telemetry("dev-one", seq, sent_at_us, data)
        return door.handle(topic, protocol.encode(message, key)).status

    assert send(2, t0 + 30_000_000, {"outbox": {"depth": 7, "bytes": 1500}}) == "ignored"
    device.refresh_from_db()
    assert device.telemetry["outbox"]["depth"] == 7
    assert device.telemetry_at is not None and device.last_seen_at is not None
    send(1, t0, {"outbox": {"depth": 99, "bytes": 1}})  # older, delivered late
    device.refresh_from_db()
    assert device.telemetry["outbox"]["depth"] == 7
    send(3, t0 + 60_000_000, {"outbox": {"depth": 3}, "log": "x" * 20_000})  # too big to keep
    device.refresh_from_db()
    assert device.telemetry == {"outbox": {"depth": 3}, "truncated": True}


def test_a_stored_frame_keeps_its_device_signature_which_verifies_its_envelope(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    payload = protocol.encode(frame(), key)
    row = Frame.objects.get(pk=door.handle(TOPIC, payload).frame_id)
    assert bytes(row.signature) == payload[-64:]
    # what a consumer re-checks: the stored signature over the envelope's signed bytes
    key.public_key().verify(bytes(row.signature), protocol.decode(payload).signed_bytes)


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 360), (320, 240), (100, 80)])
def test_the_reduced_decode_gives_the_pixels_of_a_pil_draft_decode(size: tuple[int, int]) -> None:
    """`reduced_grey` (OpenCV) keeps the pixels the door's thresholds were set on (PIL draft)."""
    import io

    import numpy as np
    from PIL import Image

    from ingest.imaging import reduced_grey

    w, h = size
    jpeg = frame_jpeg(world_strip(3, length_px=max(8000, 4 * w), height=h), 10.0, 85, w)
    grey = reduced_grey(jpeg)
    with Image.open(io.BytesIO(jpeg)) as im:
        im.draft("L", (grey.shape[1], grey.shape[0]))
        expected = np.asarray(im.convert("L"))
    assert grey.shape == expected.shape and min(grey.shape) >= min(96, h)
    assert np.array_equal(grey, expected)


def resigned(payload: bytes, key: Ed25519PrivateKey, seq: int) -> bytes:
    """`payload` with another seq written into its bytes, signed again (no encoder would)."""
    body = payload[: -protocol.SIGNATURE_BYTES]
    body = body[:4] + seq.to_bytes(8, "big") + body[12:]
    return body + key.sign(protocol.DOMAIN_TAG + body)


def test_a_validly_signed_frame_with_a_seq_past_two_to_the_63_is_refused_not_fatal(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    """The column is signed 64-bit: such a seq once killed the worker on every redelivery."""
    payload = resigned(protocol.encode(frame(seq=1), key), key, 2**63)
    outcome = door.handle(TOPIC, payload)
    assert (outcome.status, outcome.reason) == ("rejected", "bad_field")
    assert "seq" in outcome.detail
    assert door.handle(TOPIC, protocol.encode(frame(seq=2), key)).status == "stored"


def test_a_message_whose_commit_fails_is_isolated_from_its_batch_as_an_internal_error(
    door: Door, device: Device, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp.fleet import lifecycle

    real = lifecycle.store_frames

    def failing(rows: list[Frame]) -> list[Frame]:
        if any(r.seq == 2 for r in rows):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(rows)

    monkeypatch.setattr(lifecycle, "store_frames", failing)
    batch = [
        door.prepare(TOPIC, protocol.encode(frame(seq=s, lat=60.17 + s * 1e-4), key))
        for s in (1, 2, 3)
    ]
    outcomes = door.commit(batch)
    assert [(o.status, o.reason) for o in outcomes] == [
        ("stored", ""),
        ("rejected", "internal_error"),
        ("stored", ""),
    ]
    assert "OverflowError" in outcomes[1].detail
    assert sorted(Frame.objects.values_list("seq", flat=True)) == [1, 3]
    assert RejectedMessage.objects.get().reason == "internal_error"


def test_an_image_store_failure_is_not_a_rejection_the_batch_is_left_for_redelivery(
    door: Door, device: Device, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp.images import ObjectStoreError

    def down(*args: object, **kwargs: object) -> None:
        raise ObjectStoreError("disk unavailable")

    monkeypatch.setattr(door.store, "put_many", down)
    with pytest.raises(ObjectStoreError):
        door.handle(TOPIC, protocol.encode(frame(), key))
    assert not Frame.objects.exists() and not RejectedMessage.objects.exists()


def test_outcomes_carry_what_a_receipt_names(
    door: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    stored = door.handle(TOPIC, protocol.encode(frame(seq=7), key))
    again = door.handle(TOPIC, protocol.encode(frame(seq=7), key))
    forged = door.handle(TOPIC, protocol.encode(frame(seq=8), protocol.generate_private_key()))
    garbage = door.handle(TOPIC, b"RM\x01\x01" + (9).to_bytes(8, "big") + b"junk")
    assert [(o.status, o.seq, o.device_id, o.frame_channel) for o in (stored, again, forged)] == [
        ("stored", 7, "dev-one", True),
        ("duplicate", 7, "dev-one", True),
        ("rejected", 8, "dev-one", True),
    ]
    assert (garbage.status, garbage.seq, garbage.device_id) == ("rejected", 9, "dev-one")
    assert (
        garbage.payload_sha256
        == hashlib.sha256(b"RM\x01\x01" + (9).to_bytes(8, "big") + b"junk").digest()
    )
