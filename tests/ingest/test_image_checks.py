"""The image-check job: each stored frame decoded once, checked, and out of `pending`."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.fraud import Check
from tests.ingest.harness import Ingest
from tests.ingest.streams import HonestDrive, encode_jpeg, make_frame
from webapp.accounts.models import User
from webapp.fleet.models import Frame
from webapp.fleet.provisioning import register_device
from webapp.images import LocalObjectStore
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db
TOPIC = "devices/dev-a/frames"


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    out = {d: protocol.generate_private_key() for d in ("dev-a", "dev-b")}
    for name, key in out.items():
        register_device(owner, name, protocol.public_key_bytes(key))
    return out


@pytest.fixture
def ingest(tmp_path: Path) -> Ingest:
    return Ingest(LocalObjectStore(tmp_path / "images"))


def test_every_frame_is_decoded_once_and_leaves_pending_with_its_facts(
    ingest: Ingest, keys: dict[str, Ed25519PrivateKey]
) -> None:
    drive = HonestDrive("dev-a", keys["dev-a"], seed=1)
    for s in range(1, 13):
        ingest.door.handle(TOPIC, drive.payload(s))
    assert set(Frame.objects.values_list("state", flat=True)) == {"pending"}
    ingest.check_images()
    assert ingest.checks.decodes == 12
    rows = list(Frame.objects.order_by("seq"))
    assert {r.state for r in rows} == {"accepted"}
    assert all(r.phash is not None and len(bytes(r.thumb)) == 64 * 36 for r in rows)
    assert all(r.server_sharpness and r.server_highlights is not None for r in rows)
    assert rows[0].visual_prev is None  # nothing before the first frame
    for prev, cur in itertools.pairwise(rows):
        assert cur.visual_prev == prev.pk and cur.visual_flow is not None
        assert cur.visual_flow > 0.002  # the honest car moved 10 m: the picture moved
    assert Job.objects.get().state == "done"


def test_a_frame_that_arrives_late_is_measured_against_its_neighbours(
    ingest: Ingest, keys: dict[str, Ed25519PrivateKey]
) -> None:
    drive = HonestDrive("dev-a", keys["dev-a"], seed=2)
    for s in (1, 3):
        ingest.handle(TOPIC, drive.payload(s))
    third = Frame.objects.get(seq=3)
    assert third.visual_prev == Frame.objects.get(seq=1).pk
    ingest.handle(TOPIC, drive.payload(2))
    second, third = Frame.objects.get(seq=2), Frame.objects.get(seq=3)
    assert second.visual_prev == Frame.objects.get(seq=1).pk
    assert third.visual_prev == second.pk  # measured again, now against its true predecessor
    assert ingest.checks.decodes == 3  # still once each: the successor's decode was kept


def test_another_devices_near_copy_is_flagged_a_near_duplicate(
    ingest: Ingest, keys: dict[str, Ed25519PrivateKey]
) -> None:
    drive = HonestDrive("dev-a", keys["dev-a"], seed=3)
    ingest.handle(TOPIC, drive.payload(1))
    original = drive.frame(1)
    import cv2

    picture = cv2.imdecode(np.frombuffer(original.jpeg, np.uint8), cv2.IMREAD_COLOR)
    recoded = encode_jpeg(picture, quality=80)  # the same picture, other bytes
    copy = make_frame("dev-b", 1, original.captured_at_us + 60_000_000, 60.2, 24.9, recoded)
    out = ingest.handle("devices/dev-b/frames", protocol.encode(copy, keys["dev-b"]))
    row = Frame.objects.get(pk=out.frame_id)
    assert row.state == Frame.State.FLAGGED
    assert [f["check"] for f in row.flags] == [Check.NEAR_DUPLICATE_IMAGE], row.flags
    assert row.flags[0]["evidence"]["other_device"] == "dev-a"


def test_a_flat_grey_frame_is_flagged_low_quality(
    ingest: Ingest, keys: dict[str, Ed25519PrivateKey]
) -> None:
    grey = encode_jpeg(np.full((270, 480, 3), 128, np.uint8))
    f = make_frame(
        "dev-a", 1, HonestDrive("dev-a", keys["dev-a"], seed=4).start_us, 60.17, 24.94, grey
    )
    out = ingest.handle(TOPIC, protocol.encode(f, keys["dev-a"]))
    row = Frame.objects.get(pk=out.frame_id)
    assert (row.state, [x["check"] for x in row.flags]) == ("flagged", [Check.LOW_QUALITY])


def test_a_jpeg_whose_header_passes_but_whose_data_does_not_decode_is_flagged(
    ingest: Ingest, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """The markers the door reads are fine, but the quantisation tables are missing."""
    drive = HonestDrive("dev-a", keys["dev-a"], seed=5)
    broken = drive.frame(1).jpeg
    while (i := broken.find(b"\xff\xdb", 0, broken.find(b"\xff\xda"))) >= 0:
        broken = broken[:i] + broken[i + 2 + int.from_bytes(broken[i + 2 : i + 4], "big") :]
    f = make_frame("dev-a", 1, drive.start_us, 60.17, 24.94, broken)
    out = ingest.handle(TOPIC, protocol.encode(f, keys["dev-a"]))
    assert out.status == "stored"  # the door does not decode
    row = Frame.objects.get(pk=out.frame_id)
    assert (row.state, [x["check"] for x in row.flags]) == ("flagged", [Check.UNDECODABLE_IMAGE])
    assert row.image_checked_at is not None and Job.objects.get().state == "done"


def test_a_lease_covers_at_most_max_frames_and_the_rest_stays_due(
    ingest: Ingest, keys: dict[str, Ed25519PrivateKey]
) -> None:
    drive = HonestDrive("dev-a", keys["dev-a"], seed=6)
    for s in range(1, 6):
        ingest.door.handle(TOPIC, drive.payload(s))
    ingest.checks.max_frames = 2
    assert ingest.worker.run_once() == 1
    assert Frame.objects.filter(state="pending").count() == 3
    assert Job.objects.get().state == "pending"
    ingest.check_images()
    assert not Frame.objects.filter(state="pending").exists()


def test_the_image_check_refuses_a_decompression_bomb_too() -> None:
    from ingest.imaging import ImageDecodeError, reduced_grey

    sof = b"\xff\xc0\x00\x11\x08" + (4880).to_bytes(2, "big") + (8192).to_bytes(2, "big")
    sof += b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    bomb = b"\xff\xd8" + sof + bytes(580) + b"\xff\xd9"
    with pytest.raises(ImageDecodeError, match="pixels a byte"):
        reduced_grey(bomb, max_pixels_per_byte=1024)
