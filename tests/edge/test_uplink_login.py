"""A refused login is retried for a while (a broker holding devices off refuses them too);
only a refusal that lasts is an error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

import protocol
from broker import free_port
from edge.identity import DeviceIdentity, MqttLogin
from edge.outbox import Outbox
from edge.uplink import MqttUplink, UplinkError

REFUSED = ReasonCode(PacketTypes.CONNACK, "Not authorized")
ACCEPTED = ReasonCode(PacketTypes.CONNACK, "Success")

SERVER_KEY = protocol.public_key_hex(protocol.generate_private_key())


def _uplink(tmp_path: Path, fatal_s: float) -> MqttUplink:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(lambda s: ("devices/dev-login/frames", os.urandom(100)))
    identity = DeviceIdentity(
        "dev-login",
        MqttLogin("127.0.0.1", free_port(), "dev-login", "x"),
        server_public_key=SERVER_KEY,
    )
    return MqttUplink(
        identity, protocol.generate_private_key(), outbox, login_refused_fatal_s=fatal_s
    )


class _Flags:
    session_present = False


def test_a_short_refusal_is_retried_and_forgotten_once_the_login_is_accepted(
    tmp_path: Path,
) -> None:
    uplink = _uplink(tmp_path, fatal_s=60.0)
    uplink._on_connect(uplink.client, None, _Flags(), REFUSED, None)
    assert uplink.drain(0.3) is False  # still queued, no error: the broker may be holding devices
    assert uplink.errors["login_refused"] == 1 and uplink.refused_since is not None
    uplink._on_connect(uplink.client, None, _Flags(), ACCEPTED, None)
    assert uplink.refused_login is None and uplink.refused_since is None


def test_a_login_refused_for_longer_than_the_grace_stops_the_drain_with_the_reason(
    tmp_path: Path,
) -> None:
    uplink = _uplink(tmp_path, fatal_s=0.2)
    uplink._on_connect(uplink.client, None, _Flags(), REFUSED, None)
    time.sleep(0.3)
    with pytest.raises(UplinkError, match=r"refused the login .*Not authorized"):
        uplink.drain(10.0)
