"""The mapper on the database: detections of processed frames become map features that
keep their ids across runs, follow review decisions, and get review tasks when doubtful."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from tests.vision.test_mapper import SIGN, sighting
from tests.webapp.rows import frame_row
from vision.geo import LocalFrame
from vision.mapper import MapperSettings
from webapp.accounts.models import User
from webapp.fleet.models import Device
from webapp.mapping.mapper_job import run_mapper
from webapp.mapping.models import Detection, MapFeature, ReviewTask

pytestmark = pytest.mark.django_db
LOCAL = LocalFrame(60.17, 24.94)


def drive(device: Device, t0: float, seq0: int) -> None:
    """Frames every 8 m northwards past the sign, each with the detection a perfect detector makes."""
    for k, y in enumerate(np.arange(-10.0, 26.0, 8.0)):
        o = sighting(np.array([0.0, y]), 0.0, oid=0, t=t0 + k)
        lon, lat = LOCAL.to_lonlat(0.0, y)
        f = frame_row(
            device,
            seq0 + k,
            datetime.fromtimestamp(t0 + k, UTC),
            lat=float(lat),
            lon=float(lon),
            heading_deg=0.0,
            intrinsics_ref="dashcam-120-1280x720",
            image_width=1280,
            image_height=720,
            state="processed",
            image_checked_at=datetime.fromtimestamp(t0 + k, UTC),
            processed_at=datetime.fromtimestamp(t0 + k, UTC),
        )
        if o is None:
            continue
        Detection.objects.create(
            frame=f,
            label=o.label,
            confidence=o.score,
            x0=o.u - o.box_w / 2,
            x1=o.u + o.box_w / 2,
            y0=300.0,
            y1=300.0 + o.box_h,
            model_version="t",
        )


@pytest.fixture
def devices() -> list[Device]:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    return [
        Device.objects.create(device_id=f"dev-{i}", owner=owner, public_key=bytes(32))
        for i in range(3)
    ]


def position(f: MapFeature) -> tuple[float, float]:
    e, n = LOCAL.to_enu(f.lon, f.lat)
    return float(e), float(n)


def test_two_passes_make_a_confirmed_feature_where_the_sign_stands(devices):
    drive(devices[0], 1_000_000.0, 1)
    drive(devices[1], 1_001_000.0, 1)
    report = run_mapper()
    assert (report.features, report.created) == (1, 1)
    f = MapFeature.objects.get()
    assert f.label == "speed_limit_50"
    assert f.status == "confirmed"
    assert (f.n_passes, f.n_devices) == (2, 2)
    assert np.hypot(*(np.array(position(f)) - SIGN)) < 0.5
    assert f.ellipse_major_m >= f.ellipse_minor_m > 0
    assert f.uncertainty_m == f.ellipse_major_m
    assert Detection.objects.filter(feature=f).count() == Detection.objects.count()
    assert not ReviewTask.objects.exists()


def test_the_feature_keeps_its_id_when_the_map_is_recomputed(devices):
    drive(devices[0], 1_000_000.0, 1)
    drive(devices[1], 1_001_000.0, 1)
    run_mapper()
    first = MapFeature.objects.get().pk
    drive(devices[2], 1_002_000.0, 1)
    report = run_mapper()
    assert (report.created, report.updated) == (0, 1)
    assert MapFeature.objects.get().pk == first
    assert MapFeature.objects.get().n_passes == 3


def test_one_pass_is_a_candidate_with_a_review_task(devices):
    drive(devices[0], 1_000_000.0, 1)
    run_mapper(MapperSettings(confirm_single_observations=99))
    f = MapFeature.objects.get()
    assert f.status == "candidate"
    task = ReviewTask.objects.get()
    assert task.feature == f and task.detection is not None
    run_mapper(MapperSettings(confirm_single_observations=99))
    assert ReviewTask.objects.count() == 1  # once


def test_a_rejected_feature_stays_rejected_and_absorbs_new_sightings(devices):
    drive(devices[0], 1_000_000.0, 1)
    run_mapper(MapperSettings(confirm_single_observations=99))
    MapFeature.objects.update(status="rejected")
    drive(devices[1], 1_001_000.0, 1)
    run_mapper()
    f = MapFeature.objects.get()
    assert (f.status, f.n_passes) == ("rejected", 2)
