"""Provisioning from the device: make a key (0600), register it with the server, keep the login.

The owner's enrolment credential goes as HTTP Basic (`--token USER:PASSWORD`) on two calls:
POST {server}/api/v1/devices/challenge gives a one-time nonce, and POST {server}/api/v1/devices
sends the public key with its signature over `registration_message` (the nonce, the owner
and the key), which proves the device holds the key. The answer carries the device id,
the MQTT login and the server's public key (it signs the receipts), written to device.json
(0600). No Django here: plain urllib.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import protocol
from edge.identity import KEY_FILE, DeviceIdentity, IdentityError, MqttLogin, create_key, load_key

MESSAGE_PREFIX = b"roadmesh device registration v1\n"


class ProvisionError(Exception):
    pass


def registration_message(nonce: str, username: str, public_key: bytes) -> bytes:
    """The bytes the device signs (the server builds the same: webapp.fleet.enrolment)."""
    return MESSAGE_PREFIX + f"{nonce}\n{username}\n{public_key.hex()}\n".encode()


def _post(url: str, token: str, body: dict[str, object], timeout: float) -> dict[str, object]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(token.encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise ProvisionError(f"server refused registration ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ProvisionError(f"cannot reach {url}: {exc}") from None
    if not isinstance(answer, dict):
        raise ProvisionError(f"unexpected answer from the server: {answer!r:.200}")
    return answer


def provision(
    server: str,
    token: str,
    device_dir: Path,
    device_id: str | None = None,
    tls_ca: str = "",
    timeout: float = 30.0,
) -> DeviceIdentity:
    if ":" not in token:
        raise ProvisionError("--token must be USERNAME:PASSWORD of the owner's account")
    if (device_dir / KEY_FILE).exists():
        key = load_key(device_dir)  # a retry after a failed registration reuses the key
    else:
        key = create_key(device_dir)
    base = server.rstrip("/") + "/api/v1/devices"
    challenge = _post(base + "/challenge", token, {}, timeout)
    nonce = str(challenge.get("challenge", ""))
    public = protocol.public_key_bytes(key)
    username = token.partition(":")[0]
    signature = key.sign(registration_message(nonce, username, public))
    body: dict[str, object] = {
        "public_key": public.hex(),
        "challenge": nonce,
        "signature": signature.hex(),
    }
    if device_id:
        body["device_id"] = device_id
    answer: Any = _post(base, token, body, timeout)
    try:
        m = answer["mqtt"]
        identity = DeviceIdentity(
            device_id=answer["device_id"],
            mqtt=MqttLogin(
                host=m["host"],
                port=int(m["port"]),
                username=m["username"],
                password=m["password"],
                tls_ca=tls_ca,
            ),
            server_public_key=str(answer["server_public_key"]),
        )
        identity.server_key_bytes  # noqa: B018 - refuses an answer without a usable key
    except (KeyError, TypeError, ValueError, IdentityError) as exc:
        raise ProvisionError(f"unexpected answer from the server: {exc}") from None
    identity.save(device_dir)
    return identity
