"""Bad input only ever becomes a rejection with a reason: random, mutated, tampered, truncated, oversized."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import protocol
from ingest.door import Door
from ingest.jpeg import JpegError, parse_header
from ingest.reasons import IntakeReason
from tests.ingest.streams import encode_jpeg, frame_jpeg, make_frame, world_strip
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.fleet.provisioning import register_device
from webapp.images import LocalObjectStore

pytestmark = pytest.mark.django_db

TOPIC = "devices/dev-bad/frames"
JPEG = frame_jpeg(world_strip(11), 0.0)
KNOWN_REASONS = {str(r) for r in protocol.RejectReason} | {str(r) for r in IntakeReason}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return protocol.generate_private_key()


@pytest.fixture
def device(key: Ed25519PrivateKey) -> Device:
    owner = User.objects.create_user("bad-owner", role=User.Role.DRIVER)
    device, _ = register_device(owner, "dev-bad", protocol.public_key_bytes(key))
    return device


@pytest.fixture
def intake(tmp_path: Path) -> Door:
    return Door(LocalObjectStore(tmp_path / "images"))


def now_frame(seq: int = 1, jpeg: bytes = JPEG, t_us: int | None = None) -> protocol.Frame:
    t = t_us if t_us is not None else int(time.time() * 1e6) - 5_000_000
    return make_frame("dev-bad", seq, t, 60.17, 24.94, jpeg)


def assert_rejected(outcome: object, reason: str | None = None) -> None:
    assert outcome.status == "rejected", outcome  # type: ignore[attr-defined]
    assert outcome.reason in KNOWN_REASONS  # type: ignore[attr-defined]
    if reason is not None:
        assert outcome.reason == reason  # type: ignore[attr-defined]


@settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.binary(max_size=4096),
    topic=st.sampled_from([TOPIC, "devices/dev-bad/telemetry", "x/y", ""]),
)
def test_random_bytes_on_any_topic_are_only_ever_rejected_with_a_reason(
    intake: Door, device: Device, payload: bytes, topic: str
) -> None:
    assert_rejected(intake.handle(topic, payload))


@settings(
    max_examples=200, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_signed_envelopes_are_rejected_or_stored_never_crash(
    intake: Door, device: Device, key: Ed25519PrivateKey, data: st.DataObject
) -> None:
    original = protocol.encode(now_frame(seq=data.draw(st.integers(1, 10**6))), key)
    payload = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(payload) - 1)))
        if op == "flip" and payload:
            payload[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del payload[i : i + data.draw(st.integers(1, 64))]
        else:
            payload[i:i] = data.draw(st.binary(min_size=1, max_size=32))
    assume(bytes(payload) != original)  # two flips of the same byte can undo each other
    outcome = intake.handle(TOPIC, bytes(payload))
    # A mutation can only ever land in the signature-covered bytes, so nothing new is stored.
    assert outcome.status in {"rejected", "duplicate"}, outcome
    if outcome.status == "rejected":
        assert outcome.reason in KNOWN_REASONS


def test_a_truncated_payload_is_rejected_as_truncated(
    intake: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    payload = protocol.encode(now_frame(), key)
    assert_rejected(intake.handle(TOPIC, payload[: len(payload) // 2]), "truncated")


def test_an_oversized_payload_is_rejected_before_any_decoding(intake: Door, device: Device) -> None:
    assert_rejected(
        intake.handle(TOPIC, b"RM\x01\x01" + b"\x00" * (protocol.MAX_FRAME_BYTES + 10)), "oversized"
    )


def test_a_frame_with_a_tampered_image_is_rejected(
    intake: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    payload = bytearray(protocol.encode(now_frame(), key))
    at = bytes(payload).index(JPEG) + len(JPEG) // 2
    payload[at] ^= 0x55
    assert_rejected(intake.handle(TOPIC, bytes(payload)))
    assert Frame.objects.count() == 0


def test_a_frame_signed_with_the_wrong_key_is_rejected(intake: Door, device: Device) -> None:
    assert_rejected(
        intake.handle(TOPIC, protocol.encode(now_frame(), protocol.generate_private_key())),
        "bad_signature",
    )


@pytest.mark.parametrize(
    "topic",
    [
        "devices/dev-bad/config",
        "devices/dev-bad/frames/x",
        "devices/DEV/frames",
        "other/dev-bad/frames",
    ],
)
def test_a_frame_on_a_wrong_topic_is_rejected(
    intake: Door, device: Device, key: Ed25519PrivateKey, topic: str
) -> None:
    assert_rejected(intake.handle(topic, protocol.encode(now_frame(), key)))


def test_a_signed_frame_whose_jpeg_is_not_a_jpeg_is_rejected_as_bad_jpeg(
    intake: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    assert_rejected(
        intake.handle(
            TOPIC, protocol.encode(now_frame(jpeg=b"\xff\xd8\xff\xfe\x00\x04hi" + b"\xff\xd9"), key)
        ),
        "bad_jpeg",
    )


def test_a_decompression_bomb_is_refused_from_its_header(
    intake: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    bomb = bytearray(encode_jpeg(world_strip(3)[:, :64]))
    sof = bytes(bomb).index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(
        2, "big"
    )  # 3.6 gigapixels
    assert_rejected(
        intake.handle(TOPIC, protocol.encode(now_frame(jpeg=bytes(bomb)), key)), "image_too_large"
    )
    assert RejectedMessage.objects.get().reason == "image_too_large"


def test_a_frame_captured_in_the_future_is_rejected(
    intake: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    future = int((time.time() + 3600) * 1e6)
    assert_rejected(
        intake.handle(TOPIC, protocol.encode(now_frame(t_us=future), key)), "timestamp_future"
    )


def test_a_frame_captured_years_ago_is_rejected(
    intake: Door, device: Device, key: Ed25519PrivateKey
) -> None:
    old = int((time.time() - 3 * 365 * 86400) * 1e6)
    assert_rejected(
        intake.handle(TOPIC, protocol.encode(now_frame(t_us=old), key)), "timestamp_stale"
    )


def test_the_jpeg_header_parser_reads_dimensions_without_decoding() -> None:
    info = parse_header(JPEG)
    assert (info.width, info.height, info.components) == (480, 270, 3)


@settings(max_examples=300, deadline=500)
@given(st.binary(max_size=2048))
def test_the_jpeg_header_parser_only_raises_jpeg_errors(data: bytes) -> None:
    try:
        parse_header(b"\xff\xd8" + data + b"\xff\xd9")
    except JpegError as exc:
        assert exc.reason in (IntakeReason.BAD_JPEG, IntakeReason.IMAGE_TOO_LARGE)
