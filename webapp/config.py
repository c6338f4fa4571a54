"""Typed settings from ROADMESH_* environment variables (server side).

Every variable has one parser that rejects bad values with a message naming it.
`ServerSettings` is the one settings object every server process shares (where data,
images, the server key and the embedded broker live); a service adds its own on top
(`ingest.service.IngestSettings`). The README lists every variable.
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


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{ENV_PREFIX}{name}={value!r} is not one of: {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str = "images"
    endpoint_url: str = ""
    region: str = ""


@dataclass(frozen=True)
class ServerSettings:
    """What every server process agrees on (ROADMESH_DATA_DIR, _IMAGE_*, _SERVER_KEY_FILE ...)."""

    data_dir: Path
    image_dir: Path
    image_store: str = "local"  # local | s3
    s3: S3Settings | None = None
    server_key_file: Path = Path()
    # The embedded broker's run directory (`roadmesh broker init`): provisioning adds device
    # logins there. None: the operator runs their own broker and manages logins themselves.
    broker_dir: Path | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_public_host: str = ""  # the broker host name devices are told (default: mqtt_host)

    @classmethod
    def from_env(cls) -> ServerSettings:
        data_dir = env_path("DATA_DIR", Path.cwd() / ".run" / "data")
        store = env_choice("IMAGE_STORE", "local", ("local", "s3"))
        s3 = None
        if store == "s3":
            bucket = env_str("S3_BUCKET", "")
            if not bucket:
                raise SettingsError("ROADMESH_IMAGE_STORE=s3 needs ROADMESH_S3_BUCKET")
            s3 = S3Settings(
                bucket=bucket,
                prefix=env_str("S3_PREFIX", "images"),
                endpoint_url=env_str("S3_ENDPOINT_URL", ""),
                region=env_str("S3_REGION", ""),
            )
        broker_dir = env_str("BROKER_DIR", "")
        host = env_str("MQTT_HOST", "127.0.0.1")
        return cls(
            data_dir=data_dir,
            image_dir=env_path("IMAGE_DIR", data_dir / "images"),
            image_store=store,
            s3=s3,
            server_key_file=env_path("SERVER_KEY_FILE", data_dir / "server.key"),
            broker_dir=Path(broker_dir).expanduser() if broker_dir else None,
            mqtt_host=host,
            mqtt_port=env_int("MQTT_PORT", 1883, minimum=1, maximum=65535),
            mqtt_public_host=env_str("MQTT_PUBLIC_HOST", "") or host,
        )
