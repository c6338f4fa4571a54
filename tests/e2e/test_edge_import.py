"""`roadmesh edge import` turns what cameras recorded into frames the server stores: a folder
of geotagged JPEGs, a CAMM MP4, a GoPro MP4, a BlackVue MP4 and a video with a GPX beside it
whose camera clock runs 2 s ahead (`--clock-offset auto`)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from roadmesh.stack import LocalStack
from tests.edge import camera_files as cf
from tests.edge.camera_files import START, drive_points
from tests.edge.stack_support import edge_stack

pytestmark = pytest.mark.e2e
__all__ = ["edge_stack"]

DRIVE_S = 45


def run_import(stack: LocalStack, device_dir: Path, path: Path, *extra: str) -> tuple[int, str]:
    proc = stack.roadmesh(
        "edge", "import", str(path), "--device-dir", str(device_dir), "--timeout", "120", *extra,
        check=False, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    m = re.search(r"signed (\d+) of (\d+) frames into the outbox", out)
    assert m, out
    return int(m.group(1)), out


def assert_stored(stack: LocalStack, device_id: str, n: int) -> None:
    stack.wait_for(
        lambda: len(stack.device_frames(device_id)) >= n, 60, f"{n} frames of {device_id}"
    )
    frames = stack.device_frames(device_id)
    assert len(frames) == n
    assert stack.stats()["frames"] >= n


def test_a_folder_of_geotagged_jpegs_becomes_stored_frames(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    device_dir = edge_stack.provision("dev-import-jpeg")
    folder = cf.write_jpeg_folder(tmp_path / "DCIM" / "100GOPRO", drive_points(START, 40, hz=0.5))
    signed, out = run_import(edge_stack, device_dir, folder)
    assert signed == 21, out
    assert "jpeg-folder (RoadMesh Test time-lapse), 21 fixes" in out
    assert "GNSS exif:100GOPRO: fixes 21 of 21 epochs" in out
    assert_stored(edge_stack, "dev-import-jpeg", signed)
    status = edge_stack.roadmesh("edge", "status", "--device-dir", str(device_dir))
    assert "GNSS exif:100GOPRO: fixes 21 of 21 epochs" in status.stdout


@pytest.mark.parametrize("kind", ["camm", "gopro", "blackvue"])
def test_a_video_with_gps_inside_becomes_stored_frames(
    edge_stack: LocalStack, tmp_path: Path, kind: str
) -> None:
    device_id = f"dev-import-{kind}"
    device_dir = edge_stack.provision(device_id)
    plain = cf.write_video(tmp_path / "plain.mp4", DRIVE_S, fps=5, creation_time=START)
    points = drive_points(START, DRIVE_S)
    path = tmp_path / f"{kind}.mp4"
    if kind == "camm":
        cf.write_camm(plain, path, points, START)
    elif kind == "gopro":
        cf.write_gopro(plain, path, points, START)
    else:
        cf.write_blackvue(plain, path, points)
    signed, out = run_import(edge_stack, device_dir, path)
    assert f": {kind}" in out and signed >= 15, out
    assert_stored(edge_stack, device_id, signed)
    again, out = run_import(edge_stack, device_dir, path)
    assert again == 0 and "already there" in out  # nothing twice
    assert_stored(edge_stack, device_id, signed)


def test_a_video_with_a_gpx_beside_it_and_its_clock_2_s_ahead_becomes_stored_frames(
    edge_stack: LocalStack, tmp_path: Path
) -> None:
    device_dir = edge_stack.provision("dev-import-gpx")
    video = cf.write_video(
        tmp_path / "clip.mp4", DRIVE_S, fps=5, creation_time=START + timedelta(seconds=2)
    )
    cf.write_gpx(tmp_path / "clip.gpx", drive_points(START, DRIVE_S))
    signed, out = run_import(edge_stack, device_dir, video, "--clock-offset", "auto")
    m = re.search(r"clock: camera clock ([+-]\d+\.\d+) s from GNSS \(motion", out)
    assert m, out
    assert float(m.group(1)) == pytest.approx(-2.0, abs=0.3)
    applied = re.search(r"applied ([+-]\d+\.\d+) s", out)
    assert applied and float(applied.group(1)) == pytest.approx(-2.0, abs=0.3), out
    assert signed >= 15, out
    assert_stored(edge_stack, "dev-import-gpx", signed)
