"""Keep the embedded broker's password file in step with the registered devices."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from ingest.broker import (
    INGEST_USER,
    BrokerConfig,
    hash_password,
    new_password,
    write_config,
    write_password_file,
    write_private,
)
from webapp.fleet.models import Device

SERVICE_USERS_FILE = "service-users.json"
INGEST_SECRET_FILE = "ingest.secret"


def service_users(config: BrokerConfig) -> dict[str, str]:
    path = config.run_dir / SERVICE_USERS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def init_broker(config: BrokerConfig) -> str:
    """Write the broker config with a fresh ingest login; returns the ingest password."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    password = new_password()
    users = {INGEST_USER: hash_password(password)}
    write_private(config.run_dir / SERVICE_USERS_FILE, json.dumps(users))
    secret = config.run_dir / INGEST_SECRET_FILE
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    write_config(config, device_users() | users)
    return password


def device_users() -> dict[str, str]:
    rows = Device.objects.filter(status=Device.Status.ACTIVE).exclude(mqtt_password_hash="")
    return {d.device_id: d.mqtt_password_hash for d in rows}


def sync_password_file(config: BrokerConfig, pid: int | None = None) -> int:
    """Rewrite the password file from the database; SIGHUP the broker if its pid is known."""
    users = device_users() | service_users(config)
    write_password_file(config, users)
    pid = pid if pid is not None else _read_pid(config.run_dir / "mosquitto.pid")
    if pid:
        os.kill(pid, signal.SIGHUP)
    return len(users)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
