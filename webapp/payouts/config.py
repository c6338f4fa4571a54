"""Settings of the rewards commands, from ROADMESH_CHAIN_* and ROADMESH_REWARDS_* variables.

Plain Python (no Django): `roadmesh rewards verify` and `claim` read them with no database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.config import SettingsError, env_int, env_path, env_str

DEFAULT_RPC_URL = "http://127.0.0.1:8545"


@dataclass(frozen=True)
class RewardsSettings:
    rpc_url: str  # ROADMESH_CHAIN_RPC_URL
    private_key: (
        str  # ROADMESH_CHAIN_PRIVATE_KEY_FILE (a file holding the hex key), "" = node account
    )
    deployment_file: Path  # ROADMESH_CHAIN_DEPLOYMENT
    publish_dir: Path  # ROADMESH_REWARDS_DIR: the published inputs and claims files
    public_url: str  # ROADMESH_REWARDS_PUBLIC_URL: where those files are downloaded ("" = file://)
    epoch_days: int  # ROADMESH_REWARDS_EPOCH_DAYS
    params_file: Path | None  # ROADMESH_REWARDS_PARAMS: a JSON object of EpochParams overrides

    @classmethod
    def from_env(cls, data_dir: Path) -> RewardsSettings:
        key_file = env_str("CHAIN_PRIVATE_KEY_FILE", "")
        key = ""
        if key_file:
            try:
                key = Path(key_file).expanduser().read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"ROADMESH_CHAIN_PRIVATE_KEY_FILE={key_file!r}: {exc}"
                ) from None
        params = env_str("REWARDS_PARAMS", "")
        return cls(
            rpc_url=env_str("CHAIN_RPC_URL", DEFAULT_RPC_URL),
            private_key=key,
            deployment_file=env_path("CHAIN_DEPLOYMENT", data_dir / "chain" / "deployment.json"),
            publish_dir=env_path("REWARDS_DIR", data_dir / "rewards"),
            public_url=env_str("REWARDS_PUBLIC_URL", "").rstrip("/"),
            epoch_days=env_int("REWARDS_EPOCH_DAYS", 7, minimum=1, maximum=366),
            params_file=Path(params).expanduser() if params else None,
        )

    def param_overrides(self) -> dict[str, Any]:
        if self.params_file is None:
            return {}
        try:
            data = json.loads(self.params_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SettingsError(f"ROADMESH_REWARDS_PARAMS={self.params_file}: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsError(f"ROADMESH_REWARDS_PARAMS={self.params_file}: not a JSON object")
        for key in ("epoch", "starts_at", "ends_at"):
            if key in data:
                raise SettingsError(f"ROADMESH_REWARDS_PARAMS: {key} is set by close-epoch")
        return data

    def file_uri(self, path: Path) -> str:
        if self.public_url:
            return f"{self.public_url}/{path.name}"
        return path.resolve().as_uri()


def data_dir_from_env() -> Path:
    """ROADMESH_DATA_DIR as the server uses it, without starting Django."""
    return env_path("DATA_DIR", Path.cwd() / ".run" / "data")
