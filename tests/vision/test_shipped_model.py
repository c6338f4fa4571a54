"""The shipped detector: its file is the one its hash and model card name, and it finds a
stop sign and a licence plate in a rendered frame."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vision.detector import DEFAULT_MODEL, DetectorSettings, YoloDetector

SHA_FILE = DEFAULT_MODEL.with_name(DEFAULT_MODEL.name + ".sha256")
CARD = DEFAULT_MODEL.with_suffix(".md")


def test_the_shipped_model_matches_its_sha256_and_its_card():
    digest = hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    assert SHA_FILE.read_text().split()[0] == digest
    assert digest in CARD.read_text()


def test_the_shipped_model_knows_every_class_the_simulator_places_and_plates_and_faces():
    from sim.features import CLASS_NAMES

    det = YoloDetector(DetectorSettings())
    assert det.names == CLASS_NAMES
    assert det.info.version == "roadmesh-v1"
    assert det.info.dynamic


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


@pytest.fixture(scope="module")
def stop_scene() -> tuple[np.ndarray, list]:
    """The first rendered daylight scene (seeds [77, k]) with a stop sign at least 30 px wide
    and a licence plate at least 12 px tall, both fully visible (k = 27)."""
    from sim.dataset import render_scene, sample_scene
    from sim.drive import load_context
    from sim.render import Renderer
    from vision.camera import Intrinsics

    ctx = load_context(None)
    renderer = Renderer(ctx.scene, Intrinsics.from_hfov(1280, 720, 120.0), seed=7)
    rng = np.random.default_rng([77, 27])
    scene = replace(
        sample_scene(ctx, rng, light="day", max_distance=14.0, cls="stop"), faults=None, jpeg=92
    )
    img, labels = render_scene(renderer, scene, 27)
    return img, labels


def test_it_finds_the_stop_sign_and_the_plate_in_a_rendered_frame(stop_scene):
    img, labels = stop_scene
    stop = next(lb.box for lb in labels if lb.cls == "stop" and lb.box[2] - lb.box[0] >= 30)
    plate = next(
        lb.box for lb in labels if lb.cls == "license_plate" and lb.box[3] - lb.box[1] >= 12
    )
    found = YoloDetector(DetectorSettings()).detect([img])[0]
    assert any(d.label == "stop" and iou(stop, (d.x1, d.y1, d.x2, d.y2)) >= 0.5 for d in found)
    assert any(
        d.label == "license_plate" and iou(plate, (d.x1, d.y1, d.x2, d.y2)) >= 0.3 for d in found
    )


def test_the_model_card_names_where_it_was_trained():
    text = CARD.read_text()
    assert "Trained on" in text and "mAP50" in text
    assert Path(DEFAULT_MODEL).stat().st_size > 1_000_000
