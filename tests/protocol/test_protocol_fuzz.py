"""Property tests: whatever bytes arrive, the decoder answers a message or a ProtocolError."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    DOMAIN_TAG,
    DeviceState,
    FixType,
    Frame,
    Position,
    PrivacyCounts,
    ProtocolError,
    Quality,
    SignedMessage,
    Status,
    Telemetry,
    canonical_bytes,
    decode,
    encode,
)
from protocol.vectors import example_frame, example_key

KEY = example_key()
FRAME_WIRE = encode(example_frame(), KEY)
STATUS_WIRE = encode(Status("cam-0001", 1, DeviceState.OFFLINE), KEY)
TELEMETRY_WIRE = encode(Telemetry("cam-0001", 1, 1, {"a": [1, {"b": "c"}], "n": 1.5}), KEY)

FUZZ = settings(
    max_examples=300,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def decode_or_reject(payload: bytes) -> SignedMessage | None:
    """Decode; only ProtocolError may escape (any other exception fails the test)."""
    try:
        return decode(payload)
    except ProtocolError as error:
        assert error.detail
        return None


def mutate(wire: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(wire)
    for op, where, value in edits:
        at = where % (len(data) + 1)
        if op == "set" and data:
            data[min(at, len(data) - 1)] = value
        elif op == "xor" and data:
            data[min(at, len(data) - 1)] ^= value or 1
        elif op == "insert":
            data[at:at] = bytes([value])
        elif op == "delete" and data:
            del data[min(at, len(data) - 1)]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["set", "xor", "insert", "delete", "truncate"]),
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_raise_protocol_error(payload: bytes) -> None:
    decode_or_reject(payload)


@FUZZ
@given(st.sampled_from([1, 2, 3]), st.binary(max_size=400))
def test_random_bodies_behind_a_valid_prefix_only_ever_raise_protocol_error(
    kind: int, body: bytes
) -> None:
    decode_or_reject(b"RM\x01" + bytes([kind]) + body)


@FUZZ
@given(st.sampled_from([FRAME_WIRE, STATUS_WIRE, TELEMETRY_WIRE]), EDITS)
def test_mutated_envelopes_only_ever_raise_protocol_error(wire: bytes, edits: Any) -> None:
    mutated = mutate(wire, edits)
    signed = decode_or_reject(mutated)
    if signed is not None and not isinstance(signed.message, Telemetry):
        # Whatever the decoder accepts has exactly one encoding: re-encoding gives it back.
        assert canonical_bytes(signed.message) == DOMAIN_TAG + mutated[:-64]


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
positions = st.builds(
    Position,
    lat=st.integers(-900_000_000, 900_000_000).map(lambda v: v / 10_000_000),
    lon=st.integers(-1_800_000_000, 1_800_000_000).map(lambda v: v / 10_000_000),
    alt_m=st.none() | st.integers(-(2**31) + 1, 2**31 - 1).map(lambda v: v / 1000),
    heading_deg=st.none() | st.integers(0, 36000).map(lambda v: v / 100),
    speed_mps=st.none() | st.integers(0, 65534).map(lambda v: v / 100),
    fix=st.sampled_from(FixType),
    satellites=st.integers(0, 255),
    hdop=st.none() | st.integers(0, 65534).map(lambda v: v / 100),
)
device_ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{2,63}\Z")
short_text = st.text(max_size=16)
frames = st.builds(
    Frame,
    device_id=device_ids,
    seq=st.integers(0, 2**64 - 1),
    captured_at_us=st.integers(0, 253_402_300_799_999_999),
    position=positions,
    camera_id=st.text(min_size=1, max_size=16).filter(
        lambda s: len(s.encode("utf-8", "replace")) <= 64
    ),
    intrinsics_ref=short_text,
    quality=st.builds(Quality, finite, finite, finite),
    privacy=st.builds(PrivacyCounts, st.integers(0, 65535), st.integers(0, 65535)),
    jpeg=st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | finite | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
telemetries = st.builds(
    Telemetry,
    device_id=device_ids,
    seq=st.integers(0, 2**64 - 1),
    sent_at_us=st.integers(0, 253_402_300_799_999_999),
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=6),
)
statuses = st.builds(
    Status,
    device_id=device_ids,
    sent_at_us=st.integers(0, 253_402_300_799_999_999),
    state=st.sampled_from(DeviceState),
)


def encodable(message: Any) -> bool:
    try:
        canonical_bytes(message)
    except ProtocolError:
        return False
    return True


@FUZZ
@given((frames | telemetries | statuses).filter(encodable))
def test_any_valid_message_survives_a_round_trip(message: Any) -> None:
    key: Ed25519PrivateKey = KEY
    signed = decode(encode(message, key))
    assert signed.message == message
