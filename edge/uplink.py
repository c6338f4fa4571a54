"""The uplink: drains the outbox to the broker over MQTT v5, QoS 1, one login per device.

The `Uplink` protocol is the seam; `MqttUplink` is the real one. The broker's PUBACK is the
only thing that removes a message from the outbox.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from edge.identity import DeviceIdentity
from edge.outbox import Outbox

logger = logging.getLogger(__name__)


class UplinkError(Exception):
    """The uplink cannot work (login refused, bad TLS settings)."""


class Uplink(Protocol):
    def start(self) -> None: ...
    def drain(self, timeout_s: float) -> bool: ...
    def stop(self) -> None: ...


def _now_us() -> int:
    return time.time_ns() // 1000


class MqttUplink:
    def __init__(
        self,
        identity: DeviceIdentity,
        key: Ed25519PrivateKey,
        outbox: Outbox,
        max_in_flight: int = 32,
    ) -> None:
        self.identity = identity
        self.key = key
        self.outbox = outbox
        self.max_in_flight = max_in_flight
        self._in_flight: dict[int, int | None] = {}  # mid -> outbox seq (None: a status message)
        self._early_acks: dict[int, Any] = {}  # mid -> reason, for PUBACKs seen before registration
        self._sent: set[int] = set()  # seqs handed to paho in this process
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.connected = threading.Event()
        self.refused_login: str | None = None
        self.acked = 0
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=identity.device_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(identity.mqtt.username, identity.mqtt.password)
        if identity.mqtt.tls_ca:
            client.tls_set(ca_certs=identity.mqtt.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        status_topic = protocol.topic_for(identity.device_id, protocol.Channel.STATUS)
        offline = protocol.encode(
            protocol.Status(identity.device_id, _now_us(), protocol.DeviceState.OFFLINE), key
        )
        client.will_set(status_topic, offline, qos=1, retain=True)
        client.max_inflight_messages_set(max_in_flight)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self.refused_login = str(reason)
            logger.error("broker refused login for %s: %s", self.identity.device_id, reason)
            return
        self.refused_login = None
        online = protocol.encode(
            protocol.Status(self.identity.device_id, _now_us(), protocol.DeviceState.ONLINE),
            self.key,
        )
        info = client.publish(
            protocol.topic_for(self.identity.device_id, protocol.Channel.STATUS), online, 1, True
        )
        self._register(info.mid, None)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            logger.warning("disconnected (%s); will reconnect", reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        with self._lock:  # ack and the in-flight bookkeeping change together (see pump)
            if mid not in self._in_flight:
                self._early_acks[mid] = reason  # the PUBACK beat _register(); it settles it
                return
            seq = self._in_flight.pop(mid)
            if seq is not None:
                self._settle(seq, reason)
        self._wake.set()

    def _register(self, mid: int, seq: int | None) -> None:
        """Remember what `mid` carries; call right after publish(), under no lock."""
        with self._lock:
            early = self._early_acks.pop(mid, None)
            if seq is not None:
                self._sent.add(seq)
            if early is None:
                self._in_flight[mid] = seq
            elif seq is not None:
                self._settle(seq, early)

    def _settle(self, seq: int, reason: Any) -> None:
        self._sent.discard(seq)
        if reason.is_failure:
            logger.error("broker refused message %d: %s", seq, reason)
            self.outbox.refuse(seq, str(reason))
        else:
            self.outbox.ack(seq)
            self.acked += 1

    def start(self) -> None:
        m = self.identity.mqtt
        self.client.connect_async(m.host, m.port, keepalive=30)
        self.client.loop_start()

    def pump(self) -> int:
        """Hand pending outbox messages to paho, up to the in-flight window. Returns how many."""
        if not self.connected.is_set():
            return 0
        with self._lock:
            room = self.max_in_flight - len(self._in_flight)
            if room <= 0:
                return 0
            # Read under the lock: a message acked meanwhile cannot look unsent.
            items = [
                i
                for i in self.outbox.pending(limit=room + len(self._sent))
                if i.seq not in self._sent
            ]
        handed = 0
        for item in items[:room]:
            info = self.client.publish(item.topic, item.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._register(info.mid, item.seq)
            handed += 1
        return handed

    def drain(self, timeout_s: float) -> bool:
        """Publish until the outbox is empty; True if it emptied before the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.refused_login is not None:
                raise UplinkError(f"broker refused the login: {self.refused_login}")
            self._wake.clear()
            self.pump()
            n, _ = self.outbox.depth()
            if n == 0:
                return True
            self._wake.wait(0.2)
        return self.outbox.depth()[0] == 0

    def stop(self) -> None:
        """Say `offline` (retained) and disconnect; an unclean end leaves it to the last will."""
        if self.connected.is_set():
            offline = protocol.encode(
                protocol.Status(self.identity.device_id, _now_us(), protocol.DeviceState.OFFLINE),
                self.key,
            )
            info = self.client.publish(
                protocol.topic_for(self.identity.device_id, protocol.Channel.STATUS),
                offline,
                1,
                True,
            )
            self._register(info.mid, None)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
