"""Register and revoke devices, with their broker logins (server side).

The database is the source of truth. The broker learns of a new or revoked device
through the `broker.BrokerLogins` seam, inside the same transaction: if the broker
refuses, the registration is rolled back. Without an embedded broker (no
ROADMESH_BROKER_DIR) the operator's own broker is told by the operator.
"""

from __future__ import annotations

import secrets

from django.db import transaction

import protocol
from broker import BrokerConfig, BrokerLogins, EmbeddedBrokerLogins, hash_password, new_password
from webapp.accounts.models import User
from webapp.api.models import DeviceKey
from webapp.config import ServerSettings
from webapp.fleet.models import Device


class ProvisioningError(Exception):
    """A registration that breaks a rule; `status` is the HTTP answer the API gives."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def new_device_id() -> str:
    return f"dev-{secrets.token_hex(6)}"


def broker_logins(settings: ServerSettings) -> BrokerLogins | None:
    """The embedded broker's logins (ROADMESH_BROKER_DIR), or None for an external broker."""
    if settings.broker_dir is None:
        return None
    return EmbeddedBrokerLogins(BrokerConfig.load(settings.broker_dir))


def device_logins() -> dict[str, str]:
    """Active devices' broker logins: device id -> password hash."""
    rows = Device.objects.filter(status=Device.Status.ACTIVE).exclude(mqtt_password_hash="")
    return dict(rows.values_list("device_id", "mqtt_password_hash"))


def register_device(
    owner: User, device_id: str, public_key: bytes, logins: BrokerLogins | None = None
) -> tuple[Device, str]:
    """Create the Device row and its broker login; returns it and the MQTT password (shown
    once, stored hashed)."""
    if not protocol.is_valid_device_id(device_id):
        raise ProvisioningError(f"device id {device_id!r} must match {protocol.DEVICE_ID_PATTERN}")
    protocol.load_public_key(public_key)  # rejects anything but 32 raw bytes
    password = new_password()
    with transaction.atomic():
        if Device.objects.select_for_update().filter(device_id=device_id).exists():
            raise ProvisioningError(f"device {device_id!r} is already registered")
        key_hex = bytes(public_key).hex()
        if (
            DeviceKey.objects.select_for_update().filter(public_key_hex=key_hex).exists()
            or Device.objects.filter(public_key=bytes(public_key)).exists()
        ):
            raise ProvisioningError("this public key is already registered to a device")
        device = Device.objects.create(
            device_id=device_id,
            owner=owner,
            public_key=public_key,
            mqtt_password_hash=hash_password(password),
        )
        # unique: a second registration of the key at the same time fails here
        DeviceKey.objects.create(device=device, public_key_hex=key_hex)
        if logins is not None:
            logins.add_device(device_id, password)
    return device, password


def revoke_device(device_id: str, logins: BrokerLogins | None = None) -> Device:
    """Revoke: its frames are refused from now on, and its broker login removed (an online
    session of it is disconnected)."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(device_id=device_id).first()
        if device is None:
            raise ProvisioningError(f"no device {device_id!r}")
        device.status = Device.Status.REVOKED
        device.save(update_fields=["status"])
        if logins is not None:
            logins.remove_device(device_id)
    return device
