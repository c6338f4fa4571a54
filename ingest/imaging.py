"""Cheap looks at a frame's pixels: a reduced JPEG decode, perceptual hash, server-side quality.

The JPEG is decoded with libjpeg's DCT scaling (OpenCV's IMREAD_REDUCED_GRAYSCALE_k: the
same pixels as PIL's `draft("L")`, about 15 % less CPU, and the GIL is released), at 1/8
of its size for a 1080p frame, which costs a fraction of a full decode. Called only after
`ingest.jpeg` accepted the header, so the decoder never sees a decompression bomb.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import imagehash
import numpy as np
from PIL import Image

from ingest.jpeg import JpegError, parse_header

JPEG_MAX_SIDE = 65_535  # what a JPEG header can say
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
    highlights: float = 0.0  # 99th percentile grey level


_REDUCED_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def reduced_grey(
    jpeg: bytes,
    min_side: int = REDUCED_MIN_SIDE,
    *,
    max_pixels: int = JPEG_MAX_SIDE**2,
    max_pixels_per_byte: int = JPEG_MAX_SIDE**2,
) -> np.ndarray:
    """The frame as a small uint8 grey array, via DCT-domain downscaling.

    The scale is the largest of 1/2, 1/4, 1/8 that keeps the short side >= `min_side`.
    `max_pixels` and `max_pixels_per_byte` refuse a decompression bomb from its header
    (the image-check job passes the door's limits).
    """
    try:
        info = parse_header(
            jpeg,
            max_side=JPEG_MAX_SIDE,
            max_pixels=max_pixels,
            max_pixels_per_byte=max_pixels_per_byte,
        )
    except JpegError as exc:
        raise ImageDecodeError(f"cannot decode the JPEG: {exc}") from exc
    scale = 1
    while scale < 8 and min(info.width, info.height) // (scale * 2) >= min_side:
        scale *= 2
    try:
        grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _REDUCED_FLAGS[scale])
    except cv2.error as exc:
        raise ImageDecodeError(f"cannot decode the JPEG: {exc}") from exc
    if grey is None:
        raise ImageDecodeError(
            "cannot decode the JPEG: libjpeg gave up (missing tables or corrupt data)"
        )
    return grey


def facts_of(grey: np.ndarray) -> ImageFacts:
    phash = int(str(imagehash.phash(Image.fromarray(grey))), 16)
    g = grey.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return ImageFacts(
        phash=phash,
        sharpness=float(lap.var()),
        brightness=float(g.mean()),
        highlights=float(np.percentile(grey, 99)),
    )


def thumbnail(grey: np.ndarray) -> bytes:
    """The 64x36 grey thumbnail (row-major uint8) the camera check compares across frames."""
    return bytes(cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).tobytes())


def thumb_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).reshape(THUMB[1], THUMB[0])


CHANGE_BLOCK = (8, 6)  # thumbnail pixels per block of `block_change`


def block_change(a: np.ndarray, b: np.ndarray) -> float:
    """The largest mean |difference| (0..1) over the 8x6-pixel blocks of two thumbnails:
    how much the part of the picture that changed most changed. Sensor noise averages out
    to a fraction of a grey level per block; lane marks passing under a moving camera change
    their block by tens."""
    bw, bh = CHANGE_BLOCK
    h, w = (a.shape[0] // bh) * bh, (a.shape[1] // bw) * bw
    d = np.abs(a[:h, :w].astype(np.float32) - b[:h, :w].astype(np.float32))
    return float(d.reshape(h // bh, bh, w // bw, bw).mean(axis=(1, 3)).max() / 255.0)


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
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    w = a.shape[1]
    corners = cv2.goodFeaturesToTrack(
        a, maxCorners=400, qualityLevel=0.01, minDistance=4, blockSize=5
    )
    if corners is None or len(corners) < MIN_TRACKED:
        return VisualMotion(None, 0.0, 0 if corners is None else len(corners))
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        a, b, corners, corners.copy(), winSize=(21, 21), maxLevel=3
    )
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(
        b, a, moved, moved.copy(), winSize=(21, 21), maxLevel=3
    )
    ok = (status.ravel() == 1) & (status_back.ravel() == 1)
    ok &= (
        np.linalg.norm((back - corners).reshape(-1, 2), axis=1) < 1.0
    )  # forward-backward consistent
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


# -- where a picture was taken: a global descriptor for place recognition -------------------------
PLACE_SIZE = (128, 64)  # HOG window (w, h) the upper part of the frame is resized to
PLACE_TOP = 0.62  # the share of the picture (from the top) described: not the road surface
PLACE_SCALE = 127.0


def place_descriptor(grey: np.ndarray) -> bytes:
    """A global descriptor of a reduced grey frame for visual place recognition: histograms
    of oriented gradients (scikit-image's HOG: 16-px cells, 2x2-cell blocks, 9 orientations)
    of the picture's upper part (buildings, trees, signs, the skyline; the road surface
    below looks alike everywhere), resized to 128x64; centred, L2-normalised and stored as
    756 int8. Two pictures of one place from nearby poses score high (`place_similarity`),
    pictures of other places lower, by how alike the places look."""
    from skimage.feature import hog

    top = grey[: max(8, int(grey.shape[0] * PLACE_TOP))]
    small = cv2.resize(top, PLACE_SIZE, interpolation=cv2.INTER_AREA)
    v = hog(
        small, orientations=9, pixels_per_cell=(16, 16), cells_per_block=(2, 2), feature_vector=True
    ).astype(np.float32)
    v -= v.mean()
    v /= max(float(np.linalg.norm(v)), 1e-6)
    return bytes(np.clip(np.round(v * PLACE_SCALE), -127, 127).astype(np.int8).tobytes())


def place_vectors(descs: list[bytes]) -> np.ndarray:
    """Stored descriptors as rows of unit vectors (n, 756) float32."""
    if not descs:
        return np.zeros((0, 0), np.float32)
    m = np.stack([np.frombuffer(d, np.int8) for d in descs]).astype(np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-6)


def place_similarity(a: bytes, b: bytes) -> float:
    """Cosine similarity of two place descriptors (-1..1)."""
    v = place_vectors([a, b])
    return float(v[0] @ v[1])


# -- a copy of another device's picture ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CopyMatch:
    """How well picture `a` maps onto picture `b` as the same image (cropped, re-toned, re-encoded).

    `inliers`: ORB matches consistent with one similarity transform (scale, rotation, shift:
    what a crop and resize do). `detail_ncc`: normalised cross-correlation of the two
    pictures' fine detail (grey minus its Gaussian blur) after that transform, over the
    overlap. The same capture keeps its sensor noise, moving objects and exact pose, so its
    detail correlates far better than another car's picture of the same spot a moment or a
    day apart (parallax, light, other traffic)."""

    inliers: int
    detail_ncc: float


ORB_FEATURES = 500
COPY_RANSAC_PX = 1.5
COPY_MIN_OVERLAP = 0.5


def orb_features(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB keypoint positions (N x 2 float32) and descriptors of a reduced grey frame."""
    orb = cv2.ORB.create(nfeatures=ORB_FEATURES, fastThreshold=10)
    kps, desc = orb.detectAndCompute(grey, None)
    return np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2), desc


def copy_match(
    a: np.ndarray,
    b: np.ndarray,
    fa: tuple[np.ndarray, np.ndarray | None] | None = None,
    fb: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> CopyMatch:
    """Compare two reduced grey frames as possible copies of one picture (see CopyMatch).
    `fa`/`fb`: their `orb_features`, when already computed."""
    (pa, da), (pb, db) = fa or orb_features(a), fb or orb_features(b)
    if da is None or db is None or len(pa) < 10 or len(pb) < 10:
        return CopyMatch(0, 0.0)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 10:
        return CopyMatch(len(matches), 0.0)
    src = pa[[m.queryIdx for m in matches]]
    dst = pb[[m.trainIdx for m in matches]]
    transform, inl = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=COPY_RANSAC_PX
    )
    if transform is None or inl is None:
        return CopyMatch(0, 0.0)
    size = (b.shape[1], b.shape[0])
    warped = cv2.warpAffine(_detail(a), transform, size)
    overlap = cv2.warpAffine(np.ones(a.shape, np.float32), transform, size) > 0.99
    if overlap.mean() < COPY_MIN_OVERLAP:
        return CopyMatch(int(inl.sum()), 0.0)
    x, y = warped[overlap], _detail(b)[overlap]
    ncc = float((x * y).sum() / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-6))
    return CopyMatch(int(inl.sum()), ncc)


def _detail(grey: np.ndarray) -> np.ndarray:
    g = grey.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), 2.0)


# -- a faulty camera, seen over many frames -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class CameraStats:
    """One device's camera over a run of frames (reduced grey decodes, 64x36 thumbnails).

    `static_dark_share`: share of thumbnail pixels that stay dark (mean < 60) and nearly
    constant (temporal std < 4 grey levels) across the frames: a smudge or cover on the
    lens, while the scene behind it changes. `sharpness`, `brightness`: medians of the
    per-frame Laplacian variance and mean grey. `highlights`: median of the per-frame 99th
    grey percentile (an underexposed sensor never reaches bright values; a night scene
    still has lamps and headlights)."""

    frames: int
    static_dark_share: float
    sharpness: float
    brightness: float
    highlights: float


THUMB = (64, 36)
STATIC_STD = 4.0
STATIC_DARK_MEAN = 60.0


def camera_stats(
    thumbs: list[np.ndarray],
    sharpness: list[float],
    brightness: list[float],
    highlights: list[float],
) -> CameraStats:
    """From what the image-check job kept of each frame: its thumbnail and facts."""
    if not thumbs:
        return CameraStats(0, 0.0, 0.0, 0.0, 0.0)
    stack = np.stack([t.astype(np.float32) for t in thumbs])
    static_dark = (stack.std(axis=0) < STATIC_STD) & (stack.mean(axis=0) < STATIC_DARK_MEAN)
    return CameraStats(
        frames=len(thumbs),
        static_dark_share=float(static_dark.mean()),
        sharpness=float(np.median(sharpness)),
        brightness=float(np.median(brightness)),
        highlights=float(np.median(highlights)),
    )
