"""Frame sources: a V4L2 camera through OpenCV, a video file, a folder of images, the simulator.

Each yields `Captured` frames with their capture time. A camera that disconnects is
reopened with backoff (counted in `errors`); it never ends the process.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.pipeline import Captured

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


class SourceError(Exception):
    """A recorded source cannot be read at all."""


class FrameSource(Protocol):
    errors: Counter[str]

    def frames(self) -> Iterator[Captured]: ...


class Stoppable(Protocol):
    def stop(self) -> None: ...


class Capture(Protocol):
    """What CameraSource needs of cv2.VideoCapture (the seam for tests)."""

    def read(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


class CameraSource:
    """A USB camera: `device` is a V4L2 index ("0") or a path ("/dev/video2").

    A camera that cannot be opened, or stops delivering frames, is counted
    (`camera_unavailable`, `camera_disconnected`), logged and reopened with exponential
    backoff (`min_retry_s` doubling up to `max_retry_s`; reset once frames flow again).
    `stop()` ends `frames()` promptly, even in the middle of a backoff wait.
    """

    def __init__(
        self,
        device: str,
        width: int,
        height: int,
        fps: float,
        max_retry_s: float = 30.0,
        min_retry_s: float = 1.0,
    ) -> None:
        self.device: int | str = int(device) if device.isdigit() else device
        self.width, self.height, self.fps = width, height, fps
        self.min_retry_s, self.max_retry_s = min_retry_s, max_retry_s
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def _open(self) -> Capture | None:
        cap = (
            cv2.VideoCapture(self.device, cv2.CAP_V4L2)
            if isinstance(self.device, int)
            else cv2.VideoCapture(self.device)
        )
        if not cap.isOpened():
            return None
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))  # type: ignore[attr-defined]
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap

    def frames(self) -> Iterator[Captured]:
        delay = self.min_retry_s
        while not self.stopped:
            try:
                cap = self._open()
            except cv2.error as exc:
                logger.debug("camera %s: %s", self.device, exc)
                cap = None
            if cap is None:
                self.errors["camera_unavailable"] += 1
                logger.error("camera %s cannot be opened; retrying in %.1f s", self.device, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_retry_s)
                continue
            logger.info("camera %s open", self.device)
            delivered = 0
            try:
                while not self.stopped:
                    ok, image = cap.read()
                    now = datetime.now(UTC)  # capture time: when the driver handed us the frame
                    if not ok or image is None:
                        break
                    delivered += 1
                    yield Captured(image, now)
            finally:
                cap.release()
            if self.stopped:
                return
            # A camera that opens but gives nothing backs off like one that does not open.
            delay = self.min_retry_s if delivered else min(delay * 2, self.max_retry_s)
            self.errors["camera_disconnected"] += 1
            logger.error(
                "camera %s stopped delivering frames after %d; reopening in %.1f s",
                self.device,
                delivered,
                delay,
            )
            self._stop.wait(delay)


class VideoFileSource:
    """A recorded video: frame i was captured at `start + i / fps`.

    `realtime=True` hands frame i out no earlier than i / fps after the first, as a camera
    would (demos, and tests that change settings during a run); `stop()` ends it early.
    """

    def __init__(
        self, path: Path, start: datetime, fps: float | None = None, *, realtime: bool = False
    ) -> None:
        self.path, self.start, self.fps = path, start, fps
        self.realtime = realtime
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def frames(self) -> Iterator[Captured]:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"{self.path}: OpenCV cannot open this video")
        fps = self.fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
        key = str(self.path.resolve())
        i = 0
        t0 = time.monotonic()
        try:
            while not self._stop.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    break
                if self.realtime and self._stop.wait(max(0.0, t0 + i / fps - time.monotonic())):
                    break
                yield Captured(image, self.start + timedelta(seconds=i / fps), f"{key}::{i}")
                i += 1
        finally:
            cap.release()


class ImageFolderSource:
    """A folder of images. `frames.csv` (file,captured_at) gives times; without it, the
    images in name order are spaced `1 / fps` apart from `start`."""

    def __init__(self, folder: Path, start: datetime | None = None, fps: float = 1.0) -> None:
        self.folder, self.start, self.fps = folder, start, fps
        self.errors: Counter[str] = Counter()

    def entries(self) -> list[tuple[Path, datetime]]:
        index = self.folder / "frames.csv"
        if index.exists():
            out: list[tuple[Path, datetime]] = []
            with index.open(newline="") as fh:
                for lineno, row in enumerate(csv.DictReader(fh), start=2):
                    try:
                        when = datetime.fromisoformat(row["captured_at"].replace("Z", "+00:00"))
                    except (KeyError, ValueError, AttributeError):
                        raise SourceError(
                            f"{index}:{lineno}: bad captured_at {row.get('captured_at')!r}"
                        ) from None
                    if when.tzinfo is None:
                        raise SourceError(
                            f"{index}:{lineno}: captured_at must carry a time zone (use Z)"
                        )
                    out.append((self.folder / row["file"], when))
            return out
        if self.start is None:
            raise SourceError(f"{self.folder}: no frames.csv, so a start time is needed")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [(p, self.start + timedelta(seconds=i / self.fps)) for i, p in enumerate(files)]

    def frames(self) -> Iterator[Captured]:
        root = self.folder.resolve()
        for path, when in self.entries():
            try:
                data = path.read_bytes()
            except OSError as exc:
                logger.warning("cannot read %s: %s", path, exc)
                self.errors["unreadable"] += 1
                continue
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                self.errors["not_an_image"] += 1
                continue
            jpeg = data if path.suffix.lower() in {".jpg", ".jpeg"} else None
            yield Captured(image, when, f"{root}::{path.name}", jpeg)


class LiveEvents(Protocol):
    """The simulator's live drive (sim.drive.LiveDrive): frames and NMEA in time order."""

    def events(self) -> Iterator[tuple[str, datetime, Any]]: ...


def read_manifest(drive: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((drive / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{drive}/manifest.json: {exc}") from None
    if not isinstance(manifest, dict) or "start_time_utc" not in manifest:
        raise SourceError(f"{drive}/manifest.json has no start_time_utc")
    return manifest


def manifest_start(manifest: dict[str, Any]) -> datetime:
    try:
        start = datetime.fromisoformat(str(manifest["start_time_utc"]).replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"bad start_time_utc {manifest['start_time_utc']!r}") from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)
