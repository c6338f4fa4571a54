"""Faces leave the device blurred; a device provisions itself through the web API."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from roadmesh.stack import LocalStack
from tests.edge.stack_support import edge_stack
from tests.edge.synthetic import write_drive
from vision.privacy import CenterFaceDetector

pytestmark = pytest.mark.e2e
__all__ = ["edge_stack"]


def test_a_face_in_the_camera_frame_is_not_detectable_in_the_published_jpeg(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    stack = edge_stack
    device_dir = stack.provision("dev-faces")
    drive = write_drive(tmp_path / "drive", duration_s=30, speed_mps=12.0, faces=3, face_px=60)
    detector = CenterFaceDetector()
    cap = cv2.VideoCapture(str(drive.path / "video.mp4"))
    ok, source = cap.read()
    cap.release()
    assert ok and len(detector.detect(source)) == 3  # the source really shows three faces

    result = stack.replay(drive.path, device_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    m = re.search(r"signed (\d+) of .* blurred faces (\d+)", result.stdout)
    assert m and int(m.group(1)) >= 10 and int(m.group(2)) >= 3 * int(m.group(1)), result.stdout
    stack.wait_for(
        lambda: len(stack.device_frames("dev-faces")) == int(m.group(1)), 30, "the frames"
    )
    frames = stack.device_frames("dev-faces")
    for f in frames:
        status, body, _ = stack.get(f"/api/v1/images/{f['properties']['image_sha256']}.jpg")
        assert status == 200
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert detector.detect(image) == [], f["properties"]["seq"]


def test_a_device_provisions_itself_with_the_owners_credentials_and_publishes(
    edge_stack: LocalStack, tmp_path: Path, sample_drive: Path
) -> None:
    stack = edge_stack
    stack.create_user("owner-api", "correct horse battery")
    device_dir = tmp_path / "device"
    server = f"http://127.0.0.1:{stack.web_port}"

    refused = stack.roadmesh(
        "edge",
        "provision",
        "--server",
        server,
        "--token",
        "owner-api:wrong",
        "--device-dir",
        str(device_dir),
        check=False,
    )
    assert refused.returncode == 2 and "401" in refused.stderr

    ok = stack.roadmesh(
        "edge",
        "provision",
        "--server",
        server,
        "--token",
        "owner-api:correct horse battery",
        "--device-id",
        "dev-selfprov",
        "--device-dir",
        str(device_dir),
    )
    assert "provisioned dev-selfprov" in ok.stdout
    for name in ("device.key", "device.json"):
        assert stat.S_IMODE(os.stat(device_dir / name).st_mode) == 0o600
    login = json.loads((device_dir / "device.json").read_text())["mqtt"]
    assert login["username"] == "dev-selfprov" and login["port"] == stack.mqtt_port

    published = stack.replay(sample_drive, device_dir)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "12 stored and 0 rejected (receipts)" in published.stdout
    stack.wait_for(
        lambda: len(stack.device_frames("dev-selfprov")) == 12,
        30,
        "the provisioned device's frames",
    )
