"""The frame lifecycle: one rule for a frame's state, one module that changes it."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from webapp.accounts.models import User
from webapp.fleet import lifecycle
from webapp.fleet.lifecycle import FlagChange, ImageChecks
from webapp.fleet.models import Device, Frame
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
FLAG = {"check": "teleport", "score": 1.0, "reason": "jumped", "evidence": {}}


@pytest.fixture
def device() -> Device:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    return Device.objects.create(device_id="dev-one", owner=owner, public_key=b"\0" * 32)


def unsaved(device: Device, seq: int, flags: list[dict[str, object]] | None = None) -> Frame:
    return Frame(
        device=device,
        seq=seq,
        captured_at=T0 + timedelta(seconds=seq),
        lat=60.17,
        lon=24.94,
        fix_type=2,
        satellites=9,
        camera_id="cam0",
        intrinsics_ref="t",
        h3_r12=1,
        h3_r9=1,
        h3_r7=1,
        image_sha256=f"{seq:064x}",
        image_bytes=100,
        quality_sharpness=1.0,
        quality_exposure=0.5,
        quality_obstruction=0.0,
        flags=flags or [],
    )


def test_the_state_follows_from_flags_image_checks_and_vision_by_one_rule() -> None:
    low = [{"check": "low_quality", "score": 0.49}]
    assert lifecycle.state_for([], image_checked=False, processed=False) == "pending"
    assert lifecycle.state_for(low, image_checked=True, processed=False) == "accepted"
    assert lifecycle.state_for(low, image_checked=True, processed=True) == "processed"
    assert lifecycle.state_for([FLAG], image_checked=True, processed=True) == "flagged"
    assert (
        lifecycle.state_for([{"score": 0.5, "check": "x"}], image_checked=False, processed=False)
        == "flagged"
    )


def test_a_stored_frame_is_pending_and_its_devices_image_check_becomes_due(device: Device) -> None:
    rows = lifecycle.store_frames([unsaved(device, 1), unsaved(device, 2, [FLAG])])
    assert [r.state for r in rows] == ["pending", "flagged"]
    assert Frame.objects.get(seq=2).fraud_score == 1.0
    assert list(Job.objects.values_list("kind", "key", "state")) == [
        ("image_check", "dev-one", "pending")
    ]


def test_image_checks_move_a_frame_out_of_pending_and_merge_their_flags(device: Device) -> None:
    a, b = lifecycle.store_frames([unsaved(device, 1), unsaved(device, 2)])
    states = lifecycle.record_image_checks(
        {
            a.pk: ImageChecks(facts={"server_sharpness": 300.0}),
            b.pk: ImageChecks(flags=[{"check": "near_duplicate_image", "score": 0.9}]),
        }
    )
    assert states == {a.pk: "accepted", b.pk: "flagged"}
    a.refresh_from_db()
    assert a.server_sharpness == 300.0 and a.image_checked_at is not None
    with pytest.raises(ValueError, match="not image facts"):
        lifecycle.record_image_checks({a.pk: ImageChecks(facts={"state": "accepted"})})


def test_a_flag_the_audit_clears_returns_the_frame_to_where_the_checks_left_it(
    device: Device,
) -> None:
    (row,) = lifecycle.store_frames([unsaved(device, 1)])
    lifecycle.record_image_checks({row.pk: ImageChecks()})
    near = {"check": "near_duplicate_image", "score": 0.9, "reason": "a copy", "evidence": {}}
    flagged = lifecycle.change_flags({row.pk: FlagChange(add=[near])})
    assert flagged.flagged == [row.pk]
    cleared = lifecycle.change_flags({row.pk: FlagChange(replace=[{**near, "score": 0.0}])})
    assert cleared.cleared == [row.pk]
    row.refresh_from_db()
    assert (row.state, row.flags[0]["score"]) == ("accepted", 0.0)


def test_a_frame_counts_in_one_epoch_once_and_only_when_it_passed_its_checks(
    device: Device,
) -> None:
    ok, pending, flagged = lifecycle.store_frames(
        [unsaved(device, 1), unsaved(device, 2), unsaved(device, 3)]
    )
    lifecycle.record_image_checks({ok.pk: ImageChecks(), flagged.pk: ImageChecks(flags=[FLAG])})
    window = (T0, T0 + timedelta(hours=1))
    assert list(lifecycle.rewardable_frames(*window).values_list("seq", flat=True)) == [1]
    assert lifecycle.mark_rewarded(7, [ok.pk, pending.pk, flagged.pk]) == 1
    assert lifecycle.mark_rewarded(8, [ok.pk]) == 0
    assert Frame.objects.get(pk=ok.pk).rewarded_epoch == 7
    assert not lifecycle.rewardable_frames(*window).exists()


def test_an_operator_flag_is_a_flag_like_any_other(device: Device) -> None:
    (row,) = lifecycle.store_frames([unsaved(device, 1)])
    lifecycle.record_image_checks({row.pk: ImageChecks()})
    assert lifecycle.flag_by_operator([row.pk], "a fake").flagged == [row.pk]
    assert Frame.objects.get(pk=row.pk).flags[0]["check"] == "operator"


OTHER_STATEFUL = ("job", "epoch", "task", "review")  # other models with a `state` field


def _root(node: ast.AST) -> str:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _other_model(node: ast.AST) -> bool:
    return any(word in _root(node).lower() for word in OTHER_STATEFUL)


def _writes_state(tree: ast.AST) -> list[int]:
    """Lines that write a state: `x.state = ...`, `.update(state=...)`, `.create(state=...)`,
    `Frame(state=...)`, `.bulk_update(rows, [..."state"...])`, unless they are about
    another model with a state (a job, an epoch, a review task)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "state"
            and isinstance(node.ctx, ast.Store)
        ):
            if not _other_model(node.value):
                lines.append(node.lineno)
        if not isinstance(node, ast.Call) or _other_model(node.func):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else ast.unparse(node.func)
        keyword = any(k.arg == "state" for k in node.keywords)
        if keyword and name in ("update", "create", "get_or_create", "update_or_create", "Frame"):
            lines.append(node.lineno)
        if name == "bulk_update" and "'state'" in ast.unparse(node):
            lines.append(node.lineno)
    return lines


def test_no_module_but_the_lifecycle_writes_a_frames_state() -> None:
    allowed = {REPO / "webapp" / "fleet" / "lifecycle.py"}
    offenders = []
    for package in (
        "protocol",
        "broker",
        "edge",
        "vision",
        "ingest",
        "rewards",
        "contracts",
        "webapp",
        "sim",
        "roadmesh",
    ):
        for path in (REPO / package).rglob("*.py"):
            if path in allowed or "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            offenders += [f"{path.relative_to(REPO)}:{line}" for line in _writes_state(tree)]
    assert offenders == []


def test_the_state_scan_finds_a_write_where_there_is_one() -> None:
    sample = ast.parse(
        "Frame.objects.filter(pk=1).update(state='accepted')\n"
        "row.state = 'flagged'\n"
        "Frame.objects.bulk_update(rows, ['flags', 'state'])\n"
        "Frame.objects.filter(state='flagged').count()\n"
        "Job.objects.filter(pk=1).update(state='done')\n"
        "epoch.state = 'published'\n"
    )
    assert _writes_state(sample) == [1, 2, 3]


def test_a_second_frame_of_the_same_device_and_seq_is_an_integrity_error(device: Device) -> None:
    """The door relies on it to see a concurrent worker's row (COPY on PostgreSQL too)."""
    from django.db import IntegrityError, transaction

    (first,) = lifecycle.store_frames([unsaved(device, 1, [FLAG])])
    stored = Frame.objects.get(pk=first.pk)
    assert stored.flags == [FLAG] and stored.received_at is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        lifecycle.store_frames([unsaved(device, 1)])
    assert Frame.objects.count() == 1
