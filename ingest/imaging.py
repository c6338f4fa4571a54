"""Cheap looks at a frame's pixels: a reduced JPEG decode, perceptual hash, server-side quality.

The JPEG is decoded with libjpeg's DCT scaling (PIL `draft`), at 1/8 of its size for a
1080p frame, which costs a fraction of a full decode. Called only after `ingest.jpeg`
accepted the header, so the decoder never sees a decompression bomb.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

REDUCED_MIN_SIDE = 96  # decode at the largest 1/2^k scale that keeps the short side >= this
PHASH_BANDS = 4
MASK64 = (1 << 64) - 1


class ImageDecodeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ImageFacts:
    phash: int  # unsigned 64-bit
    sharpness: float  # variance of the Laplacian on the reduced grey image
    brightness: float  # mean grey level 0..255


def reduced_grey(jpeg: bytes, min_side: int = REDUCED_MIN_SIDE) -> np.ndarray:
    """The frame as a small uint8 grey array, via DCT-domain downscaling."""
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            w, h = im.size
            scale = 1
            while scale < 8 and min(w, h) // (scale * 2) >= min_side:
                scale *= 2
            im.draft("L", (w // scale, h // scale))
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode the JPEG: {exc}") from exc


def facts_of(grey: np.ndarray) -> ImageFacts:
    phash = int(str(imagehash.phash(Image.fromarray(grey))), 16)
    g = grey.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return ImageFacts(phash=phash, sharpness=float(lap.var()), brightness=float(g.mean()))


def image_facts(jpeg: bytes) -> ImageFacts:
    return facts_of(reduced_grey(jpeg))


def to_signed64(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    return value & MASK64


def phash_bands(phash: int) -> tuple[int, int, int, int]:
    """Four 16-bit bands, most significant first: a pigeonhole index for Hamming search."""
    u = to_unsigned64(phash)
    return (u >> 48) & 0xFFFF, (u >> 32) & 0xFFFF, (u >> 16) & 0xFFFF, u & 0xFFFF


def hamming(a: int, b: int) -> int:
    return (to_unsigned64(a) ^ to_unsigned64(b)).bit_count()


@dataclass(frozen=True, slots=True)
class VisualMotion:
    """How the camera moved between two frames, from the pictures alone.

    `yaw_deg`: rotation about the vertical axis, positive to the right (a compass heading
    that grows): the median change of the tracked corners' horizontal bearing; None when
    too few corners were tracked or nothing moved. `flow`: median corner displacement
    as a share of the image width. `points`: corners tracked.
    """

    yaw_deg: float | None
    flow: float
    points: int


MIN_TRACKED = 20
MIN_FLOW_FOR_YAW = 0.004  # below this the camera stood still: no yaw to tell


def visual_motion(a: np.ndarray, b: np.ndarray, hfov_deg: float = 120.0) -> VisualMotion:
    """Track corners from grey frame `a` to grey frame `b` (pyramidal Lucas-Kanade, checked
    forwards and backwards) and estimate the camera's yaw (pinhole, principal point at the
    centre, `hfov_deg`; real dashcam lenses need undistorting first)."""
    import cv2

    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    w = a.shape[1]
    corners = cv2.goodFeaturesToTrack(a, maxCorners=400, qualityLevel=0.01, minDistance=4, blockSize=5)
    if corners is None or len(corners) < MIN_TRACKED:
        return VisualMotion(None, 0.0, 0 if corners is None else len(corners))
    moved, status, _ = cv2.calcOpticalFlowPyrLK(a, b, corners, corners.copy(), winSize=(21, 21), maxLevel=3)
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(b, a, moved, moved.copy(), winSize=(21, 21), maxLevel=3)
    ok = (status.ravel() == 1) & (status_back.ravel() == 1)
    ok &= np.linalg.norm((back - corners).reshape(-1, 2), axis=1) < 1.0  # forward-backward consistent
    p0 = corners.reshape(-1, 2)[ok].astype(np.float64)
    p1 = moved.reshape(-1, 2)[ok].astype(np.float64)
    if len(p0) < MIN_TRACKED:
        return VisualMotion(None, 0.0, len(p0))
    flow = float(np.median(np.linalg.norm(p1 - p0, axis=1)) / w)
    if flow < MIN_FLOW_FOR_YAW:
        return VisualMotion(None, flow, len(p0))
    # Rotation about the vertical axis changes every point's horizontal bearing atan(x / f)
    # by the same angle; forward motion spreads points outwards on both sides, so the median
    # bearing change is the camera's yaw (exact for a pure rotation, pinhole model).
    f = (w / 2) / np.tan(np.radians(hfov_deg) / 2)
    cx = (w - 1) / 2
    change = np.degrees(np.arctan((p0[:, 0] - cx) / f) - np.arctan((p1[:, 0] - cx) / f))
    yaw = float(np.median(change))
    return VisualMotion(yaw, flow, len(p0))

