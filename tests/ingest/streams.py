"""Synthetic frames and tracks for ingest tests and benchmarks (honest and adversarial).

Each device drives over its own procedurally textured "world strip": a frame is a crop of
the strip at an offset proportional to the distance driven, so consecutive honest frames
overlap and change as the claimed position moves, as real dashcam frames do.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol

FRAME_W, FRAME_H = 480, 270
PX_PER_M = 6.0  # how far the strip slides per metre driven


def world_strip(seed: int, length_px: int = 8000, height: int = FRAME_H) -> np.ndarray:
    """A textured grey-and-colour strip, unique per seed, sharp enough for a dashcam frame."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, size=(height // 9 + 1, length_px // 9 + 1, 3), dtype=np.uint8)
    strip = cv2.resize(coarse, (length_px, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(-25, 25, size=strip.shape, dtype=np.int16)
    return np.clip(strip.astype(np.int16) + fine, 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def crop(strip: np.ndarray, offset_px: float, width: int = FRAME_W) -> np.ndarray:
    x = int(offset_px) % (strip.shape[1] - width)
    return strip[:, x : x + width]


def frame_jpeg(strip: np.ndarray, metres: float, quality: int = 85, width: int = FRAME_W) -> bytes:
    return encode_jpeg(crop(strip, metres * PX_PER_M, width), quality)


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = north_m / 111_320.0
    dlon = east_m / (111_320.0 * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def make_frame(
    device_id: str,
    seq: int,
    t_us: int,
    lat: float,
    lon: float,
    jpeg: bytes,
    speed_mps: float = 10.0,
    heading_deg: float = 90.0,
) -> protocol.Frame:
    return protocol.Frame(
        device_id=device_id,
        seq=seq,
        captured_at_us=t_us,
        position=protocol.Position(
            lat=lat,
            lon=lon,
            heading_deg=heading_deg,
            speed_mps=speed_mps,
            fix=protocol.FixType.FIX_3D,
            satellites=10,
            hdop=0.8,
        ),
        camera_id="cam0",
        intrinsics_ref="synthetic",
        quality=protocol.Quality(sharpness=150.0, exposure=0.5, obstruction=0.0),
        privacy=protocol.PrivacyCounts(),
        jpeg=jpeg,
    )


@dataclass
class HonestDrive:
    """A device driving east at `speed_mps`, one frame every `interval_s`."""

    device_id: str
    key: Ed25519PrivateKey
    seed: int
    lat: float = 60.17
    lon: float = 24.94
    speed_mps: float = 10.0
    interval_s: float = 1.0
    start_us: int = 0
    width: int = FRAME_W  # bench/ingest.py uses 1280x720, a dashcam's 720p
    height: int = FRAME_H
    quality: int = 85

    def __post_init__(self) -> None:
        self.strip = world_strip(self.seed, length_px=max(8000, 4 * self.width), height=self.height)
        if not self.start_us:
            self.start_us = int(time.time() * 1e6) - 3_600_000_000

    def frame(self, seq: int) -> protocol.Frame:
        metres = (seq - 1) * self.speed_mps * self.interval_s
        lat, lon = offset(self.lat, self.lon, 0.0, metres)
        t_us = self.start_us + int((seq - 1) * self.interval_s * 1e6)
        return make_frame(
            self.device_id,
            seq,
            t_us,
            lat,
            lon,
            frame_jpeg(self.strip, metres, self.quality, self.width),
            self.speed_mps,
        )

    def payload(self, seq: int) -> bytes:
        return protocol.encode(self.frame(seq), self.key)
