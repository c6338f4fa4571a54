"""`roadmesh edge import`: what cameras a driver already owns have recorded.

Each reader turns a recording into a `CameraRecording`: a GNSS `Track` (UTC) and the
frames with their capture times, which then go through the same pipeline as a live
dashcam (sampling, quality, privacy, signing, outbox). The formats are parsed by
mapillary_tools (BSD), the reader Mapillary's own uploader uses:

| recording | GNSS from | read with |
|---|---|---|
| folder of geotagged JPEGs | each image's EXIF GPS tags | `exif_read.ExifRead` |
| GoPro MP4 | the GPMF `gpmd` track (GPS5/GPS9, GPSF fix, GPSP DOP, GPSU time) | `gpmf_parser` |
| CAMM MP4 (Insta360, Ricoh, Mapillary ...) | the `camm` track (types 5 and 6) | `camm_parser` |
| BlackVue MP4 | the NMEA in its `free/gps ` box | `blackvue_parser` + `edge.nmea` |
| any video + GPX or NMEA beside it | the log (same name, or `--gnss FILE`) | `edge.gnss_sources.load_log` |

A file that fails comes back as a reason (an image without GPS is skipped and counted);
only a recording that cannot be read at all raises `ImportFailure`.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.clock import ClockOffset, estimate_video_offset
from edge.gnss import Fix, NmeaStats, Track
from edge.gnss_sources import load_log
from edge.identity import DeviceIdentity
from edge.nmea import NmeaReader
from edge.outbox import Outbox
from edge.pipeline import Captured, Pipeline
from edge.replay import run_recording
from edge.settings import EdgeSettings
from edge.sources import IMAGE_SUFFIXES, SourceError, VideoFileSource
from vision.privacy import Redactor

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".insv", ".360", ".lrv"}
LOG_SUFFIXES = (".gpx", ".nmea", ".nma", ".log", ".txt")
MP4_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
GPS_EPOCH_UNIX = 315_964_800  # 1980-01-06 in unix time
GPS_UTC_LEAP_S = 18  # GPS time is ahead of UTC by this since 2017-01-01
Y2000_UNIX = 946_684_800


class ImportFailure(Exception):
    """The recording cannot be imported at all (no GNSS in it nor beside it, unreadable)."""


@dataclass
class CameraRecording:
    path: Path
    kind: str  # jpeg-folder, gopro, camm, blackvue, video+gpx, video+nmea
    track: Track
    gnss: NmeaStats
    frames: Iterator[Captured]
    sampled_already: bool  # a camera's time-lapse: the camera chose the frames
    satellites_known: bool  # False: the format records no satellite count
    errors: Counter[str] = field(default_factory=Counter)
    video: Path | None = None
    camera_start: datetime | None = None  # camera clock at video time 0
    duration_s: float = 0.0
    camera: str = ""


# -- JPEG folders (EXIF GPS) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GeotaggedImage:
    path: Path
    fix: Fix


def read_geotagged_image(path: Path) -> GeotaggedImage | str:
    """An image's EXIF GPS as a fix, or the reason it has none."""
    from mapillary_tools.exif_read import ExifRead, eval_frac

    exif = ExifRead(path)
    lonlat = exif.extract_lon_lat()
    if lonlat is None:
        return "no_gps"
    lon, lat = lonlat
    if (lat, lon) == (0.0, 0.0) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "no_gps"
    when = exif.extract_capture_time()
    if when is None:
        return "no_time"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # EXIF local time without OffsetTime: taken as UTC

    def number(tag: str) -> float | None:
        value = exif.tags.get(tag)
        if value is None or not getattr(value, "values", None):
            return None
        try:
            return float(eval_frac(value.values[0]))
        except (TypeError, ValueError, ZeroDivisionError, AttributeError):
            return None

    def text(tag: str) -> str:
        value = exif.tags.get(tag)
        return str(value.values).strip() if value is not None else ""

    speed = number("GPS GPSSpeed")
    if speed is not None:
        unit = text("GPS GPSSpeedRef").upper() or "K"
        speed = speed / 3.6 if unit == "K" else speed * 0.44704 if unit == "M" else speed * 0.514444
    mode = text("GPS GPSMeasureMode")
    sats = text("GPS GPSSatellites")
    return GeotaggedImage(
        path,
        Fix(
            time=when,
            lat=lat,
            lon=lon,
            alt_m=exif.extract_altitude(),
            speed_mps=speed,
            course_deg=exif.extract_direction(),
            quality=1,
            satellites=int(sats) if sats.isdigit() else 0,
            hdop=number("GPS GPSDOP"),
            dim=int(mode) if mode in ("2", "3") else 0,
        ),
    )


def open_jpeg_folder(folder: Path) -> CameraRecording:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImportFailure(f"{folder}: no images")
    images: list[GeotaggedImage] = []
    errors: Counter[str] = Counter()
    for path in files:
        got = read_geotagged_image(path)
        if isinstance(got, str):
            logger.info("%s: skipped (%s)", path.name, got)
            errors[got] += 1
        else:
            images.append(got)
    if not images:
        raise ImportFailure(f"{folder}: none of {len(files)} images carries EXIF GPS and a time")
    images.sort(key=lambda g: g.fix.time)
    fixes = [g.fix for i, g in enumerate(images) if i == 0 or g.fix.time != images[i - 1].fix.time]
    stats = NmeaStats(receiver=f"exif:{folder.name}", epochs=len(images), fixes=len(fixes))
    root = folder.resolve()

    def frames() -> Iterator[Captured]:
        for g in images:
            data = g.path.read_bytes()
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                errors["not_an_image"] += 1
                continue
            yield Captured(image, g.fix.time, f"{root}::{g.path.name}", data)

    return CameraRecording(
        folder,
        "jpeg-folder",
        # a time-lapse camera shoots every 1-5 s: interpolate between images that far apart
        Track(fixes, max_gap=timedelta(seconds=10)),
        stats,
        frames(),
        sampled_already=True,
        satellites_known=all(f.satellites > 0 for f in fixes),
        errors=errors,
        camera=_exif_camera(images[0].path),
    )


def _exif_camera(path: Path) -> str:
    from mapillary_tools.exif_read import ExifRead

    exif = ExifRead(path)
    return " ".join(x for x in (exif.extract_make(), exif.extract_model()) if x)


# -- videos ------------------------------------------------------------------------------------
def mp4_creation_time(path: Path) -> datetime | None:
    """The movie header's creation time (the camera's clock, whole seconds), if set."""
    from mapillary_tools.mp4.mp4_sample_parser import MovieBoxParser

    try:
        with path.open("rb") as fp:
            seconds = int(MovieBoxParser.parse_stream(fp).extract_mvhd_boxdata()["creation_time"])
    except Exception:  # any box the parser cannot read: the file simply has no usable time
        return None
    return MP4_EPOCH + timedelta(seconds=seconds) if seconds > 0 else None


def video_length(path: Path) -> tuple[float, float]:
    """(frames per second, seconds) as OpenCV decodes the video."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ImportFailure(f"{path}: OpenCV cannot open this video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
    finally:
        cap.release()
    return fps, n / fps


def camm_unix_time(value: float) -> float:
    """CAMM type 6 `time_gps_epoch`: GPS seconds by the spec, unix seconds by some writers."""
    if value < Y2000_UNIX and value + GPS_EPOCH_UNIX - GPS_UTC_LEAP_S > Y2000_UNIX:
        return value + GPS_EPOCH_UNIX - GPS_UTC_LEAP_S
    return value


def fixes_from_points(points: list[Any], anchor: datetime) -> tuple[list[Fix], Counter[str]]:
    """mapillary_tools telemetry points (video time) as fixes at `anchor` + point time."""
    from mapillary_tools import telemetry

    fixes: list[Fix] = []
    void: Counter[str] = Counter()
    for p in points:
        dim, hdop, speed, course = 0, None, None, p.angle
        if isinstance(p, telemetry.GPSPoint):  # GoPro GPMF, BlackVue
            if p.fix is telemetry.GPSFix.NO_FIX:
                void["no_fix"] += 1
                continue
            dim = p.fix.value if p.fix is not None else 0
            hdop = p.precision / 100.0 if p.precision else None  # GoPro GPSP: DOP x 100
            speed = p.ground_speed
        elif isinstance(p, telemetry.CAMMGPSPoint):  # CAMM type 6
            if p.gps_fix_type not in (2, 3):
                void["no_fix"] += 1
                continue
            dim = p.gps_fix_type
            speed = math.hypot(p.velocity_east, p.velocity_north)
            if course is None and speed > 0.5:
                course = math.degrees(math.atan2(p.velocity_east, p.velocity_north)) % 360.0
        if (p.lat, p.lon) == (0.0, 0.0):
            void["zero_position"] += 1
            continue
        fixes.append(
            Fix(
                anchor + timedelta(seconds=p.time),
                p.lat,
                p.lon,
                p.alt,
                speed,
                course,
                1,
                0,
                hdop,
                dim,
            )
        )
    fixes.sort(key=lambda f: f.time)
    return [f for i, f in enumerate(fixes) if i == 0 or f.time != fixes[i - 1].time], void


def _anchor(points: list[Any], creation: datetime | None, path: Path) -> tuple[datetime, str]:
    """UTC of video time 0: from the GNSS times the points carry, else the camera clock."""
    from mapillary_tools import telemetry

    offsets = []
    for p in points:
        if isinstance(p, telemetry.CAMMGPSPoint) and p.time_gps_epoch > 0:
            offsets.append(camm_unix_time(p.time_gps_epoch) - p.time)
        elif isinstance(p, telemetry.GPSPoint) and p.epoch_time:
            offsets.append(p.epoch_time - p.time)
    if offsets:
        return datetime.fromtimestamp(statistics.median(offsets), UTC), "GNSS time in the video"
    if creation is not None:
        return creation, "the camera's creation time"
    raise ImportFailure(f"{path}: its GPS points carry no time and the video has no creation time")


def open_embedded(video: Path) -> CameraRecording | None:
    """A video with GPS in it (GoPro GPMF, CAMM, BlackVue), or None when it has none."""
    from mapillary_tools import exceptions as mly
    from mapillary_tools import types
    from mapillary_tools.geotag.video_extractors.native import NativeVideoExtractor

    try:
        meta = NativeVideoExtractor(video).extract()
    except (mly.MapillaryVideoGPSNotFoundError, mly.MapillaryInvalidVideoError):
        return None
    except (mly.MapillaryGPXEmptyError, mly.MapillaryGPSNoiseError) as exc:
        raise ImportFailure(f"{video}: its GPS track is empty or all noise ({exc})") from None
    kind = {types.FileType.GOPRO: "gopro", types.FileType.CAMM: "camm"}.get(
        meta.filetype, "blackvue"
    )
    creation = mp4_creation_time(video)
    points = list(meta.points)
    anchor, source = _anchor(points, creation, video)
    stats = NmeaStats(receiver=f"{kind}:{video.name}")
    if kind == "blackvue":
        fixes = _blackvue_fixes(video, anchor, points, stats)
    else:
        fixes, void = fixes_from_points(points, anchor)
        stats.epochs = len(points)
        stats.fixes = len(fixes)
        stats.void.update(void)
        stats.rejected["void_fix"] = sum(void.values())
    logger.info(
        "%s: %s, %d fixes, video time 0 is %s (%s)", video.name, kind, len(fixes), anchor, source
    )
    fps, duration = video_length(video)
    source_frames = VideoFileSource(video, anchor, fps)
    return CameraRecording(
        video,
        kind,
        Track(fixes),
        stats,
        source_frames.frames(),
        sampled_already=False,
        satellites_known=False,
        errors=source_frames.errors,
        video=video,
        camera_start=anchor,
        duration_s=duration,
        camera=" ".join(x for x in (meta.make, meta.model) if x),
    )


def _blackvue_fixes(
    video: Path, anchor: datetime, points: list[Any], stats: NmeaStats
) -> list[Fix]:
    """The dashcam's own NMEA through our reader (void fixes, counters), on mapillary's timing.

    mapillary_tools puts video time 0 at the first GPS point; the NMEA carries UTC itself.
    """
    from mapillary_tools.mp4 import simple_mp4_parser as sparser

    with video.open("rb") as fp:
        data = sparser.parse_mp4_data_first(fp, [b"free", b"gps "]) or b""
    reader = NmeaReader(stats, day=anchor.date())
    fixes = [f for line in data.splitlines() for f in reader.feed(line)] + reader.flush()
    fixes.sort(key=lambda f: f.time)
    return [f for i, f in enumerate(fixes) if i == 0 or f.time != fixes[i - 1].time]


def side_log(video: Path) -> Path | None:
    """A GPX or NMEA log beside the video, named like it."""
    for suffix in LOG_SUFFIXES:
        for candidate in (video.with_suffix(suffix), video.with_suffix(suffix.upper())):
            if candidate.exists():
                return candidate
    return None


def open_video_with_log(
    video: Path, log: Path, start: datetime | None, day: date | None
) -> CameraRecording:
    stats = NmeaStats(receiver=f"log:{log.name}")
    try:
        fixes = load_log(log, stats, day=day)
    except (OSError, ValueError) as exc:
        raise ImportFailure(f"{log}: {exc}") from None
    if not fixes:
        raise ImportFailure(f"{log}: no fixes ({stats.summary()})")
    camera_start = start or mp4_creation_time(video)
    if camera_start is None:
        raise ImportFailure(f"{video}: no creation time in the video: give --start")
    fps, duration = video_length(video)
    source_frames = VideoFileSource(video, camera_start, fps)
    return CameraRecording(
        video,
        "video+gpx" if log.suffix.lower() == ".gpx" else "video+nmea",
        Track(fixes),
        stats,
        source_frames.frames(),
        sampled_already=False,
        satellites_known=any(f.satellites > 0 for f in fixes),
        errors=source_frames.errors,
        video=video,
        camera_start=camera_start,
        duration_s=duration,
    )


def open_camera_recording(
    path: Path,
    gnss: Path | None = None,
    start: datetime | None = None,
    day: date | None = None,
) -> CameraRecording:
    """What PATH is, read: a JPEG folder, a video with GPS in it, or a video with a log."""
    if not path.exists():
        raise ImportFailure(f"{path}: no such file or folder")
    if path.is_dir():
        return open_jpeg_folder(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ImportFailure(
            f"{path}: not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) nor a folder"
        )
    if gnss is not None:
        return open_video_with_log(path, gnss, start, day)
    embedded = open_embedded(path)
    if embedded is not None:
        return embedded
    log = side_log(path)
    if log is None:
        raise ImportFailure(
            f"{path}: no GPS in the video (GPMF, CAMM, BlackVue) and no GPX or NMEA beside it "
            f"({', '.join(path.stem + s for s in LOG_SUFFIXES)}): give --gnss FILE"
        )
    return open_video_with_log(path, log, start, day)


# -- through the pipeline ----------------------------------------------------------------------
@dataclass
class ImportReport:
    kind: str = ""
    camera: str = ""
    frames: int = 0
    enqueued: int = 0
    already_enqueued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    gnss: NmeaStats = field(default_factory=NmeaStats)
    clock: ClockOffset | None = None
    applied_offset_s: float = 0.0
    faces: int = 0
    plates: int = 0


def estimate_clock(rec: CameraRecording) -> ClockOffset:
    if rec.video is None or rec.camera_start is None:
        return ClockOffset(0.0, 0.0, "none", reason="each image carries its own time and position")
    return estimate_video_offset(str(rec.video), rec.track, rec.camera_start, rec.duration_s)


def enqueue_import(
    rec: CameraRecording,
    identity: DeviceIdentity,
    key: Ed25519PrivateKey,
    outbox: Outbox,
    settings: EdgeSettings | None = None,
    *,
    clock_offset: float | str | None = None,
    redactor: Redactor | None = None,
    sample: bool | None = None,
) -> ImportReport:
    """Every frame of `rec` through the pipeline into the outbox.

    `clock_offset`: None keeps the setting, a number is applied, "auto" applies the estimate.
    """
    settings = settings or EdgeSettings()
    report = ImportReport(kind=rec.kind, camera=rec.camera, gnss=rec.gnss)
    if rec.video is not None:
        report.clock = estimate_clock(rec)
        logger.info("%s: %s", rec.path.name, report.clock.describe())
    if clock_offset == "auto":
        offset = report.clock.offset_s if report.clock is not None else 0.0
    elif clock_offset is None:
        offset = settings.clock_offset_s
    else:
        offset = float(clock_offset)
    report.applied_offset_s = offset
    overrides: dict[str, Any] = {"clock_offset_s": offset}
    if not rec.satellites_known:
        overrides["min_satellites"] = 0  # the camera records none: judge the fix by type and DOP
    settings = settings.with_overrides(**overrides)
    pipeline = Pipeline(
        settings,
        identity,
        key,
        outbox,
        redactor or Redactor.default(settings.threads, settings.face_max_side),
        sample=(not rec.sampled_already) if sample is None else sample,
    )
    try:
        run_recording(pipeline, rec.frames, rec.track, rec.errors, report)
    except SourceError as exc:
        raise ImportFailure(str(exc)) from None
    return report
