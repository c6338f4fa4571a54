"""Verify and store one MQTT message: the trust decision of the network.

`FrameIntake.handle(topic, payload)` returns an `Outcome` value and never raises for bad
input: malformed, forged or replayed messages become `RejectedMessage` rows with a reason.
It raises only for infrastructure failures (database, disk), in which case the caller must
not acknowledge the message, so the broker delivers it again.

Order of work for a frame: parse -> device lookup -> signature -> duplicate / replay check
-> JPEG into the content-addressed store -> Frame row in one transaction. The JPEG is
written before the row commits; if the commit fails, the blob is an orphan (harmless,
content-addressed) and the message is redelivered.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import h3
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

import protocol
from ingest import metrics
from ingest.reasons import IntakeReason
from ingest.store import ObjectStore
from webapp.fleet.models import Device, Frame, RejectedMessage

logger = logging.getLogger(__name__)

Status = Literal["stored", "duplicate", "rejected", "ignored"]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: str = ""
    detail: str = ""
    frame_id: int | None = None


class Rejection(Exception):
    def __init__(
        self, reason: str, detail: str, device_id: str = "", seq: int | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.device_id = device_id
        self.seq = seq


def h3_cells(lat: float, lon: float) -> tuple[int, int, int]:
    """H3 cell ids (int64) at resolutions 12, 9 and 7."""
    cell = h3.latlng_to_cell(lat, lon, 12)
    return (
        h3.str_to_int(cell),
        h3.str_to_int(h3.cell_to_parent(cell, 9)),
        h3.str_to_int(h3.cell_to_parent(cell, 7)),
    )


class FrameIntake:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def handle(self, topic: str, payload: bytes) -> Outcome:
        try:
            topic_device, channel = protocol.parse_topic(topic)
            signed = protocol.decode(payload)
            message = signed.message
            if message.device_id != topic_device:
                raise Rejection(
                    protocol.RejectReason.TOPIC_MISMATCH,
                    f"topic is for {topic_device!r} but the message is from {message.device_id!r}",
                    topic_device,
                )
            device = self._registered_device(message.device_id)
            try:
                protocol.verify(signed, bytes(device.public_key))
            except protocol.ProtocolError as exc:
                raise Rejection(
                    exc.reason, exc.detail, message.device_id, getattr(message, "seq", None)
                ) from None
            if isinstance(message, protocol.Frame) and channel == protocol.Channel.FRAMES:
                return self._store_frame(device, message)
            if isinstance(message, protocol.Status) and channel == protocol.Channel.STATUS:
                self._record_status(device, message)
                return Outcome("ignored", detail="status recorded")
            if isinstance(message, protocol.Telemetry) and channel == protocol.Channel.TELEMETRY:
                Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now())
                return Outcome("ignored", detail="telemetry seen")
            raise Rejection(
                IntakeReason.UNSUPPORTED_CHANNEL,
                f"a {type(message).__name__} message on the {channel} channel",
                message.device_id,
            )
        except protocol.ProtocolError as exc:
            return self._reject(
                topic, payload, Rejection(exc.reason, exc.detail, _device_from_topic(topic))
            )
        except Rejection as rej:
            return self._reject(topic, payload, rej)

    def _registered_device(self, device_id: str) -> Device:
        device = Device.objects.filter(device_id=device_id).first()
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

    def _store_frame(self, device: Device, frame: protocol.Frame) -> Outcome:
        sha = frame.image_sha256.hex()
        existing = (
            Frame.objects.filter(device=device, seq=frame.seq).only("id", "image_sha256").first()
        )
        if existing is not None:
            return self._duplicate_or_replay(device, frame, existing)
        key = self.store.put(frame.jpeg)
        if key != sha:  # the protocol already checked this; a mismatch here is a store bug
            raise RuntimeError(f"store returned key {key} for image {sha}")
        pos = frame.position
        r12, r9, r7 = h3_cells(pos.lat, pos.lon)
        flags: list[str] = []
        if Frame.objects.filter(image_sha256=sha).exclude(device=device).exists():
            flags.append("duplicate_image_other_device")
        try:
            with transaction.atomic():
                row = Frame.objects.create(
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
                    image_sha256=sha,
                    image_bytes=len(frame.jpeg),
                    quality_sharpness=frame.quality.sharpness,
                    quality_exposure=frame.quality.exposure,
                    quality_obstruction=frame.quality.obstruction,
                    faces_blurred=frame.privacy.faces,
                    plates_blurred=frame.privacy.plates,
                    state=Frame.State.FLAGGED if flags else Frame.State.ACCEPTED,
                    flags=flags,
                )
                Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now())
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
        metrics.FRAMES_ACCEPTED.inc()
        lag = (datetime.now(UTC) - frame.captured_at).total_seconds()
        metrics.CAPTURE_TO_COMMIT.observe(max(lag, 0.0))
        return Outcome("stored", frame_id=row.pk, detail=",".join(flags))

    def _duplicate_or_replay(
        self, device: Device, frame: protocol.Frame, existing: Frame
    ) -> Outcome:
        if existing.image_sha256 == frame.image_sha256.hex():
            metrics.FRAMES_DUPLICATE.inc()
            return Outcome("duplicate", frame_id=existing.pk)
        raise Rejection(
            IntakeReason.SEQ_REPLAY,
            f"sequence {frame.seq} was already used for another image",
            device.device_id,
            frame.seq,
        )

    def _record_status(self, device: Device, status: protocol.Status) -> None:
        Device.objects.filter(pk=device.pk).update(
            online=status.state == protocol.DeviceState.ONLINE, last_seen_at=timezone.now()
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
        metrics.MESSAGES_REJECTED.labels(reason=str(rej.reason)).inc()
        logger.info("rejected message on %s: %s: %s", topic, rej.reason, rej.detail)
        return Outcome("rejected", reason=str(rej.reason), detail=rej.detail)


def _device_from_topic(topic: str) -> str:
    parts = topic.split("/")
    return parts[1][:64] if len(parts) >= 2 and parts[0] == "devices" else ""
