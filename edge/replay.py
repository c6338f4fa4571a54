"""Replay a recording through the same pipeline a live dashcam runs.

Two layouts are understood:

* a dashcam card / simulator drive: `manifest.json` (`start_time_utc`, `fps`, `video`,
  `nmea` or `gpx`), the video and the GNSS log. Frame i was captured at start + i/fps.
  Every frame goes through sampling, quality, privacy, signing, exactly as live.
* a folder of already-sampled frames: `frames.csv` (`file,captured_at`, ISO 8601 UTC),
  the JPEGs it names and `track.nmea`. Each frame is geotagged, quality-scored and goes
  through privacy; distance sampling is off (the recorder already chose the frames)
  unless `sample=True`.

Each recorded frame has a stable key, so replaying the same recording again (or after a
crash) enqueues nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.gnss import NmeaStats, Track
from edge.gnss_sources import load_log
from edge.identity import DeviceIdentity
from edge.outbox import Outbox
from edge.pipeline import Captured, Pipeline
from edge.settings import EdgeSettings
from edge.sources import (
    ImageFolderSource,
    SourceError,
    VideoFileSource,
    manifest_start,
    read_manifest,
)
from vision.privacy import Redactor

logger = logging.getLogger(__name__)


class DriveError(Exception):
    """The drive directory cannot be read."""


@dataclass
class ReplayReport:
    frames: int = 0
    enqueued: int = 0
    already_enqueued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    nmea: NmeaStats = field(default_factory=NmeaStats)
    faces: int = 0
    plates: int = 0


@dataclass(frozen=True)
class Recording:
    frames: Iterator[Captured]
    track: Track
    nmea: NmeaStats
    sampled_already: bool
    errors: Counter[str]


def open_recording(drive_dir: Path) -> Recording:
    stats = NmeaStats()
    try:
        if (drive_dir / "manifest.json").exists():
            manifest = read_manifest(drive_dir)
            gnss = drive_dir / str(manifest.get("nmea") or manifest.get("gpx") or "gnss.nmea")
            video = drive_dir / str(manifest.get("video", "video.mp4"))
            if not gnss.exists() or not video.exists():
                raise DriveError(
                    f"{drive_dir}: manifest names {video.name} and {gnss.name}; both are needed"
                )
            fps = float(manifest["fps"]) if manifest.get("fps") else None
            vsrc = VideoFileSource(video, manifest_start(manifest), fps)
            return Recording(vsrc.frames(), Track(load_log(gnss, stats)), stats, False, vsrc.errors)
        index, nmea = drive_dir / "frames.csv", drive_dir / "track.nmea"
        if not index.exists() or not nmea.exists():
            raise DriveError(
                f"{drive_dir} needs manifest.json (video drive) or frames.csv and track.nmea"
            )
        isrc = ImageFolderSource(drive_dir)
        isrc.entries()  # fail early on a bad index
        return Recording(isrc.frames(), Track(load_log(nmea, stats)), stats, True, isrc.errors)
    except SourceError as exc:
        raise DriveError(str(exc)) from None


def enqueue_drive(
    drive_dir: Path,
    identity: DeviceIdentity,
    key: Ed25519PrivateKey,
    outbox: Outbox,
    settings: EdgeSettings | None = None,
    redactor: Redactor | None = None,
    sample: bool | None = None,
) -> ReplayReport:
    rec = open_recording(drive_dir)
    settings = settings or EdgeSettings()
    pipeline = Pipeline(
        settings,
        identity,
        key,
        outbox,
        redactor or Redactor.default(settings.threads, settings.face_max_side),
        sample=(not rec.sampled_already) if sample is None else sample,
    )
    report = ReplayReport(nmea=rec.nmea)
    try:
        run_recording(pipeline, rec.frames, rec.track, rec.errors, report)
    except SourceError as exc:
        raise DriveError(str(exc)) from None
    return report


def run_recording(
    pipeline: Pipeline,
    frames: Iterator[Captured],
    track: Track,
    errors: Counter[str],
    report: ReplayReport | Any,
) -> None:
    """Every frame of a recording through `pipeline` into its outbox, and the counts into
    `report` (any report with frames, enqueued, already_enqueued, skipped, faces, plates).
    SourceError when the recording cannot be read to its end."""
    for frame in _progress(frames):
        pipeline.process(frame, track)
    pipeline.finish()
    c = pipeline.counters
    report.frames = c.captured + sum(errors.values())
    report.enqueued, report.already_enqueued = c.enqueued, c.already_enqueued
    report.skipped = Counter(c.dropped) + errors + c.errors
    report.faces, report.plates = c.faces, c.plates


def _progress(frames: Iterator[Captured]) -> Iterator[Captured]:
    from tqdm import tqdm

    yield from tqdm(frames, desc="frames", unit="frame", leave=False, mininterval=2.0, disable=None)
