"""The edge's privacy step on the project detector's face and plate classes."""

from __future__ import annotations

import numpy as np

from tests.vision.fake_yolo import write_fake_yolo
from vision.detector import DetectorSettings, YoloDetector
from vision.privacy import AnyOf, CenterFaceDetector, ModelPrivacy, Redactor

NAMES = {0: "stop", 1: "license_plate", 2: "face"}


def head() -> np.ndarray:
    h = np.zeros((7, 4), np.float32)
    h[:, 0] = (20, 20, 16, 8, 0, 0.9, 0)  # a plate at (12..28, 16..24)
    h[:, 1] = (44, 30, 10, 12, 0, 0, 0.8)  # a face
    h[:, 2] = (40, 50, 20, 20, 0.9, 0, 0)  # a stop sign: not private
    return h


class Counting:
    def __init__(self, det: YoloDetector) -> None:
        self.det = det
        self.calls = 0

    def detect(self, images):
        self.calls += 1
        return self.det.detect(images)


def test_one_inference_serves_the_plate_and_the_face_detector(tmp_path):
    model = write_fake_yolo(tmp_path / "m.onnx", head(), NAMES)
    counting = Counting(YoloDetector(DetectorSettings(model=model)))
    privacy = ModelPrivacy(counting)
    image = np.full((64, 64, 3), 128, np.uint8)
    plates = privacy.view("license_plate").detect(image)
    faces = privacy.view("face").detect(image)
    assert [(round(b.x1), round(b.y1), round(b.x2), round(b.y2)) for b in plates] == [
        (12, 16, 28, 24)
    ]
    assert len(faces) == 1 and faces[0].score == np.float32(0.8)
    assert counting.calls == 1
    privacy.view("face").detect(image.copy())  # another image: asked again
    assert counting.calls == 2
    for _ in range(5):  # new frames, often at a freed frame's address: never a stale answer
        privacy.view("face").detect(np.full((64, 64, 3), 7, np.uint8))
    assert counting.calls == 7


def test_the_redactor_blurs_what_the_model_calls_a_plate(tmp_path):
    model = write_fake_yolo(tmp_path / "m.onnx", head(), NAMES)
    privacy = ModelPrivacy(YoloDetector(DetectorSettings(model=model)))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out = Redactor(privacy.view("face"), privacy.view("license_plate")).redact(image)
    assert (out.plates, out.faces) == (1, 1)
    assert out.pixels[16:24, 12:28].std() < 0.5 * image[16:24, 12:28].std()


def test_the_default_redactor_takes_plates_from_the_shipped_model_and_faces_from_both():
    r = Redactor.default()
    assert isinstance(r.faces, AnyOf)
    assert isinstance(r.faces.detectors[0], CenterFaceDetector)
    assert type(r.faces.detectors[1]).__name__ == "_View"
    assert type(r.plates).__name__ == "_View"  # the shipped model is there
