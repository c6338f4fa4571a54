"""Device health as a protocol.Telemetry message, and the one-line live status."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from edge.outbox import Outbox
from edge.pipeline import Counters


class CpuMeter:
    """Share of one core this process used since the last call (from os.times)."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        t = os.times()
        self._cpu = t.user + t.system

    def percent(self) -> float:
        now, t = time.monotonic(), os.times()
        cpu = t.user + t.system
        pct = 100.0 * (cpu - self._cpu) / max(1e-6, now - self._wall)
        self._wall, self._cpu = now, cpu
        return round(pct, 1)


def snapshot(
    counters: Counters, outbox: Outbox, errors: dict[str, int], cpu: CpuMeter, disk_path: Path
) -> dict[str, Any]:
    depth, nbytes = outbox.depth()
    fix = counters.last_fix
    try:
        disk = shutil.disk_usage(disk_path)
        disk_free, disk_total = disk.free, disk.total
    except OSError:
        disk_free = disk_total = 0
    return {
        "outbox": {"depth": depth, "bytes": nbytes, "evicted": dict(outbox.evicted)},
        "frames": {
            "captured": counters.captured,
            "kept": counters.kept,
            "enqueued": counters.enqueued,
            "dropped": dict(counters.dropped),
            "faces_blurred": counters.faces,
            "plates_blurred": counters.plates,
        },
        "gnss": None
        if fix is None
        else {
            "lat": round(fix.lat, 7),
            "lon": round(fix.lon, 7),
            "satellites": fix.satellites,
            "hdop": fix.hdop,
            "dim": fix.dim,
            "speed_mps": fix.speed_mps,
            "time": fix.time.isoformat(),
        },
        "errors": {k: v for k, v in errors.items() if v},
        "cpu_percent": cpu.percent(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "disk_free_bytes": disk_free,
        "disk_total_bytes": disk_total,
    }


def telemetry_message(
    device_id: str, seq: int, data: dict[str, Any], key: Ed25519PrivateKey
) -> bytes:
    return protocol.encode(protocol.Telemetry(device_id, seq, time.time_ns() // 1000, data), key)


def status_line(counters: Counters, outbox: Outbox, connected: bool) -> str:
    fix = counters.last_fix
    if fix is None:
        gnss = "no fix"
    else:
        gnss = f"fix {fix.satellites} sats hdop {fix.hdop if fix.hdop is not None else '-'}"
    speed = f"{(fix.speed_mps or 0.0) * 3.6:5.1f} km/h" if fix else "   -  km/h"
    depth, nbytes = outbox.depth()
    dropped = sum(counters.dropped.values())
    return (
        f"{gnss} | {speed} | captured {counters.captured} kept {counters.kept} dropped {dropped} | "
        f"outbox {depth} ({nbytes / 1e6:.1f} MB) | {'online' if connected else 'offline'}"
    )
