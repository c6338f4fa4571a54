"""Every malformed payload or value is refused with a specific reason, and only ProtocolError."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    DOMAIN_TAG,
    MAX_FRAME_BYTES,
    MAX_TELEMETRY_BYTES,
    FixType,
    Frame,
    Position,
    PrivacyCounts,
    ProtocolError,
    Quality,
    RejectReason,
    Status,
    Telemetry,
    decode,
    encode,
)

# Offsets inside the worked-example frame (device_id "cam-0001", camera_id "front").
HEADING = 32
FIX = 36
SHARPNESS = 40
IMAGE_SHA256 = 56
DEVICE_ID = 88
CAMERA_ID = 97
JPEG_LEN = 116
JPEG = 120


def patched(wire: bytes, offset: int, data: bytes) -> bytes:
    return wire[:offset] + data + wire[offset + len(data) :]


def resigned(wire: bytes, key: Ed25519PrivateKey) -> bytes:
    """`wire` with its signature replaced by a valid one over its (modified) body."""
    body = wire[:-64]
    return body + key.sign(DOMAIN_TAG + body)


def rejection(payload: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(payload)
    return info.value


def encode_rejection(message: Any, key: Ed25519PrivateKey) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        encode(message, key)
    return info.value


# --- prefix ----------------------------------------------------------------------------


def test_it_rejects_a_payload_that_does_not_start_with_the_magic(frame_wire: bytes) -> None:
    error = rejection(b"XX" + frame_wire[2:])
    assert error.reason is RejectReason.BAD_MAGIC
    assert rejection(b"{").reason is RejectReason.BAD_MAGIC
    assert rejection(b'{"json": true}').reason is RejectReason.BAD_MAGIC


def test_it_rejects_an_unknown_version(frame_wire: bytes) -> None:
    for version in (0, 2, 255):
        error = rejection(patched(frame_wire, 2, bytes([version])))
        assert error.reason is RejectReason.UNSUPPORTED_VERSION
        assert "version" in error.detail


def test_it_rejects_an_unknown_kind(frame_wire: bytes) -> None:
    for kind in (0, 4, 255):
        assert rejection(patched(frame_wire, 3, bytes([kind]))).reason is RejectReason.UNKNOWN_KIND


def test_the_error_reads_as_reason_then_detail(frame_wire: bytes) -> None:
    error = rejection(patched(frame_wire, 3, b"\x09"))
    assert str(error) == "unknown_kind: kind: 9"
    assert error.reason == "unknown_kind"


# --- sizes -----------------------------------------------------------------------------


def test_it_rejects_an_oversized_payload_before_looking_at_it() -> None:
    error = rejection(b"\x00" * (MAX_FRAME_BYTES + 1))
    assert error.reason is RejectReason.OVERSIZED


def test_it_rejects_a_telemetry_payload_over_the_telemetry_limit(
    telemetry: Telemetry, key: Ed25519PrivateKey
) -> None:
    wire = encode(telemetry, key)
    assert rejection(wire + bytes(MAX_TELEMETRY_BYTES)).reason is RejectReason.OVERSIZED


def test_it_refuses_to_encode_a_frame_over_the_frame_limit(
    frame: Frame, key: Ed25519PrivateKey
) -> None:
    jpeg = b"\xff\xd8" + bytes(MAX_FRAME_BYTES)
    error = encode_rejection(dataclasses.replace(frame, jpeg=jpeg), key)
    assert error.reason is RejectReason.OVERSIZED
    just_over = b"\xff\xd8" + bytes(MAX_FRAME_BYTES - 150)  # header + signature: 184 bytes
    assert encode_rejection(dataclasses.replace(frame, jpeg=just_over), key).reason is (
        RejectReason.OVERSIZED
    )


def test_it_refuses_to_encode_telemetry_over_the_telemetry_limit(
    telemetry: Telemetry, key: Ed25519PrivateKey
) -> None:
    message = dataclasses.replace(telemetry, data={"log": "x" * MAX_TELEMETRY_BYTES})
    assert encode_rejection(message, key).reason is RejectReason.OVERSIZED


def test_it_rejects_a_jpeg_length_beyond_the_limit(frame_wire: bytes) -> None:
    error = rejection(patched(frame_wire, JPEG_LEN, struct.pack(">I", 0xFFFFFFFF)))
    assert error.reason is RejectReason.OVERSIZED
    assert "jpeg" in error.detail


def test_it_rejects_a_frame_truncated_at_every_length(frame_wire: bytes) -> None:
    for length in range(len(frame_wire)):
        error = rejection(frame_wire[:length])
        assert error.reason is RejectReason.TRUNCATED, (length, error)


def test_it_rejects_telemetry_and_status_truncated_at_every_length(
    telemetry: Telemetry, status: Status, key: Ed25519PrivateKey
) -> None:
    for message in (telemetry, status):
        wire = encode(message, key)
        for length in range(len(wire)):
            assert rejection(wire[:length]).reason is RejectReason.TRUNCATED


def test_it_rejects_a_jpeg_length_longer_than_what_follows(frame_wire: bytes) -> None:
    error = rejection(patched(frame_wire, JPEG_LEN, struct.pack(">I", 1000)))
    assert error.reason is RejectReason.TRUNCATED
    assert "jpeg" in error.detail


def test_it_rejects_bytes_after_the_signature(
    frame_wire: bytes, status: Status, key: Ed25519PrivateKey
) -> None:
    assert rejection(frame_wire + b"\x00").reason is RejectReason.TRAILING_BYTES
    assert rejection(encode(status, key) + b"extra").reason is RejectReason.TRAILING_BYTES


def test_it_rejects_a_length_prefix_that_leaves_bytes_unread(frame_wire: bytes) -> None:
    shorter = patched(frame_wire, JPEG_LEN, struct.pack(">I", 3))
    assert rejection(shorter).reason is RejectReason.TRAILING_BYTES


# --- frame content ---------------------------------------------------------------------


def test_it_rejects_a_frame_whose_image_hash_does_not_match(
    frame_wire: bytes, key: Ed25519PrivateKey
) -> None:
    tampered = resigned(patched(frame_wire, JPEG + 2, b"\x00"), key)
    error = rejection(tampered)
    assert error.reason is RejectReason.HASH_MISMATCH
    assert "image_sha256" in error.detail
    wrong_hash = resigned(patched(frame_wire, IMAGE_SHA256, bytes(32)), key)
    assert rejection(wrong_hash).reason is RejectReason.HASH_MISMATCH


def test_it_rejects_a_frame_whose_jpeg_does_not_start_with_soi(
    frame_wire: bytes, frame: Frame, key: Ed25519PrivateKey
) -> None:
    png = b"\x89PNG"
    body = patched(frame_wire, JPEG, png)
    body = patched(body, IMAGE_SHA256, hashlib.sha256(png).digest())
    error = rejection(resigned(body, key))
    assert error.reason is RejectReason.BAD_FIELD
    assert "jpeg" in error.detail
    assert encode_rejection(dataclasses.replace(frame, jpeg=png), key).reason is (
        RejectReason.BAD_FIELD
    )
    assert encode_rejection(dataclasses.replace(frame, jpeg=b""), key).reason is (
        RejectReason.BAD_FIELD
    )


@pytest.mark.parametrize(
    ("offset", "data", "field"),
    [
        (FIX, b"\x06", "position.fix"),
        (HEADING, struct.pack(">H", 36001), "position.heading_deg"),
        (20, struct.pack(">i", 900_000_001), "position.lat"),
        (24, struct.pack(">i", -1_800_000_001), "position.lon"),
        (SHARPNESS, struct.pack(">f", math.nan), "quality.sharpness"),
        (SHARPNESS + 4, struct.pack(">f", math.inf), "quality.exposure"),
        (12, struct.pack(">q", -1), "captured_at_us"),
        (DEVICE_ID + 1, b"CAM", "device_id"),
        (DEVICE_ID, b"\x02", "device_id"),
        (CAMERA_ID, b"\x00", "camera_id"),
        (CAMERA_ID + 1, b"\xff\xfe", "camera_id"),
        (CAMERA_ID, b"\x41", "camera_id"),
    ],
)
def test_it_rejects_a_frame_field_out_of_range(
    frame_wire: bytes, offset: int, data: bytes, field: str
) -> None:
    error = rejection(patched(frame_wire, offset, data))
    assert error.reason is RejectReason.BAD_FIELD
    assert error.detail.startswith(field)


def test_it_rejects_a_status_with_an_unknown_state(status: Status, key: Ed25519PrivateKey) -> None:
    error = rejection(patched(encode(status, key), 12, b"\x02"))
    assert error.reason is RejectReason.BAD_FIELD
    assert error.detail.startswith("state")


@pytest.mark.parametrize(
    "data",
    [
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b'{"a": 1, "a": 2}',
        b"\xef\xbb\xbf{}",
        b'{"a": "\xff"}',
        b"{" * 5000,
        b"[" * 30_000 + b"]" * 30_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"9" * 5000 + b"}",
        b"",
    ],
)
def test_it_rejects_telemetry_data_that_is_not_a_strict_json_object(
    telemetry: Telemetry, key: Ed25519PrivateKey, data: bytes
) -> None:
    head = encode(telemetry, key)[:29]  # prefix, seq, sent_at, device_id
    wire = head + struct.pack(">I", len(data)) + data + bytes(64)
    error = rejection(wire)
    expected = RejectReason.OVERSIZED if len(wire) > MAX_TELEMETRY_BYTES else RejectReason.BAD_FIELD
    assert error.reason is expected
    if expected is RejectReason.BAD_FIELD:
        assert error.detail.startswith("data")


def test_it_accepts_telemetry_json_in_any_valid_formatting(
    telemetry: Telemetry, key: Ed25519PrivateKey
) -> None:
    head = encode(telemetry, key)[:29]
    data = json.dumps({"z": [1, 2], "a": {"b": None}}, indent=2).encode()
    decoded = decode(head + struct.pack(">I", len(data)) + data + bytes(64)).message
    assert isinstance(decoded, Telemetry)
    assert decoded.data == {"a": {"b": None}, "z": [1, 2]}


def test_it_rejects_something_that_is_not_bytes() -> None:
    assert rejection("RM\x01\x01").reason is RejectReason.BAD_FIELD
    assert rejection(None).reason is RejectReason.BAD_FIELD


# --- values that do not fit, at encode time --------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"device_id": "Cam-1"}, "device_id"),
        ({"device_id": "ab"}, "device_id"),
        ({"device_id": "cam/0001"}, "device_id"),
        ({"device_id": "cam-0001\n"}, "device_id"),
        ({"seq": -1}, "seq"),
        ({"seq": 2**64}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"captured_at_us": -5}, "captured_at_us"),
        ({"camera_id": ""}, "camera_id"),
        ({"camera_id": "é" * 33}, "camera_id"),
        ({"camera_id": "\udc80"}, "camera_id"),
        ({"intrinsics_ref": "x" * 65}, "intrinsics_ref"),
        ({"intrinsics_ref": None}, "intrinsics_ref"),
        ({"position": Position(lat=90.0001, lon=0.0)}, "position.lat"),
        ({"position": Position(lat=0.0, lon=-180.5)}, "position.lon"),
        ({"position": Position(lat=math.nan, lon=0.0)}, "position.lat"),
        ({"position": Position(lat=0.0, lon=0.0, alt_m=math.inf)}, "position.alt_m"),
        ({"position": Position(lat=0.0, lon=0.0, alt_m=3e6)}, "position.alt_m"),
        ({"position": Position(lat=0.0, lon=0.0, heading_deg=-1)}, "position.heading_deg"),
        ({"position": Position(lat=0.0, lon=0.0, heading_deg=360.01)}, "position.heading_deg"),
        ({"position": Position(lat=0.0, lon=0.0, speed_mps=700.0)}, "position.speed_mps"),
        ({"position": Position(lat=0.0, lon=0.0, hdop=-0.1)}, "position.hdop"),
        ({"position": Position(lat=0.0, lon=0.0, fix=9)}, "position.fix"),  # type: ignore[arg-type]
        ({"position": Position(lat=0.0, lon=0.0, satellites=256)}, "position.satellites"),
        ({"position": Position(lat="60", lon=0.0)}, "position.lat"),  # type: ignore[arg-type]
        ({"position": Position(lat=10**400, lon=0.0)}, "position.lat"),
        ({"position": (60.0, 24.0)}, "position"),
        ({"quality": Quality(sharpness=math.nan)}, "quality.sharpness"),
        ({"quality": Quality(exposure=1e39)}, "quality.exposure"),
        ({"privacy": PrivacyCounts(faces=-1)}, "privacy.faces"),
        ({"privacy": PrivacyCounts(plates=70_000)}, "privacy.plates"),
        ({"jpeg": "not bytes"}, "jpeg"),
    ],
)
def test_it_refuses_to_encode_a_value_that_does_not_fit(
    frame: Frame, key: Ed25519PrivateKey, changes: dict[str, Any], field: str
) -> None:
    error = encode_rejection(dataclasses.replace(frame, **changes), key)
    assert error.reason is RejectReason.BAD_FIELD
    assert error.detail.startswith(field + ":"), error.detail


@pytest.mark.parametrize(
    "data",
    [
        [1, 2],
        {"a": math.nan},
        {"a": (1, 2)},
        {1: "int key"},
        {"a": object()},
        {"a": b"bytes"},
    ],
)
def test_it_refuses_to_encode_telemetry_data_that_is_not_a_json_object(
    telemetry: Telemetry, key: Ed25519PrivateKey, data: Any
) -> None:
    error = encode_rejection(dataclasses.replace(telemetry, data=data), key)
    assert error.reason is RejectReason.BAD_FIELD
    assert error.detail.startswith("data:")


def test_it_refuses_to_encode_a_status_with_an_unknown_state(
    status: Status, key: Ed25519PrivateKey
) -> None:
    error = encode_rejection(dataclasses.replace(status, state=7), key)  # type: ignore[arg-type]
    assert error.reason is RejectReason.BAD_FIELD
    assert error.detail.startswith("state:")


def test_it_refuses_to_encode_something_that_is_not_a_message(key: Ed25519PrivateKey) -> None:
    assert encode_rejection({"device_id": "cam-0001"}, key).reason is RejectReason.BAD_FIELD


def test_fix_types_keep_their_wire_numbers() -> None:
    assert [int(f) for f in FixType] == [0, 1, 2, 3, 4, 5]
