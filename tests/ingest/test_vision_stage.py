"""The vision job on the image-check job's decode: detections, the privacy re-check's
derived images and per-device tallies, processed frames; all or nothing per job."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.image_checks import ImageCheckHandler
from tests.ingest.streams import HonestDrive
from vision.detector import Detection as Found
from webapp.accounts.models import User
from webapp.fleet.models import Frame
from webapp.fleet.provisioning import register_device
from webapp.images import LocalObjectStore
from webapp.jobs.models import Job
from webapp.jobs.worker import Worker
from webapp.mapping.models import DerivedImage, Detection, PrivacyTally, public_image_sha256
from webapp.mapping.vision_job import VISION, VisionHandler, VisionStage, sweep

pytestmark = pytest.mark.django_db
TOPIC = "devices/dev-a/frames"
FACE = (100.0, 60.0, 140.0, 110.0)


class FakeDetector:
    """Finds a stop sign in every frame and an unblurred face in every third."""

    model_version = "fake-1@000000000000"
    model_sha256 = "0" * 64

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.images = 0

    def detect(self, images):
        if self.fail:
            raise RuntimeError("the GPU fell off the bus")
        out = []
        for _im in images:
            self.images += 1
            found = [Found(0, "stop", 0.9, 300.0, 50.0, 330.0, 80.0)]
            if self.images % 3 == 1:
                found.append(Found(11, "face", 0.8, *FACE))
            found.append(Found(11, "face", 0.1, 0.0, 0.0, 10.0, 10.0))  # too unsure to blur
            out.append(found)
        return out


@pytest.fixture
def key() -> Ed25519PrivateKey:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    k = protocol.generate_private_key()
    register_device(owner, "dev-a", protocol.public_key_bytes(k))
    return k


def door(store: LocalObjectStore, key: Ed25519PrivateKey, seqs: range) -> None:
    from ingest.door import Door

    d = Door(store)
    drive = HonestDrive("dev-a", key, seed=4)
    for s in seqs:
        d.handle(TOPIC, drive.payload(s))


def test_the_stage_runs_on_the_checks_decode_and_writes_what_it_found(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    store = LocalObjectStore(tmp_path / "images")
    door(store, key, range(1, 7))
    stage = VisionStage(FakeDetector(), store)
    checks = ImageCheckHandler(store, stage=stage)
    Worker(checks).run_until_idle()
    assert checks.decodes == 6 and checks.colour_decodes == 6
    assert set(Frame.objects.values_list("state", flat=True)) == {"processed"}
    assert Detection.objects.count() == 6
    d = Detection.objects.first()
    assert d is not None
    assert (d.label, d.model_sha256, d.model_version) == ("stop", "0" * 64, "fake-1@000000000000")
    assert d.bearing_deg is not None and d.range_m is not None and d.range_m > 0
    derived = list(DerivedImage.objects.order_by("frame_id"))
    assert len(derived) == 2  # frames 1 and 4 had a face the device left
    tally = PrivacyTally.objects.get()
    assert (tally.frames_checked, tally.frames_with_misses, tally.faces_missed) == (6, 2, 2)
    first = derived[0]
    assert first.source_sha256 == first.frame.image_sha256
    assert public_image_sha256(first.frame) == first.image_sha256 != first.source_sha256
    assert first.boxes[0]["label"] == "face"
    original = cv2.imdecode(np.frombuffer(store.get(first.source_sha256), np.uint8), 1)
    blurred = cv2.imdecode(np.frombuffer(store.get(first.image_sha256), np.uint8), 1)
    x0, y0, x1, y1 = (int(v) for v in FACE)
    inside = lambda im: cv2.Laplacian(im[y0:y1, x0:x1], cv2.CV_64F).var()  # noqa: E731
    assert inside(blurred) < 0.2 * inside(original)
    untouched = Frame.objects.exclude(pk__in=[x.frame_id for x in derived]).first()
    assert untouched is not None and public_image_sha256(untouched) == untouched.image_sha256


def test_a_failing_detector_rolls_the_whole_job_back(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    store = LocalObjectStore(tmp_path / "images")
    door(store, key, range(1, 4))
    worker = Worker(ImageCheckHandler(store, stage=VisionStage(FakeDetector(fail=True), store)))
    worker.run_once()
    assert worker.stats.failed == 1
    assert set(Frame.objects.values_list("state", flat=True)) == {"pending"}
    assert not Detection.objects.exists() and not PrivacyTally.objects.exists()
    Job.objects.update(run_after=Job.objects.get().created_at)  # due again now
    Worker(ImageCheckHandler(store, stage=VisionStage(FakeDetector(), store))).run_until_idle()
    assert Detection.objects.count() == 3
    assert set(Frame.objects.values_list("state", flat=True)) == {"processed"}


def test_a_processed_frame_is_never_detected_twice(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    from webapp.mapping.vision_job import DecodedFrame

    store = LocalObjectStore(tmp_path / "images")
    door(store, key, range(1, 4))
    stage = VisionStage(FakeDetector(), store)
    Worker(ImageCheckHandler(store, stage=stage)).run_until_idle()
    again = [DecodedFrame(f.pk, np.zeros((270, 480, 3), np.uint8)) for f in Frame.objects.all()]
    assert stage.process(again).frames == 0
    assert Detection.objects.count() == 3


def test_frames_checked_without_a_detector_get_a_vision_job(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    store = LocalObjectStore(tmp_path / "images")
    door(store, key, range(1, 5))
    Worker(ImageCheckHandler(store)).run_until_idle()
    assert set(Frame.objects.values_list("state", flat=True)) == {"accepted"}
    assert sweep() == 1
    handler = VisionHandler(VisionStage(FakeDetector(), store), store)
    Worker(handler).run_until_idle()
    assert handler.decodes == 4
    assert set(Frame.objects.values_list("state", flat=True)) == {"processed"}
    assert Detection.objects.count() == 4
    assert Job.objects.get(kind=VISION).state == "done"
    assert sweep() == 0
