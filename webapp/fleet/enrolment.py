"""A device enrols itself through the API (`roadmesh edge provision`), under rules:

- the owner is a driver (role or group) and below their device limit;
- the device proves it holds the private key: it signs a one-time server challenge,
  bound to the owner and the key (`registration_message`), which it fetched first;
- the key is a real Ed25519 point of large order (no all-zero or small-order key), and
  no other device has it.

Plain functions over the models, each change in one transaction; the view only parses
and answers. `ProvisioningError.status` is the HTTP status the view gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import transaction
from django.utils import timezone

from broker import BrokerLogins
from webapp.accounts.models import User
from webapp.api.models import RegistrationChallenge
from webapp.fleet.models import Device
from webapp.fleet.provisioning import ProvisioningError, new_device_id, register_device

MESSAGE_PREFIX = b"roadmesh device registration v1\n"


def registration_message(nonce: str, username: str, public_key: bytes) -> bytes:
    """The bytes a device signs: prefix, nonce, owner, key (hex), one per line. edge/provision.py
    builds the same bytes (a test compares them)."""
    return MESSAGE_PREFIX + f"{nonce}\n{username}\n{public_key.hex()}\n".encode()


# -- Ed25519 points of small order (RFC 8032 arithmetic, for the check only) --------------
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decode_point(raw: bytes) -> tuple[int, int, int, int] | None:
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (_P + 3) // 8, _P)
        if (x * x - x2) % _P != 0:
            x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P != 0:
            return None
        if (x & 1) != sign:
            x = _P - x
    return (x, y, 1, x * y % _P)


def _add(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def is_weak_key(raw: bytes) -> bool:
    """True for what is not a usable Ed25519 public key: not 32 bytes, not a curve point,
    or a point of small order (8·A is the identity), the all-zero key among them."""
    if len(raw) != 32:
        return True
    point = _decode_point(raw)
    if point is None:
        return True
    for _ in range(3):
        point = _add(point, point)
    x, y, z, _t = point
    return x % _P == 0 and (y - z) % _P == 0


# -- enrolment ---------------------------------------------------------------------------
def may_register_devices(user: User) -> bool:
    return user.is_active and (
        user.role == User.Role.DRIVER or user.groups.filter(name="drivers").exists()
    )


def issue_challenge(owner: User, seconds: int) -> RegistrationChallenge:
    if not may_register_devices(owner):
        raise ProvisioningError("only drivers register devices", status=403)
    return RegistrationChallenge.issue(owner, seconds)


@dataclass(frozen=True)
class Enrolment:
    public_key: bytes
    nonce: str
    signature: bytes
    device_id: str | None = None


def enrol_device(
    owner: User, enrolment: Enrolment, limit: int, logins: BrokerLogins | None
) -> tuple[Device, str]:
    """Register the device if every rule holds; the device and its MQTT password."""
    if not may_register_devices(owner):
        raise ProvisioningError("only drivers register devices", status=403)
    if is_weak_key(enrolment.public_key):
        raise ProvisioningError("the public key is not a usable Ed25519 key", status=400)
    message = registration_message(enrolment.nonce, owner.get_username(), enrolment.public_key)
    try:
        Ed25519PublicKey.from_public_bytes(enrolment.public_key).verify(
            enrolment.signature, message
        )
    except (InvalidSignature, ValueError):
        raise ProvisioningError(
            "the signature does not prove the key: sign the challenge with it", status=400
        ) from None
    with transaction.atomic():
        # lock the owner so two registrations at once cannot both pass the limit
        User.objects.select_for_update().filter(pk=owner.pk).first()
        challenge = (
            RegistrationChallenge.objects.select_for_update()
            .filter(owner=owner, nonce=enrolment.nonce)
            .first()
        )
        if challenge is None or challenge.used_at is not None:
            raise ProvisioningError("unknown or already used challenge", status=400)
        if challenge.expires_at <= timezone.now():
            raise ProvisioningError("the challenge expired: ask for a new one", status=400)
        challenge.used_at = timezone.now()
        challenge.save(update_fields=["used_at"])
        active = Device.objects.filter(owner=owner, status=Device.Status.ACTIVE).count()
        if active >= limit:
            raise ProvisioningError(
                f"{owner.get_username()} already has {active} devices (the limit is {limit})",
                status=403,
            )
        return register_device(
            owner, enrolment.device_id or new_device_id(), enrolment.public_key, logins
        )
