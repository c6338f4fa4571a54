"""Light conditions (day, dusk, night, glare) and camera faults, with the post effects that
a real dashcam adds: motion blur, sensor noise, JPEG artefacts, glare, blur, obstruction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Conditions:
    name: str
    ambient: float  # scene brightness multiplier
    tint: tuple[float, float, float]  # BGR multipliers
    sky_top: tuple[int, int, int]
    sky_horizon: tuple[int, int, int]
    fog: tuple[int, int, int]  # colour distant things fade to
    fog_m: float  # distance at which 63 % of the colour is fog
    headlights: bool
    noise_sigma: float
    sun_bearing_deg: float = 200.0
    glare: bool = False
    retro: float = 1.0  # extra gain for retroreflective sign faces in headlights


CONDITIONS: dict[str, Conditions] = {
    "day": Conditions(
        "day",
        1.0,
        (1.0, 1.0, 1.0),
        (225, 170, 110),
        (240, 220, 200),
        (225, 215, 205),
        900.0,
        False,
        3.0,
    ),
    "overcast": Conditions(
        "overcast",
        0.85,
        (1.0, 1.0, 0.98),
        (200, 195, 190),
        (215, 212, 210),
        (205, 203, 200),
        450.0,
        False,
        3.5,
    ),
    "dusk": Conditions(
        "dusk",
        0.5,
        (0.85, 0.9, 1.1),
        (120, 80, 70),
        (110, 150, 235),
        (110, 130, 170),
        500.0,
        True,
        5.0,
        250.0,
        retro=1.6,
    ),
    "night": Conditions(
        "night",
        0.16,
        (1.05, 1.0, 0.95),
        (25, 12, 8),
        (50, 55, 70),
        (30, 30, 35),
        300.0,
        True,
        7.0,
        retro=4.5,
    ),
    "glare": Conditions(
        "glare",
        1.05,
        (0.95, 1.0, 1.05),
        (220, 190, 150),
        (235, 235, 240),
        (230, 230, 235),
        600.0,
        False,
        3.0,
        180.0,
        glare=True,
    ),
}


@dataclass(frozen=True)
class CameraFaults:
    """A bad camera: out of focus, lens partly covered, or underexposed."""

    blur_sigma: float = 0.0
    obstruction: float = 0.0  # fraction of the frame covered by a dark smudge
    exposure: float = 1.0

    @property
    def any(self) -> bool:
        return self.blur_sigma > 0 or self.obstruction > 0 or self.exposure != 1.0


def lighting(
    cond: Conditions, dist: NDArray[np.float64] | float, off_axis: NDArray[np.float64] | float = 0.0
) -> NDArray[np.float64]:
    """Brightness of a surface at distance `dist` (m) and `off_axis` (radians from the optical
    axis): ambient light plus the car's own headlights."""
    d = np.asarray(dist, dtype=np.float64)
    light = np.full_like(d, cond.ambient)
    if cond.headlights:
        cone = np.exp(-((np.asarray(off_axis) / 0.45) ** 2))
        light = light + 1.1 * cone / (1.0 + (d / 22.0) ** 2)
    return np.minimum(light, 1.15)


def fog_factor(cond: Conditions, dist: NDArray[np.float64] | float) -> NDArray[np.float64]:
    return np.asarray(1.0 - np.exp(-np.asarray(dist, dtype=np.float64) / cond.fog_m))


def shade(
    colour: tuple[int, int, int] | NDArray[np.uint8], cond: Conditions, light: float, fog: float
) -> tuple[int, int, int]:
    c = np.asarray(colour, dtype=np.float64) * light * np.asarray(cond.tint)
    c = c * (1.0 - fog) + np.asarray(cond.fog) * cond.ambient * fog
    c = np.clip(c, 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def sky_image(cond: Conditions, width: int, height: int) -> Image:
    t = np.linspace(0.0, 1.0, height)[:, None] ** 0.7
    top = np.asarray(cond.sky_top, np.float64)
    hor = np.asarray(cond.sky_horizon, np.float64)
    col = top[None] * (1 - t) + hor[None] * t  # (H, 3)
    return np.ascontiguousarray(
        np.broadcast_to(col[:, None, :], (height, width, 3)).astype(np.uint8)
    )


def glare_overlay(width: int, height: int, rng: np.random.Generator) -> Image:
    """Low sun just above the frame: a bright bloom, veiling haze and a few lens ghosts."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sx, sy = width * rng.uniform(0.25, 0.75), -height * 0.05
    r = np.sqrt((xx - sx) ** 2 + (yy - sy) ** 2) / max(width, height)
    bloom = 230.0 * np.exp(-((r / 0.22) ** 2)) + 55.0 * np.exp(-r / 0.6)
    over = np.repeat(bloom[..., None], 3, axis=2)
    over[..., 0] *= 0.85
    for k in range(4):
        t = 0.35 + 0.35 * k
        gx, gy = width / 2 + (width / 2 - sx) * t, height / 2 + (height / 2 - sy) * t
        rad = width * (0.015 + 0.02 * rng.random())
        ghost = 40.0 * np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / rad**2))
        over[..., 0] += ghost * 0.7
        over[..., 1] += ghost
        over[..., 2] += ghost * 0.6
    return np.clip(over, 0, 255).astype(np.uint8)


def smudge_mask(
    width: int, height: int, fraction: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Multiplier (H, W, 1) in [0.08, 1]: a blurred dark blob covering `fraction` of the lens."""
    m = np.zeros((height, width), np.float32)
    cx, cy = width * rng.uniform(0.2, 0.8), height * rng.uniform(0.55, 0.95)
    a = math.sqrt(fraction * width * height / math.pi) * 1.2
    cv2.ellipse(
        m,
        (int(cx), int(cy)),
        (int(a * 1.3), int(a * 0.8)),
        float(rng.uniform(-30, 30)),
        0,
        360,
        1.0,
        -1,
    )
    m = np.asarray(cv2.GaussianBlur(m, (0, 0), a * 0.25), dtype=np.float32)
    return np.asarray((1.0 - 0.92 * m)[..., None], dtype=np.float32)


def noise_tiles(width: int, height: int, n: int, seed: int) -> list[NDArray[np.int16]]:
    """Unit-sigma sensor noise frames (scaled per condition), pre-generated for speed."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(rng.standard_normal((height, width, 3), dtype=np.float32) * 10.0, -120, 120).astype(
            np.int16
        )
        for _ in range(n)
    ]


def motion_blur(img: Image, px_horizontal: float, px_vertical: float) -> Image:
    kx, ky = round(px_horizontal), round(px_vertical)
    if kx < 2 and ky < 2:
        return img
    return np.asarray(cv2.blur(img, (max(1, kx), max(1, ky))), dtype=np.uint8)


def jpeg_roundtrip(img: Image, quality: int) -> Image:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return img
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.asarray(out, dtype=np.uint8) if out is not None else img
