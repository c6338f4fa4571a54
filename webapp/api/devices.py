"""Device enrolment (`roadmesh edge provision`) and the owner's devices.

POST /api/v1/devices/challenge, then POST /api/v1/devices with the key's signature over
the challenge (webapp.fleet.enrolment); both with the owner's username and password as
HTTP Basic (over TLS in production), which django-axes locks after repeated failures and
the login throttle slows. The answer carries the device id, its MQTT login (shown once,
stored hashed) and the server's public key, which signs the receipts.
"""

from __future__ import annotations

import base64
import binascii
import logging

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest
from ninja import Router, Schema, Status

from broker import BrokerError
from webapp import serverkey
from webapp.accounts.models import User
from webapp.api.access import signed_in
from webapp.api.errors import ApiError
from webapp.fleet.enrolment import Enrolment, enrol_device, issue_challenge
from webapp.fleet.models import Device
from webapp.fleet.provisioning import ProvisioningError, broker_logins

logger = logging.getLogger(__name__)
router = Router(tags=["devices"])


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """(username, password) from `Authorization: Basic`, None when absent; 400 when the
    header is not base64 of UTF-8 `user:password`."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        text = base64.b64decode(header[6:].encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        raise ApiError(
            400, "the Authorization header is not base64 of UTF-8 user:password"
        ) from None
    user, sep, password = text.partition(":")
    if not sep:
        raise ApiError(400, "the Authorization header is not base64 of UTF-8 user:password")
    return user, password


def owner_of(request: HttpRequest) -> User:
    creds = basic_credentials(request)
    if creds is None:
        raise ApiError(
            401,
            "HTTP Basic credentials of the owner's account are required",
            headers={"WWW-Authenticate": 'Basic realm="roadmesh"'},
        )
    owner = authenticate(request, username=creds[0], password=creds[1])
    if owner is None:
        if getattr(request, "axes_locked_out", False):
            raise ApiError(
                429,
                "too many failed passwords: this account is locked for a while",
                headers={"Retry-After": str(settings.WEB.login_lockout_minutes * 60)},
            )
        raise ApiError(401, "unknown user or wrong password")
    return owner  # type: ignore[return-value]


class ChallengeOut(Schema):
    challenge: str
    expires_at: str
    sign: str


class RegisterIn(Schema):
    public_key: str
    challenge: str
    signature: str
    device_id: str | None = None


class MqttOut(Schema):
    host: str
    port: int
    username: str
    password: str


class RegisteredOut(Schema):
    device_id: str
    mqtt: MqttOut
    server_public_key: str


@router.post("/devices/challenge", response={201: ChallengeOut}, summary="A one-time challenge")
def challenge(request: HttpRequest) -> Status[dict[str, str]]:
    """A nonce for the device to sign with the key it registers (drivers only)."""
    owner = owner_of(request)
    try:
        issued = issue_challenge(owner, settings.WEB.challenge_seconds)
    except ProvisioningError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return Status(
        201,
        {
            "challenge": issued.nonce,
            "expires_at": issued.expires_at.isoformat(),
            "sign": "roadmesh device registration v1\\n{challenge}\\n{username}\\n{public_key_hex}\\n",
        },
    )


def _hex(value: str, size: int, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ApiError(400, f"{name} is not hex") from None
    if len(raw) != size:
        raise ApiError(400, f"{name} must be {size} bytes ({2 * size} hex digits)")
    return raw


@router.post("/devices", response={201: RegisteredOut}, summary="Register this device's key")
def register(request: HttpRequest, body: RegisterIn) -> Status[dict[str, object]]:
    owner = owner_of(request)
    enrolment = Enrolment(
        public_key=_hex(body.public_key, 32, "public_key"),
        nonce=body.challenge,
        signature=_hex(body.signature, 64, "signature"),
        device_id=body.device_id or None,
    )
    server = settings.SERVER
    try:
        device, password = enrol_device(
            owner, enrolment, settings.WEB.devices_per_owner, broker_logins(server)
        )
    except ProvisioningError as exc:
        raise ApiError(exc.status, str(exc)) from None
    except BrokerError as exc:
        logger.error("the broker refused the login of a new device: %s", exc)
        raise ApiError(503, f"the broker is unavailable: {exc}") from None
    logger.info("registered device %s for %s", device.device_id, owner.get_username())
    return Status(
        201,
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
    )


def device_json(device: Device) -> dict[str, object]:
    return {
        "device_id": device.device_id,
        "status": device.status,
        "online": device.online,
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
        "public_key": device.public_key_hex,
        "trust_score": device.trust_score,
        "frames": device.frames.count(),
    }


@router.get("/me/devices", summary="The signed-in owner's devices")
def my_devices(request: HttpRequest) -> dict[str, object]:
    user = signed_in(request)
    return {
        "devices": [device_json(d) for d in Device.objects.filter(owner=user).order_by("device_id")]
    }


@router.get("/me/devices/{device_id}", summary="One of the signed-in owner's devices")
def my_device(request: HttpRequest, device_id: str) -> dict[str, object]:
    user = signed_in(request)
    device = Device.objects.filter(owner=user, device_id=device_id).first()
    if device is None:
        raise ApiError(404, f"you have no device {device_id!r}")
    return device_json(device)
