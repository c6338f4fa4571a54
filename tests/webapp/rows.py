"""Database rows for the web tests, with plausible defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from webapp.fleet.models import Device, Frame


def frame_row(device: Device, seq: int, captured_at: datetime, **fields: Any) -> Frame:
    """A stored Frame of `device`; `fields` override the defaults (position, cells, state ...)."""
    values: dict[str, Any] = {
        "lat": 60.17,
        "lon": 24.94,
        "fix_type": 2,
        "satellites": 9,
        "hdop": 0.8,
        "camera_id": "cam0",
        "intrinsics_ref": "t",
        "h3_r12": 1,
        "h3_r9": 1,
        "h3_r7": 1,
        "image_sha256": f"{seq:064x}",
        "image_bytes": 100,
        "quality_sharpness": 1.0,
        "quality_exposure": 0.5,
        "quality_obstruction": 0.0,
        **fields,
    }
    return Frame.objects.create(device=device, seq=seq, captured_at=captured_at, **values)
