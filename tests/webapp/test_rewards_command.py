"""`roadmesh rewards coverage` counts every frame that is not flagged, whatever vision did with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from roadmesh.cli import main
from tests.webapp.rows import frame_row
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
    for i, state in enumerate(states):  # one cell a frame
        frame_row(device, i + 1, now - timedelta(hours=1), h3_r12=1000 + i, state=state)
    assert main(["rewards", "coverage"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("driver"))
    assert row.split()[1] == "2"  # the flagged frame's cell does not count
