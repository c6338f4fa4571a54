"""`roadmesh rewards coverage` counts every frame that is not flagged, whatever vision did with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from roadmesh.cli import main
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame

pytestmark = pytest.mark.django_db


def test_coverage_counts_accepted_and_processed_frames_but_not_flagged_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    owner = User.objects.create_user("driver")
    device = Device.objects.create(device_id="dev-one", owner=owner, public_key=b"\x00" * 32)
    now = datetime.now(UTC)
    states = [Frame.State.ACCEPTED, Frame.State.PROCESSED, Frame.State.FLAGGED]
    for i, state in enumerate(states):
        Frame.objects.create(
            device=device,
            seq=i + 1,
            captured_at=now - timedelta(hours=1),
            lat=60.17,
            lon=24.94,
            fix_type=2,
            satellites=9,
            hdop=0.8,
            camera_id="cam0",
            intrinsics_ref="t",
            h3_r12=1000 + i,  # one cell a frame
            h3_r9=1,
            h3_r7=1,
            image_sha256=f"{i:064x}",
            image_bytes=100,
            quality_sharpness=1.0,
            quality_exposure=0.5,
            quality_obstruction=0.0,
            state=state,
        )
    assert main(["rewards", "coverage"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("driver"))
    assert row.split()[1] == "2"  # the flagged frame's cell does not count
