"""The ingest worker process: MQTT v5 shared subscription -> FrameIntake -> manual ack.

A message is acknowledged only after `FrameIntake.handle` returned, i.e. after its row
committed (or it was recorded as rejected). On an infrastructure error the worker stops
without acknowledging; its persistent session (fixed client id, session expiry) makes the
broker deliver the unacknowledged message again when a worker with that id reconnects.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import protocol
from ingest.broker import INGEST_USER
from ingest.intake import FrameIntake
from webapp.config import SettingsError, env_int, env_path, env_str

logger = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600


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

    @classmethod
    def from_env(cls) -> IngestSettings:
        password = env_str("MQTT_PASSWORD", "")
        password_file = env_path("MQTT_PASSWORD_FILE", Path(""))
        if not password and str(password_file) not in ("", "."):
            password = password_file.read_text().strip()
        if not password:
            raise SettingsError(
                "set ROADMESH_MQTT_PASSWORD or ROADMESH_MQTT_PASSWORD_FILE for the ingest login"
            )
        tls_ca = env_str("MQTT_TLS_CA", "")
        return cls(
            host=env_str("MQTT_HOST", "127.0.0.1"),
            port=env_int("MQTT_PORT", 1883, minimum=1, maximum=65535),
            username=env_str("MQTT_USERNAME", INGEST_USER),
            password=password,
            client_id=env_str("INGEST_CLIENT_ID", f"ingest-{socket.gethostname()}-0"),
            group=env_str("INGEST_GROUP", protocol.INGEST_SHARE_GROUP),
            tls_ca=Path(tls_ca) if tls_ca else None,
            keepalive_s=env_int("MQTT_KEEPALIVE", 30, minimum=5, maximum=3600),
        )


class IngestWorker:
    CHANNELS = (protocol.Channel.FRAMES, protocol.Channel.STATUS, protocol.Channel.TELEMETRY)

    def __init__(self, settings: IngestSettings, intake: FrameIntake) -> None:
        self.settings = settings
        self.intake = intake
        self.counts: dict[str, int] = {"stored": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
        self.fatal: BaseException | None = None
        self.subscribed = threading.Event()
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

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self.fatal = IngestFatal(f"broker refused the ingest login: {reason}")
            client.disconnect()
            return
        logger.info(
            "connected to %s:%d as %s",
            self.settings.host,
            self.settings.port,
            self.settings.client_id,
        )
        client.subscribe(
            [(protocol.shared_subscription(ch, self.settings.group), 1) for ch in self.CHANNELS]
        )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            self.fatal = IngestFatal(f"subscription refused: {failed}")
            client.disconnect()
            return
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.fatal is not None:
            return
        try:
            outcome = self.intake.handle(msg.topic, bytes(msg.payload))
        except Exception as exc:  # infrastructure failure: do not ack, stop the worker
            logger.exception("could not process message on %s; stopping without ack", msg.topic)
            self.fatal = IngestFatal(f"processing failed: {exc}")
            client.disconnect()
            return
        self.counts[outcome.status] += 1
        client.ack(msg.mid, msg.qos)

    def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_forever(retry_first_connection=True)
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        self.client.disconnect()


def run_worker() -> int:
    """Entry point used by `roadmesh ingest run` (Django must be set up by the caller)."""
    from django.conf import settings as django_settings

    from ingest.store import LocalObjectStore

    settings = IngestSettings.from_env()
    worker = IngestWorker(settings, FrameIntake(LocalObjectStore(django_settings.PATHS.image_dir)))

    def _stop(signum: int, frame: Any) -> None:
        logger.info("signal %d: stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"ingest {settings.client_id}: consuming {protocol.shared_subscription(protocol.Channel.FRAMES, settings.group)}"
        f" on {settings.host}:{settings.port} (pid {os.getpid()})",
        flush=True,
    )
    worker.run()
    print(f"ingest {settings.client_id}: stopped; {worker.counts}", flush=True)
    return 0
