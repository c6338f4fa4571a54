"""Encoding then decoding gives back the same message, for every kind."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    DOMAIN_TAG,
    MAX_FRAME_BYTES,
    DeviceState,
    FixType,
    Frame,
    MessageKind,
    Position,
    Status,
    Telemetry,
    canonical_bytes,
    decode,
    encode,
    verify,
)


def test_a_frame_survives_a_round_trip(frame: Frame, key: Ed25519PrivateKey) -> None:
    signed = decode(encode(frame, key))
    assert signed.message == frame
    assert signed.kind is MessageKind.FRAME
    verify(signed, key.public_key())


def test_a_telemetry_message_survives_a_round_trip(
    telemetry: Telemetry, key: Ed25519PrivateKey
) -> None:
    signed = decode(encode(telemetry, key))
    assert signed.message == telemetry
    verify(signed, key.public_key())


def test_a_status_message_survives_a_round_trip(status: Status, key: Ed25519PrivateKey) -> None:
    for state in DeviceState:
        message = dataclasses.replace(status, state=state)
        signed = decode(encode(message, key))
        assert signed.message == message
        assert isinstance(signed.message, Status)
        assert signed.message.state is state


def test_unknown_optional_position_values_round_trip_as_none(
    frame: Frame, key: Ed25519PrivateKey
) -> None:
    position = Position(lat=-33.8688, lon=151.2093, fix=FixType.NONE)
    message = dataclasses.replace(frame, position=position)
    decoded = decode(encode(message, key)).message
    assert isinstance(decoded, Frame)
    assert decoded.position == position
    assert decoded.position.alt_m is None
    assert decoded.position.heading_deg is None
    assert decoded.position.speed_mps is None
    assert decoded.position.hdop is None


def test_extreme_coordinates_round_trip(frame: Frame, key: Ed25519PrivateKey) -> None:
    for lat, lon in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)]:
        message = dataclasses.replace(frame, position=Position(lat=lat, lon=lon, heading_deg=360))
        decoded = decode(encode(message, key)).message
        assert isinstance(decoded, Frame)
        assert (decoded.position.lat, decoded.position.lon) == (lat, lon)


def test_off_grid_values_are_rounded_to_the_wire_unit(frame: Frame, key: Ed25519PrivateKey) -> None:
    position = Position(lat=60.169900004, lon=24.93839996, alt_m=1.0004, speed_mps=1.234)
    decoded = decode(encode(dataclasses.replace(frame, position=position), key)).message
    assert isinstance(decoded, Frame)
    assert decoded.position == Position(lat=60.1699, lon=24.9384, alt_m=1.0, speed_mps=1.23)


def test_the_signed_bytes_are_the_domain_tag_and_the_envelope_before_the_signature(
    frame: Frame, key: Ed25519PrivateKey
) -> None:
    wire = encode(frame, key)
    signed = decode(wire)
    assert signed.signed_bytes == DOMAIN_TAG + wire[:-64]
    assert signed.signed_bytes == canonical_bytes(frame)
    assert signed.signature == wire[-64:]
    assert signed.wire_bytes == wire


def test_a_decoded_frame_knows_its_image_hash_and_capture_time(frame_wire: bytes) -> None:
    decoded = decode(frame_wire).message
    assert isinstance(decoded, Frame)
    assert decoded.image_sha256 == hashlib.sha256(b"\xff\xd8\xff\xd9").digest()
    assert decoded.captured_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_re_encoding_a_decoded_message_gives_the_same_bytes(
    frame: Frame, status: Status, telemetry: Telemetry, key: Ed25519PrivateKey
) -> None:
    for message in (frame, status, telemetry):
        wire = encode(message, key)
        assert encode(decode(wire).message, key) == wire


def test_telemetry_data_is_sent_as_compact_sorted_json(key: Ed25519PrivateKey) -> None:
    message = Telemetry(device_id="cam-0001", seq=0, sent_at_us=0, data={"b": 1, "a": "ä"})
    assert encode(message, key).endswith(b'{"a":"\xc3\xa4","b":1}' + encode(message, key)[-64:])


def test_a_two_megabyte_frame_decodes_in_a_few_milliseconds(
    frame: Frame, key: Ed25519PrivateKey
) -> None:
    jpeg = b"\xff\xd8" + bytes(range(256)) * ((MAX_FRAME_BYTES - 400) // 256)
    wire = encode(dataclasses.replace(frame, jpeg=jpeg), key)
    assert len(wire) > MAX_FRAME_BYTES - 1024
    start = time.perf_counter()
    for _ in range(5):
        decoded = decode(wire).message
    elapsed = (time.perf_counter() - start) / 5
    assert isinstance(decoded, Frame)
    assert decoded.jpeg == jpeg
    assert elapsed < 0.05, f"decode took {elapsed * 1000:.1f} ms"
