"""A synthetic dashcam card for tests: manifest.json + video.mp4 + gnss.nmea, like sim/ writes.

The car drives due north from a Helsinki street at `speed_mps`, optionally parked for
`park_s` seconds first. Frames are textured noise (sharp, well exposed) with an optional
real face (scikit-image lfw crops) pasted in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import cv2
import numpy as np

LAT0, LON0 = 60.1700, 24.9400
START = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
M_PER_DEG_LAT = 111_195.0


def _checksum(body: str) -> str:
    return f"${body}*{reduce(lambda a, c: a ^ ord(c), body, 0):02X}"


def _dm(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    value = abs(value)
    deg = int(value)
    minutes = (value - deg) * 60
    return (f"{deg:02d}{minutes:07.4f}" if lat else f"{deg:03d}{minutes:07.4f}"), hemi


def nmea_fix(
    t: datetime,
    lat: float,
    lon: float,
    speed_mps: float,
    sats: int = 9,
    hdop: float = 0.9,
    mode: int = 3,
) -> list[str]:
    hms = t.strftime("%H%M%S.") + f"{t.microsecond // 10000:02d}"
    la, ns = _dm(lat, True)
    lo, ew = _dm(lon, False)
    return [
        _checksum(f"GPGSA,A,{mode},01,02,03,04,05,06,07,08,09,,,,1.5,{hdop:.1f},1.2"),
        _checksum(f"GPGGA,{hms},{la},{ns},{lo},{ew},1,{sats:02d},{hdop:.1f},18.0,M,19.5,M,,"),
        _checksum(
            f"GPRMC,{hms},A,{la},{ns},{lo},{ew},{speed_mps / 0.514444:.1f},0.0,{t.strftime('%d%m%y')},,,A"
        ),
    ]


def position(t_s: float, speed_mps: float, park_s: float) -> float:
    """Metres travelled north at time t_s."""
    return max(0.0, t_s - park_s) * speed_mps


def face_tiles(n: int, size: int) -> list[np.ndarray]:
    from skimage.data import lfw_subset

    out = []
    for f in lfw_subset()[:n]:
        g = cv2.resize((f * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
        c = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR).astype(np.float32) * np.array([0.85, 0.95, 1.1])
        out.append(np.clip(c, 0, 255).astype(np.uint8))
    return out


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, size=(height // 8, width // 8, 3), dtype=np.uint8)
    img = cv2.resize(base, (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(img, (3, 3), 0)


@dataclass
class SyntheticDrive:
    path: Path
    frames: int
    fps: float
    speed_mps: float
    park_s: float
    duration_s: float


def write_drive(
    out: Path,
    duration_s: float = 40.0,
    fps: float = 10.0,
    speed_mps: float = 12.0,
    park_s: float = 0.0,
    width: int = 1280,
    height: int = 720,
    faces: int = 0,
    face_px: int = 60,
) -> SyntheticDrive:
    out.mkdir(parents=True, exist_ok=True)
    n = int(duration_s * fps)
    writer = cv2.VideoWriter(
        str(out / "video.mp4"),
        cv2.VideoWriter_fourcc(*"mp4v"),  # type: ignore[attr-defined]
        fps,
        (width, height),
    )
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    base = scene(width, height)
    tiles = face_tiles(faces, face_px) if faces else []
    for i in range(n):
        img = np.roll(base, (i * 7) % width, axis=1).copy()
        for k, tile in enumerate(tiles):
            x, y = 100 + k * (face_px + 60), height // 2 - face_px // 2
            img[y : y + face_px, x : x + face_px] = tile
        writer.write(img)
    writer.release()
    lines = []
    for s in range(math.ceil(duration_s) + 2):
        t = START + timedelta(seconds=s)
        d = position(s, speed_mps, park_s)
        moving = s > park_s
        lines += nmea_fix(t, LAT0 + d / M_PER_DEG_LAT, LON0, speed_mps if moving else 0.0)
    (out / "gnss.nmea").write_text("\n".join(lines) + "\n")
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "format": "roadmesh-drive/1",
                "start_time_utc": START.isoformat().replace("+00:00", "Z"),
                "fps": fps,
                "frame_count": n,
                "width": width,
                "height": height,
                "video": "video.mp4",
                "nmea": "gnss.nmea",
                "generator": "tests/edge/synthetic.py",
            }
        )
    )
    return SyntheticDrive(out, n, fps, speed_mps, park_s, duration_s)
