"""The frame lifecycle: every change of a frame's state, and the rule behind it, in one place.

    door --store_frames--> pending --record_image_checks--> accepted --record_processed--> processed
                              \\                               |                              |
                               `-- flagged <--change_flags----'------------------------------'
                                      (and back, when the audit clears a flag)

A frame's state follows from what is known about it, by one rule (`state_for`): flagged
when its highest flag score reaches `FLAG_SCORE`; otherwise pending until its image checks
ran; processed once vision is done with it; accepted in between. Only accepted and
processed frames count for rewards (`rewardable_frames`), each in one epoch only
(`mark_rewarded`). Every function here runs in a transaction and locks the frame rows it
changes (`select_for_update`, in primary-key order), so the door, the image-check
workers, the audit and the rewards can work on the same frames at once. No other module
writes `Frame.state` (a test checks the source).

Flags are JSON objects `{"check", "score" 0..1, "reason", "evidence"}`; a frame keeps one
per check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from webapp.fleet.models import Frame
from webapp.jobs import queue

FLAG_SCORE = 0.5  # a frame whose highest flag score reaches this is excluded from rewards
IMAGE_CHECK = "image_check"  # the job kind: check a device's pending frames (key: device id)
REWARDABLE = (Frame.State.ACCEPTED, Frame.State.PROCESSED)
MARK_CHUNK = 900  # ids per UPDATE (SQLite's bound-parameter limit)

FlagJson = Mapping[str, Any]


# -- the rule --------------------------------------------------------------------------
def fraud_score(flags: Iterable[FlagJson]) -> float:
    return max((float(f.get("score", 0.0)) for f in flags if isinstance(f, Mapping)), default=0.0)


def is_flagged(flags: Iterable[FlagJson]) -> bool:
    return fraud_score(flags) >= FLAG_SCORE


def state_for(flags: Iterable[FlagJson], *, image_checked: bool, processed: bool) -> str:
    if is_flagged(flags):
        return Frame.State.FLAGGED
    if not image_checked:
        return Frame.State.PENDING
    return Frame.State.PROCESSED if processed else Frame.State.ACCEPTED


def merge_flags(
    existing: Iterable[FlagJson], add: Iterable[FlagJson] = (), replace: Iterable[FlagJson] = ()
) -> list[dict[str, Any]]:
    """One flag per check: `add` merges (the higher score wins), `replace` overrides."""
    by_check: dict[str, dict[str, Any]] = {}
    for item in [*existing, *add]:
        if not isinstance(item, Mapping) or "check" not in item:
            continue
        old = by_check.get(str(item["check"]))
        if old is None or float(item.get("score", 0)) > float(old.get("score", 0)):
            by_check[str(item["check"])] = dict(item)
    for item in replace:
        by_check[str(item["check"])] = dict(item)
    return sorted(by_check.values(), key=lambda f: str(f["check"]))


def _apply_state(row: Frame) -> None:
    row.fraud_score = fraud_score(row.flags or [])
    row.state = state_for(
        row.flags or [],
        image_checked=row.image_checked_at is not None,
        processed=row.processed_at is not None,
    )


def _locked(ids: Iterable[int]) -> list[Frame]:
    return list(Frame.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("pk"))


# -- stored (the door) -------------------------------------------------------------------
def store_frames(rows: Sequence[Frame]) -> list[Frame]:
    """Insert new frames with their door flags, and make their devices' image checks due.

    Inside the caller's transaction (the door's commit, which also holds the images'
    rejections and the MQTT acks' fate). A frame is pending, or flagged when a door check
    already says so; either way its image checks run (their facts serve other checks).
    IntegrityError when another worker stored one of the same (device, seq) first."""
    for row in rows:
        row.flags = merge_flags(row.flags or [])
        row.image_checked_at = None
        row.processed_at = None
        _apply_state(row)
    with transaction.atomic():
        created = _insert(list(rows))
        queue.enqueue(IMAGE_CHECK, {row.device.device_id for row in rows})
    return created


def _insert(rows: list[Frame]) -> list[Frame]:
    """Insert new frames, their ids set. On PostgreSQL with COPY into ids taken from the
    table's sequence: a batch's multi-row INSERT costs the door about half its database
    CPU in building and parsing a statement with 50 parameters a row. Elsewhere bulk_create."""
    if connection.vendor != "postgresql" or not rows:
        return Frame.objects.bulk_create(rows)
    fields = [f for f in Frame._meta.concrete_fields if not f.primary_key]
    table = connection.ops.quote_name(Frame._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Frame._meta.db_table, len(rows)],
        )
        ids = [r[0] for r in cursor.fetchall()]
        raw = cursor.cursor  # psycopg's own cursor: COPY is not in Django's wrapper
        with raw.copy(f"COPY {table} (id, {columns}) FROM STDIN") as copy:
            for pk, row in zip(ids, rows, strict=True):
                row.pk = pk
                copy.write_row(
                    [pk, *(f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields)]
                )
    for row in rows:
        row._state.adding = False
        row._state.db = "default"
    return rows


# -- image-checked (the image-check job) -------------------------------------------------
FACT_FIELDS = (
    "phash",
    "phash_b0",
    "phash_b1",
    "phash_b2",
    "phash_b3",
    "server_sharpness",
    "server_brightness",
    "server_highlights",
    "thumb",
    "visual_prev",
    "visual_flow",
    "visual_points",
    "visual_yaw",
    "visual_change",
    "place_desc",
)


@dataclass
class ImageChecks:
    """What the image-check job measured on one frame, and the flags it raised."""

    facts: dict[str, Any] = field(default_factory=dict)  # FACT_FIELDS only
    flags: list[FlagJson] = field(default_factory=list)
    checked: bool = True  # False: only the facts changed (a re-measured motion pair)


def record_image_checks(results: Mapping[int, ImageChecks]) -> dict[int, str]:
    """Write the image checks' facts and flags; pending frames leave `pending`. The new
    state of each frame."""
    now = timezone.now()
    states: dict[int, str] = {}
    with transaction.atomic():
        rows = _locked(results)
        for row in rows:
            result = results[row.pk]
            unknown = set(result.facts) - set(FACT_FIELDS)
            if unknown:
                raise ValueError(f"not image facts: {sorted(unknown)}")
            for name, value in result.facts.items():
                setattr(row, name, value)
            row.flags = merge_flags(row.flags or [], result.flags)
            if result.checked and row.image_checked_at is None:
                row.image_checked_at = now
            _apply_state(row)
            states[row.pk] = row.state
        Frame.objects.bulk_update(
            rows, [*FACT_FIELDS, "flags", "fraud_score", "state", "image_checked_at"]
        )
    return states


# -- flagged, and cleared (the audit) ----------------------------------------------------
@dataclass(frozen=True)
class FlagChange:
    add: Sequence[FlagJson] = ()  # merged with the frame's flags (the higher score wins)
    replace: Sequence[FlagJson] = ()  # these checks' flags are replaced (a cleared flag: score 0)


@dataclass
class FlagReport:
    flagged: list[int] = field(default_factory=list)  # newly flagged
    cleared: list[int] = field(default_factory=list)  # flagged before, not any more


def change_flags(
    changes: Mapping[int, FlagChange], *, audited: Iterable[int] | bool = False
) -> FlagReport:
    """Merge flags into frames (under lock, on their current flags) and move their state.
    `audited`: the frames (or True: all of them) the audit has now looked at."""
    report = FlagReport()
    now = timezone.now()
    looked_at = set(changes) if audited is True else set(audited or ())
    with transaction.atomic():
        rows = _locked(changes)
        for row in rows:
            change = changes[row.pk]
            was = row.state
            row.flags = merge_flags(row.flags or [], change.add, change.replace)
            _apply_state(row)
            if row.state == Frame.State.FLAGGED and was != Frame.State.FLAGGED:
                report.flagged.append(row.pk)
            elif was == Frame.State.FLAGGED and row.state != Frame.State.FLAGGED:
                report.cleared.append(row.pk)
            if row.pk in looked_at:
                row.audited_at = now
        Frame.objects.bulk_update(rows, ["flags", "fraud_score", "state", "audited_at"])
    return report


def mark_audited(frame_ids: Iterable[int]) -> None:
    """The audit looked at these frames and found nothing new."""
    Frame.objects.filter(pk__in=list(frame_ids)).update(audited_at=timezone.now())


def flag_by_operator(frame_ids: Iterable[int], reason: str) -> FlagReport:
    """An operator excludes frames by hand (the admin action): a flag like any other."""
    flag = {"check": "operator", "score": 1.0, "reason": reason, "evidence": {}}
    return change_flags({i: FlagChange(add=[flag]) for i in frame_ids})


# -- processed by vision -----------------------------------------------------------------
def record_processed(frame_ids: Iterable[int]) -> int:
    """Vision is done with these frames; how many changed."""
    now = timezone.now()
    with transaction.atomic():
        rows = [r for r in _locked(frame_ids) if r.processed_at is None]
        for row in rows:
            row.processed_at = now
            _apply_state(row)
        Frame.objects.bulk_update(rows, ["processed_at", "state"])
    return len(rows)


# -- rewardable in an epoch --------------------------------------------------------------
def rewardable_frames(starts_at: datetime, ends_at: datetime) -> QuerySet[Frame]:
    """Frames captured in [starts_at, ends_at) that passed their image checks and are not
    flagged, not yet counted in an epoch."""
    return Frame.objects.filter(
        captured_at__gte=starts_at,
        captured_at__lt=ends_at,
        state__in=REWARDABLE,
        rewarded_epoch__isnull=True,
    )


def mark_rewarded(epoch_number: int, frame_ids: Iterable[int]) -> int:
    """Count these frames in `epoch_number` once: frames already counted, flagged or still
    pending are left alone (each UPDATE re-checks that under its row locks). How many
    were marked."""
    ids = sorted(set(frame_ids))
    marked = 0
    with transaction.atomic():
        for start in range(0, len(ids), MARK_CHUNK):
            marked += Frame.objects.filter(
                pk__in=ids[start : start + MARK_CHUNK],
                state__in=REWARDABLE,
                rewarded_epoch__isnull=True,
            ).update(rewarded_epoch=epoch_number)
    return marked
