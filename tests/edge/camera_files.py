"""Camera recordings for `roadmesh edge import`, made with the tools that write these formats.

* video: raw frames piped into ffmpeg (libx264), its creation time set with `-metadata`;
* GPX beside it: gpxpy; NMEA beside it: pynmeagps (tests/edge/receivers.py);
* CAMM MP4: mapillary_tools' own CAMM writer (`camm_builder`, what its uploader sends);
* geotagged JPEGs: OpenCV writes the JPEG, exiftool its EXIF GPS tags;
* GoPro GPMF: mapillary_tools' GPMF KLV structures (construct builds what it parses) in a
  `gpmd` track added with its MP4 builder. Not a GoPro recording: docs/edge.md says so.

The drive: the car starts parked, pulls away, brakes to a stop and drives on (a speed that
changes is what lets the clock offset be read from the motion). The picture scrolls by a
fixed number of pixels per metre driven, so the image moves exactly when the car does.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import typing as T
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from tests.edge.synthetic import LAT0, LON0, M_PER_DEG_LAT, scene

START = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
PX_PER_M = 6.0


def speed_at(t: float) -> float:
    """m/s: parked 2 s, up to 14 m/s, brake to a stop at 18-21 s, then up to 12 m/s."""
    if t < 2:
        return 0.0
    if t < 7:
        return (t - 2) / 5 * 14.0
    if t < 14:
        return 14.0
    if t < 18:
        return 14.0 * (18 - t) / 4
    if t < 21:
        return 0.0
    if t < 25:
        return (t - 21) / 4 * 12.0
    return 12.0


Profile = T.Callable[[float], float]


def distance_at(t: float, speed: Profile = speed_at, dt: float = 0.01) -> float:
    n = int(t / dt)
    return sum(speed(i * dt) * dt for i in range(n)) + speed(n * dt) * (t - n * dt)


@dataclass(frozen=True)
class Point:
    time: datetime
    lat: float
    lon: float
    speed_mps: float


def drive_points(
    start: datetime, duration_s: float, hz: float = 1.0, speed: Profile = speed_at
) -> list[Point]:
    out = []
    d = 0.0
    dt = 0.01
    steps_per = round(1 / hz / dt)
    for k in range(int(duration_s * hz) + 1):
        out.append(
            Point(start + timedelta(seconds=k / hz), LAT0 + d / M_PER_DEG_LAT, LON0, speed(k / hz))
        )
        for i in range(steps_per):
            d += speed(k / hz + i * dt) * dt
    return out


def need(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is not installed (scripts/bootstrap.sh test installs it)"
    return path


def write_video(
    path: Path,
    duration_s: float,
    fps: float = 10.0,
    size: tuple[int, int] = (480, 270),
    creation_time: datetime | None = None,
    speed: Profile = speed_at,
) -> Path:
    """A drive filmed at `fps`; the camera clock (creation time) is `creation_time`."""
    w, h = size
    base = scene(w * 3, h, seed=3)
    cmd = [
        need("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(int(fps)),
    ]  # fmt: skip
    if creation_time is not None:
        cmd += ["-metadata", f"creation_time={creation_time.strftime('%Y-%m-%dT%H:%M:%S.000000Z')}"]
    cmd.append(str(path))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    dt = 1.0 / fps
    d = 0.0
    for i in range(int(duration_s * fps)):
        shift = round(d * PX_PER_M) % (w * 2)
        proc.stdin.write(np.ascontiguousarray(base[:, shift : shift + w]).tobytes())
        d += distance_at((i + 1) * dt, speed) - distance_at(i * dt, speed)
    proc.stdin.close()
    assert proc.wait(120) == 0
    return path


def write_gpx(path: Path, points: list[Point]) -> Path:
    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    gpx.creator = "RoadMesh tests (gpxpy)"
    track = gpxpy.gpx.GPXTrack()
    segment = gpxpy.gpx.GPXTrackSegment()
    for p in points:
        segment.points.append(gpxpy.gpx.GPXTrackPoint(p.lat, p.lon, elevation=18.0, time=p.time))
    track.segments.append(segment)
    gpx.tracks.append(track)
    path.write_text(gpx.to_xml())
    return path


def write_nmea(path: Path, points: list[Point]) -> Path:
    from tests.edge import receivers as rx

    truth = [rx.Truth(p.time, p.lat, p.lon) for p in points]
    data = b""
    for t, p in zip(truth, points, strict=True):
        g = rx.gga("GP", t) + rx.gsa("GP", t, None, rx.GPS_SVIDS)
        r = rx.rmc("GP", t, "A", nmea41=False)
        r = rx.edited(r, 6, f"{p.speed_mps / 0.514444:.3f}")
        data += g + r
    path.write_bytes(data)
    return path


def write_camm(video: Path, out: Path, points: list[Point], start: datetime) -> Path:
    """mapillary_tools' CAMM writer: type 6 GPS samples in a `camm` track of the video."""
    from mapillary_tools import telemetry
    from mapillary_tools.camm import camm_builder, camm_parser
    from mapillary_tools.mp4 import simple_mp4_builder

    gps = [
        telemetry.CAMMGPSPoint(
            time=(p.time - start).total_seconds(), lat=p.lat, lon=p.lon, alt=18.0, angle=None,
            time_gps_epoch=p.time.timestamp(), gps_fix_type=3, horizontal_accuracy=3.0,
            vertical_accuracy=5.0, velocity_east=0.0, velocity_north=p.speed_mps,
            velocity_up=0.0, speed_accuracy=0.5,
        )
        for p in points
    ]  # fmt: skip
    info = camm_parser.CAMMInfo(gps=gps, make="Insta360", model="RoadMesh test")
    with video.open("rb") as src, out.open("wb") as dst:
        stream = simple_mp4_builder.transform_mp4(src, camm_builder.camm_sample_generator2(info))
        shutil.copyfileobj(T.cast(T.BinaryIO, stream), dst)
    return out


def write_jpeg_folder(
    folder: Path, points: list[Point], size: tuple[int, int] = (960, 540)
) -> Path:
    """A time-lapse camera: one JPEG per point, its EXIF GPS written by exiftool."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    base = scene(w * 3, h, seed=5)
    args: list[str] = []
    d = 0.0
    for i, p in enumerate(points):
        shift = round(d * PX_PER_M) % (w * 2)
        name = folder / f"G{i:07d}.JPG"
        cv2.imwrite(
            str(name),
            np.ascontiguousarray(base[:, shift : shift + w]),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
        if i + 1 < len(points):
            d += (points[i + 1].time - p.time).total_seconds() * p.speed_mps
        local = p.time.strftime("%Y:%m:%d %H:%M:%S")
        args += [
            "-overwrite_original", "-Make=RoadMesh", "-Model=Test time-lapse",
            f"-DateTimeOriginal={local}", "-OffsetTimeOriginal=+00:00",
            f"-GPSDateStamp={p.time.strftime('%Y:%m:%d')}", f"-GPSTimeStamp={p.time.strftime('%H:%M:%S')}",
            f"-GPSLatitude={abs(p.lat)}", f"-GPSLatitudeRef={'N' if p.lat >= 0 else 'S'}",
            f"-GPSLongitude={abs(p.lon)}", f"-GPSLongitudeRef={'E' if p.lon >= 0 else 'W'}",
            "-GPSAltitude=18", "-GPSAltitudeRef=0", f"-GPSSpeed={p.speed_mps * 3.6:.2f}", "-GPSSpeedRef=K",
            "-GPSImgDirection=0", "-GPSImgDirectionRef=T", "-GPSMeasureMode=3", "-GPSDOP=0.9",
            "-GPSSatellites=9", str(name), "-execute",
        ]  # fmt: skip
    argfile = folder.parent / f"{folder.name}.exiftool-args"
    argfile.write_text("\n".join(args) + "\n")
    subprocess.run([need("exiftool"), "-q", "-@", str(argfile)], check=True, capture_output=True)
    argfile.unlink()
    return folder


def write_gopro(video: Path, out: Path, points: list[Point], start: datetime, fix: int = 3) -> Path:
    """GPMF as GoPro's spec lays it out (DEVC > STRM > GPSF, GPSU, GPSP, SCAL, GPS5), one
    payload per second, built by mapillary_tools' KLV structures, in a `gpmd` track."""
    from mapillary_tools.camm import camm_builder
    from mapillary_tools.gpmf import gpmf_parser
    from mapillary_tools.mp4 import mp4_sample_parser as sample_parser
    from mapillary_tools.mp4 import simple_mp4_builder as builder

    def klv(key: bytes, type_: bytes, size: int, data: list[T.Any]) -> dict[str, T.Any]:
        return {
            "key": key,
            "type": type_,
            "structure_size": size,
            "repeat": len(data),
            "data": data,
        }

    payloads: list[bytes] = []
    for p in points:
        gps5 = [
            [
                round(p.lat * 1e7),
                round(p.lon * 1e7),
                18_000,
                round(p.speed_mps * 1000),
                round(p.speed_mps * 100),
            ]
        ]
        strm = gpmf_parser.GPMFSampleData.build(
            [
                klv(b"STNM", b"c", 9, [b"GPS (Lat."]),
                klv(b"GPSF", b"L", 4, [[fix]]),
                klv(b"GPSU", b"U", 16, [[p.time.strftime("%y%m%d%H%M%S.000").encode()]]),
                klv(b"GPSP", b"S", 2, [[90]]),
                klv(b"SCAL", b"l", 4, [[10_000_000], [10_000_000], [1000], [1000], [100]]),
                klv(b"GPS5", b"l", 20, gps5),
            ]
        )
        devc_body = gpmf_parser.GPMFSampleData.build(
            [klv(b"DVID", b"L", 4, [[1]]), klv(b"DVNM", b"c", 11, [b"HERO9 Black"])]
        ) + gpmf_parser.KLV.build(
            {
                "key": b"STRM",
                "type": b"\x00",
                "structure_size": 1,
                "repeat": len(strm),
                "data": gpmf_parser.GPMFSampleData.parse(strm),
            }
        )
        payloads.append(
            gpmf_parser.KLV.build(
                {
                    "key": b"DEVC",
                    "type": b"\x00",
                    "structure_size": 1,
                    "repeat": len(devc_body),
                    "data": gpmf_parser.GPMFSampleData.parse(devc_body),
                }
            )
        )

    def add_gpmd(fp: T.BinaryIO, moov_children: list[builder.BoxDict]) -> T.Iterator[io.IOBase]:
        timescale = 1000
        samples = [
            sample_parser.RawSample(
                description_idx=1, offset=0, size=len(data), timedelta=timescale,
                composition_offset=0, is_sync=True,
            )
            for data in payloads
        ]  # fmt: skip
        trak = camm_builder.create_camm_trak(samples, timescale)
        stbl = trak["data"][1]["data"][2]["data"][1]  # type: ignore[index]
        stbl["data"] = camm_builder._STBLChildrenBuilderConstruct.build_boxlist(
            builder.build_stbl_from_raw_samples(
                [{"format": b"gpmd", "data_reference_index": 1, "data": b""}], samples
            )
        )
        trak["data"][1]["data"][1]["data"] = {"handler_type": b"meta", "name": "GoPro MET"}  # type: ignore[index]
        moov_children.append(trak)
        return (io.BytesIO(data) for data in payloads)

    with video.open("rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(T.cast(T.BinaryIO, builder.transform_mp4(src, add_gpmd)), dst)
    return out


def write_blackvue(
    video: Path,
    out: Path,
    points: list[Point],
    void: set[int] | None = None,
    camera_utc_offset_h: int = 2,
) -> Path:
    """A BlackVue MP4: the video plus a top-level `free` box holding `gps ` (NMEA lines, each
    after the camera's clock in milliseconds, here set to local time) and `cprt` (model),
    boxes built with mapillary_tools' MP4 box builder. Seconds in `void` are RMC status V.
    Not a BlackVue recording: the layout is the one mapillary_tools and exiftool read."""
    from mapillary_tools.mp4 import construct_mp4_parser as cparser

    from tests.edge import receivers as rx

    lines = b""
    for i, p in enumerate(points):
        t = rx.Truth(p.time, p.lat, p.lon, fix=not (void and i in void))
        camera_ms = int((p.time.timestamp() + camera_utc_offset_h * 3600) * 1000)
        r = rx.edited(rx.rmc("GP", t, "A", nmea41=False), 6, f"{p.speed_mps / 0.514444:.3f}")
        for sentence in (r, rx.gga("GP", t)):
            lines += f"[{camera_ms}]".encode() + sentence.rstrip(b"\r\n") + b"\n"
    box = cparser.Box32ConstructBuilder({})
    free = box.build_box(
        {
            "type": b"free",
            "data": box.build_box({"type": b"gps ", "data": lines})
            + box.build_box(
                {
                    "type": b"cprt",
                    "data": b" Pittasoft Co., Ltd.;DR900S-1CH;1.008;English;1;D90SS1HAE00661;T69;",
                }
            ),
        }
    )
    from mapillary_tools.mp4 import simple_mp4_builder

    with video.open("rb") as src, out.open("wb") as dst:
        # rebuilt as ftyp, moov, mdat (ffmpeg's own empty `free` box would be found first)
        shutil.copyfileobj(T.cast(T.BinaryIO, simple_mp4_builder.transform_mp4(src)), dst)
        dst.write(free)
    return out
