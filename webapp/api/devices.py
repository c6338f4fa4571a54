"""POST /api/v1/devices: a device registers its own public key (`roadmesh edge provision`).

The owner's enrolment credential is their account's username and password as HTTP Basic
(over TLS in production). The view parses, authenticates and calls
`webapp.fleet.provisioning.register_device`; the answer carries the device id, its MQTT
login (the password is shown once, stored hashed) and the server's public key, which
signs the receipts. With an embedded broker (ROADMESH_BROKER_DIR) the login is added to
the broker in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import protocol
from broker import BrokerError
from webapp import serverkey
from webapp.fleet.provisioning import (
    ProvisioningError,
    broker_logins,
    new_device_id,
    register_device,
)

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
    server = settings.SERVER
    try:
        device, password = register_device(
            owner,  # type: ignore[arg-type]
            str(device_id),
            public_key,
            broker_logins(server),
        )
    except ProvisioningError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except BrokerError as exc:
        logger.error("the broker refused the login of %s: %s", device_id, exc)
        return JsonResponse({"error": f"the broker is unavailable: {exc}"}, status=503)
    logger.info("registered device %s for %s", device.device_id, owner.get_username())
    return JsonResponse(
        {
            "device_id": device.device_id,
            "mqtt": {
                "host": server.mqtt_public_host,
                "port": server.mqtt_port,
                "username": device.device_id,
                "password": password,
            },
            "server_public_key": serverkey.public_key_hex(server.server_key_file),
        },
        status=201,
    )
