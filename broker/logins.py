"""The one seam for device logins on the embedded broker: `BrokerLogins`.

Provisioning, revocation, the demo and the tests add and remove device logins through
it. `EmbeddedBrokerLogins` talks to the broker's control API while Mosquitto runs (the
plugin then saves its state itself) and edits the plugin's state file while it does not;
a lock in the run directory keeps the two apart and keeps two provisioning processes
from interleaving. At every start `roadmesh broker run` rewrites the whole state from the
registered devices (`write_state`), so the database stays the only source of truth: a
device revoked while the broker was down, or by a tool that could not reach it, cannot
log in once the broker is back.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker.config import BrokerConfig, BrokerError, chown_for_broker, prepare_dirs, write_private
from broker.control import DynsecControl
from broker.passwords import hash_password, new_password
from broker.process import running_pid
from broker.roles import (
    ADMIN_USER,
    INGEST_USER,
    create_device_commands,
    delete_device_commands,
    device_client,
    device_role,
    device_role_name,
    document,
)

SERVICE_USERS_FILE = "service-users.json"
SECRET_FILES = {INGEST_USER: "ingest.secret", ADMIN_USER: "admin.secret"}


class BrokerLogins(Protocol):
    """Add and remove device logins (the password is known only at provisioning)."""

    def add_device(self, device_id: str, password: str) -> None: ...

    def remove_device(self, device_id: str) -> None: ...


@dataclass(frozen=True)
class ServiceLogins:
    """The service logins' hashes (service-users.json) and their passwords (*.secret, 0600)."""

    run_dir: Path

    def hashes(self) -> dict[str, str]:
        path = self.run_dir / SERVICE_USERS_FILE
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise BrokerError(
                f"{path} not found: run `roadmesh broker init --run-dir {self.run_dir}` first"
            ) from None

    def secret_path(self, username: str) -> Path:
        return self.run_dir / SECRET_FILES[username]

    def password(self, username: str) -> str:
        try:
            return self.secret_path(username).read_text().strip()
        except FileNotFoundError:
            raise BrokerError(f"{self.secret_path(username)} not found") from None

    def create(self) -> None:
        """Fresh passwords for every service login."""
        hashes = {}
        for user in SECRET_FILES:
            password = new_password()
            write_private(self.secret_path(user), password + "\n")
            hashes[user] = hash_password(password)
        write_private(self.run_dir / SERVICE_USERS_FILE, json.dumps(hashes, indent=2) + "\n")


def init_broker(config: BrokerConfig, devices: Mapping[str, str]) -> ServiceLogins:
    """Write config, descriptor and fresh service logins; `devices`: device id -> $7$ hash."""
    prepare_dirs(config)
    if running_pid(config) is not None:
        raise BrokerError(f"a broker is running on {config.run_dir}: stop it before `init`")
    config.save_descriptor()
    write_private(config.conf_path, config.conf_text())
    chown_for_broker(config, [config.conf_path])
    services = ServiceLogins(config.run_dir)
    services.create()
    EmbeddedBrokerLogins(config).write_state(devices)
    return services


class EmbeddedBrokerLogins:
    """`BrokerLogins` for the broker of one run directory (see the module docstring)."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.services = ServiceLogins(config.run_dir)

    @contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.config.run_dir / ".logins.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def running(self) -> bool:
        return running_pid(self.config) is not None

    def control(self) -> DynsecControl:
        return DynsecControl(self.config.host, self.config.port, self.services.password(ADMIN_USER))

    # -- the seam ------------------------------------------------------------------------
    def add_device(self, device_id: str, password: str) -> None:
        with self.locked():
            if self.running():
                with self.control() as api:
                    api.run(create_device_commands(device_id, password))
                return
            state = self._read_state()
            self._drop(state, device_id)
            state["clients"].append(device_client(device_id, hash_password(password)))
            state["roles"].append(device_role(device_id))
            self._write(state)

    def remove_device(self, device_id: str) -> None:
        with self.locked():
            if self.running():
                with self.control() as api:
                    try:
                        api.run(delete_device_commands(device_id))
                    except BrokerError as exc:
                        if "not found" not in str(exc):
                            raise
                return
            state = self._read_state()
            self._drop(state, device_id)
            self._write(state)

    # -- the whole state, while the broker is stopped -------------------------------------
    def write_state(self, devices: Mapping[str, str]) -> None:
        """Replace the plugin's state: the service logins and exactly `devices` (id -> hash)."""
        with self.locked():
            if self.running():
                raise BrokerError(
                    "the broker is running: its logins change through the control API only"
                )
            self._write(document(devices, self.services.hashes()))

    def device_ids(self) -> list[str]:
        """Device logins the broker knows (from the control API while it runs)."""
        if self.running():
            with self.control() as api:
                answer = api.run([{"command": "listClients", "verbose": False, "count": -1}])
            names = answer[0].get("data", {}).get("clients", [])
        else:
            names = [c["username"] for c in self._read_state()["clients"]]
        return sorted(n for n in names if "_" not in n)

    def _read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.config.dynsec_path.read_text())
        except FileNotFoundError:
            raise BrokerError(
                f"{self.config.dynsec_path} not found: run `roadmesh broker init` first"
            ) from None
        return state

    @staticmethod
    def _drop(state: dict[str, Any], device_id: str) -> None:
        role = device_role_name(device_id)
        state["clients"] = [c for c in state["clients"] if c.get("username") != device_id]
        state["roles"] = [r for r in state["roles"] if r.get("rolename") != role]

    def _write(self, state: dict[str, Any]) -> None:
        write_private(self.config.dynsec_path, json.dumps(state, indent=1) + "\n")
        chown_for_broker(self.config, [self.config.dynsec_path])
