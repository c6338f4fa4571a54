"""The door: what the bytes of a message prove, then one commit path for a batch of them.

`Door.prepare(topic, payload)` is CPU work that touches no database and decodes no image:
the envelope (structure, ranges, the image's SHA-256), topic against sender, the
signature against the device's cached key, and the JPEG header (sizes, pixels per byte:
no decompression bomb gets further). It runs on the worker's prepare threads as messages
arrive.

`Door.commit(batch)` decides and records every message of a batch in one transaction,
with the database work done per batch: the batch's devices, existing (device, seq) rows,
same-SHA-256 images and each device's recent track in a handful of queries; the images
written and fsynced together; the Frame rows inserted through the frame lifecycle
(`webapp.fleet.lifecycle.store_frames`, which also makes the devices' image checks due).
A single message is a batch of one (`Door.handle`). The checks at the door are the ones
the bytes and the track allow: registration, signature, time window, replays and
duplicates, and the track's plausibility (speed, teleports, acceleration, a cloned key,
stationary farming). Everything that needs the pixels runs later, in the image-check job.

Nothing here raises for bad input: malformed, forged or replayed messages become
`RejectedMessage` rows with a reason. A message whose commit fails for any other reason
(a bug, a value the database refuses) is isolated from its batch and recorded as
`internal_error` with the error, so one message can never stop ingest. Only the
infrastructure failing (database unreachable, image store down) raises: then nothing of
the batch is acknowledged and the broker delivers it again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import Any, Literal

import h3
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

import protocol
from ingest import fraud
from ingest.jpeg import JpegError, JpegInfo, parse_header
from ingest.policy import IntakePolicy
from ingest.reasons import IntakeReason
from webapp.fleet import lifecycle
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.images import ObjectStore, ObjectStoreError

logger = logging.getLogger(__name__)

Status = Literal["stored", "duplicate", "rejected", "ignored"]
RECENT_FRAMES = 24  # the device's frames before this one that the track checks look at
DB_RETRIES = 3
TELEMETRY_KEEP_BYTES = 8192  # a device's newest telemetry kept whole up to this much JSON
INFRASTRUCTURE = (OperationalError, InterfaceError, ObjectStoreError)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: str = ""
    detail: str = ""
    frame_id: int | None = None
    flagged: bool = False
    checks: tuple[str, ...] = ()
    lag_s: float | None = None
    # What a receipt needs: the sender, the frame's seq (None when unreadable), whether
    # the message was on the frames channel, and the payload's SHA-256.
    device_id: str = ""
    seq: int | None = None
    frame_channel: bool = False
    payload_sha256: bytes = b""


class Rejection(Exception):
    def __init__(
        self, reason: str, detail: str, device_id: str = "", seq: int | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.device_id = device_id
        self.seq = seq


@dataclass
class Prepared:
    """A message after the pure checks; `rejection` is final, `content_rejection` waits for the signature."""

    topic: str
    payload: bytes
    topic_device: str = ""
    channel: protocol.Channel | None = None
    signed: protocol.SignedMessage | None = None
    jpeg: JpegInfo | None = None
    rejection: Rejection | None = None
    content_rejection: Rejection | None = None
    # The signature checked in `prepare` against a cached device key (off the batch thread):
    # the key bytes it was checked with and the error (None: valid). `check_signature`
    # reuses the result only when the registered key is still exactly these bytes.
    signature_key: bytes | None = None
    signature_error: protocol.ProtocolError | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def payload_sha256(self) -> bytes:
        """SHA-256 of the payload as it came (names a refused message; not needed otherwise)."""
        return hashlib.sha256(self.payload).digest()

    @property
    def seq(self) -> int | None:
        message = self.signed.message if self.signed is not None else None
        return message.seq if isinstance(message, protocol.Frame) else None

    @property
    def on_frames(self) -> bool:
        return self.channel == protocol.Channel.FRAMES or self.topic.endswith("/frames")


def h3_cells(lat: float, lon: float) -> tuple[int, int, int]:
    """H3 cell ids (int64) at resolutions 12, 9 and 7."""
    cell = h3.latlng_to_cell(lat, lon, 12)
    return (
        h3.str_to_int(cell),
        h3.str_to_int(h3.cell_to_parent(cell, 9)),
        h3.str_to_int(h3.cell_to_parent(cell, 7)),
    )


class _Race(Exception):
    """Another worker inserted a row of this batch first."""


class Door:
    def __init__(self, store: ObjectStore, policy: IntakePolicy | None = None) -> None:
        self.store = store
        self.policy = policy or IntakePolicy()
        # Device rows to touch at the end of the transaction, in primary-key order, so two
        # workers committing batches never lock the same device rows in opposite orders.
        self._seen: dict[int, bool | None] = {}
        # the newest telemetry of each device in the batch: (sent at, the data to keep)
        self._telemetry: dict[int, tuple[datetime, dict[str, Any]]] = {}
        # device id -> public key bytes as last read from the database, so `prepare` (on the
        # worker's prepare threads) can check signatures before the batch looks the device up;
        # `check_signature` checks again whenever the registered key differs.
        self.known_keys: dict[str, bytes] = {}

    # -- one message: a batch of one -------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> Outcome:
        return self.commit([self.prepare(topic, payload)])[0]

    # -- step 1: no database, no image decode ------------------------------------------------
    def prepare(self, topic: str, payload: bytes) -> Prepared:
        p = Prepared(
            topic=topic,
            payload=payload,
            topic_device=_device_from_topic(topic),
        )
        try:
            p.topic_device, p.channel = protocol.parse_topic(topic)
            p.signed = protocol.decode(payload)
        except protocol.ProtocolError as exc:
            p.rejection = Rejection(exc.reason, exc.detail, p.topic_device, _raw_seq(payload))
            return p
        message = p.signed.message
        if message.device_id != p.topic_device:
            p.rejection = Rejection(
                protocol.RejectReason.TOPIC_MISMATCH,
                f"topic is for {p.topic_device!r} but the message is from {message.device_id!r}",
                p.topic_device,
                p.seq,
            )
            return p
        key = self.known_keys.get(message.device_id)
        if key is not None:
            try:
                protocol.verify(p.signed, key)
            except protocol.ProtocolError as exc:
                p.signature_error = exc
            p.signature_key = key
        if isinstance(message, protocol.Frame):
            try:
                p.jpeg = parse_header(
                    message.jpeg,
                    max_side=self.policy.max_side,
                    max_pixels=self.policy.max_pixels,
                    max_pixels_per_byte=self.policy.max_pixels_per_byte,
                )
            except JpegError as exc:
                p.content_rejection = Rejection(
                    exc.reason, exc.detail, message.device_id, message.seq
                )
        return p

    # -- step 2: one transaction per batch -------------------------------------------------
    def commit(self, batch: Sequence[Prepared]) -> list[Outcome]:
        """Decide and record every message; outcomes in batch order (see the module docstring)."""
        for attempt in range(1, DB_RETRIES + 1):
            try:
                with transaction.atomic():
                    outcomes = _Batch(self, batch).commit()
                    self.flush_device_updates()
                return outcomes
            except OperationalError as exc:  # deadlock / serialization failure: rolled back
                self._forget()
                if attempt == DB_RETRIES or not _retryable(exc):
                    raise
                logger.warning(
                    "batch rolled back (%s); retry %d", str(exc).splitlines()[0], attempt
                )
                time.sleep(0.05 * attempt)
            except INFRASTRUCTURE:
                self._forget()
                raise
            except Exception as exc:  # a race or a message the batch cannot hold: one by one
                self._forget()
                logger.info("committing a batch of %d message by message: %s", len(batch), exc)
                return [self._commit_alone(p) for p in batch]
        raise AssertionError("unreachable")

    def _commit_alone(self, p: Prepared) -> Outcome:
        """One message in its own transaction; a failure that is not the infrastructure's
        is recorded as `internal_error` (and acked), never raised."""
        for _ in range(2):  # a second try sees the row a concurrent worker committed
            try:
                with transaction.atomic():
                    outcome = _Batch(self, [p]).commit()[0]
                    self.flush_device_updates()
                return outcome
            except INFRASTRUCTURE:
                self._forget()
                raise
            except _Race:
                self._forget()
                continue
            except Exception as exc:
                self._forget()
                logger.exception("message on %s could not be committed", p.topic[:255])
                return self._internal_error(p, f"{type(exc).__name__}: {exc}")
        return self._internal_error(p, "a concurrent worker kept storing the same frame")

    def _internal_error(self, p: Prepared, error: str) -> Outcome:
        rej = Rejection(IntakeReason.INTERNAL_ERROR, error, p.topic_device, p.seq)
        try:
            with transaction.atomic():
                return self.reject(p, rej)
        except INFRASTRUCTURE:
            raise
        except Exception:  # even the rejection row failed: keep only what cannot fail
            logger.exception("could not record the internal error of a message")
            rej = Rejection(IntakeReason.INTERNAL_ERROR, error[:200], p.topic_device[:64])
            with transaction.atomic():
                return self.reject(p, rej)

    def _forget(self) -> None:
        """Drop the device updates of a batch that rolled back."""
        self._seen = {}
        self._telemetry = {}

    def flush_device_updates(self) -> None:
        """Write last_seen_at / online, and the newest telemetry, for the devices seen (call
        inside the transaction). Telemetry older than what is stored is not written (two
        workers may take one device's messages out of order)."""
        now = timezone.now()
        seen, telemetry = self._seen, self._telemetry
        self._forget()
        for pk in sorted(seen):
            online = seen[pk]
            if online is None:
                Device.objects.filter(pk=pk).update(last_seen_at=now)
            else:
                Device.objects.filter(pk=pk).update(last_seen_at=now, online=online)
        for pk in sorted(telemetry):
            sent_at, data = telemetry[pk]
            Device.objects.filter(pk=pk).filter(
                Q(telemetry_at__isnull=True) | Q(telemetry_at__lt=sent_at)
            ).update(telemetry=data, telemetry_at=sent_at)

    def note_telemetry(self, device: Device, message: protocol.Telemetry) -> None:
        """Keep a device's telemetry for the dashboard (its outbox depth, counters): the
        whole object when it is at most TELEMETRY_KEEP_BYTES of JSON, else its `outbox`
        part alone. A time in the future is taken as now."""
        sent_at = min(message.sent_at, timezone.now())
        data = message.data
        if len(json.dumps(data, separators=(",", ":"))) > TELEMETRY_KEEP_BYTES:
            outbox = data.get("outbox")
            small = len(json.dumps(outbox)) <= TELEMETRY_KEEP_BYTES // 4
            data = {"outbox": outbox if small else None, "truncated": True}
        kept = self._telemetry.get(device.pk)
        if kept is None or kept[0] < sent_at:
            self._telemetry[device.pk] = (sent_at, data)

    # -- shared checks -------------------------------------------------------------------
    @staticmethod
    def check_device(device: Device | None, device_id: str) -> Device:
        """The registered, active device, or a Rejection."""
        if device is None:
            raise Rejection(
                IntakeReason.UNREGISTERED_DEVICE,
                f"no device {device_id!r} is registered",
                device_id,
            )
        if device.status != Device.Status.ACTIVE:
            raise Rejection(
                IntakeReason.REVOKED_DEVICE, f"device {device_id!r} is {device.status}", device_id
            )
        return device

    def check_signature(self, p: Prepared, device: Device) -> None:
        """Rejection(bad_signature / bad_field) unless `p` is signed by `device`'s registered key.

        Reuses the check `prepare` made when it was made with exactly this key; otherwise
        verifies now (and remembers the key for the next messages of the device).
        """
        assert p.signed is not None
        message = p.signed.message
        key = bytes(device.public_key)
        if self.known_keys.get(device.device_id) != key:
            self.known_keys[device.device_id] = key
        if p.signature_key is not None and p.signature_key == key:
            error = p.signature_error
        else:
            try:
                protocol.verify(p.signed, key)
                error = None
            except protocol.ProtocolError as exc:
                error = exc
        if error is not None:
            raise Rejection(error.reason, error.detail, message.device_id, p.seq)

    def check_time(self, frame: protocol.Frame) -> None:
        age = time.time() - frame.captured_at_us / 1e6
        if age < -self.policy.max_future_s:
            raise Rejection(
                IntakeReason.TIMESTAMP_FUTURE,
                f"captured {-age:.0f} s in the future (allowed {self.policy.max_future_s} s)",
                frame.device_id,
                frame.seq,
            )
        if age > self.policy.max_age_s:
            raise Rejection(
                IntakeReason.TIMESTAMP_STALE,
                f"captured {age / 86400:.0f} days ago (allowed {self.policy.max_age_s // 86400})",
                frame.device_id,
                frame.seq,
            )

    def track_flags(
        self, frame: protocol.Frame, earlier: list[fraud.TrackPoint], same: SameImage | None
    ) -> list[fraud.Flag]:
        """The door's flags: the device's recent track (oldest first) and an identical image."""
        pol = self.policy.fraud
        pos = frame.position
        point = fraud.TrackPoint(
            None, frame.seq, frame.captured_at_us / 1e6, pos.lat, pos.lon, pos.speed_mps
        )
        flags = fraud.check_motion(point, earlier, pol)
        if not flags:
            flags += fraud.check_acceleration([*earlier[-2:], point], pol)
        if not flags and earlier:
            flags += fraud.check_kinematics(earlier[-1], point, pol)
        flags += fraud.check_stationary(point, earlier, pol)
        if same is not None:
            evidence = {"other_frame": same[0], "other_device": same[1], "other_seq": same[2]}
            flags.append(
                fraud.Flag(
                    fraud.Check.DUPLICATE_IMAGE,
                    1.0,
                    "this exact image was already submitted",
                    evidence,
                )
            )
        return flags

    def frame_row(
        self,
        device: Device,
        frame: protocol.Frame,
        jpeg: JpegInfo,
        flags: list[fraud.Flag],
        signature: bytes | None = None,
    ) -> Frame:
        """The unsaved Frame row of a frame that passed the door (the lifecycle sets its state);
        `signature` is the device's, kept so a consumer can check the frame (provenance)."""
        pos = frame.position
        r12, r9, r7 = h3_cells(pos.lat, pos.lon)
        return Frame(
            device=device,
            seq=frame.seq,
            captured_at=frame.captured_at,
            lat=pos.lat,
            lon=pos.lon,
            alt_m=pos.alt_m,
            heading_deg=pos.heading_deg,
            speed_mps=pos.speed_mps,
            fix_type=int(pos.fix),
            satellites=pos.satellites,
            hdop=pos.hdop,
            camera_id=frame.camera_id,
            intrinsics_ref=frame.intrinsics_ref,
            h3_r12=r12,
            h3_r9=r9,
            h3_r7=r7,
            image_sha256=frame.image_sha256.hex(),
            image_bytes=len(frame.jpeg),
            image_width=jpeg.width,
            image_height=jpeg.height,
            quality_sharpness=frame.quality.sharpness,
            quality_exposure=frame.quality.exposure,
            quality_obstruction=frame.quality.obstruction,
            faces_blurred=frame.privacy.faces,
            plates_blurred=frame.privacy.plates,
            flags=[f.as_json() for f in flags],
            signature=signature,
        )

    def reject(self, p: Prepared, rej: Rejection) -> Outcome:
        """Record a refused message (call inside a transaction); a payload seen again counts."""
        digest = p.payload_sha256.hex()
        with transaction.atomic():
            row, created = RejectedMessage.objects.get_or_create(
                payload_sha256=digest,
                defaults={
                    "topic": p.topic[:255],
                    "device_id": rej.device_id[:64],
                    "seq": rej.seq,
                    "reason": str(rej.reason),
                    "detail": rej.detail[:2000],
                    "payload_bytes": len(p.payload),
                },
            )
            if not created:
                RejectedMessage.objects.filter(pk=row.pk).update(times_seen=F("times_seen") + 1)
        logger.info("rejected message on %s: %s: %s", p.topic[:255], rej.reason, rej.detail)
        return Outcome(
            "rejected",
            reason=str(rej.reason),
            detail=rej.detail,
            device_id=p.topic_device,
            seq=rej.seq if rej.seq is not None else p.seq,
            frame_channel=p.on_frames,
            payload_sha256=p.payload_sha256,
        )


SameImage = tuple[int, str, int]  # (frame id, device id, seq) of a stored frame, same SHA-256
Row = tuple[int, int, datetime, float, float, float | None]  # id, seq, captured_at, lat, lon, speed


@dataclass
class _New:
    """A frame of the batch that will be inserted."""

    index: int
    device: Device
    frame: protocol.Frame
    prepared: Prepared
    placeholder: int
    sha: str
    flags: list[fraud.Flag]
    row: Frame | None = None


class _Batch:
    """One commit of a batch (inside the caller's transaction)."""

    def __init__(self, door: Door, batch: Sequence[Prepared]) -> None:
        self.door = door
        self.batch = batch
        self.outcomes: list[Outcome | None] = [None] * len(batch)
        self.new: list[_New] = []
        self.duplicates: dict[int, int] = {}  # batch index -> frame id or placeholder
        self.ids: dict[int, int] = {}  # placeholder -> the inserted row's id

    def commit(self) -> list[Outcome]:
        frames = self._verify()
        if frames:
            self._store(frames)
        return [o for o in self.outcomes if o is not None]

    # -- device, signature, content, time: per message, the devices looked up once ---------
    def _verify(self) -> list[tuple[int, Device, protocol.Frame, Prepared]]:
        door = self.door
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
                device = door.check_device(devices.get(message.device_id), message.device_id)
                door.check_signature(p, device)  # usually already checked on a prepare thread
                if isinstance(message, protocol.Frame) and p.channel == protocol.Channel.FRAMES:
                    if p.content_rejection is not None:
                        raise p.content_rejection
                    door.check_time(message)
                    frames.append((i, device, message, p))
                elif isinstance(message, protocol.Status) and p.channel == protocol.Channel.STATUS:
                    door._seen[device.pk] = message.state == protocol.DeviceState.ONLINE
                    self.outcomes[i] = self._ignored(p, "status recorded")
                elif (
                    isinstance(message, protocol.Telemetry)
                    and p.channel == protocol.Channel.TELEMETRY
                ):
                    door._seen.setdefault(device.pk, None)
                    door.note_telemetry(device, message)
                    self.outcomes[i] = self._ignored(p, "telemetry recorded")
                else:
                    raise Rejection(
                        IntakeReason.UNSUPPORTED_CHANNEL,
                        f"a {type(message).__name__} message on the {p.channel} channel",
                        message.device_id,
                        p.seq,
                    )
            except Rejection as rej:
                self.outcomes[i] = door.reject(p, rej)
        return frames

    @staticmethod
    def _ignored(p: Prepared, detail: str) -> Outcome:
        return Outcome("ignored", detail=detail, device_id=p.topic_device)

    # -- frames ------------------------------------------------------------------------
    def _store(self, frames: list[tuple[int, Device, protocol.Frame, Prepared]]) -> None:
        by_device: dict[int, set[int]] = {}
        for _, device, frame, _ in frames:
            by_device.setdefault(device.pk, set()).add(frame.seq)
        existing = Frame.objects.filter(
            reduce(operator.or_, (Q(device_id=pk, seq__in=seqs) for pk, seqs in by_device.items()))
        ).values_list("device_id", "seq", "id", "image_sha256")
        known = {(d, s): (fid, sha) for d, s, fid, sha in existing}
        accepted: list[tuple[int, Device, protocol.Frame, Prepared]] = []
        for i, device, frame, p in frames:
            sha = frame.image_sha256.hex()
            seen = known.get((device.pk, frame.seq))
            if seen is not None:
                if seen[1] == sha:
                    self.duplicates[i] = seen[0]
                else:
                    self.outcomes[i] = self.door.reject(
                        p,
                        Rejection(
                            IntakeReason.SEQ_REPLAY,
                            f"sequence {frame.seq} was already used for another image",
                            device.device_id,
                            frame.seq,
                        ),
                    )
                continue
            known[(device.pk, frame.seq)] = (-(i + 1), sha)
            accepted.append((i, device, frame, p))
        if accepted:
            # protocol.decode checked each image's SHA-256 against its bytes: the store reuses it
            shas = [f.image_sha256.hex() for _, _, f, _ in accepted]
            keys = self.door.store.put_many([f.jpeg for _, _, f, _ in accepted], keys=shas)
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
        for i, device, frame, p in accepted:
            sha = frame.image_sha256.hex()
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
            earlier = self._earlier(tracks, device, frame)
            flags = self.door.track_flags(frame, earlier, same)
            self.new.append(_New(i, device, frame, p, -(i + 1), sha, flags))

    def _tracks(
        self, accepted: list[tuple[int, Device, protocol.Frame, Prepared]]
    ) -> dict[int, tuple[list[Row], bool]]:
        """Each device's latest stored frames up to its newest frame in the batch (newest
        first), and whether the read was cut by its limit."""
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
                .values_list("id", "seq", "captured_at", "lat", "lon", "speed_mps")[:limit]
            )
            tracks[pk] = (rows, len(rows) >= limit)
        return tracks

    def _earlier(
        self, tracks: dict[int, tuple[list[Row], bool]], device: Device, frame: protocol.Frame
    ) -> list[fraud.TrackPoint]:
        """The device's RECENT_FRAMES latest frames captured at or before this one (stored,
        or earlier in this batch), oldest first."""
        t = frame.captured_at
        rows, cut = tracks[device.pk]
        stored = [r for r in rows if r[2] <= t and r[1] != frame.seq]
        if cut and len(stored) < RECENT_FRAMES:  # the batch read stopped short of this window
            stored = list(
                Frame.objects.filter(device=device, captured_at__lte=t)
                .exclude(seq=frame.seq)
                .order_by("-captured_at")
                .values_list("id", "seq", "captured_at", "lat", "lon", "speed_mps")[:RECENT_FRAMES]
            )
        pending = [
            (
                n.placeholder,
                n.frame.seq,
                n.frame.captured_at,
                n.frame.position.lat,
                n.frame.position.lon,
                n.frame.position.speed_mps,
            )
            for n in self.new
            if n.device.pk == device.pk and n.frame.captured_at <= t and n.frame.seq != frame.seq
        ]
        merged = sorted([*stored, *pending], key=lambda r: r[2], reverse=True)[:RECENT_FRAMES]
        return [
            fraud.TrackPoint(i, s, c.timestamp(), la, lo, v)
            for i, s, c, la, lo, v in reversed(merged)
        ]

    def _insert(self) -> None:
        rows = []
        for n in self.new:
            assert n.prepared.jpeg is not None and n.prepared.signed is not None
            rows.append(
                self.door.frame_row(
                    n.device, n.frame, n.prepared.jpeg, n.flags, n.prepared.signed.signature
                )
            )
        try:
            created = lifecycle.store_frames(rows)
        except IntegrityError as exc:
            raise _Race(str(exc)) from exc
        ids: dict[int, int] = {}
        for n, row in zip(self.new, created, strict=True):
            assert row.pk is not None, "the database did not return the new ids"
            n.row = row
            ids[n.placeholder] = row.pk
            self.door._seen.setdefault(n.device.pk, None)
        patched = [n.row for n in self.new if n.row is not None and _patch(n.row.flags, ids)]
        if patched:  # a flag named a frame of the same batch by its placeholder
            Frame.objects.bulk_update(patched, ["flags"])
        self.ids = ids

    def _finish(self) -> None:
        for n in self.new:
            assert n.row is not None
            self.outcomes[n.index] = Outcome(
                "stored",
                frame_id=n.row.pk,
                detail=",".join(f.check for f in n.flags),
                flagged=n.row.state == Frame.State.FLAGGED,
                checks=tuple(f.check for f in n.flags),
                lag_s=time.time() - n.frame.captured_at_us / 1e6,
                device_id=n.device.device_id,
                seq=n.frame.seq,
                frame_channel=True,
            )
        for i, fid in self.duplicates.items():
            p = self.batch[i]
            self.outcomes[i] = Outcome(
                "duplicate",
                frame_id=self.ids.get(fid, fid),
                device_id=p.topic_device,
                seq=p.seq,
                frame_channel=True,
            )


def _patch(flags: list[dict[str, Any]], ids: dict[int, int]) -> bool:
    changed = False
    for flag in flags:
        evidence = flag.get("evidence") or {}
        other = evidence.get("other_frame")
        if isinstance(other, int) and other < 0 and other in ids:
            evidence["other_frame"] = ids[other]
            changed = True
    return changed


def _retryable(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "deadlock" in text or "could not serialize" in text or "database is locked" in text


def _device_from_topic(topic: str) -> str:
    parts = topic.split("/") if isinstance(topic, str) else []
    return parts[1][:64] if len(parts) >= 2 and parts[0] == "devices" else ""


def _raw_seq(payload: bytes) -> int | None:
    """The seq field of a frame payload the decoder refused, when the bytes hold one
    (so a receipt can name it): magic, version 1, kind frame, 12 bytes at least."""
    if len(payload) >= 12 and payload[:4] == b"RM\x01\x01":
        seq = int.from_bytes(payload[4:12], "big")
        return seq if seq <= protocol.MAX_SEQ else None
    return None
