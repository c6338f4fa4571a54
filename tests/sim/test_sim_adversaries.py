"""The shifted-track replayers and the track thief (sim.fleet, sim.drive)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.drive import load_context, plan_drive
from sim.fleet import plan_fleet

KINDS = "shifted_track@200,shifted_copy@30,track_thief"


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return plan_fleet(6, 1.0, 3, KINDS)


def test_a_shifted_track_replayer_reports_its_own_drive_moved_by_one_constant_offset(plan) -> None:  # type: ignore[no-untyped-def]
    (dev,) = [d for d in plan.devices if d.role == "shifted_track"]
    assert dev.detail == "200" and dev.spec.shift_m is not None
    assert np.hypot(*dev.spec.shift_m) == pytest.approx(200.0, abs=0.01)
    sim = plan_drive(load_context(), dev.spec)
    off = np.stack(
        [sim.fixes.east - sim.fix_truth["east"], sim.fixes.north - sim.fix_truth["north"]], axis=1
    )[sim.fixes.valid.astype(bool)]
    # the receiver's own error (a few metres) rides on the constant offset
    assert np.allclose(np.median(off, axis=0), dev.spec.shift_m, atol=4.0)
    assert all(n.endswith("shift:200") for n in sim.fix_note)


def test_a_shifted_copy_uploads_its_originals_pictures_under_a_shifted_track(plan) -> None:  # type: ignore[no-untyped-def]
    copy = next(d for d in plan.devices if d.role == "shifted_copy" and d.detail.startswith("copy"))
    original = next(d for d in plan.devices if d.dir == copy.pair)
    assert copy.detail == "copy@30" and original.detail == "original"
    assert copy.copy_of == original.dir  # rendered with its original's frames
    assert np.hypot(*copy.spec.shift_m) == pytest.approx(30.0, abs=0.01)


def test_a_track_thief_claims_its_victims_receiver_track_at_the_same_times(plan) -> None:  # type: ignore[no-untyped-def]
    thief = next(d for d in plan.devices if d.role == "track_thief" and d.detail == "thief")
    victim = next(d for d in plan.devices if d.dir == thief.pair)
    ctx = load_context()
    stolen, own = plan_drive(ctx, thief.spec), plan_drive(ctx, victim.spec)
    claimed = np.interp(own.fixes.t, stolen.fixes.t, stolen.fixes.east)
    assert np.median(np.abs(claimed - own.fixes.east)) < 1.0  # the victim's track
    truth = np.hypot(
        stolen.fixes.east - stolen.fix_truth["east"], stolen.fixes.north - stolen.fix_truth["north"]
    )
    assert np.median(truth) > 50.0  # not where the thief is
    assert set(stolen.fix_note) == {f"thief:{victim.device_id}"}


def test_an_offset_is_only_for_the_shifted_kinds() -> None:
    with pytest.raises(ValueError, match="only shifted_track and shifted_copy"):
        plan_fleet(4, 1.0, 1, "replayer@30")
