from __future__ import annotations

import numpy as np

from sim.features import MapFeature
from sim.render import Renderer
from sim.scene import Actors, StaticScene, random_car, random_person
from vision.camera import Intrinsics, Pose, project


def _sign_corners(f: MapFeature) -> np.ndarray:
    # facing south: the viewer (looking north) has east on the right
    c = np.array([f.east, f.north, f.height_m])
    r, up = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    w, h = f.width_m / 2, f.face_height_m / 2
    return np.array(
        [c - r * w + up * h, c + r * w + up * h, c + r * w - up * h, c - r * w - up * h]
    )


def test_the_rendered_box_of_a_sign_matches_its_projection(
    straight_scene: StaticScene, stop_sign: MapFeature
) -> None:
    intr = Intrinsics.from_hfov(1280, 720)
    pose = Pose(1.6, 0.0, 1.3, 0.0)
    res = Renderer(straight_scene, intr).render(pose, noise=False)
    (label,) = [lb for lb in res.labels if lb.cls == "stop"]
    uv, _ = project(_sign_corners(stop_sign), pose, intr)
    expected = (
        uv[:, 0].min() + 0.5,
        uv[:, 1].min() + 0.5,
        uv[:, 0].max() + 0.5,
        uv[:, 1].max() + 0.5,
    )
    assert np.allclose(label.box, expected, atol=1.0), (label.box, expected)
    assert np.allclose(label.box_full, expected, atol=1e-6)
    assert label.visible > 0.99
    x1, y1, x2, y2 = (round(v) for v in label.box)
    patch = res.image[y1:y2, x1:x2].reshape(-1, 3).astype(int)
    red = (patch[:, 2] > 150) & (patch[:, 1] < 90) & (patch[:, 0] < 90)
    assert red.mean() > 0.4  # an octagon of red (with a white border and lettering)


def test_a_car_in_front_of_a_sign_hides_it_from_the_ground_truth(
    straight_scene: StaticScene,
) -> None:
    intr = Intrinsics.from_hfov(1280, 720)
    pose = Pose(4.25, 0.0, 1.3, 0.0)  # the sign is straight ahead, 30 m away
    rng = np.random.default_rng(0)
    car = random_car(rng, "lead", np.array([4.25, 4.5]), 0.0)  # a car just ahead of us
    r = Renderer(straight_scene, intr)
    assert [lb.cls for lb in r.render(pose, noise=False).labels] == ["stop"]
    res = r.render(pose, actors=Actors([car], []), noise=False)
    labels = {lb.cls: lb for lb in res.labels}
    assert labels["stop"].visible < 0.3  # only a sliver shows above the roof
    assert labels["license_plate"].obj == "lead:rear" and labels["license_plate"].visible > 0.99


def test_people_facing_the_camera_come_with_face_boxes(straight_scene: StaticScene) -> None:
    intr = Intrinsics.from_hfov(1280, 720)
    pose = Pose(1.6, 0.0, 1.3, 0.0)
    rng = np.random.default_rng(1)
    towards = random_person(rng, "p1", np.array([2.8, 2.2]), 180.0)
    away = random_person(rng, "p2", np.array([-2.5, 5.0]), 0.0)
    res = Renderer(straight_scene, intr).render(
        pose, actors=Actors([], [towards, away]), noise=False
    )
    faces = [lb for lb in res.labels if lb.cls == "face"]
    assert [f.obj for f in faces] == ["p1"]
    x1, y1, x2, y2 = faces[0].box
    assert x2 - x1 >= 25 and y2 - y1 >= 30  # close enough for a face detector


def test_rendering_is_deterministic_and_every_light_condition_renders(
    straight_scene: StaticScene,
) -> None:
    intr = Intrinsics.from_hfov(640, 360)
    pose = Pose(1.6, 0.0, 1.3, 0.0)
    r = Renderer(straight_scene, intr, seed=3)
    means = {}
    for cond in ("day", "overcast", "dusk", "night", "glare"):
        a = r.render(pose, 5.0, cond, frame_seed=7, jpeg_quality=80).image
        b = r.render(pose, 5.0, cond, frame_seed=7, jpeg_quality=80).image
        assert a.shape == (360, 640, 3) and np.array_equal(a, b)
        means[cond] = float(a.mean())
    assert means["night"] < means["dusk"] < means["day"]
