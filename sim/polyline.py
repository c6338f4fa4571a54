"""Vectorised polyline geometry in the ENU plane: arc length, resampling, tangents, offsets."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def arc_length(xy: FloatArray) -> FloatArray:
    """Cumulative length at each vertex, starting at 0."""
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def at_distance(xy: FloatArray, s: FloatArray | float) -> tuple[FloatArray, FloatArray]:
    """Points and unit tangents at arc lengths s (clamped to the polyline)."""
    cum = arc_length(xy)
    s_arr = np.clip(np.atleast_1d(np.asarray(s, dtype=np.float64)), 0.0, cum[-1])
    i = np.clip(np.searchsorted(cum, s_arr, side="right") - 1, 0, len(xy) - 2)
    seg = xy[i + 1] - xy[i]
    seglen = np.maximum(np.linalg.norm(seg, axis=1), 1e-9)
    t = ((s_arr - cum[i]) / seglen)[:, None]
    pts = xy[i] + t * seg
    tang = seg / seglen[:, None]
    return pts, tang


def resample(xy: FloatArray, step: float) -> tuple[FloatArray, FloatArray]:
    """Points every `step` metres (last point included) and their arc lengths."""
    total = arc_length(xy)[-1]
    n = max(2, int(np.ceil(total / step)) + 1)
    s = np.linspace(0.0, total, n)
    pts, _ = at_distance(xy, s)
    return pts, s


def right_normal(tangent: FloatArray) -> FloatArray:
    """Unit normal to the right of the direction of travel: (ty, -tx)."""
    return np.stack([tangent[..., 1], -tangent[..., 0]], axis=-1)


def segment_quads(xy: FloatArray, left: float, right: float, max_len: float = 10.0) -> FloatArray:
    """Ground quads (n, 4, 2) covering the band [-left, +right] metres across the polyline,
    split so no quad is longer than max_len (keeps culling by centre distance honest)."""
    pts, _ = resample(xy, max_len)
    if len(pts) < 2:
        return np.zeros((0, 4, 2))
    d = np.diff(pts, axis=0)
    ln = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    nr = right_normal(d / ln)
    a, b = pts[:-1], pts[1:]
    return np.stack([a - nr * left, b - nr * left, b + nr * right, a + nr * right], axis=1)
