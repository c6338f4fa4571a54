"""Faces and plates are blurred before encoding, and nothing unredacted can become a Frame."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.edge.synthetic import face_tiles, scene
from vision.privacy import (
    CenterFaceDetector,
    ClassicalPlateDetector,
    RedactedImage,
    Redactor,
    encode_redacted,
)

EDGE = Path(__file__).resolve().parents[2] / "edge"


@pytest.fixture(scope="module")
def faces() -> CenterFaceDetector:
    return CenterFaceDetector()


def frame_with_faces(n: int, size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    img = scene(1920, 1080)
    spots = []
    for k, tile in enumerate(face_tiles(n, size)):
        x, y = 120 + k * (size + 120), 400
        img[y : y + size, x : x + size] = tile
        spots.append((x + size // 2, y + size // 2))
    return img, spots


def test_centerface_finds_real_faces_pasted_into_a_1080p_frame(faces: CenterFaceDetector) -> None:
    img, spots = frame_with_faces(8, 60)
    boxes = faces.detect(img)
    found = [any(b.x1 <= x <= b.x2 and b.y1 <= y <= b.y2 for b in boxes) for x, y in spots]
    assert all(found), found


def test_a_published_jpeg_has_no_detectable_face_left(faces: CenterFaceDetector) -> None:
    img, _ = frame_with_faces(8, 60)
    redactor = Redactor(faces, ClassicalPlateDetector())
    jpeg = encode_redacted(redactor.redact(img))
    assert jpeg.faces == 8
    decoded = cv2.imdecode(np.frombuffer(jpeg.data, np.uint8), cv2.IMREAD_COLOR)
    assert faces.detect(decoded) == []


def test_a_frame_with_nothing_to_blur_keeps_the_cameras_own_jpeg(faces: CenterFaceDetector) -> None:
    img = scene(1280, 720)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    source = buf.tobytes()
    redacted = Redactor(faces, ClassicalPlateDetector()).redact(img, source)
    assert encode_redacted(redacted).data == source


def test_a_plate_shaped_sign_with_characters_is_blurred() -> None:
    img = scene(1920, 1080)
    plate = np.full((24, 100, 3), 235, np.uint8)
    cv2.putText(
        plate, "ABC-123", (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (10, 10, 10), 2, cv2.LINE_AA
    )
    img[800:824, 900:1000] = cv2.resize(cv2.resize(plate, (100, 24)), (100, 24))
    img[780:850, 880:1020] = 128  # a plain bumper around it
    img[800:824, 900:1000] = plate
    boxes = ClassicalPlateDetector().detect(img)
    assert any(b.x1 <= 950 <= b.x2 and b.y1 <= 812 <= b.y2 for b in boxes)


def test_nobody_but_the_redactor_can_make_a_redacted_image() -> None:
    with pytest.raises(TypeError):
        RedactedImage(object(), np.zeros((4, 4, 3), np.uint8), 0, 0, None)
    with pytest.raises(TypeError):
        encode_redacted(np.zeros((4, 4, 3), np.uint8))  # type: ignore[arg-type]


def test_edge_builds_a_protocol_frame_in_exactly_one_place_and_only_from_a_redacted_jpeg() -> None:
    makers = []
    for path in EDGE.rglob("*.py"):
        text = path.read_text()
        makers += [
            (path.name, m.start()) for m in re.finditer(r"protocol\.Frame\(|\bFrame\(", text)
        ]
        assert "cv2.imencode" not in text, f"{path.name} encodes JPEGs itself"
    assert [name for name, _ in makers] == ["pipeline.py"]
    text = (EDGE / "pipeline.py").read_text()
    assert "def build_frame(identity: DeviceIdentity, seq: int, p: Prepared)" in text
    assert "jpeg: RedactedJpeg" in text
