from __future__ import annotations

import cv2
import numpy as np

from vision.quality import score


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)


def test_blurring_lowers_sharpness() -> None:
    image = textured()
    assert score(cv2.GaussianBlur(image, (21, 21), 8)).sharpness < score(image).sharpness / 10


def test_exposure_is_mean_brightness() -> None:
    assert score(np.full((720, 1280, 3), 255, np.uint8)).exposure == 1.0
    assert score(np.zeros((720, 1280, 3), np.uint8)).exposure == 0.0


def test_a_covered_half_of_the_lens_reads_as_half_obstructed() -> None:
    image = textured()
    image[:, :640] = 20
    assert 0.45 <= score(image).obstruction <= 0.55
