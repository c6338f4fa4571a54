"""Provisioning from the device: make a key (0600), register it with the server, keep the login.

POST {server}/api/v1/devices with the owner's enrolment credential as HTTP Basic
(`--token USER:PASSWORD`) and the public key; the answer carries the device id, the MQTT
login and the server's public key (it signs the receipts), written to device.json (0600).
No Django here: plain urllib.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import protocol
from edge.identity import KEY_FILE, DeviceIdentity, IdentityError, MqttLogin, create_key, load_key


class ProvisionError(Exception):
    pass


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
    body = json.dumps({"public_key": protocol.public_key_hex(key), "device_id": device_id}).encode()
    req = urllib.request.Request(
        server.rstrip("/") + "/api/v1/devices",
        data=body,
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
        raise ProvisionError(f"cannot reach {server}: {exc}") from None
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
