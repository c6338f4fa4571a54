"""The dynamic-security control API of a running broker, over MQTT (admin login).

Commands are JSON published to `$CONTROL/dynamic-security/v1`; the plugin answers on
`.../response` with one response per command, in order, and saves its state file itself.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.config import BrokerError
from broker.roles import ADMIN_USER, CONTROL_RESPONSE_TOPIC, CONTROL_TOPIC


class DynsecControl:
    """One admin connection; `run(commands)` returns the plugin's responses."""

    def __init__(
        self, host: str, port: int, password: str, *, tls_ca: str = "", timeout_s: float = 10.0
    ) -> None:
        self.timeout_s = timeout_s
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._arrived = threading.Condition()
        self._ready = threading.Event()
        self._failure = ""
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{ADMIN_USER}-{os.getpid()}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(ADMIN_USER, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the broker at {host}:{port}: {exc}") from None
        self.client.loop_start()
        if not self._ready.wait(timeout_s) or self._failure:
            self.close()
            raise BrokerError(
                f"the broker's control API at {host}:{port} is not usable:"
                f" {self._failure or 'no answer'}"
            )

    def _on_connect(self, client: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
        if reason.is_failure:
            self._failure = f"admin login refused ({reason})"
            self._ready.set()
            return
        client.subscribe(CONTROL_RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, client: mqtt.Client, u: Any, mid: int, reasons: Any, p: Any) -> None:
        if any(r.is_failure for r in reasons):
            self._failure = f"subscription to {CONTROL_RESPONSE_TOPIC} refused"
        self._ready.set()

    def _on_message(self, client: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
            correlation = str(responses[0].get("correlationData", ""))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return
        with self._arrived:
            self._responses[correlation] = responses
            self._arrived.notify_all()

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send `commands` in one message; BrokerError if the plugin refused any of them.

        Each command carries the same `correlationData`, which the plugin echoes in its
        responses, so answers to another admin's commands are never mistaken for ours."""
        correlation = secrets.token_hex(8)
        tagged = [{**c, "correlationData": correlation} for c in commands]
        self.client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
        with self._arrived:
            if not self._arrived.wait_for(
                lambda: correlation in self._responses, timeout=self.timeout_s
            ):
                raise BrokerError("the broker's control API did not answer")
            responses = self._responses.pop(correlation)
        errors = [
            f"{r.get('command')}: {r['error']}" for r in responses if r.get("error") is not None
        ]
        if errors:
            raise BrokerError("the broker refused: " + "; ".join(errors))
        return responses

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> DynsecControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
