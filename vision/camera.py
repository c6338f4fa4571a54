"""Pinhole camera model: intrinsics, vehicle-mounted pose, world ENU -> camera -> pixel.

Conventions
- World: local ENU metres (x east, y north, z up).
- Camera: OpenCV (x right, y down, z forward).
- Pose angles: ``heading_deg`` is a compass bearing (0 = north, 90 = east) of the optical
  axis, ``pitch_deg`` is positive when the camera looks up, ``roll_deg`` positive when the
  image rotates clockwise (right side down).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (no lens distortion)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_hfov(cls, width: int = 1280, height: int = 720, hfov_deg: float = 120.0) -> Intrinsics:
        """Square pixels, principal point at the image centre, given horizontal field of view."""
        if not 10.0 <= hfov_deg < 175.0:
            raise ValueError(f"hfov_deg must be in [10, 175), got {hfov_deg}")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.fy)))

    @property
    def matrix(self) -> FloatArray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, float | int]) -> Intrinsics:
        return cls(
            int(d["width"]),
            int(d["height"]),
            float(d["fx"]),
            float(d["fy"]),
            float(d["cx"]),
            float(d["cy"]),
        )


@dataclass(frozen=True)
class Pose:
    """Camera position (ENU metres) and orientation."""

    east: float
    north: float
    up: float
    heading_deg: float
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    @property
    def position(self) -> FloatArray:
        return np.array([self.east, self.north, self.up])

    def rotation(self) -> FloatArray:
        """3x3 matrix R with p_cam = R @ (p_world - position)."""
        h = math.radians(self.heading_deg)
        fwd = np.array([math.sin(h), math.cos(h), 0.0])
        right = np.array([math.cos(h), -math.sin(h), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        base = np.stack([right, down, fwd])  # rows: camera axes in world coordinates
        p = math.radians(self.pitch_deg)
        # pitch up rotates the optical axis towards world up (camera -y)
        rx = np.array(
            [[1.0, 0.0, 0.0], [0.0, math.cos(p), math.sin(p)], [0.0, -math.sin(p), math.cos(p)]]
        )
        r = math.radians(self.roll_deg)
        rz = np.array(
            [[math.cos(r), math.sin(r), 0.0], [-math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]]
        )
        return rz @ rx @ base


def world_to_camera(points: ArrayLike, pose: Pose) -> FloatArray:
    """ENU points (..., 3) -> camera coordinates (..., 3)."""
    p = np.asarray(points, dtype=np.float64)
    return (p - pose.position) @ pose.rotation().T


def camera_to_pixel(points_cam: ArrayLike, intr: Intrinsics) -> FloatArray:
    """Camera points (..., 3) with z > 0 -> pixel coordinates (..., 2) (u right, v down)."""
    pc = np.asarray(points_cam, dtype=np.float64)
    z = pc[..., 2]
    u = intr.fx * pc[..., 0] / z + intr.cx
    v = intr.fy * pc[..., 1] / z + intr.cy
    return np.stack([u, v], axis=-1)


def project(points: ArrayLike, pose: Pose, intr: Intrinsics) -> tuple[FloatArray, FloatArray]:
    """ENU points (..., 3) -> (pixels (..., 2), depth (...)); depth <= 0 means behind the camera."""
    pc = world_to_camera(points, pose)
    z = pc[..., 2]
    safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv = camera_to_pixel(np.concatenate([pc[..., :2], safe[..., None]], axis=-1), intr)
    return uv, z


def pixel_ray(u: float, v: float, pose: Pose, intr: Intrinsics) -> FloatArray:
    """Unit ENU direction of the ray through pixel (u, v) (for bearing-ray triangulation)."""
    d_cam = np.array([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0])
    d = pose.rotation().T @ d_cam
    return np.asarray(d / np.linalg.norm(d), dtype=np.float64)


_REF = re.compile(r"(?:^|-)(\d+(?:\.\d+)?)-(\d+)x(\d+)$")
DEFAULT_HFOV_DEG = 120.0


def intrinsics_for(ref: str, width: int, height: int) -> Intrinsics:
    """Intrinsics of an image from a device's `intrinsics_ref` ("dashcam-120-1280x720":
    horizontal field of view in degrees, then the size they were measured at), scaled to
    the image's own size. An unknown reference gets the default 120 degree dashcam."""
    m = _REF.search(ref or "")
    hfov = float(m.group(1)) if m else DEFAULT_HFOV_DEG
    if not 10.0 <= hfov < 175.0:
        hfov = DEFAULT_HFOV_DEG
    return Intrinsics.from_hfov(width, height, hfov)
