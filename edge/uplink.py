"""The uplink: drains the outbox to the broker over MQTT v5, QoS 1, one login per device.

The `Uplink` protocol is the seam; `MqttUplink` is the real one. Only a signed receipt
from the server (`devices/{id}/receipts`, verified with the server key from device.json)
removes a frame from the outbox; the broker's PUBACK only says the broker took it, and
any PUBACK reason code other than success (no matching subscribers, not authorized,
quota exceeded ...) means "keep it and send it again later". Frames the broker took and
no receipt named in time are sent again (`Outbox.mark_sent`); the server stores a resent
frame once and names it in its receipt again.

The session is persistent (clean start off, session expiry one week, client id = device
id), so receipts published while the device is offline wait in the broker. Also: TLS with
a CA file and an optional client certificate; the retained config topic
`devices/{id}/config` (JSON) handed to a callback as it arrives; telemetry published at
QoS 1 when connected (never queued: it is a snapshot); a signed `online` status on connect
and `offline` on a clean stop, the `offline` one also registered as the will (QoS 1,
retained); reconnects with jittered exponential backoff; a token bucket caps the bytes per
second of frames handed to the broker.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import protocol
from edge.identity import DeviceIdentity, IdentityError
from edge.outbox import Outbox, OutboxError

logger = logging.getLogger(__name__)


LOGIN_REFUSED_FATAL_S = 330.0  # a broker restarting or being provisioned refuses briefly
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps receipts for an offline device this long
REFUSED_RETRY_S = 5.0  # a frame the broker did not take is sent again after at least this


class UplinkError(Exception):
    """The uplink cannot work (login refused, bad TLS settings)."""


class Uplink(Protocol):
    def start(self) -> None: ...
    def drain(self, timeout_s: float) -> bool: ...
    def stop(self) -> None: ...


def _now_us() -> int:
    return time.time_ns() // 1000


class TokenBucket:
    """`rate` bytes per second on average, bursts up to `burst` bytes; rate 0 = no cap."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate * 2, float(protocol.MAX_FRAME_BYTES))
        self.tokens = self.burst
        self.clock = clock
        self._t = clock()

    def take(self, n: int) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._t) * self.rate)
        self._t = now
        if self.tokens >= min(n, self.burst):
            self.tokens -= n
            return True
        return False


def backoff_delay(attempt: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """Full-jitter-ish exponential backoff: between half and all of min * 2^attempt, capped."""
    ceiling = min(maximum, minimum * (2 ** min(attempt, 30)))
    return max(minimum * 0.5, ceiling * rng.uniform(0.5, 1.0))


class MqttUplink:
    def __init__(
        self,
        identity: DeviceIdentity,
        key: Ed25519PrivateKey,
        outbox: Outbox,
        max_in_flight: int = 32,
        *,
        tls_cert: str = "",
        tls_key: str = "",
        bandwidth_bytes_per_s: float = 0,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        on_config: Callable[[dict[str, Any]], None] | None = None,
        login_refused_fatal_s: float = LOGIN_REFUSED_FATAL_S,
    ) -> None:
        self.identity = identity
        self.login_refused_fatal_s = login_refused_fatal_s
        self.refused_since: float | None = None  # monotonic time of the first refusal in a row
        self.key = key
        self.outbox = outbox
        self.max_in_flight = max_in_flight
        self._in_flight: dict[int, int | None] = {}  # mid -> outbox seq (None: a status message)
        self._early_acks: dict[int, Any] = {}  # mid -> reason, for PUBACKs seen before registration
        self._sent: set[int] = set()  # seqs handed to paho and not PUBACKed yet
        # seq -> PUBACK reason the outbox could not record (disk full): not re-sent, retried
        self._unsaved: dict[int, Any] = {}
        try:
            self.server_key = identity.server_key_bytes
        except IdentityError as exc:
            raise UplinkError(str(exc)) from None
        self.stored = 0  # frames receipts named as stored
        self.rejected = 0  # frames receipts refused for good
        self.receipts = 0
        self.refused_by_broker = 0  # PUBACKs with an error code (retried)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.connected = threading.Event()
        self.refused_login: str | None = None
        self.acked = 0
        self.errors: Counter[str] = Counter()
        self.bucket = TokenBucket(bandwidth_bytes_per_s)
        self.on_config = on_config
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self._attempt = 0
        self._rng = random.Random()
        self.config_topic = protocol.topic_for(identity.device_id, protocol.Channel.CONFIG)
        self.receipts_topic = protocol.topic_for(identity.device_id, protocol.Channel.RECEIPTS)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=identity.device_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(identity.mqtt.username, identity.mqtt.password)
        if identity.mqtt.tls_ca or tls_cert:
            try:
                client.tls_set(
                    ca_certs=identity.mqtt.tls_ca or None,
                    certfile=tls_cert or None,
                    keyfile=tls_key or None,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise UplinkError(f"TLS settings are unusable: {exc}") from None
        status_topic = protocol.topic_for(identity.device_id, protocol.Channel.STATUS)
        offline = protocol.encode(
            protocol.Status(identity.device_id, _now_us(), protocol.DeviceState.OFFLINE), key
        )
        client.will_set(status_topic, offline, qos=1, retain=True)
        client.max_inflight_messages_set(max_in_flight)
        client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_min_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        self.client = client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self.refused_login = str(reason)
            if self.refused_since is None:
                self.refused_since = time.monotonic()
            self.errors["login_refused"] += 1
            logger.error(
                "broker refused login for %s: %s (check device.json; retrying with backoff)",
                self.identity.device_id,
                reason,
            )
            self._backoff()
            return
        self.refused_login = None
        self.refused_since = None
        self._attempt = 0
        client.reconnect_delay_set(self.reconnect_min_s, self.reconnect_min_s)  # type: ignore[arg-type]
        client.subscribe([(self.config_topic, 1), (self.receipts_topic, 1)])
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
        was = self.connected.is_set()
        self.connected.clear()
        if reason.is_failure:
            if was:
                self.errors["disconnects"] += 1
            logger.warning("disconnected (%s); will reconnect", reason)
            self._backoff()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.errors["connect_failed"] += 1
        # paho calls this inside its `except OSError:`, so the reason (refused, timeout,
        # TLS certificate verify failed ...) is the exception being handled.
        reason = sys.exc_info()[1]
        logger.warning(
            "cannot reach broker %s:%d: %s",
            self.identity.mqtt.host,
            self.identity.mqtt.port,
            reason or "connection failed",
        )
        self._backoff()

    def _backoff(self) -> None:
        delay = backoff_delay(self._attempt, self.reconnect_min_s, self.reconnect_max_s, self._rng)
        self._attempt += 1
        self.client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]
        logger.info("next connection attempt in %.1f s", delay)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.receipts_topic:
            self._on_receipt(bytes(msg.payload))
            return
        if msg.topic != self.config_topic:
            return
        try:
            config = json.loads(msg.payload or b"{}")
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.errors["bad_config"] += 1
            logger.error("ignoring config on %s: %s", msg.topic, exc)
            return
        if self.on_config is not None:
            try:
                self.on_config(config)
            except ValueError as exc:
                self.errors["bad_config"] += 1
                logger.error("ignoring config on %s: %s", msg.topic, exc)

    def _on_receipt(self, payload: bytes) -> None:
        try:
            receipt = protocol.decode_receipt(payload, self.server_key)
        except protocol.ProtocolError as exc:
            self.errors["bad_receipt"] += 1
            logger.error("ignoring a receipt that does not verify: %s", exc)
            return
        if receipt.device_id != self.identity.device_id:
            self.errors["bad_receipt"] += 1
            logger.error("ignoring a receipt for %s", receipt.device_id)
            return
        try:
            settled = self.outbox.apply_receipt(receipt, payload)
        except OutboxError as exc:  # the frames stay and are sent again: the server dedupes
            self.errors["outbox_write"] += 1
            logger.error("cannot record a receipt (disk full?): %s", exc)
            return
        self.receipts += 1
        self.stored += settled.stored
        self.rejected += settled.rejected
        for entry in receipt.rejected:
            logger.warning(
                "the server refused frame %s: %s %s", entry.seq, entry.reason, entry.detail
            )
        self._wake.set()

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

    def _settle(self, seq: int, reason: Any) -> bool:
        """Record a PUBACK in the outbox (under self._lock): success starts the wait for the
        receipt; any other reason code sends the frame again later. When the disk cannot take
        the change the message stays marked as in flight, so it is not published again, and
        the write is retried by pump(). False if it could not be recorded."""
        try:
            if reason.is_failure or int(getattr(reason, "value", 0)) != 0:
                self.refused_by_broker += 1
                self.errors["broker_refused"] += 1
                logger.warning(
                    "broker did not take frame %d (%s): it is kept and sent again", seq, reason
                )
                self.outbox.retry_later(
                    seq, str(reason), REFUSED_RETRY_S * (1 + self._rng.random())
                )
            else:
                self.outbox.mark_sent(seq)
                self.acked += 1
        except OutboxError as exc:
            if not self._unsaved:
                logger.error("cannot record the broker's PUBACK (disk full?): %s", exc)
            if seq not in self._unsaved:
                self.errors["outbox_write"] += 1
            self._unsaved[seq] = reason
            self._sent.add(seq)
            return False
        self._sent.discard(seq)
        self._unsaved.pop(seq, None)
        return True

    def _retry_unsaved(self) -> None:
        with self._lock:
            waiting = len(self._unsaved)
            for seq, reason in list(self._unsaved.items()):
                if not self._settle(seq, reason):
                    return
        logger.info("recorded %d delayed PUBACKs in the outbox", waiting)

    def start(self) -> None:
        m = self.identity.mqtt
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(m.host, m.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def pump(self) -> int:
        """Hand pending outbox messages to paho, up to the in-flight window. Returns how many."""
        if self._unsaved:
            self._retry_unsaved()
        if not self.connected.is_set():
            return 0
        with self._lock:
            room = self.max_in_flight - len(self._in_flight)
            if room <= 0:
                return 0
            # Read under the lock: a message PUBACKed meanwhile cannot look unsent.
            items = [
                i
                for i in self.outbox.pending(limit=room + len(self._sent))
                if i.seq not in self._sent
            ]
        handed = 0
        for item in items[:room]:
            if not self.bucket.take(len(item.payload)):
                break
            info = self.client.publish(item.topic, item.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._register(info.mid, item.seq)
            handed += 1
        return handed

    def publish_telemetry(self, payload: bytes) -> bool:
        """Send a telemetry snapshot now if connected (QoS 1); False when offline."""
        if not self.connected.is_set():
            return False
        topic = protocol.topic_for(self.identity.device_id, protocol.Channel.TELEMETRY)
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self._register(info.mid, None)
        return True

    def drain(self, timeout_s: float) -> bool:
        """Publish until receipts named every frame of the outbox; True if that happened
        before the timeout (frames the server refused for good do not count).

        Raises UplinkError once the broker has refused the login for `login_refused_fatal_s`
        in a row: wrong credentials. Shorter refusals are retried: a broker that holds
        devices off until a consumer is back (the embedded one does, for up to 300 s after
        a start) refuses them the same way."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            since = self.refused_since
            if since is not None and time.monotonic() - since >= self.login_refused_fatal_s:
                raise UplinkError(
                    f"broker refused the login for {time.monotonic() - since:.0f} s:"
                    f" {self.refused_login}"
                )
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
