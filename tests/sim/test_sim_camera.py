from __future__ import annotations

import math

import numpy as np
import pytest

from vision.camera import Intrinsics, Pose, pixel_ray, project


def test_the_default_dashcam_is_1280x720_with_a_120_degree_field_of_view() -> None:
    intr = Intrinsics.from_hfov()
    assert (intr.width, intr.height) == (1280, 720)
    assert intr.hfov_deg == pytest.approx(120.0)
    assert intr.fx == pytest.approx(640 / math.tan(math.radians(60)))


def test_a_point_on_the_optical_axis_projects_to_the_principal_point() -> None:
    intr = Intrinsics.from_hfov()
    pose = Pose(10.0, 20.0, 1.3, 37.0)
    ahead = np.array(
        [10.0 + 50 * math.sin(math.radians(37)), 20.0 + 50 * math.cos(math.radians(37)), 1.3]
    )
    uv, depth = project(ahead, pose, intr)
    assert uv == pytest.approx([intr.cx, intr.cy], abs=1e-6)
    assert depth == pytest.approx(50.0)


def test_a_feature_at_a_known_pose_projects_to_the_expected_pixel() -> None:
    intr = Intrinsics.from_hfov(1920, 1080, 90.0)  # fx = 960
    pose = Pose(0.0, 0.0, 1.3, 90.0)  # looking east
    sign = np.array([20.0, -3.0, 2.3])  # 20 m ahead, 3 m to the right, 1 m above the camera
    uv, _ = project(sign, pose, intr)
    expected = (intr.cx + 960.0 * 3.0 / 20.0, intr.cy - 960.0 * 1.0 / 20.0)
    assert abs(uv[0] - expected[0]) < 1.0 and abs(uv[1] - expected[1]) < 1.0
    assert uv == pytest.approx([1103.5, 491.5], abs=1e-6)


def test_pitching_the_camera_up_moves_the_scene_down_in_the_image() -> None:
    intr = Intrinsics.from_hfov()
    p = np.array([0.0, 30.0, 1.3])
    level, _ = project(p, Pose(0, 0, 1.3, 0.0), intr)
    up, _ = project(p, Pose(0, 0, 1.3, 0.0, pitch_deg=5.0), intr)
    assert up[1] > level[1] + 20


def test_a_pixel_ray_points_back_at_the_projected_point() -> None:
    intr = Intrinsics.from_hfov()
    pose = Pose(3.0, -4.0, 1.4, 250.0, -2.0, 1.0)
    p = np.array([-20.0, -10.0, 3.0])
    uv, _ = project(p, pose, intr)
    ray = pixel_ray(float(uv[0]), float(uv[1]), pose, intr)
    d = p - pose.position
    assert ray == pytest.approx(d / np.linalg.norm(d), abs=1e-9)
