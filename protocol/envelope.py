"""Envelope v1: messages to signed bytes and back.

Layout (all integers big-endian, see docs/protocol.md for the tables)::

    magic "RM" | version u8 | kind u8 | body (per kind) | Ed25519 signature (64 bytes)

The signature covers ``DOMAIN_TAG + every byte before the signature``. The decoder is
strict: each message value has exactly one encoding (JSON text inside telemetry aside),
and anything else is refused with a `ProtocolError` naming the field. The decoder
raises nothing but `ProtocolError`.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import ProtocolError, RejectReason
from .json_data import canonical_json, parse_json_object
from .keys import load_public_key
from .limits import (
    DOMAIN_TAG,
    MAGIC,
    MAX_FRAME_BYTES,
    MAX_JPEG_BYTES,
    MAX_SEQ,
    MAX_STRING_BYTES,
    MAX_TELEMETRY_BYTES,
    MAX_TIMESTAMP_US,
    PROTOCOL_VERSION,
    SIGNATURE_BYTES,
    is_valid_device_id,
)
from .messages import (
    DeviceState,
    FixType,
    Frame,
    Message,
    MessageKind,
    Position,
    PrivacyCounts,
    Quality,
    Status,
    Telemetry,
)

__all__ = [
    "SignedMessage",
    "canonical_bytes",
    "decode",
    "encode",
    "max_payload_bytes",
    "verify",
]

# --- layout -------------------------------------------------------------------------

PREFIX: Final = struct.Struct(">2sBB")  # magic, version, kind
# seq, captured_at_us, lat, lon, alt, heading, speed, fix, satellites, hdop,
# sharpness, exposure, obstruction, faces, plates, image_sha256
FRAME_FIXED: Final = struct.Struct(">Qq iiiHHBBH fff HH 32s")
TELEMETRY_FIXED: Final = struct.Struct(">Qq")  # seq, sent_at_us
STATUS_FIXED: Final = struct.Struct(">qB")  # sent_at_us, state
_U8: Final = struct.Struct(">B")
_U32: Final = struct.Struct(">I")
_F32: Final = struct.Struct(">f")

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_U16_MAX: Final = 2**16 - 1

ALT_NONE: Final = _INT32_MIN  # sentinel: altitude unknown
U16_NONE: Final = _U16_MAX  # sentinel: heading / speed / hdop unknown

DEVICE_ID_MIN_BYTES: Final = 3
DEVICE_ID_MAX_BYTES: Final = 64


def max_payload_bytes(kind: MessageKind) -> int:
    """The largest whole payload (signature included) allowed for `kind`."""
    return MAX_FRAME_BYTES if kind is MessageKind.FRAME else MAX_TELEMETRY_BYTES


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A decoded message with the exact bytes its signature covers."""

    message: Message
    signed_bytes: bytes
    signature: bytes

    @property
    def kind(self) -> MessageKind:
        return _kind_of(self.message)

    @property
    def wire_bytes(self) -> bytes:
        """The payload as it travelled (envelope plus signature)."""
        return self.signed_bytes[len(DOMAIN_TAG) :] + self.signature


# --- errors -------------------------------------------------------------------------


def _bad(field: str, why: str) -> ProtocolError:
    return ProtocolError(RejectReason.BAD_FIELD, f"{field}: {why}")


def _type_name(value: object) -> str:
    return type(value).__name__


# --- encoding -----------------------------------------------------------------------


def _check_int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, f"expected an integer, got {_type_name(value)}")
    if not lo <= value <= hi:
        raise _bad(field, f"{value} is outside {lo}..{hi}")
    return int(value)


def _check_real(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field, f"expected a number, got {_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _bad(field, "number too large") from None
    if not math.isfinite(number):
        raise _bad(field, f"{number} is not finite")
    return number


def _scaled(value: object, field: str, scale: int, lo: float, hi: float, raw_hi: int) -> int:
    """`value` in [lo, hi] as a rounded integer count of 1/scale units, at most raw_hi."""
    number = _check_real(value, field)
    if not lo <= number <= hi:
        raise _bad(field, f"{number} is outside {lo}..{hi}")
    scaled = number * scale
    raw = round(scaled) if abs(scaled) <= raw_hi else raw_hi + 1  # inf never reaches round()
    if not -raw_hi <= raw <= raw_hi:
        raise _bad(field, f"{number} does not fit the wire range")
    return raw


def _optional_u16(value: object, field: str, hi: float) -> int:
    if value is None:
        return U16_NONE
    return _scaled(value, field, 100, 0.0, hi, U16_NONE - 1)


def _f32(value: object, field: str) -> float:
    number = _check_real(value, field)
    try:
        _F32.pack(number)
    except OverflowError:
        raise _bad(field, f"{number} does not fit a float32") from None
    return number


E = TypeVar("E", bound=int)


def _check_enum(value: object, enum_type: Callable[[int], E], field: str) -> E:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, f"expected an integer enum, got {_type_name(value)}")
    try:
        return enum_type(value)
    except ValueError:
        raise _bad(field, f"{value} is not a known value") from None


def _utf8(value: object, field: str, min_bytes: int, max_bytes: int) -> bytes:
    if not isinstance(value, str):
        raise _bad(field, f"expected a string, got {_type_name(value)}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(field, "not encodable as UTF-8") from None
    if not min_bytes <= len(raw) <= max_bytes:
        raise _bad(field, f"{len(raw)} bytes, must be {min_bytes}..{max_bytes}")
    return _U8.pack(len(raw)) + raw


def _device_id(value: object) -> bytes:
    if not isinstance(value, str) or not is_valid_device_id(value):
        raise _bad("device_id", f"{value!r} does not match [a-z0-9][a-z0-9-]{{2,63}}")
    return _utf8(value, "device_id", DEVICE_ID_MIN_BYTES, DEVICE_ID_MAX_BYTES)


def _timestamp(value: object, field: str) -> int:
    return _check_int(value, field, 0, MAX_TIMESTAMP_US)


def _kind_of(msg: object) -> MessageKind:
    if isinstance(msg, Frame):
        return MessageKind.FRAME
    if isinstance(msg, Telemetry):
        return MessageKind.TELEMETRY
    if isinstance(msg, Status):
        return MessageKind.STATUS
    raise _bad("message", f"expected Frame, Telemetry or Status, got {_type_name(msg)}")


def _frame_body(frame: Frame) -> list[bytes]:
    jpeg = frame.jpeg
    if not isinstance(jpeg, bytes | bytearray | memoryview):
        raise _bad("jpeg", f"expected bytes, got {_type_name(jpeg)}")
    jpeg = bytes(jpeg)
    if len(jpeg) > MAX_JPEG_BYTES:
        raise ProtocolError(
            RejectReason.OVERSIZED, f"jpeg: {len(jpeg)} bytes, limit {MAX_FRAME_BYTES} per frame"
        )
    if jpeg[:2] != b"\xff\xd8":
        raise _bad("jpeg", "does not start with the JPEG SOI marker FF D8")
    pos = frame.position
    if not isinstance(pos, Position):
        raise _bad("position", f"expected Position, got {_type_name(pos)}")
    quality = frame.quality
    if not isinstance(quality, Quality):
        raise _bad("quality", f"expected Quality, got {_type_name(quality)}")
    privacy = frame.privacy
    if not isinstance(privacy, PrivacyCounts):
        raise _bad("privacy", f"expected PrivacyCounts, got {_type_name(privacy)}")
    fixed = FRAME_FIXED.pack(
        _check_int(frame.seq, "seq", 0, MAX_SEQ),
        _timestamp(frame.captured_at_us, "captured_at_us"),
        _scaled(pos.lat, "position.lat", 10_000_000, -90.0, 90.0, _INT32_MAX),
        _scaled(pos.lon, "position.lon", 10_000_000, -180.0, 180.0, _INT32_MAX),
        ALT_NONE
        if pos.alt_m is None
        else _scaled(pos.alt_m, "position.alt_m", 1000, -math.inf, math.inf, _INT32_MAX),
        U16_NONE
        if pos.heading_deg is None
        else _scaled(pos.heading_deg, "position.heading_deg", 100, 0.0, 360.0, 36000),
        _optional_u16(pos.speed_mps, "position.speed_mps", 655.34),
        _check_enum(pos.fix, FixType, "position.fix"),
        _check_int(pos.satellites, "position.satellites", 0, 255),
        _optional_u16(pos.hdop, "position.hdop", 655.34),
        _f32(quality.sharpness, "quality.sharpness"),
        _f32(quality.exposure, "quality.exposure"),
        _f32(quality.obstruction, "quality.obstruction"),
        _check_int(privacy.faces, "privacy.faces", 0, _U16_MAX),
        _check_int(privacy.plates, "privacy.plates", 0, _U16_MAX),
        frame.image_sha256 if type(frame.jpeg) is bytes else hashlib.sha256(jpeg).digest(),
    )
    return [
        fixed,
        _device_id(frame.device_id),
        _utf8(frame.camera_id, "camera_id", 1, MAX_STRING_BYTES),
        _utf8(frame.intrinsics_ref, "intrinsics_ref", 0, MAX_STRING_BYTES),
        _U32.pack(len(jpeg)),
        jpeg,
    ]


def _telemetry_body(msg: Telemetry) -> list[bytes]:
    data = canonical_json(msg.data)
    return [
        TELEMETRY_FIXED.pack(
            _check_int(msg.seq, "seq", 0, MAX_SEQ), _timestamp(msg.sent_at_us, "sent_at_us")
        ),
        _device_id(msg.device_id),
        _U32.pack(len(data)),
        data,
    ]


def _status_body(msg: Status) -> list[bytes]:
    return [
        STATUS_FIXED.pack(
            _timestamp(msg.sent_at_us, "sent_at_us"),
            _check_enum(msg.state, DeviceState, "state"),
        ),
        _device_id(msg.device_id),
    ]


def _unsigned_envelope(msg: Message) -> tuple[MessageKind, bytes]:
    kind = _kind_of(msg)
    if isinstance(msg, Frame):
        body = _frame_body(msg)
    elif isinstance(msg, Telemetry):
        body = _telemetry_body(msg)
    else:
        body = _status_body(msg)
    envelope = b"".join([PREFIX.pack(MAGIC, PROTOCOL_VERSION, kind), *body])
    limit = max_payload_bytes(kind)
    if len(envelope) + SIGNATURE_BYTES > limit:
        raise ProtocolError(
            RejectReason.OVERSIZED,
            f"{kind.name.lower()} message: {len(envelope) + SIGNATURE_BYTES} bytes, limit {limit}",
        )
    return kind, envelope


def canonical_bytes(msg: Message) -> bytes:
    """Exactly the bytes a signature covers: DOMAIN_TAG + the envelope before the signature.

    Raises ProtocolError(BAD_FIELD or OVERSIZED) for values that do not fit the wire.
    """
    return DOMAIN_TAG + _unsigned_envelope(msg)[1]


def encode(msg: Message, key: Ed25519PrivateKey) -> bytes:
    """Sign `msg` with `key` and return the MQTT payload (envelope + 64-byte signature)."""
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"key: expected Ed25519PrivateKey, got {_type_name(key)}")
    _, envelope = _unsigned_envelope(msg)
    return envelope + key.sign(DOMAIN_TAG + envelope)


def verify(signed: SignedMessage, public_key: Ed25519PublicKey | bytes) -> None:
    """Check the signature; raise ProtocolError(BAD_SIGNATURE) when it does not hold.

    `public_key` may be the raw 32-byte key (ProtocolError(BAD_FIELD) when malformed).
    """
    key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    try:
        key.verify(signed.signature, signed.signed_bytes)
    except InvalidSignature:
        raise ProtocolError(
            RejectReason.BAD_SIGNATURE, "signature does not match the device's public key"
        ) from None


# --- decoding -----------------------------------------------------------------------


class _Reader:
    """Sequential reads over a memoryview; running short is TRUNCATED."""

    __slots__ = ("_pos", "_view")

    def __init__(self, view: memoryview, pos: int) -> None:
        self._view = view
        self._pos = pos

    @property
    def remaining(self) -> int:
        return len(self._view) - self._pos

    def _need(self, size: int, field: str) -> int:
        start = self._pos
        if size > len(self._view) - start:
            raise ProtocolError(
                RejectReason.TRUNCATED,
                f"{field}: needs {size} bytes at offset {start}, only {self.remaining} left",
            )
        self._pos = start + size
        return start

    def unpack(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        return layout.unpack_from(self._view, self._need(layout.size, field))

    def take(self, size: int, field: str) -> memoryview:
        start = self._need(size, field)
        return self._view[start : start + size]

    def string(self, field: str, min_bytes: int, max_bytes: int) -> str:
        (length,) = self.unpack(_U8, f"{field} length")
        if not min_bytes <= length <= max_bytes:
            raise _bad(field, f"length {length}, must be {min_bytes}..{max_bytes}")
        raw = self.take(length, field)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise _bad(field, "not valid UTF-8") from None

    def blob(self, field: str, max_bytes: int) -> memoryview:
        (length,) = self.unpack(_U32, f"{field} length")
        if length > max_bytes:
            raise ProtocolError(
                RejectReason.OVERSIZED, f"{field}: declares {length} bytes, limit {max_bytes}"
            )
        return self.take(length, field)


def _range(raw: int, field: str, lo: int, hi: int) -> int:
    if not lo <= raw <= hi:
        raise _bad(field, f"{raw} is outside {lo}..{hi}")
    return raw


def _read_timestamp(raw: int, field: str) -> int:
    return _range(raw, field, 0, MAX_TIMESTAMP_US)


def _read_enum(raw: int, enum_type: Callable[[int], E], field: str) -> E:
    try:
        return enum_type(raw)
    except ValueError:
        raise _bad(field, f"{raw} is not a known value") from None


def _read_f32(raw: float, field: str) -> float:
    if not math.isfinite(raw):
        raise _bad(field, f"{raw} is not finite")
    return raw


def _read_device_id(reader: _Reader) -> str:
    device_id = reader.string("device_id", DEVICE_ID_MIN_BYTES, DEVICE_ID_MAX_BYTES)
    if not is_valid_device_id(device_id):
        raise _bad("device_id", f"{device_id!r} does not match [a-z0-9][a-z0-9-]{{2,63}}")
    return device_id


def _optional_hundredths(raw: int, field: str, hi: int = U16_NONE - 1) -> float | None:
    if raw == U16_NONE:
        return None
    return _range(raw, field, 0, hi) / 100


def _decode_frame(reader: _Reader) -> tuple[Frame, bytes]:
    (
        seq,
        captured_at_us,
        lat,
        lon,
        alt,
        heading,
        speed,
        fix,
        satellites,
        hdop,
        sharpness,
        exposure,
        obstruction,
        faces,
        plates,
        image_sha256,
    ) = reader.unpack(FRAME_FIXED, "frame header")
    position = Position(
        lat=_range(lat, "position.lat", -900_000_000, 900_000_000) / 10_000_000,
        lon=_range(lon, "position.lon", -1_800_000_000, 1_800_000_000) / 10_000_000,
        alt_m=None if alt == ALT_NONE else alt / 1000,
        heading_deg=_optional_hundredths(heading, "position.heading_deg", 36000),
        speed_mps=_optional_hundredths(speed, "position.speed_mps"),
        fix=_read_enum(fix, FixType, "position.fix"),
        satellites=satellites,
        hdop=_optional_hundredths(hdop, "position.hdop"),
    )
    quality = Quality(
        sharpness=_read_f32(sharpness, "quality.sharpness"),
        exposure=_read_f32(exposure, "quality.exposure"),
        obstruction=_read_f32(obstruction, "quality.obstruction"),
    )
    device_id = _read_device_id(reader)
    camera_id = reader.string("camera_id", 1, MAX_STRING_BYTES)
    intrinsics_ref = reader.string("intrinsics_ref", 0, MAX_STRING_BYTES)
    jpeg_view = reader.blob("jpeg", MAX_JPEG_BYTES)
    frame = Frame(
        device_id=device_id,
        seq=_range(seq, "seq", 0, MAX_SEQ),
        captured_at_us=_read_timestamp(captured_at_us, "captured_at_us"),
        position=position,
        camera_id=camera_id,
        intrinsics_ref=intrinsics_ref,
        quality=quality,
        privacy=PrivacyCounts(faces=faces, plates=plates),
        jpeg=bytes(jpeg_view),
    )
    return frame, image_sha256


def _check_frame_content(frame: Frame, declared_sha256: bytes) -> None:
    if frame.jpeg[:2] != b"\xff\xd8":
        raise _bad("jpeg", "does not start with the JPEG SOI marker FF D8")
    actual = hashlib.sha256(frame.jpeg).digest()
    if actual != declared_sha256:
        raise ProtocolError(
            RejectReason.HASH_MISMATCH,
            f"image_sha256: header says {declared_sha256.hex()}, jpeg hashes to {actual.hex()}",
        )
    object.__setattr__(frame, "_image_sha256", actual)


def _decode_telemetry(reader: _Reader) -> Telemetry:
    seq, sent_at_us = reader.unpack(TELEMETRY_FIXED, "telemetry header")
    sent_at_us = _read_timestamp(sent_at_us, "sent_at_us")
    device_id = _read_device_id(reader)
    data = parse_json_object(reader.blob("data", MAX_TELEMETRY_BYTES))
    return Telemetry(
        device_id=device_id, seq=_range(seq, "seq", 0, MAX_SEQ), sent_at_us=sent_at_us, data=data
    )


def _decode_status(reader: _Reader) -> Status:
    sent_at_us, state = reader.unpack(STATUS_FIXED, "status header")
    return Status(
        sent_at_us=_read_timestamp(sent_at_us, "sent_at_us"),
        state=_read_enum(state, DeviceState, "state"),
        device_id=_read_device_id(reader),
    )


def decode(payload: bytes) -> SignedMessage:
    """Parse and validate one MQTT payload. Does not check the signature: see `verify`.

    Raises ProtocolError and nothing else, whatever the input.
    """
    try:
        view = memoryview(payload).cast("B")
    except (TypeError, ValueError):
        raise _bad("payload", f"expected bytes, got {_type_name(payload)}") from None
    size = len(view)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(
            RejectReason.OVERSIZED, f"payload: {size} bytes, limit {MAX_FRAME_BYTES}"
        )
    if size < PREFIX.size:
        if bytes(view[:2]) != MAGIC[:size]:
            raise ProtocolError(RejectReason.BAD_MAGIC, f"magic: {bytes(view[:2]).hex()}")
        raise ProtocolError(RejectReason.TRUNCATED, f"prefix: needs 4 bytes, got {size}")
    magic, version, raw_kind = PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise ProtocolError(RejectReason.BAD_MAGIC, f"magic: {magic.hex()}, expected {MAGIC.hex()}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            RejectReason.UNSUPPORTED_VERSION,
            f"version: {version}, this decoder speaks {PROTOCOL_VERSION}",
        )
    try:
        kind = MessageKind(raw_kind)
    except ValueError:
        raise ProtocolError(RejectReason.UNKNOWN_KIND, f"kind: {raw_kind}") from None
    limit = max_payload_bytes(kind)
    if size > limit:
        raise ProtocolError(
            RejectReason.OVERSIZED, f"payload: {size} bytes, limit {limit} for {kind.name.lower()}"
        )

    reader = _Reader(view, PREFIX.size)
    message: Message
    declared_sha256 = b""
    if kind is MessageKind.FRAME:
        message, declared_sha256 = _decode_frame(reader)
    elif kind is MessageKind.TELEMETRY:
        message = _decode_telemetry(reader)
    else:
        message = _decode_status(reader)

    if reader.remaining < SIGNATURE_BYTES:
        raise ProtocolError(
            RejectReason.TRUNCATED,
            f"signature: needs {SIGNATURE_BYTES} bytes, only {reader.remaining} left",
        )
    if reader.remaining > SIGNATURE_BYTES:
        raise ProtocolError(
            RejectReason.TRAILING_BYTES,
            f"payload: {reader.remaining - SIGNATURE_BYTES} bytes after the signature",
        )
    if isinstance(message, Frame):
        _check_frame_content(message, declared_sha256)
    body_end = size - SIGNATURE_BYTES
    return SignedMessage(
        message=message,
        signed_bytes=b"".join((DOMAIN_TAG, view[:body_end])),  # one copy of the body, not two
        signature=bytes(view[body_end:]),
    )
