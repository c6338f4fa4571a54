"""Verify and store one MQTT message: the trust decision of the network.

Two steps, so a worker can batch: `prepare(topic, payload)` is pure CPU work (decode the
envelope, check the JPEG header, a reduced decode for the perceptual hash and quality) and
touches no database; `commit(prepared)` looks up the device, checks the signature, the
time window, replays and duplicates, runs the frame-level fraud checks, writes the JPEG to
the object store and the Frame row (and a VisionJob row when the frame is not flagged).
The caller runs `commit` inside a transaction (one per batch) and acknowledges the MQTT
messages only after it committed.
`handle` does both for one message in its own transaction.

Neither step raises for bad input: malformed, forged or replayed messages become
`RejectedMessage` rows with a reason. Only infrastructure failures (database, store)
raise; then nothing is acknowledged and the broker delivers the messages again.
The JPEG is written before the row commits; if the commit fails, the blob is an orphan
(harmless, content-addressed) and the message comes again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import h3
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

import protocol
from ingest import fraud, metrics
from ingest.imaging import (
    ImageDecodeError,
    ImageFacts,
    hamming,
    image_facts,
    phash_bands,
    to_signed64,
)
from ingest.jpeg import JpegError, JpegInfo, parse_header
from ingest.policy import IntakePolicy
from ingest.reasons import IntakeReason
from ingest.store import ObjectStore
from webapp.fleet.models import Device, Frame, RejectedMessage, VisionJob

logger = logging.getLogger(__name__)

Status = Literal["stored", "duplicate", "rejected", "ignored"]
RECENT_FRAMES = 24  # the device's frames before this one that the door checks look at
NEAR_DUPLICATE_CANDIDATES = 200
SameImage = tuple[
    int, str, int
]  # (frame id, device id, seq) of a stored frame with the same SHA-256
Candidate = tuple[
    int, int, datetime, int | None, str
]  # (frame id, device pk, captured_at, phash, device id)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: str = ""
    detail: str = ""
    frame_id: int | None = None
    flagged: bool = False
    checks: tuple[str, ...] = ()
    lag_s: float | None = None


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
    facts: ImageFacts | None = None
    rejection: Rejection | None = None
    content_rejection: Rejection | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # The signature checked in `prepare` against a cached device key (off the batch thread):
    # the key bytes it was checked with and the error (None: valid). `check_signature`
    # reuses the result only when the registered key is still exactly these bytes.
    signature_key: bytes | None = None
    signature_error: protocol.ProtocolError | None = None


def h3_cells(lat: float, lon: float) -> tuple[int, int, int]:
    """H3 cell ids (int64) at resolutions 12, 9 and 7."""
    cell = h3.latlng_to_cell(lat, lon, 12)
    return (
        h3.str_to_int(cell),
        h3.str_to_int(h3.cell_to_parent(cell, 9)),
        h3.str_to_int(h3.cell_to_parent(cell, 7)),
    )


class FrameIntake:
    def __init__(self, store: ObjectStore, policy: IntakePolicy | None = None) -> None:
        self.store = store
        self.policy = policy or IntakePolicy()
        # Device rows to touch at the end of the transaction, in primary-key order, so two
        # workers committing batches never lock the same device rows in opposite orders.
        self._seen: dict[int, bool | None] = {}
        # device id -> public key bytes as last read from the database, so `prepare` (on the
        # worker's prepare threads) can check signatures before the batch looks the device up;
        # `check_signature` checks again whenever the registered key differs.
        self.known_keys: dict[str, bytes] = {}

    # -- one message, one transaction ----------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> Outcome:
        prepared = self.prepare(topic, payload)
        with transaction.atomic():
            outcome = self.commit(prepared)
            self.flush_device_updates()
        metrics.record(outcome)
        return outcome

    def flush_device_updates(self) -> None:
        """Write last_seen_at / online for the devices seen since the last flush (call inside the transaction)."""
        now = timezone.now()
        seen, self._seen = self._seen, {}
        for pk in sorted(seen):
            online = seen[pk]
            if online is None:
                Device.objects.filter(pk=pk).update(last_seen_at=now)
            else:
                Device.objects.filter(pk=pk).update(last_seen_at=now, online=online)

    def discard_device_updates(self) -> None:
        self._seen = {}

    # -- step 1: no database -------------------------------------------------------------
    def prepare(self, topic: str, payload: bytes) -> Prepared:
        p = Prepared(topic=topic, payload=payload, topic_device=_device_from_topic(topic))
        try:
            p.topic_device, p.channel = protocol.parse_topic(topic)
            p.signed = protocol.decode(payload)
        except protocol.ProtocolError as exc:
            p.rejection = Rejection(exc.reason, exc.detail, p.topic_device)
            return p
        message = p.signed.message
        if message.device_id != p.topic_device:
            p.rejection = Rejection(
                protocol.RejectReason.TOPIC_MISMATCH,
                f"topic is for {p.topic_device!r} but the message is from {message.device_id!r}",
                p.topic_device,
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
                    message.jpeg, max_side=self.policy.max_side, max_pixels=self.policy.max_pixels
                )
                p.facts = image_facts(message.jpeg)
            except JpegError as exc:
                p.content_rejection = Rejection(
                    exc.reason, exc.detail, message.device_id, message.seq
                )
            except ImageDecodeError as exc:
                p.content_rejection = Rejection(
                    IntakeReason.UNDECODABLE_IMAGE, str(exc), message.device_id, message.seq
                )
        return p

    # -- step 2: inside the caller's transaction -----------------------------------------
    def commit(self, p: Prepared) -> Outcome:
        try:
            if p.rejection is not None:
                raise p.rejection
            assert p.signed is not None and p.channel is not None
            message = p.signed.message
            device = self._registered_device(message.device_id)
            self.check_signature(p, device)
            if isinstance(message, protocol.Frame) and p.channel == protocol.Channel.FRAMES:
                if p.content_rejection is not None:
                    raise p.content_rejection
                self._check_time(message)
                return self._store_frame(device, message, p)
            if isinstance(message, protocol.Status) and p.channel == protocol.Channel.STATUS:
                self._seen[device.pk] = message.state == protocol.DeviceState.ONLINE
                return Outcome("ignored", detail="status recorded")
            if isinstance(message, protocol.Telemetry) and p.channel == protocol.Channel.TELEMETRY:
                self._seen.setdefault(device.pk, None)
                return Outcome("ignored", detail="telemetry seen")
            raise Rejection(
                IntakeReason.UNSUPPORTED_CHANNEL,
                f"a {type(message).__name__} message on the {p.channel} channel",
                message.device_id,
            )
        except Rejection as rej:
            return self._reject(p.topic, p.payload, rej)

    def _registered_device(self, device_id: str) -> Device:
        return self.check_device(Device.objects.filter(device_id=device_id).first(), device_id)

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
            raise Rejection(
                error.reason, error.detail, message.device_id, getattr(message, "seq", None)
            )

    def _check_time(self, frame: protocol.Frame) -> None:
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

    def _store_frame(self, device: Device, frame: protocol.Frame, p: Prepared) -> Outcome:
        assert p.facts is not None and p.jpeg is not None
        sha = frame.image_sha256.hex()
        existing = (
            Frame.objects.filter(device=device, seq=frame.seq).only("id", "image_sha256").first()
        )
        if existing is not None:
            return self._duplicate_or_replay(device, frame, existing)
        key = self.store.put(frame.jpeg)
        if key != sha:  # the protocol already checked this; a mismatch here is a store bug
            raise RuntimeError(f"store returned key {key} for image {sha}")
        flags = self.door_checks(device, frame, sha, p.facts)
        try:
            with transaction.atomic():
                row = self.frame_row(device, frame, p, flags)
                row.save(force_insert=True)
                if row.state == Frame.State.ACCEPTED:  # a flagged frame is not sent to vision
                    VisionJob.objects.create(frame=row)
            self._seen.setdefault(device.pk, None)
        except IntegrityError:
            # Another worker stored the same (device, seq) between our check and insert.
            existing = (
                Frame.objects.filter(device=device, seq=frame.seq)
                .only("id", "image_sha256")
                .first()
            )
            if existing is None:
                raise
            return self._duplicate_or_replay(device, frame, existing)
        return stored_outcome(row.pk, frame, flags, row.state == Frame.State.FLAGGED)

    def frame_row(
        self, device: Device, frame: protocol.Frame, p: Prepared, flags: list[fraud.Flag]
    ) -> Frame:
        """The unsaved Frame row of a frame that passed the checks, with its flags and state."""
        assert p.facts is not None and p.jpeg is not None
        score = fraud.fraud_score(flags)
        flagged = score >= self.policy.fraud.flag_score
        pos = frame.position
        r12, r9, r7 = h3_cells(pos.lat, pos.lon)
        b0, b1, b2, b3 = phash_bands(p.facts.phash)
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
            image_width=p.jpeg.width,
            image_height=p.jpeg.height,
            quality_sharpness=frame.quality.sharpness,
            quality_exposure=frame.quality.exposure,
            quality_obstruction=frame.quality.obstruction,
            server_sharpness=p.facts.sharpness,
            server_brightness=p.facts.brightness,
            phash=to_signed64(p.facts.phash),
            phash_b0=b0,
            phash_b1=b1,
            phash_b2=b2,
            phash_b3=b3,
            faces_blurred=frame.privacy.faces,
            plates_blurred=frame.privacy.plates,
            state=Frame.State.FLAGGED if flagged else Frame.State.ACCEPTED,
            flags=[f.as_json() for f in flags],
            fraud_score=score,
        )

    def door_checks(
        self, device: Device, frame: protocol.Frame, sha: str, facts: ImageFacts
    ) -> list[fraud.Flag]:
        """Frame-level fraud checks against what is already stored (see ingest.fraud)."""
        rows = (
            Frame.objects.filter(device=device, captured_at__lte=frame.captured_at)
            .exclude(seq=frame.seq)
            .order_by("-captured_at")
            .values_list("id", "seq", "captured_at", "lat", "lon")[:RECENT_FRAMES]
        )
        earlier = [
            fraud.TrackPoint(i, s, c.timestamp(), la, lo) for i, s, c, la, lo in reversed(rows)
        ]
        same = (
            Frame.objects.filter(image_sha256=sha)
            .exclude(device=device, seq=frame.seq)
            .values_list("id", "device__device_id", "seq")
            .first()
        )
        b0, b1, b2, b3 = phash_bands(facts.phash)
        candidates = list(
            Frame.objects.filter(
                Q(phash_b0=b0) | Q(phash_b1=b1) | Q(phash_b2=b2) | Q(phash_b3=b3)
            ).values_list("id", "device_id", "captured_at", "phash", "device__device_id")[
                :NEAR_DUPLICATE_CANDIDATES
            ]
        )
        return self.door_flags(device, frame, facts, earlier, same, candidates)

    def door_flags(
        self,
        device: Device,
        frame: protocol.Frame,
        facts: ImageFacts,
        earlier: list[fraud.TrackPoint],
        same: SameImage | None,
        candidates: list[Candidate],
    ) -> list[fraud.Flag]:
        """The door's flags from what was looked up: the device's recent track (oldest first),
        a stored frame with the same SHA-256, and the frames sharing a pHash band."""
        pol = self.policy.fraud
        point = fraud.TrackPoint(
            None, frame.seq, frame.captured_at_us / 1e6, frame.position.lat, frame.position.lon
        )
        flags = fraud.check_motion(point, earlier, pol)
        if not flags:
            flags += fraud.check_acceleration([*earlier[-2:], point], pol)
        flags += fraud.check_stationary(point, earlier, pol)
        flags += fraud.check_quality(facts.sharpness, facts.brightness, pol)
        if same is not None:
            evidence = {"other_frame": same[0], "other_device": same[1], "other_seq": same[2]}
            return [
                *flags,
                fraud.Flag(
                    fraud.Check.DUPLICATE_IMAGE,
                    1.0,
                    "this exact image was already submitted",
                    evidence,
                ),
            ]
        t = frame.captured_at
        window = timedelta(seconds=pol.near_duplicate_same_device_s)
        best: tuple[int, int, str] | None = None
        for fid, dev_pk, captured, ph, dev_name in candidates:
            if ph is None:
                continue
            if dev_pk == device.pk and abs(captured - t) < window:
                continue  # the same car a few seconds apart: similar pictures are expected
            dist = hamming(ph, facts.phash)
            if dist <= pol.near_duplicate_bits and (best is None or dist < best[1]):
                best = (fid, dist, dev_name)
        if best is None:
            return flags
        evidence = {"other_frame": best[0], "other_device": best[2], "phash_distance": best[1]}
        return [
            *flags,
            fraud.Flag(
                fraud.Check.NEAR_DUPLICATE_IMAGE,
                0.9,
                "a near copy of an image already submitted",
                evidence,
            ),
        ]

    def _duplicate_or_replay(
        self, device: Device, frame: protocol.Frame, existing: Frame
    ) -> Outcome:
        if existing.image_sha256 == frame.image_sha256.hex():
            return Outcome("duplicate", frame_id=existing.pk)
        raise Rejection(
            IntakeReason.SEQ_REPLAY,
            f"sequence {frame.seq} was already used for another image",
            device.device_id,
            frame.seq,
        )

    def _reject(self, topic: str, payload: bytes, rej: Rejection) -> Outcome:
        digest = hashlib.sha256(payload).hexdigest()
        with transaction.atomic():
            row, created = RejectedMessage.objects.get_or_create(
                payload_sha256=digest,
                defaults={
                    "topic": topic[:255],
                    "device_id": rej.device_id[:64],
                    "seq": rej.seq,
                    "reason": str(rej.reason),
                    "detail": rej.detail[:2000],
                    "payload_bytes": len(payload),
                },
            )
            if not created:
                RejectedMessage.objects.filter(pk=row.pk).update(times_seen=F("times_seen") + 1)
        logger.info("rejected message on %s: %s: %s", topic[:255], rej.reason, rej.detail)
        return Outcome("rejected", reason=str(rej.reason), detail=rej.detail)


def stored_outcome(
    frame_id: int, frame: protocol.Frame, flags: list[fraud.Flag], flagged: bool
) -> Outcome:
    return Outcome(
        "stored",
        frame_id=frame_id,
        detail=",".join(f.check for f in flags),
        flagged=flagged,
        checks=tuple(f.check for f in flags),
        lag_s=time.time() - frame.captured_at_us / 1e6,
    )


def _device_from_topic(topic: str) -> str:
    parts = topic.split("/") if isinstance(topic, str) else []
    return parts[1][:64] if len(parts) >= 2 and parts[0] == "devices" else ""
