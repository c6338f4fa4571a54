"""The ingest worker process: MQTT v5 shared subscription -> batches -> the door -> receipts -> ack.

The no-loss rule: a message is acknowledged only after the transaction holding its row
(or its rejection record) committed. paho's network thread only queues messages and hands
each to the prepare threads (`Door.prepare`: envelope, signature against a cached device
key, JPEG header; no image decode), so the next batch is prepared while the current one
commits; the worker thread takes up to `batch_size` of them in the order received
(waiting at most `batch_wait_ms` for a batch to fill), commits the batch in one
transaction, publishes a signed receipt to each device of the batch, and then acks every
message of the batch, in the order received. If the infrastructure fails (database,
image store), nothing of the batch is acknowledged and the worker exits non-zero; the
messages stay in the broker session of this client id and come again when a worker with
the same ROADMESH_INGEST_CLIENT_ID reconnects (clean_start=False, session expiry one
week). Storing is idempotent on (device, seq) and on the image SHA-256, so the second
copy of a message that had committed but not been acked is recognised as a duplicate,
and named again in a receipt.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import close_old_connections
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import protocol
from broker import INGEST_USER
from ingest import metrics
from ingest.door import Door, Outcome, Prepared
from ingest.receipts import signed_receipts
from webapp.config import SettingsError, env_int, env_path, env_str

logger = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
QUEUE_DEPTH_EVERY_S = 5.0
PLAIN_SUBSCRIPTION = "none"  # ROADMESH_INGEST_GROUP=none: one worker, plain persistent subscription


class IngestFatal(Exception):
    """The worker cannot go on (bad settings, login refused, database down)."""


@dataclass(frozen=True)
class IngestSettings:
    host: str
    port: int
    username: str
    password: str
    client_id: str
    group: str
    tls_ca: Path | None
    keepalive_s: int
    batch_size: int = 50
    batch_wait_ms: int = 20
    receive_maximum: int = 200
    metrics_port: int = 0  # 0: no metrics endpoint
    metrics_host: str = "127.0.0.1"
    drain_idle_s: float = 1.0
    prepare_threads: int = 2  # decode/verify threads (libjpeg and hashing release the GIL)

    @classmethod
    def from_env(cls) -> IngestSettings:
        password = env_str("MQTT_PASSWORD", "")
        password_file = env_path("MQTT_PASSWORD_FILE", Path(""))
        if not password and str(password_file) not in ("", "."):
            try:
                password = password_file.read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"ROADMESH_MQTT_PASSWORD_FILE={password_file}: {exc.strerror}"
                ) from None
        if not password:
            raise SettingsError(
                "set ROADMESH_MQTT_PASSWORD or ROADMESH_MQTT_PASSWORD_FILE for the ingest login"
            )
        tls_ca = env_str("MQTT_TLS_CA", "")
        batch_size = env_int("INGEST_BATCH_SIZE", 50, minimum=1, maximum=1000)
        return cls(
            host=env_str("MQTT_HOST", "127.0.0.1"),
            port=env_int("MQTT_PORT", 1883, minimum=1, maximum=65535),
            username=env_str("MQTT_USERNAME", INGEST_USER),
            password=password,
            client_id=_client_id(env_str("INGEST_CLIENT_ID", f"ingest_{socket.gethostname()}_0")),
            group=env_str("INGEST_GROUP", protocol.INGEST_SHARE_GROUP),
            tls_ca=Path(tls_ca) if tls_ca else None,
            keepalive_s=env_int("MQTT_KEEPALIVE", 30, minimum=5, maximum=3600),
            batch_size=batch_size,
            batch_wait_ms=env_int("INGEST_BATCH_WAIT_MS", 20, minimum=0, maximum=5000),
            receive_maximum=env_int(
                "INGEST_RECEIVE_MAXIMUM", max(200, 2 * batch_size), minimum=1, maximum=65535
            ),
            metrics_port=env_int("INGEST_METRICS_PORT", 0, minimum=0, maximum=65535),
            metrics_host=env_str("INGEST_METRICS_HOST", "127.0.0.1"),
            prepare_threads=env_int("INGEST_PREPARE_THREADS", 2, minimum=1, maximum=64),
        )


def _client_id(value: str) -> str:
    """A worker's client id must never be one a device could log in with (a device's login
    is bound to its device id): it must not be a valid device id, e.g. `ingest_host_0`."""
    if protocol.is_valid_device_id(value):
        raise SettingsError(
            f"ROADMESH_INGEST_CLIENT_ID={value!r} could be a device id; use a name with"
            " an underscore, e.g. ingest_host_0"
        )
    if not value or len(value) > 128:
        raise SettingsError(f"ROADMESH_INGEST_CLIENT_ID={value!r} must be 1..128 characters")
    return value


class IngestWorker:
    CHANNELS = protocol.topics.DEVICE_TO_SERVER

    def __init__(self, settings: IngestSettings, door: Door, server_key: Ed25519PrivateKey) -> None:
        self.settings = settings
        self.door = door
        self.server_key = server_key
        self.counts: dict[str, int] = {"stored": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
        self.fatal: BaseException | None = None
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.last_commit = time.monotonic()
        # each received message with its `prepare` running on the pool, in the order received
        self.inbox: queue.Queue[tuple[mqtt.MQTTMessage, Future[Prepared]]] = queue.Queue()
        self.pool = ThreadPoolExecutor(settings.prepare_threads, thread_name_prefix="prepare")
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self.client.username_pw_set(settings.username, settings.password)
        if settings.tls_ca is not None:
            self.client.tls_set(ca_certs=str(settings.tls_ca))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    def topic_filters(self) -> list[str]:
        """`$share/<group>/devices/+/<channel>`, or plain `devices/+/<channel>` when the group is `none`.

        Mosquitto 2.0 restores plain subscriptions of a persistent session after a restart
        but not shared ones: see docs/ingest.md, "Broker restarts".
        """
        if self.settings.group == PLAIN_SUBSCRIPTION:
            return [f"{protocol.topics.TOPIC_ROOT}/+/{ch}" for ch in self.CHANNELS]
        return [protocol.shared_subscription(ch, self.settings.group) for ch in self.CHANNELS]

    # -- paho callbacks (network thread): parse and queue only ----------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._fail(IngestFatal(f"broker refused the ingest login: {reason}"))
            return
        self.connected.set()
        logger.info(
            "connected to %s:%d as %s (session present: %s)",
            self.settings.host,
            self.settings.port,
            self.settings.client_id,
            flags.session_present,
        )
        if not self.stopping.is_set():
            client.subscribe([(topic, 1) for topic in self.topic_filters()])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            self._fail(IngestFatal(f"subscription refused: {failed}"))
            return
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        if reason.is_failure and not self.stopping.is_set():
            logger.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put((msg, self.pool.submit(self.door.prepare, msg.topic, bytes(msg.payload))))

    def _fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stopping.set()

    # -- the worker thread -------------------------------------------------------------
    def next_batch(self, timeout_s: float) -> list[tuple[mqtt.MQTTMessage, Future[Prepared]]]:
        try:
            batch = [self.inbox.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while len(batch) < self.settings.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self.inbox.get(timeout=remaining) if remaining > 0 else self.inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def process(self, batch: list[tuple[mqtt.MQTTMessage, Future[Prepared]]]) -> list[Outcome]:
        """Commit the batch, publish its receipts, then ack each message in order."""
        started = time.perf_counter()
        prepared = [future.result() for _, future in batch]
        close_old_connections()
        outcomes = self.door.commit(prepared)
        for topic, payload in signed_receipts(outcomes, self.server_key):
            self.client.publish(topic, payload, qos=1)
            metrics.RECEIPTS.inc()
        for (msg, _), outcome in zip(batch, outcomes, strict=True):
            metrics.record(outcome)
            self.counts[outcome.status] += 1
            self.client.ack(msg.mid, msg.qos)
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self.last_commit = time.monotonic()
        return outcomes

    def _update_queue_depth(self) -> None:
        from webapp.fleet.lifecycle import IMAGE_CHECK
        from webapp.jobs import queue as jobs

        metrics.IMAGE_CHECK_QUEUE_DEPTH.set(jobs.depth(IMAGE_CHECK))

    def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.settings.receive_maximum
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        next_depth = 0.0
        idle_since: float | None = None
        try:
            while self.fatal is None:
                batch = self.next_batch(0.2)
                metrics.INBOX_DEPTH.set(self.inbox.qsize())
                if batch:
                    idle_since = None
                    try:
                        self.process(batch)
                    except (
                        Exception
                    ) as exc:  # infrastructure failure: nothing of the batch is acked
                        logger.exception(
                            "could not commit a batch of %d; stopping without ack", len(batch)
                        )
                        self._fail(IngestFatal(f"processing failed: {exc}"))
                        break
                elif self.stopping.is_set():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= self.settings.drain_idle_s:
                        break
                if time.monotonic() >= next_depth:
                    next_depth = time.monotonic() + QUEUE_DEPTH_EVERY_S
                    try:
                        self._update_queue_depth()
                    except Exception:  # a metric must never stop ingest
                        logger.exception("could not read the image-check queue depth")
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.pool.shutdown(cancel_futures=True)
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        """Graceful: leave the share group, finish what was delivered, then disconnect.

        Unsubscribing first means the broker stops assigning this session new messages;
        messages already delivered are committed and acked before the disconnect.
        """
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.client.unsubscribe(self.topic_filters())

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        backlog = self.inbox.qsize()
        stalled = backlog > 0 and time.monotonic() - self.last_commit > 60
        ok = (
            self.fatal is None
            and self.connected.is_set()
            and self.subscribed.is_set()
            and not stalled
        )
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "client_id": self.settings.client_id,
            "connected": self.connected.is_set(),
            "subscribed": self.subscribed.is_set(),
            "inbox": backlog,
            "seconds_since_commit": round(time.monotonic() - self.last_commit, 1),
            "counts": dict(self.counts),
        }


def run_worker() -> int:
    """Entry point used by `roadmesh ingest run` (Django must be set up by the caller)."""
    from django.conf import settings as django_settings

    from ingest.health import serve_metrics
    from ingest.policy import IntakePolicy
    from webapp import serverkey
    from webapp.images import store_for

    settings = IngestSettings.from_env()
    server = django_settings.SERVER
    door = Door(store_for(server), IntakePolicy.from_env())
    worker = IngestWorker(settings, door, serverkey.server_key(server.server_key_file))

    def _stop(signum: int, frame: Any) -> None:
        logger.info("signal %d: draining and stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if settings.metrics_port:
        serve_metrics(settings.metrics_host, settings.metrics_port, worker.healthy)
    print(
        f"ingest {settings.client_id}: consuming {worker.topic_filters()[0]}"
        f" on {settings.host}:{settings.port} (pid {os.getpid()}, batch {settings.batch_size}"
        f"{f', metrics :{settings.metrics_port}' if settings.metrics_port else ''})",
        flush=True,
    )
    worker.run()
    print(f"ingest {settings.client_id}: stopped; {worker.counts}", flush=True)
    return 0
