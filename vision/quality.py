"""Image quality scores that travel with every frame.

sharpness: variance of the Laplacian of the grey image at 640 px width (higher = sharper);
exposure: mean brightness in [0, 1]; obstruction: share of a 8x8 grid of tiles that are
flat (almost no texture), as a lens cover, a wiper or a dashboard would make them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ANALYSIS_WIDTH = 640
FLAT_TILE_STD = 4.0


@dataclass(frozen=True, slots=True)
class QualityScores:
    sharpness: float
    exposure: float
    obstruction: float


def grey_for_analysis(image_bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    h, w = grey.shape
    if w > ANALYSIS_WIDTH:
        grey = cv2.resize(
            grey, (ANALYSIS_WIDTH, round(h * ANALYSIS_WIDTH / w)), interpolation=cv2.INTER_AREA
        )
    return grey


def score(image_bgr: np.ndarray) -> QualityScores:
    grey = grey_for_analysis(image_bgr)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    exposure = float(grey.mean() / 255.0)
    h, w = grey.shape
    th, tw = h // 8, w // 8
    tiles = grey[: th * 8, : tw * 8].reshape(8, th, 8, tw).swapaxes(1, 2).reshape(64, -1)
    obstruction = float((tiles.std(axis=1) < FLAT_TILE_STD).mean())
    return QualityScores(sharpness=sharpness, exposure=exposure, obstruction=obstruction)
