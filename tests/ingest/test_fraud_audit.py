"""The periodic audit (ingest.audit) over frames stored through the real door."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import protocol
from ingest.audit import Auditor
from ingest.fraud import Check
from ingest.intake import FrameIntake
from ingest.store import LocalObjectStore
from tests.ingest.streams import crop, encode_jpeg, make_frame, offset, world_strip
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame
from webapp.fleet.provisioning import register_device

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


def test_the_audit_flags_every_frame_of_a_device_uploading_another_devices_drive_and_not_the_victim(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path / "images")
    intake = FrameIntake(store)
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    keys = {name: protocol.generate_private_key() for name in ("dev-victim", "dev-copy")}
    for name, key in keys.items():
        register_device(owner, name, protocol.public_key_bytes(key))
    strip = world_strip(11)
    t0 = int((time.time() - 1_800) * 1e6)
    originals = [encode_jpeg(crop(strip, i * STEP_M * 6.0)) for i in range(16)]
    for i, jpeg in enumerate(originals):
        lat, lon = offset(LAT0, LON0, i * STEP_M, 0.0)
        f = make_frame("dev-victim", i + 1, t0 + i * 1_000_000, lat, lon, jpeg, heading_deg=0.0)
        assert (
            intake.handle(
                protocol.topic_for("dev-victim", protocol.Channel.FRAMES),
                protocol.encode(f, keys["dev-victim"]),
            ).status
            == "stored"
        )
    for i, jpeg in enumerate(originals):
        lat, lon = offset(LAT0, LON0, i * STEP_M + 1.5, 2.0)  # the copy's track is jittered
        f = make_frame(
            "dev-copy",
            i + 1,
            t0 + 90_000_000 + i * 1_000_000,
            lat,
            lon,
            _copied(jpeg),
            heading_deg=0.0,
        )
        assert (
            intake.handle(
                protocol.topic_for("dev-copy", protocol.Channel.FRAMES),
                protocol.encode(f, keys["dev-copy"]),
            ).status
            == "stored"
        )

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
    assert Device.objects.get(device_id="dev-copy").trust_evidence["by_check"][
        Check.DUPLICATE_DRIVE
    ] == len(originals)
