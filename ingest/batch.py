"""Commit a batch of prepared messages with a handful of queries instead of about eight a frame.

`commit_batch(intake, prepared)` gives the same outcomes, rows and flags as calling
`intake.commit` on each message in order inside one transaction, with the database work
done per batch: the batch's devices in one query; existing (device, seq) rows, same-SHA-256
frames and pHash-band candidates in one query each; each device's recent track in one
query; all new images written and fsynced together (`ObjectStore.put_many`); Frame rows,
and the VisionJob rows of the frames not flagged, bulk-inserted. A frame sees the frames
before it in the same batch exactly as it would see them stored. Frames stored in this batch are named in evidence by a
negative placeholder until the insert returns their ids, then patched (rare: only a flag
that points at a frame of the same batch).

If the insert meets a concurrent worker's row (IntegrityError on (device, seq)), the
batch's savepoint is rolled back and the batch is committed message by message through
`intake.commit`, which handles that race one row at a time.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

import protocol
from ingest import fraud
from ingest.imaging import phash_bands
from ingest.intake import (
    NEAR_DUPLICATE_CANDIDATES,
    RECENT_FRAMES,
    Candidate,
    FrameIntake,
    Outcome,
    Prepared,
    Rejection,
    SameImage,
    stored_outcome,
)
from ingest.reasons import IntakeReason
from webapp.fleet.models import Device, Frame, VisionJob

logger = logging.getLogger(__name__)


class _Race(Exception):
    """Another worker inserted a row of this batch first."""


@dataclass
class _New:
    """A frame of the batch that will be inserted."""

    index: int
    device: Device
    frame: protocol.Frame
    prepared: Prepared
    placeholder: int
    sha: str
    bands: tuple[int, int, int, int]
    flags: list[fraud.Flag]
    row: Frame | None = None


def commit_batch(intake: FrameIntake, batch: Sequence[Prepared]) -> list[Outcome]:
    """Commit `batch` (call inside the caller's transaction); outcomes in batch order."""
    try:
        with transaction.atomic():
            return _Batch(intake, batch).commit()
    except _Race:
        intake.discard_device_updates()
        logger.info(
            "a concurrent worker stored a frame of this batch first; committing it message by message"
        )
        return [intake.commit(p) for p in batch]


class _Batch:
    def __init__(self, intake: FrameIntake, batch: Sequence[Prepared]) -> None:
        self.intake = intake
        self.batch = batch
        self.outcomes: list[Outcome | None] = [None] * len(batch)
        self.new: list[_New] = []
        # (device pk, seq) -> (frame id or placeholder, sha) of frames stored or stored in this batch
        self.known: dict[tuple[int, int], tuple[int, str]] = {}
        self.duplicates: dict[int, int] = {}  # batch index -> frame id or placeholder
        self.ids: dict[int, int] = {}  # placeholder -> the inserted row's id

    def commit(self) -> list[Outcome]:
        frames = self._verify()
        if frames:
            self._store(frames)
        return [o for o in self.outcomes if o is not None]

    # -- device, signature, content, time: per message, with the devices looked up once ----
    def _verify(self) -> list[tuple[int, Device, protocol.Frame, Prepared]]:
        ids = {
            p.signed.message.device_id
            for p in self.batch
            if p.rejection is None and p.signed is not None
        }
        devices = {d.device_id: d for d in Device.objects.filter(device_id__in=ids)}
        frames = []
        for i, p in enumerate(self.batch):
            try:
                if p.rejection is not None:
                    raise p.rejection
                assert p.signed is not None and p.channel is not None
                message = p.signed.message
                device = self.intake.check_device(devices.get(message.device_id), message.device_id)
                self.intake.check_signature(
                    p, device
                )  # usually already checked on a prepare thread
                if isinstance(message, protocol.Frame) and p.channel == protocol.Channel.FRAMES:
                    if p.content_rejection is not None:
                        raise p.content_rejection
                    self.intake._check_time(message)
                    frames.append((i, device, message, p))
                else:
                    self.outcomes[i] = self.intake.commit(
                        p
                    )  # status / telemetry / wrong channel: cheap
            except Rejection as rej:
                self.outcomes[i] = self.intake._reject(p.topic, p.payload, rej)
        return frames

    # -- frames ------------------------------------------------------------------------
    def _store(self, frames: list[tuple[int, Device, protocol.Frame, Prepared]]) -> None:
        by_device: dict[int, set[int]] = {}
        for _, device, frame, _ in frames:
            by_device.setdefault(device.pk, set()).add(frame.seq)
        existing = Frame.objects.filter(
            reduce(operator.or_, (Q(device_id=pk, seq__in=seqs) for pk, seqs in by_device.items()))
        ).values_list("device_id", "seq", "id", "image_sha256")
        self.known = {(d, s): (fid, sha) for d, s, fid, sha in existing}
        accepted: list[tuple[int, Device, protocol.Frame, Prepared]] = []
        for i, device, frame, p in frames:
            sha = frame.image_sha256.hex()
            seen = self.known.get((device.pk, frame.seq))
            if seen is not None:
                if seen[1] == sha:
                    self.duplicates[i] = seen[0]
                else:
                    self.outcomes[i] = self.intake._reject(
                        p.topic, p.payload, _seq_replay(device, frame)
                    )
                continue
            placeholder = -(i + 1)
            self.known[(device.pk, frame.seq)] = (placeholder, sha)
            accepted.append((i, device, frame, p))
        if accepted:
            # protocol.decode checked each image's SHA-256 against its bytes: the store reuses it
            shas = [f.image_sha256.hex() for _, _, f, _ in accepted]
            keys = self.intake.store.put_many([f.jpeg for _, _, f, _ in accepted], keys=shas)
            if keys != shas:  # a store bug
                raise RuntimeError(f"store returned keys {keys} for images {shas}")
            self._door_checks(accepted)
            self._insert()
        self._finish()

    def _door_checks(self, accepted: list[tuple[int, Device, protocol.Frame, Prepared]]) -> None:
        tracks = self._tracks(accepted)
        shas = {f.image_sha256.hex() for _, _, f, _ in accepted}
        same_rows = sorted(
            Frame.objects.filter(image_sha256__in=shas).values_list(
                "id", "image_sha256", "device_id", "seq", "device__device_id"
            )
        )
        bands = [phash_bands(p.facts.phash) for _, _, _, p in accepted if p.facts is not None]
        cand_q = reduce(
            operator.or_,
            (Q(**{f"phash_b{k}__in": sorted({b[k] for b in bands})}) for k in range(4)),
        )
        limit = NEAR_DUPLICATE_CANDIDATES * len(accepted)
        cand_rows = list(
            Frame.objects.filter(cand_q).values_list(
                "id",
                "device_id",
                "captured_at",
                "phash",
                "device__device_id",
                "phash_b0",
                "phash_b1",
                "phash_b2",
                "phash_b3",
            )[:limit]
        )
        truncated = len(cand_rows) >= limit
        for i, device, frame, p in accepted:
            assert p.facts is not None
            sha = frame.image_sha256.hex()
            fb = phash_bands(p.facts.phash)
            same: SameImage | None = next(
                (
                    (fid, name, s)
                    for fid, h, d, s, name in same_rows
                    if h == sha and (d, s) != (device.pk, frame.seq)
                ),
                None,
            )
            if same is None:
                same = next(
                    (
                        (n.placeholder, n.device.device_id, n.frame.seq)
                        for n in self.new
                        if n.sha == sha
                    ),
                    None,
                )
            if truncated:  # too many band matches for one query: this frame's own, as `commit` does
                candidates = list(
                    Frame.objects.filter(
                        Q(phash_b0=fb[0])
                        | Q(phash_b1=fb[1])
                        | Q(phash_b2=fb[2])
                        | Q(phash_b3=fb[3])
                    ).values_list("id", "device_id", "captured_at", "phash", "device__device_id")[
                        :NEAR_DUPLICATE_CANDIDATES
                    ]
                )
            else:
                candidates = [
                    row[:5] for row in cand_rows if any(row[5 + k] == fb[k] for k in range(4))
                ][:NEAR_DUPLICATE_CANDIDATES]
            candidates += [
                (
                    n.placeholder,
                    n.device.pk,
                    n.frame.captured_at,
                    n.prepared.facts.phash if n.prepared.facts else None,
                    n.device.device_id,
                )
                for n in self.new
                if any(n.bands[k] == fb[k] for k in range(4))
            ]
            earlier = self._earlier(tracks, device, frame)
            flags = self.intake.door_flags(
                device, frame, p.facts, earlier, same, _as_candidates(candidates)
            )
            self.new.append(_New(i, device, frame, p, -(i + 1), sha, fb, flags))

    def _tracks(
        self, accepted: list[tuple[int, Device, protocol.Frame, Prepared]]
    ) -> dict[int, tuple[list[tuple[int, int, datetime, float, float]], bool]]:
        """Each device's latest stored frames up to its newest frame in the batch (newest first),
        and whether the read was cut by its limit."""
        latest: dict[int, datetime] = {}
        count: dict[int, int] = {}
        for _, device, frame, _ in accepted:
            t = frame.captured_at
            latest[device.pk] = max(latest.get(device.pk, t), t)
            count[device.pk] = count.get(device.pk, 0) + 1
        tracks = {}
        for pk, t in latest.items():
            limit = RECENT_FRAMES + 1 + count[pk]
            rows = list(
                Frame.objects.filter(device_id=pk, captured_at__lte=t)
                .order_by("-captured_at")
                .values_list("id", "seq", "captured_at", "lat", "lon")[:limit]
            )
            tracks[pk] = (rows, len(rows) >= limit)
        return tracks

    def _earlier(
        self,
        tracks: dict[int, tuple[list[tuple[int, int, datetime, float, float]], bool]],
        device: Device,
        frame: protocol.Frame,
    ) -> list[fraud.TrackPoint]:
        """What `FrameIntake.door_checks` would read: the device's RECENT_FRAMES latest frames
        captured at or before this one (stored, or earlier in this batch), oldest first."""
        t = frame.captured_at
        rows, cut = tracks[device.pk]
        stored = [r for r in rows if r[2] <= t and r[1] != frame.seq]
        if (
            cut and len(stored) < RECENT_FRAMES
        ):  # the batch read stopped short of this frame's window
            stored = list(
                Frame.objects.filter(device=device, captured_at__lte=t)
                .exclude(seq=frame.seq)
                .order_by("-captured_at")
                .values_list("id", "seq", "captured_at", "lat", "lon")[:RECENT_FRAMES]
            )
        pending = [
            (
                n.placeholder,
                n.frame.seq,
                n.frame.captured_at,
                n.frame.position.lat,
                n.frame.position.lon,
            )
            for n in self.new
            if n.device.pk == device.pk and n.frame.captured_at <= t and n.frame.seq != frame.seq
        ]
        merged = sorted([*stored, *pending], key=lambda r: r[2], reverse=True)[:RECENT_FRAMES]
        return [
            fraud.TrackPoint(i, s, c.timestamp(), la, lo) for i, s, c, la, lo in reversed(merged)
        ]

    def _insert(self) -> None:
        rows = [self.intake.frame_row(n.device, n.frame, n.prepared, n.flags) for n in self.new]
        try:
            with transaction.atomic():
                created = Frame.objects.bulk_create(rows)
                VisionJob.objects.bulk_create(  # a flagged frame is not sent to vision
                    [VisionJob(frame=r) for r in created if r.state == Frame.State.ACCEPTED]
                )
        except IntegrityError as exc:
            raise _Race(str(exc)) from exc
        ids: dict[int, int] = {}
        for n, row in zip(self.new, created, strict=True):
            assert row.pk is not None, "the database did not return the new ids"
            n.row = row
            ids[n.placeholder] = row.pk
            self.intake._seen.setdefault(n.device.pk, None)
        patched = []
        for n in self.new:
            assert n.row is not None
            if _patch_placeholders(n.row.flags, ids):
                patched.append(n.row)
                n.flags = [
                    fraud.Flag(f["check"], f["score"], f["reason"], f["evidence"])
                    for f in n.row.flags
                ]
        if patched:
            Frame.objects.bulk_update(patched, ["flags"])
        self.ids = ids

    def _finish(self) -> None:
        ids = self.ids
        for n in self.new:
            assert n.row is not None
            self.outcomes[n.index] = stored_outcome(
                n.row.pk, n.frame, n.flags, n.row.state == Frame.State.FLAGGED
            )
        for i, fid in self.duplicates.items():
            self.outcomes[i] = Outcome("duplicate", frame_id=ids.get(fid, fid))


def _seq_replay(device: Device, frame: protocol.Frame) -> Rejection:
    return Rejection(
        IntakeReason.SEQ_REPLAY,
        f"sequence {frame.seq} was already used for another image",
        device.device_id,
        frame.seq,
    )


def _as_candidates(rows: list[Any]) -> list[Candidate]:
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _patch_placeholders(flags: list[dict[str, Any]], ids: dict[int, int]) -> bool:
    changed = False
    for flag in flags:
        evidence = flag.get("evidence") or {}
        other = evidence.get("other_frame")
        if isinstance(other, int) and other < 0 and other in ids:
            evidence["other_frame"] = ids[other]
            changed = True
    return changed
