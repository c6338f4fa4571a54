"""FrameIntake decides and records; it never raises for bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.intake import FrameIntake
from ingest.store import LocalObjectStore
from tests.ingest.streams import frame_jpeg, world_strip
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.fleet.provisioning import register_device, revoke_device

pytestmark = pytest.mark.django_db

JPEG = frame_jpeg(world_strip(7), 0.0)
OTHER_JPEG = frame_jpeg(world_strip(7), 40.0)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "images")


@pytest.fixture
def intake(store: LocalObjectStore) -> FrameIntake:
    return FrameIntake(store)


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
    intake: FrameIntake, store: LocalObjectStore, device: Device, key: Ed25519PrivateKey
) -> None:
    outcome = intake.handle(TOPIC, protocol.encode(frame(), key))
    assert outcome.status == "stored"
    row = Frame.objects.get(pk=outcome.frame_id)
    assert (row.device_id, row.seq, row.faces_blurred, row.plates_blurred) == (device.pk, 1, 1, 2)
    assert row.image_sha256 == hashlib.sha256(JPEG).hexdigest()
    assert store.get(row.image_sha256) == JPEG
    import h3

    assert h3.int_to_str(row.h3_r12) == h3.latlng_to_cell(row.lat, row.lon, 12)
    assert h3.cell_to_parent(h3.int_to_str(row.h3_r12), 9) == h3.int_to_str(row.h3_r9)


def test_it_stores_a_frame_delivered_twice_once(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    payload = protocol.encode(frame(), key)
    first = intake.handle(TOPIC, payload)
    second = intake.handle(TOPIC, payload)
    assert (first.status, second.status) == ("stored", "duplicate")
    assert second.frame_id == first.frame_id
    assert Frame.objects.count() == 1


def test_it_rejects_a_sequence_number_reused_for_another_image(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    intake.handle(TOPIC, protocol.encode(frame(seq=5), key))
    outcome = intake.handle(TOPIC, protocol.encode(frame(seq=5, jpeg=OTHER_JPEG), key))
    assert (outcome.status, outcome.reason) == ("rejected", "seq_replay")
    assert Frame.objects.count() == 1
    assert RejectedMessage.objects.get().reason == "seq_replay"


def test_it_rejects_a_frame_signed_by_another_key(intake: FrameIntake, device: Device) -> None:
    outcome = intake.handle(TOPIC, protocol.encode(frame(), protocol.generate_private_key()))
    assert (outcome.status, outcome.reason) == ("rejected", "bad_signature")
    rejected = RejectedMessage.objects.get()
    assert (rejected.device_id, rejected.seq, rejected.reason) == ("dev-one", 1, "bad_signature")
    assert Frame.objects.count() == 0


def test_it_rejects_a_frame_from_an_unregistered_device(
    intake: FrameIntake, key: Ed25519PrivateKey
) -> None:
    outcome = intake.handle(
        "devices/dev-ghost/frames", protocol.encode(frame(device_id="dev-ghost"), key)
    )
    assert (outcome.status, outcome.reason) == ("rejected", "unregistered_device")
    assert RejectedMessage.objects.get().device_id == "dev-ghost"


def test_it_rejects_frames_from_a_revoked_device(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    revoke_device("dev-one")
    outcome = intake.handle(TOPIC, protocol.encode(frame(), key))
    assert (outcome.status, outcome.reason) == ("rejected", "revoked_device")


def test_it_rejects_a_frame_published_under_another_devices_topic(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    outcome = intake.handle("devices/dev-two/frames", protocol.encode(frame(), key))
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
    intake: FrameIntake, device: Device, payload: bytes, reason: str
) -> None:
    outcome = intake.handle(TOPIC, payload)
    assert (outcome.status, outcome.reason) == ("rejected", reason)
    assert RejectedMessage.objects.get().payload_bytes == len(payload)


def test_it_rejects_a_signed_jpeg_that_cannot_be_decoded(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    """The markers the door reads are fine, but the quantisation tables are missing."""
    broken = JPEG
    while (i := broken.find(b"\xff\xdb", 0, broken.find(b"\xff\xda"))) >= 0:
        broken = broken[:i] + broken[i + 2 + int.from_bytes(broken[i + 2 : i + 4], "big") :]
    outcome = intake.handle(TOPIC, protocol.encode(frame(jpeg=broken), key))
    assert (outcome.status, outcome.reason) == ("rejected", "undecodable_image")
    assert not Frame.objects.exists()


def test_it_counts_a_rejected_payload_seen_again_instead_of_storing_it_twice(
    intake: FrameIntake, device: Device
) -> None:
    intake.handle(TOPIC, b"garbage")
    intake.handle(TOPIC, b"garbage")
    rejected = RejectedMessage.objects.get()
    assert rejected.times_seen == 2


def test_it_rejects_a_malformed_topic(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    outcome = intake.handle("devices/dev-one/frames/extra", protocol.encode(frame(), key))
    assert (outcome.status, outcome.reason) == ("rejected", "bad_topic")


def test_it_flags_the_same_image_sent_by_a_second_device(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    other_key = protocol.generate_private_key()
    register_device(device.owner, "dev-two", protocol.public_key_bytes(other_key))
    intake.handle(TOPIC, protocol.encode(frame(), key))
    outcome = intake.handle(
        "devices/dev-two/frames", protocol.encode(frame(device_id="dev-two"), other_key)
    )
    assert outcome.status == "stored"
    row = Frame.objects.get(pk=outcome.frame_id)
    assert row.state == Frame.State.FLAGGED
    assert [f["check"] for f in row.flags] == ["duplicate_image"]
    assert row.flags[0]["evidence"]["other_device"] == "dev-one"


def test_a_status_message_marks_the_device_online_and_offline(
    intake: FrameIntake, device: Device, key: Ed25519PrivateKey
) -> None:
    topic = "devices/dev-one/status"
    intake.handle(
        topic,
        protocol.encode(
            protocol.Status("dev-one", 1_780_000_000_000_000, protocol.DeviceState.ONLINE), key
        ),
    )
    device.refresh_from_db()
    assert device.online and device.last_seen_at is not None
    intake.handle(
        topic,
        protocol.encode(
            protocol.Status("dev-one", 1_780_000_000_000_001, protocol.DeviceState.OFFLINE), key
        ),
    )
    device.refresh_from_db()
    assert not device.online


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
