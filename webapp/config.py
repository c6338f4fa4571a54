"""Typed settings from ROADMESH_* environment variables (server side).

Every variable has one parser that rejects bad values with a message naming it.
The README lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "ROADMESH_"


class SettingsError(ValueError):
    """A ROADMESH_* variable holds a value we cannot use."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name}={raw!r} is not an integer") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SettingsError(f"{ENV_PREFIX}{name}={value} is outside [{minimum}, {maximum}]")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{ENV_PREFIX}{name}={raw!r} is not a boolean (use 1/0, true/false)")


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(ENV_PREFIX + name)
    return Path(raw).expanduser() if raw else default


@dataclass(frozen=True)
class ServerPaths:
    data_dir: Path
    image_dir: Path

    @classmethod
    def from_env(cls) -> ServerPaths:
        data_dir = env_path("DATA_DIR", Path.cwd() / ".run" / "data")
        return cls(data_dir=data_dir, image_dir=env_path("IMAGE_DIR", data_dir / "images"))
