"""Shared values for the protocol tests: the worked-example key and one message of each kind."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    DeviceState,
    Frame,
    Status,
    Telemetry,
    encode,
)
from protocol.vectors import example_frame, example_key

SENT_AT_US = 1_700_000_000_000_000


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return example_key()


@pytest.fixture
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([0x02] * 32))


@pytest.fixture
def frame() -> Frame:
    return example_frame()


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry(
        device_id="cam-0001",
        seq=7,
        sent_at_us=SENT_AT_US,
        data={"cpu_temp_c": 61.5, "outbox": 12, "disk": {"free_mb": 1024}, "ok": True},
    )


@pytest.fixture
def status() -> Status:
    return Status(device_id="cam-0001", sent_at_us=SENT_AT_US, state=DeviceState.ONLINE)


@pytest.fixture
def frame_wire(frame: Frame, key: Ed25519PrivateKey) -> bytes:
    return encode(frame, key)
