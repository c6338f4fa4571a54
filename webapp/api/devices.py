"""POST /api/v1/devices: a device registers its own public key (`roadmesh edge provision`).

The owner's enrolment credential is their account's username and password as HTTP Basic
(over TLS in production). The view parses, authenticates and calls
`webapp.fleet.provisioning.register_device`; the answer carries the device id and its MQTT
login (the password is shown once, stored hashed). With an embedded broker
(ROADMESH_BROKER_DIR, or the directory of ROADMESH_MQTT_PASSWORD_FILE when it holds a
broker config) the broker's password file is rewritten and the broker reloaded.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path

from django.contrib.auth import authenticate
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import protocol
from webapp.fleet.provisioning import ProvisioningError, new_device_id, register_device

logger = logging.getLogger(__name__)


def _basic_auth(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _broker_dir() -> Path | None:
    explicit = os.environ.get("ROADMESH_BROKER_DIR")
    if explicit:
        return Path(explicit)
    secret = os.environ.get("ROADMESH_MQTT_PASSWORD_FILE")
    if secret and (Path(secret).parent / "mosquitto.conf").exists():
        return Path(secret).parent
    return None


def _sync_broker() -> None:
    broker_dir = _broker_dir()
    if broker_dir is None:
        return
    from ingest.broker import BrokerConfig
    from ingest.broker_sync import sync_password_file

    port = int(os.environ.get("ROADMESH_MQTT_PORT", "1883"))
    sync_password_file(BrokerConfig(run_dir=broker_dir, port=port))


@csrf_exempt
@require_POST
def register(request: HttpRequest) -> JsonResponse:
    creds = _basic_auth(request)
    if creds is None:
        response = JsonResponse(
            {"error": "HTTP Basic credentials of the owner's account are required"}, status=401
        )
        response["WWW-Authenticate"] = 'Basic realm="roadmesh"'
        return response
    owner = authenticate(request, username=creds[0], password=creds[1])
    if owner is None:
        return JsonResponse({"error": "unknown user or wrong password"}, status=401)
    try:
        body = json.loads(request.body or b"{}")
        public_key = protocol.public_key_bytes(
            protocol.load_public_key_hex(str(body["public_key"]))
        )
        device_id = body.get("device_id") or new_device_id()
    except (ValueError, KeyError, TypeError, AttributeError, protocol.ProtocolError) as exc:
        return JsonResponse({"error": f"bad request: {exc}"}, status=400)
    try:
        device, password = register_device(owner, str(device_id), public_key)  # type: ignore[arg-type]
    except ProvisioningError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    _sync_broker()
    logger.info("registered device %s for %s", device.device_id, owner.get_username())
    return JsonResponse(
        {
            "device_id": device.device_id,
            "mqtt": {
                "host": os.environ.get(
                    "ROADMESH_MQTT_PUBLIC_HOST", os.environ.get("ROADMESH_MQTT_HOST", "127.0.0.1")
                ),
                "port": int(os.environ.get("ROADMESH_MQTT_PORT", "1883")),
                "username": device.device_id,
                "password": password,
            },
        },
        status=201,
    )
