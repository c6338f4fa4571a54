"""`roadmesh edge import` readers on files made by the tools that write them
(tests/edge/camera_files.py), and the clock offset read from a recording."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edge.gnss import haversine_m
from edge.importers import ImportFailure, enqueue_import, estimate_clock, open_camera_recording
from edge.outbox import Outbox
from tests.edge import camera_files as cf
from tests.edge.camera_files import START, drive_points

DRIVE_S = 30


@pytest.fixture(scope="module")
def plain_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video filmed with the camera clock right (creation time = GNSS start)."""
    return cf.write_video(
        tmp_path_factory.mktemp("video") / "plain.mp4", DRIVE_S, creation_time=START
    )


def assert_on_the_drive(rec_fixes: list, points: list[cf.Point]) -> None:  # type: ignore[type-arg]
    assert [f.time for f in rec_fixes] == [p.time for p in points]
    for f, p in zip(rec_fixes, points, strict=True):
        assert haversine_m(f.lat, f.lon, p.lat, p.lon) < 0.05


def test_a_folder_of_geotagged_jpegs_reads_each_images_exif_gps(tmp_path: Path) -> None:
    points = drive_points(START, 20, hz=0.5)
    folder = cf.write_jpeg_folder(tmp_path / "DCIM", points)
    rec = open_camera_recording(folder)
    assert rec.kind == "jpeg-folder" and rec.sampled_already and rec.satellites_known
    assert_on_the_drive(rec.track.fixes, points)
    f = rec.track.fixes[3]
    assert (f.satellites, f.hdop, f.dim, f.alt_m) == (9, 0.9, 3, 18.0)
    assert f.speed_mps == pytest.approx(points[3].speed_mps, abs=0.01)
    assert rec.camera == "RoadMesh Test time-lapse"
    frames = list(rec.frames)
    assert [fr.captured_at for fr in frames] == [p.time for p in points]
    assert frames[0].jpeg is not None and frames[0].source_key.endswith("::G0000000.JPG")  # type: ignore[union-attr]


def test_an_image_without_gps_is_skipped_with_its_reason_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    points = drive_points(START, 10, hz=0.5)
    folder = cf.write_jpeg_folder(tmp_path / "DCIM", points)
    import cv2

    cv2.imwrite(str(folder / "G9999999.JPG"), cv2.imread(str(folder / "G0000000.JPG")))  # no EXIF
    rec = open_camera_recording(folder)
    assert rec.errors == {"no_gps": 1}
    assert len(rec.track.fixes) == len(points)


def test_a_camm_video_gives_its_track_on_the_videos_own_clock(
    plain_video: Path, tmp_path: Path
) -> None:
    points = drive_points(START, DRIVE_S)
    rec = open_camera_recording(cf.write_camm(plain_video, tmp_path / "insta.mp4", points, START))
    assert rec.kind == "camm" and rec.camera_start == START and not rec.satellites_known
    assert_on_the_drive(rec.track.fixes, points)
    assert rec.track.fixes[10].speed_mps == pytest.approx(points[10].speed_mps, abs=1e-3)
    assert rec.track.fixes[10].dim == 3


def test_a_gopro_video_gives_its_gpmf_track_and_drops_samples_without_a_lock(
    plain_video: Path, tmp_path: Path
) -> None:
    points = drive_points(START, DRIVE_S)
    rec = open_camera_recording(
        cf.write_gopro(plain_video, tmp_path / "GX010001.MP4", points, START)
    )
    assert rec.kind == "gopro" and rec.camera == "GoPro HERO9 Black"
    assert_on_the_drive(rec.track.fixes, points)
    assert (rec.track.fixes[0].hdop, rec.track.fixes[0].dim) == (0.9, 3)
    unlocked = cf.write_gopro(plain_video, tmp_path / "GX010002.MP4", points, START, fix=0)
    with pytest.raises(ImportFailure, match="empty or all noise"):  # GPSF 0: no lock, no fix
        open_camera_recording(unlocked)


def test_a_blackvue_video_gives_the_fixes_of_its_embedded_nmea_and_counts_the_void_ones(
    plain_video: Path, tmp_path: Path
) -> None:
    points = drive_points(START, DRIVE_S)
    rec = open_camera_recording(
        cf.write_blackvue(
            plain_video, tmp_path / "20260601_090000_NF.mp4", points, void={10, 11, 12}
        )
    )
    assert rec.kind == "blackvue"
    kept = [p for i, p in enumerate(points) if i not in (10, 11, 12)]
    assert_on_the_drive(rec.track.fixes, kept)
    assert rec.gnss.rejected["void_fix"] == 3 and rec.gnss.epochs == len(points)
    assert rec.camera_start == START  # video time 0: the first GPS point (mapillary_tools' rule)


@pytest.mark.parametrize("writer", [cf.write_gpx, cf.write_nmea], ids=["gpx", "nmea"])
def test_a_video_with_a_gnss_log_beside_it_is_read_on_the_camera_clock(
    plain_video: Path, tmp_path: Path, writer: object
) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(plain_video.read_bytes())
    points = drive_points(START, DRIVE_S)
    writer(tmp_path / ("clip.gpx" if writer is cf.write_gpx else "clip.nmea"), points)  # type: ignore[operator]
    rec = open_camera_recording(video)
    assert rec.kind == ("video+gpx" if writer is cf.write_gpx else "video+nmea")
    assert rec.camera_start == START and rec.duration_s == pytest.approx(DRIVE_S, abs=0.2)
    assert_on_the_drive(rec.track.fixes, points)


def test_a_video_without_gps_and_without_a_log_is_refused_with_what_to_do(
    plain_video: Path, tmp_path: Path
) -> None:
    video = tmp_path / "lonely.mp4"
    video.write_bytes(plain_video.read_bytes())
    with pytest.raises(ImportFailure, match="give --gnss FILE"):
        open_camera_recording(video)


@pytest.mark.parametrize("shift_s", [2.0, -2.0])
def test_the_clock_offset_of_a_recording_shifted_by_two_seconds_is_found_within_0_3_s(
    tmp_path: Path, shift_s: float
) -> None:
    # The camera clock runs `shift_s` ahead of GNSS: its creation time says START + shift.
    video = cf.write_video(
        tmp_path / "shifted.mp4", DRIVE_S, creation_time=START + timedelta(seconds=shift_s)
    )
    cf.write_gpx(tmp_path / "shifted.gpx", drive_points(START, DRIVE_S))
    estimate = estimate_clock(open_camera_recording(video))
    print(f"shift {shift_s:+.1f} s: {estimate.describe()}")
    assert estimate.method == "motion"
    assert estimate.offset_s == pytest.approx(-shift_s, abs=0.3)


def test_a_camera_set_to_local_time_is_found_from_the_creation_time_then_the_motion(
    tmp_path: Path,
) -> None:
    video = cf.write_video(
        tmp_path / "local.mp4", DRIVE_S, creation_time=START + timedelta(hours=3, seconds=2)
    )
    cf.write_gpx(tmp_path / "local.gpx", drive_points(START, DRIVE_S))
    estimate = estimate_clock(open_camera_recording(video))
    assert estimate.coarse_s == -3 * 3600
    assert estimate.offset_s == pytest.approx(-3 * 3600 - 2.0, abs=0.3)


def test_a_drive_at_constant_speed_keeps_the_creation_time_and_says_why(tmp_path: Path) -> None:
    def steady(t: float) -> float:
        return 12.0

    video = cf.write_video(tmp_path / "steady.mp4", 20, creation_time=START, speed=steady)
    cf.write_gpx(tmp_path / "steady.gpx", drive_points(START, 20, speed=steady))
    estimate = estimate_clock(open_camera_recording(video))
    assert (estimate.method, estimate.offset_s) == ("creation_time", 0.0)
    assert "hardly changes" in estimate.reason


def test_an_imported_folder_goes_into_the_outbox_once(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.identity import DeviceIdentity, MqttLogin

    identity = DeviceIdentity("dev-import", MqttLogin("127.0.0.1", 1883, "dev-import", "x"))
    key = Ed25519PrivateKey.generate()
    folder = cf.write_jpeg_folder(tmp_path / "DCIM", drive_points(START, 20, hz=0.5))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    report = enqueue_import(open_camera_recording(folder), identity, key, outbox)
    assert (report.frames, report.enqueued) == (11, 11), report.skipped
    again = enqueue_import(open_camera_recording(folder), identity, key, outbox)
    assert (again.enqueued, again.already_enqueued) == (0, 11)
