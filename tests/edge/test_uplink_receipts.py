"""The uplink settles frames on receipts only; any broker answer but success means later."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

import protocol
from broker import free_port
from edge.identity import DeviceIdentity, MqttLogin
from edge.outbox import Outbox
from edge.uplink import MqttUplink

SERVER = protocol.generate_private_key()


class _Message:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


def uplink(tmp_path: Path, n: int = 3) -> MqttUplink:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for _ in range(n):
        outbox.put(lambda s: ("devices/dev-r/frames", os.urandom(100)))
    identity = DeviceIdentity(
        "dev-r",
        MqttLogin("127.0.0.1", free_port(), "dev-r", "x"),
        server_public_key=protocol.public_key_hex(SERVER),
    )
    return MqttUplink(identity, protocol.generate_private_key(), outbox)


def puback(up: MqttUplink, mid: int, seq: int, reason: str) -> None:
    up._register(mid, seq)
    up._on_publish(up.client, None, mid, ReasonCode(PacketTypes.PUBACK, reason), None)


def receipt(
    device: str, stored: tuple[int, ...], rejected: tuple[tuple[int, str], ...] = (), key=SERVER
) -> bytes:  # type: ignore[no-untyped-def]
    entries = tuple(
        protocol.RejectedEntry(s, hashlib.sha256(b"p").digest(), r, "why") for s, r in rejected
    )
    return protocol.encode_receipt(
        protocol.Receipt(device, time.time_ns() // 1000, 1, stored, entries), key
    )


def test_a_puback_other_than_success_keeps_the_frame_and_sends_it_again_later(
    tmp_path: Path,
) -> None:
    up = uplink(tmp_path)
    puback(up, 1, 1, "No matching subscribers")
    puback(up, 2, 2, "Not authorized")
    puback(up, 3, 3, "Success")
    assert up.refused_by_broker == 2 and up.acked == 1
    assert up.outbox.depth()[0] == 3  # nothing forgotten
    assert up.outbox.awaiting_receipt() == 1
    assert up.outbox.pending() == []  # each waits before it is sent again
    later = [i.seq for i in up.outbox.pending(now=time.time() + 11)]
    assert later == [1, 2]


def test_only_a_verified_receipt_for_this_device_settles_frames(tmp_path: Path) -> None:
    up = uplink(tmp_path)
    topic = "devices/dev-r/receipts"
    up._on_message(
        up.client,
        None,
        _Message(topic, receipt("dev-r", (1,), key=protocol.generate_private_key())),
    )  # type: ignore[arg-type]
    up._on_message(up.client, None, _Message(topic, receipt("dev-other", (2,))))  # type: ignore[arg-type]
    assert up.errors["bad_receipt"] == 2 and up.outbox.depth()[0] == 3
    up._on_message(
        up.client, None, _Message(topic, receipt("dev-r", (1, 2), ((3, "timestamp_stale"),)))
    )  # type: ignore[arg-type]
    assert (up.stored, up.rejected, up.receipts) == (2, 1, 1)
    assert up.outbox.depth()[0] == 0
    assert up.outbox.rejected() == [(3, "timestamp_stale: why")]
    assert len(up.outbox.receipts()) == 1
