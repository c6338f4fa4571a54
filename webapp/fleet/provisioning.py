"""Register devices and their broker logins (server side)."""

from __future__ import annotations

import secrets

from django.db import transaction

import protocol
from ingest.broker import hash_password, new_password
from webapp.accounts.models import User
from webapp.fleet.models import Device


class ProvisioningError(Exception):
    pass


def new_device_id() -> str:
    return f"dev-{secrets.token_hex(6)}"


def register_device(owner: User, device_id: str, public_key: bytes) -> tuple[Device, str]:
    """Create the Device row; returns it and a fresh MQTT password (shown once, stored hashed)."""
    if not protocol.is_valid_device_id(device_id):
        raise ProvisioningError(f"device id {device_id!r} must match {protocol.DEVICE_ID_PATTERN}")
    protocol.load_public_key(public_key)  # rejects anything but 32 raw bytes
    password = new_password()
    with transaction.atomic():
        if Device.objects.select_for_update().filter(device_id=device_id).exists():
            raise ProvisioningError(f"device {device_id!r} is already registered")
        device = Device.objects.create(
            device_id=device_id,
            owner=owner,
            public_key=public_key,
            mqtt_password_hash=hash_password(password),
        )
    return device, password


def revoke_device(device_id: str) -> Device:
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(device_id=device_id).first()
        if device is None:
            raise ProvisioningError(f"no device {device_id!r}")
        device.status = Device.Status.REVOKED
        device.save(update_fields=["status"])
    return device
