"""A device's identity on disk: its signing key, its broker login, the server's key.

`DIR/device.key` (Ed25519, PEM, mode 0600) and `DIR/device.json` (mode 0600), which also
holds the server's public key (hex) that signs the receipts (`GET /api/v1/server-key`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol

KEY_FILE = "device.key"
CONFIG_FILE = "device.json"


class IdentityError(Exception):
    """The device directory is missing or damaged."""


@dataclass(frozen=True)
class MqttLogin:
    host: str
    port: int
    username: str
    password: str
    tls_ca: str = ""


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    mqtt: MqttLogin
    camera_id: str = "cam0"
    intrinsics_ref: str = "dashcam-120-1280x720"
    server_public_key: str = ""  # 64 hex digits; receipts are verified with it

    @property
    def server_key_bytes(self) -> bytes:
        try:
            raw = bytes.fromhex(self.server_public_key)
        except ValueError:
            raw = b""
        if len(raw) != protocol.PUBLIC_KEY_BYTES:
            raise IdentityError(
                "device.json has no valid server_public_key: receipts cannot be verified;"
                " provision the device again, or add the key from GET /api/v1/server-key"
            )
        return raw

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CONFIG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.write("\n")

    @classmethod
    def load(cls, directory: Path) -> DeviceIdentity:
        path = directory / CONFIG_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(
                device_id=raw["device_id"],
                mqtt=MqttLogin(**raw["mqtt"]),
                camera_id=raw.get("camera_id", "cam0"),
                intrinsics_ref=raw.get("intrinsics_ref", "dashcam-120-1280x720"),
                server_public_key=str(raw.get("server_public_key", "")),
            )
        except FileNotFoundError:
            raise IdentityError(f"{path} not found: provision the device first") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IdentityError(f"{path} is damaged: {exc}") from None


def create_key(directory: Path) -> Ed25519PrivateKey:
    directory.mkdir(parents=True, exist_ok=True)
    key = protocol.generate_private_key()
    protocol.save_private_key(key, directory / KEY_FILE)
    return key


def load_key(directory: Path) -> Ed25519PrivateKey:
    return protocol.load_private_key(directory / KEY_FILE)
