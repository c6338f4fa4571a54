"""Broker passwords: Mosquitto's PBKDF2-SHA512 hash, kept as `$7$iterations$salt$digest`.

The database keeps a device's broker password only as this hash (the password is shown
once, at provisioning). The dynamic-security plugin stores the same PBKDF2-SHA512 digest,
salt and iteration count as separate JSON fields, so a hash moves between the two forms
without the password.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

MOSQUITTO_ITERATIONS = 101  # what mosquitto_passwd and the dynamic-security plugin use


@dataclass(frozen=True, slots=True)
class PasswordHash:
    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, stored: str) -> PasswordHash:
        try:
            empty, kind, iterations, salt_b64, digest_b64 = stored.split("$")
            if empty or kind != "7":
                raise ValueError("not a $7$ hash")
            return cls(int(iterations), base64.b64decode(salt_b64), base64.b64decode(digest_b64))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a Mosquitto $7$ password hash: {exc}") from None

    def text(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        return f"$7${self.iterations}${salt}${base64.b64encode(self.digest).decode()}"

    def dynsec_fields(self) -> dict[str, object]:
        """The `password`, `salt` and `iterations` of a dynamic-security client."""
        return {
            "password": base64.b64encode(self.digest).decode(),
            "salt": base64.b64encode(self.salt).decode(),
            "iterations": self.iterations,
        }


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    """Mosquitto 2.x password hash: $7$iterations$salt_b64$sha512_pbkdf2_b64."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return PasswordHash(iterations, salt, digest).text()


def check_password(password: str, stored: str) -> bool:
    try:
        parsed = PasswordHash.parse(stored)
    except ValueError:
        return False
    expected = hash_password(password, salt=parsed.salt, iterations=parsed.iterations)
    return secrets.compare_digest(expected, stored)


def new_password() -> str:
    return secrets.token_urlsafe(24)
