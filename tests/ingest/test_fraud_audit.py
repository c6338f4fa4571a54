"""The periodic audit (ingest.audit) over frames stored through the real door."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.audit import Auditor
from ingest.fraud import Check
from tests.ingest.harness import Ingest
from tests.ingest.streams import crop, encode_jpeg, make_frame, offset, world_strip
from webapp.accounts.models import User
from webapp.fleet import lifecycle
from webapp.fleet.models import Device, Frame
from webapp.fleet.provisioning import register_device
from webapp.images import LocalObjectStore

pytestmark = pytest.mark.django_db

LAT0, LON0 = 60.17, 24.94
STEP_M = 8.0


def _copied(jpeg: bytes) -> bytes:
    """What a duplicate farmer uploads: the picture slightly cropped, re-toned and re-encoded."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    h, w = img.shape[:2]
    cut = cv2.resize(img[8 : h - 8, 12 : w - 12], (w, h), interpolation=cv2.INTER_AREA)
    return encode_jpeg(cv2.convertScaleAbs(cut, alpha=1.04, beta=3), quality=75)


def _send(
    intake: Ingest,
    key: Ed25519PrivateKey,
    device_id: str,
    t_us: int,
    jpeg: bytes,
    *,
    seq: int = 1,
    north_m: float = 0.0,
    east_m: float = 0.0,
) -> Frame:
    lat, lon = offset(LAT0, LON0, north_m, east_m)
    f = make_frame(device_id, seq, t_us, lat, lon, jpeg, heading_deg=0.0)
    out = intake.handle(
        protocol.topic_for(device_id, protocol.Channel.FRAMES), protocol.encode(f, key)
    )
    assert out.status == "stored" and out.frame_id is not None
    return Frame.objects.get(pk=out.frame_id)


def _registered(*names: str) -> dict[str, Ed25519PrivateKey]:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    keys = {name: protocol.generate_private_key() for name in names}
    for name, key in keys.items():
        register_device(owner, name, protocol.public_key_bytes(key))
    return keys


def _copied_drive(intake: Ingest, keys: dict[str, Ed25519PrivateKey], t0: int) -> list[bytes]:
    """dev-victim drives 16 frames north; 90 s later dev-copy uploads them copied, on a
    jittered track. Returns the victim's pictures."""
    strip = world_strip(11)
    originals = [encode_jpeg(crop(strip, i * STEP_M * 6.0)) for i in range(16)]
    for i, jpeg in enumerate(originals):
        _send(
            intake,
            keys["dev-victim"],
            "dev-victim",
            t0 + i * 1_000_000,
            jpeg,
            seq=i + 1,
            north_m=i * STEP_M,
        )
    for i, jpeg in enumerate(originals):
        _send(
            intake,
            keys["dev-copy"],
            "dev-copy",
            t0 + 90_000_000 + i * 1_000_000,
            _copied(jpeg),
            seq=i + 1,
            north_m=i * STEP_M + 1.5,  # the copy's track is jittered
            east_m=2.0,
        )
    return originals


def test_the_audit_flags_every_frame_of_a_device_uploading_another_devices_drive_and_not_the_victim(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path / "images")
    intake = Ingest(store)
    keys = _registered("dev-victim", "dev-copy")
    originals = _copied_drive(intake, keys, int((time.time() - 1_800) * 1e6))

    report = Auditor(store).run()

    copy_flags = [
        next((f for f in fl if f["check"] == Check.DUPLICATE_DRIVE), None)
        for fl in Frame.objects.filter(device__device_id="dev-copy").values_list("flags", flat=True)
    ]
    assert all(f is not None and f["score"] >= 0.5 for f in copy_flags)
    assert copy_flags[0] is not None and copy_flags[0]["evidence"]["other_device"] == "dev-victim"
    assert not Frame.objects.filter(
        device__device_id="dev-victim", state=Frame.State.FLAGGED
    ).exists()
    assert report.by_check[Check.DUPLICATE_DRIVE] == len(originals)
    # what the audit flagged is out of the rewards; the victim's frames still count
    start, end = (
        Frame.objects.order_by("captured_at")[0].captured_at,
        Frame.objects.order_by("-captured_at")[0].captured_at,
    )
    counted = lifecycle.rewardable_frames(start, end + timedelta(seconds=1))
    assert not counted.filter(device__device_id="dev-copy").exists()
    assert counted.filter(device__device_id="dev-victim").count() == 16
    assert Device.objects.get(device_id="dev-copy").trust_evidence["by_check"][
        Check.DUPLICATE_DRIVE
    ] == len(originals)


def _near_duplicate_pair(tmp_path: Path) -> tuple[LocalObjectStore, Frame]:
    """Two devices send one near-identical picture of one spot a minute apart: the door flags
    the second as a near-duplicate; one matching picture does not make a copying pair, so the
    audit does not confirm it."""
    store = LocalObjectStore(tmp_path / "images")
    intake = Ingest(store)
    keys = _registered("dev-first", "dev-second")
    picture = crop(world_strip(3), 500.0)
    t0 = int((time.time() - 1_800) * 1e6)
    _send(intake, keys["dev-first"], "dev-first", t0, encode_jpeg(picture, quality=90))
    second = _send(
        intake, keys["dev-second"], "dev-second", t0 + 60_000_000, encode_jpeg(picture, quality=80)
    )
    assert second.state == Frame.State.FLAGGED
    assert [f["check"] for f in second.flags] == [Check.NEAR_DUPLICATE_IMAGE]
    return store, second


def test_a_near_duplicate_the_audit_clears_is_accepted_and_keeps_the_first_look_evidence(
    tmp_path: Path,
) -> None:
    store, frame = _near_duplicate_pair(tmp_path)
    door = frame.flags[0]
    report = Auditor(store).run()

    frame.refresh_from_db()
    assert frame.state == Frame.State.ACCEPTED
    (cleared,) = frame.flags
    assert (cleared["check"], cleared["score"]) == (Check.NEAR_DUPLICATE_IMAGE, 0.0)
    assert cleared["evidence"]["door_score"] == door["score"]
    assert cleared["evidence"]["door_reason"] == door["reason"]
    assert cleared["evidence"]["other_frame"] == door["evidence"]["other_frame"]
    assert cleared["evidence"]["phash_distance"] == door["evidence"]["phash_distance"]
    assert report.unflagged == 1


def test_the_audit_leaves_a_frame_flagged_by_hand_flagged_when_it_clears_its_near_duplicate_flag(
    tmp_path: Path,
) -> None:
    store, frame = _near_duplicate_pair(tmp_path)
    lifecycle.flag_by_operator([frame.pk], "a reviewer saw a fake")

    report = Auditor(store).run()

    frame.refresh_from_db()
    assert frame.state == Frame.State.FLAGGED
    flags = {f["check"]: f["score"] for f in frame.flags}
    assert flags == {Check.NEAR_DUPLICATE_IMAGE: 0.0, "operator": 1.0}
    assert report.unflagged == 0


def test_the_audit_does_not_confirm_a_near_duplicate_on_the_victims_side_of_a_copied_drive(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path / "images")
    intake = Ingest(store)
    keys = _registered("dev-victim", "dev-copy")
    t0 = int((time.time() - 1_800) * 1e6)
    originals = _copied_drive(intake, keys, t0)
    # The copier's last upload is only re-encoded; then the victim, stopped where its drive
    # ended, takes nearly the same picture again: the door finds the copy first.
    last = cv2.imdecode(np.frombuffer(originals[-1], np.uint8), cv2.IMREAD_COLOR)
    assert last is not None
    _send(
        intake,
        keys["dev-copy"],
        "dev-copy",
        t0 + 106_000_000,
        encode_jpeg(last, quality=75),
        seq=17,
        north_m=15 * STEP_M + 1.5,
        east_m=2.0,
    )
    again = _send(
        intake,
        keys["dev-victim"],
        "dev-victim",
        t0 + 110_000_000,
        encode_jpeg(last, quality=70),
        seq=17,
        north_m=15 * STEP_M,
    )
    assert again.state == Frame.State.FLAGGED
    assert again.flags[0]["evidence"]["other_device"] == "dev-copy"

    Auditor(store).run()

    again.refresh_from_db()
    assert again.state == Frame.State.ACCEPTED
    assert again.flags[0]["score"] == 0.0
    assert not Frame.objects.filter(
        device__device_id="dev-victim", state=Frame.State.FLAGGED
    ).exists()
    assert not Frame.objects.filter(
        device__device_id="dev-copy", state=Frame.State.ACCEPTED
    ).exists()
