"""How far a camera's clock is from GNSS time, estimated from the recording itself.

Two clues, coarse then fine:

1. **Creation time against the track.** A video's creation time (camera clock) and its
   length give the span it covers. If that span does not fall on the GNSS track, the
   camera clock is off by more than a few seconds: a time zone (whole quarter hours) or a
   creation time stamped at the end of the recording. The smallest such shift that puts
   the video on the track is the coarse offset.
2. **Motion between frames against the GNSS speed.** The image moves when the car moves:
   the mean optical flow between frames rises and falls with the speed the receiver
   reports. The lag that best aligns the two (rank correlation, searched around the
   coarse offset, refined between grid steps) is the offset.

`offset_s` is what to add to camera time to get GNSS time (the `clock_offset_s` setting).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np

from edge.gnss import Track

logger = logging.getLogger(__name__)

FLOW_WIDTH = 160  # optical flow on frames this wide: motion, not detail
SAMPLE_HZ = 10.0  # frames per second of video used for the motion signal
SEARCH_S = 10.0  # lags searched around the coarse offset
STEP_S = 0.05
MIN_CORRELATION = 0.5  # below this the motion does not tell the offset
MIN_SPEED_SPREAD_MPS = 1.0  # a drive at constant speed has no features to align
TIME_ZONE_STEP_S = 900  # time zones are whole quarter hours
MAX_TIME_ZONE_S = 14 * 3600


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """An estimate of GNSS time minus camera time, and how it was found."""

    offset_s: float
    coarse_s: float  # from the creation time against the track
    method: str  # "motion" (fine), "creation_time" (coarse only) or "none"
    correlation: float | None = None
    samples: int = 0
    reason: str = ""  # why the motion could not refine it, when it could not

    def describe(self) -> str:
        if self.method == "motion":
            return (
                f"camera clock {self.offset_s:+.2f} s from GNSS (motion against GNSS speed, "
                f"rank correlation {self.correlation:.2f} over {self.samples} samples; "
                f"creation time gave {self.coarse_s:+.0f} s)"
            )
        if self.method == "creation_time":
            return (
                f"camera clock {self.offset_s:+.0f} s from GNSS (creation time against the "
                f"track only: {self.reason})"
            )
        return f"camera clock offset unknown ({self.reason})"


def coarse_offset(track: Track, start: datetime, duration_s: float) -> float | None:
    """The smallest shift that puts [start, start + duration] on the track (None: none does).

    Tried in order of size: none, the creation time being the end of the recording, whole
    quarter hours (a camera set to local time) and both together.
    """
    if not track.times:
        return None
    t0, t1 = track.times[0], track.times[-1]
    begin = start.timestamp()
    need = min(duration_s, t1 - t0) * 0.5

    def overlap(shift: float) -> float:
        return min(begin + shift + duration_s, t1) - max(begin + shift, t0)

    candidates: list[float] = [0.0, -duration_s]
    for k in range(1, MAX_TIME_ZONE_S // TIME_ZONE_STEP_S + 1):
        for sign in (1, -1):
            candidates += [sign * k * TIME_ZONE_STEP_S, sign * k * TIME_ZONE_STEP_S - duration_s]
    for shift in candidates:  # already ordered from the smallest change
        if overlap(shift) >= need and overlap(shift) > 0:
            return shift
    return None


def motion_signal(frames: Iterator[tuple[float, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(video time, mean optical flow in pixels of a FLOW_WIDTH frame) between frame pairs."""
    times: list[float] = []
    flows: list[float] = []
    prev: np.ndarray | None = None
    prev_t = 0.0
    for t, image in frames:
        h, w = image.shape[:2]
        small = cv2.resize(image, (FLOW_WIDTH, max(2, round(h * FLOW_WIDTH / w))))
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        if prev is not None:
            flow = cv2.calcOpticalFlowFarneback(prev, grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
            magnitude = float(np.mean(np.hypot(flow[..., 0], flow[..., 1])))
            times.append((t + prev_t) / 2)
            flows.append(magnitude / max(t - prev_t, 1e-6))
        prev, prev_t = grey, t
    return np.asarray(times), np.asarray(flows)


def video_frames(path: str, sample_hz: float = SAMPLE_HZ) -> Iterator[tuple[float, np.ndarray]]:
    """(video time, frame) at about `sample_hz`, decoded with OpenCV."""
    cap = cv2.VideoCapture(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        step = max(1, round(fps / sample_hz))
        i = 0
        while True:
            ok = cap.grab()
            if not ok:
                return
            if i % step == 0:
                ok, image = cap.retrieve()
                if ok and image is not None:
                    yield i / fps, image
            i += 1
    finally:
        cap.release()


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    return r


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 10:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float(np.dot(ra, ra) * np.dot(rb, rb)))
    return float(np.dot(ra, rb) / den) if den > 0 else float("nan")


def speeds_at(track: Track, when: Sequence[float]) -> np.ndarray:
    """GNSS speed at unix times `when` (NaN where the track has no fix)."""
    out = np.full(len(when), np.nan)
    for i, t in enumerate(when):
        fix = track.at(datetime.fromtimestamp(t, UTC))
        if fix is not None and fix.speed_mps is not None:
            out[i] = fix.speed_mps
    return out


def estimate_offset(
    track: Track,
    start: datetime,
    duration_s: float,
    motion: tuple[np.ndarray, np.ndarray],
    search_s: float = SEARCH_S,
) -> ClockOffset:
    """GNSS time minus camera time for a video whose frame at video time t is camera time
    `start` + t, from its `motion` signal (`motion_signal`) against the track's speed."""
    coarse = coarse_offset(track, start, duration_s)
    if coarse is None:
        return ClockOffset(0.0, 0.0, "none", reason="the video's span does not meet the track")
    times, flows = motion
    if len(times) < 10:
        return ClockOffset(coarse, coarse, "creation_time", reason="too few frames")
    base = start.timestamp()
    lags = np.arange(coarse - search_s, coarse + search_s + STEP_S / 2, STEP_S)
    # GNSS speed on a fine grid once; each lag is then a shifted lookup
    lo, hi = base + float(times[0]) + lags[0], base + float(times[-1]) + lags[-1]
    grid = np.arange(lo, hi + STEP_S, STEP_S)
    speed_grid = speeds_at(track, grid.tolist())
    valid_speed = speed_grid[~np.isnan(speed_grid)]
    if len(valid_speed) < 10 or float(np.ptp(valid_speed)) < MIN_SPEED_SPREAD_MPS:
        return ClockOffset(
            coarse,
            coarse,
            "creation_time",
            reason="the GNSS speed hardly changes: nothing to align",
        )
    scores = np.full(len(lags), np.nan)
    for k, lag in enumerate(lags):
        idx = np.rint((base + times + lag - lo) / STEP_S).astype(int)
        inside = (idx >= 0) & (idx < len(grid))
        s = np.full(len(times), np.nan)
        s[inside] = speed_grid[idx[inside]]
        ok = ~np.isnan(s)
        if ok.sum() >= max(10, len(times) // 2):
            scores[k] = _rank_correlation(flows[ok], s[ok])
    if np.all(np.isnan(scores)):
        return ClockOffset(
            coarse, coarse, "creation_time", reason="the track does not cover the video"
        )
    best = int(np.nanargmax(scores))
    peak = float(scores[best])
    if peak < MIN_CORRELATION:
        return ClockOffset(
            coarse,
            coarse,
            "creation_time",
            correlation=peak,
            samples=len(times),
            reason=f"motion and GNSS speed do not match (rank correlation {peak:.2f})",
        )
    lag = float(lags[best])
    if (
        0 < best < len(lags) - 1
        and not np.isnan(scores[best - 1])
        and not np.isnan(scores[best + 1])
    ):
        a, b, c = float(scores[best - 1]), peak, float(scores[best + 1])
        den = a - 2 * b + c
        if den < 0:
            lag += STEP_S * 0.5 * (a - c) / den
    return ClockOffset(lag, coarse, "motion", correlation=peak, samples=len(times))


def estimate_video_offset(
    path: str, track: Track, start: datetime, duration_s: float
) -> ClockOffset:
    """`estimate_offset` of a video file (decodes about SAMPLE_HZ frames a second)."""
    return estimate_offset(track, start, duration_s, motion_signal(video_frames(path)))
