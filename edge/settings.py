"""The device's settings: one TOML file, overridden by ROADMESH_EDGE_* environment variables.

Every field below is also an environment variable: `sample_distance_m` is
`ROADMESH_EDGE_SAMPLE_DISTANCE_M`. Values are parsed by the field's type and a bad value
raises `SettingsError` naming the variable (or the file key). Privacy zones are polygons
and live in the file only. docs/edge.md lists every setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "ROADMESH_EDGE_"


class SettingsError(ValueError):
    """A setting holds a value we cannot use."""


@dataclass(frozen=True)
class EdgeSettings:
    # sources
    camera: str = "0"  # V4L2 index ("0") or device path ("/dev/video2")
    camera_width: int = 1920
    camera_height: int = 1080
    camera_fps: float = 30.0
    gnss: str = "serial:/dev/ttyACM0"  # serial:PORT[@BAUD] | gpsd[:HOST[:PORT]] | log:PATH | sim
    gnss_baud: int = 9600
    clock_offset_s: float = 0.0  # added to the camera's clock to get GNSS time
    # sampling
    sample_distance_m: float = 8.0
    min_speed_mps: float = 0.15
    max_speed_mps: float = 40.0
    min_satellites: int = 4
    max_hdop: float = 4.0
    trim_m: float = 100.0
    trip_gap_s: float = 300.0  # parked (or no fix) this long ends a trip
    privacy_zones: tuple[tuple[tuple[float, float], ...], ...] = ()  # (lon, lat) rings
    # quality gate
    min_sharpness: float = 15.0
    min_exposure: float = 0.08
    max_exposure: float = 0.95
    max_obstruction: float = 0.6
    # privacy and encoding
    face_max_side: int = 1280
    jpeg_quality: int = 88
    # outbox and uplink
    outbox_max_bytes: int = 2_000_000_000
    bandwidth_bytes_per_s: int = 0  # 0: no cap
    telemetry_interval_s: float = 30.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    tls_cert: str = ""  # client certificate (PEM), optional
    tls_key: str = ""
    threads: int = 1

    @classmethod
    def load(cls, path: Path | None = None, environ: dict[str, str] | None = None) -> EdgeSettings:
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if path is not None and path.exists():
            try:
                raw = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise SettingsError(f"{path}: {exc}") from None
            for key, value in raw.items():
                if key not in fields:
                    raise SettingsError(f"{path}: unknown setting {key!r}")
                values[key] = _coerce(fields[key], value, f"{path}: {key}")
        for name, f in fields.items():
            env = ENV_PREFIX + name.upper()
            if env in environ and name != "privacy_zones":
                values[name] = _coerce(f, environ[env], env)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> EdgeSettings:
        fields = {f.name: f for f in dataclasses.fields(self)}
        return dataclasses.replace(
            self, **{k: _coerce(fields[k], v, f"config {k}") for k, v in changes.items()}
        )


def _coerce(f: dataclasses.Field[Any], value: Any, where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if out != out:
                raise ValueError
            return out
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
        if f.name == "privacy_zones":
            return tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in value)
    except (TypeError, ValueError, IndexError):
        raise SettingsError(f"{where}={value!r} is not a valid {kind}") from None
    raise SettingsError(f"{where}: unsupported setting type {kind}")
