"""Replay a recorded drive: geotag each frame from the GNSS log, sign it, put it in the outbox.

A recorded drive directory holds `frames.csv` (columns `file,captured_at`, ISO 8601 UTC),
the JPEGs it names, and `track.nmea` (NMEA 0183 GGA + RMC). Each frame becomes one signed
protocol Frame; a frame is skipped (and counted) when no valid fix covers its time.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from edge.gnss import Fix, NmeaStats, Track, parse_nmea
from edge.identity import DeviceIdentity
from edge.outbox import Outbox
from vision.quality import score

logger = logging.getLogger(__name__)

FIX_TYPES = {
    1: protocol.FixType.FIX_3D,
    2: protocol.FixType.DGPS,
    4: protocol.FixType.RTK_FIXED,
    5: protocol.FixType.RTK_FLOAT,
}


class DriveError(Exception):
    """The drive directory cannot be read."""


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    path: Path
    captured_at: datetime


@dataclass
class ReplayReport:
    frames: int = 0
    enqueued: int = 0
    already_enqueued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    nmea: NmeaStats = field(default_factory=NmeaStats)


def read_drive(drive_dir: Path) -> tuple[list[RecordedFrame], Path]:
    index = drive_dir / "frames.csv"
    nmea = drive_dir / "track.nmea"
    if not index.exists() or not nmea.exists():
        raise DriveError(f"{drive_dir} needs frames.csv and track.nmea")
    frames: list[RecordedFrame] = []
    with index.open(newline="") as fh:
        for lineno, row in enumerate(csv.DictReader(fh), start=2):
            try:
                when = datetime.fromisoformat(row["captured_at"].replace("Z", "+00:00"))
            except (KeyError, ValueError, AttributeError):
                raise DriveError(
                    f"{index}:{lineno}: bad captured_at {row.get('captured_at')!r}"
                ) from None
            if when.tzinfo is None:
                raise DriveError(f"{index}:{lineno}: captured_at must carry a time zone (use Z)")
            frames.append(RecordedFrame(drive_dir / row["file"], when))
    return frames, nmea


def frame_message(
    identity: DeviceIdentity,
    seq: int,
    recorded: RecordedFrame,
    jpeg: bytes,
    image: np.ndarray,
    fix: Fix,
) -> protocol.Frame:
    q = score(image)
    return protocol.Frame(
        device_id=identity.device_id,
        seq=seq,
        captured_at_us=int(recorded.captured_at.timestamp() * 1_000_000),
        position=protocol.Position(
            lat=fix.lat,
            lon=fix.lon,
            alt_m=fix.alt_m,
            heading_deg=fix.course_deg,
            speed_mps=fix.speed_mps,
            fix=FIX_TYPES.get(fix.quality, protocol.FixType.FIX_3D),
            satellites=min(fix.satellites, 255),
            hdop=fix.hdop,
        ),
        camera_id=identity.camera_id,
        intrinsics_ref=identity.intrinsics_ref,
        quality=protocol.Quality(
            sharpness=q.sharpness, exposure=q.exposure, obstruction=q.obstruction
        ),
        privacy=protocol.PrivacyCounts(faces=0, plates=0),
        jpeg=jpeg,
    )


def enqueue_drive(
    drive_dir: Path, identity: DeviceIdentity, key: Ed25519PrivateKey, outbox: Outbox
) -> ReplayReport:
    frames, nmea_path = read_drive(drive_dir)
    report = ReplayReport(frames=len(frames))
    with nmea_path.open(errors="replace") as fh:
        track = Track(parse_nmea(fh, report.nmea))
    topic = protocol.topic_for(identity.device_id, protocol.Channel.FRAMES)
    for recorded in _progress(frames):
        try:
            jpeg = recorded.path.read_bytes()
        except OSError as exc:
            logger.warning("cannot read %s: %s", recorded.path, exc)
            report.skipped["unreadable"] += 1
            continue
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            report.skipped["not_a_jpeg"] += 1
            continue
        fix = track.at(recorded.captured_at)
        if fix is None:
            report.skipped["no_fix"] += 1
            continue
        source = f"{drive_dir.resolve()}::{recorded.path.name}"

        def build(
            seq: int,
            recorded: RecordedFrame = recorded,
            jpeg: bytes = jpeg,
            image: np.ndarray = image,
            fix: Fix = fix,
        ) -> tuple[str, bytes]:
            return topic, protocol.encode(
                frame_message(identity, seq, recorded, jpeg, image, fix), key
            )

        try:
            seq = outbox.put(build, source=source)
        except protocol.ProtocolError as exc:
            logger.warning("frame %s cannot be encoded: %s", recorded.path.name, exc)
            report.skipped["unencodable"] += 1
            continue
        if seq is None:
            report.already_enqueued += 1
        else:
            report.enqueued += 1
    return report


def _progress(frames: list[RecordedFrame]) -> Iterator[RecordedFrame]:
    from tqdm import tqdm

    yield from tqdm(frames, desc="sign", unit="frame", leave=False, disable=len(frames) < 50)
