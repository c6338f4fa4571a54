"""Write sample_data/drives/sample: 12 drawn 1280x720 road frames and a 1 Hz NMEA log.

A placeholder recorded drive for the skeleton's end-to-end path (the simulator renders
realistic drives). The path follows Kaisaniemenkatu, Helsinki (road r34 of
sample_data/world/roads.geojson, © OpenStreetMap contributors) at 10 m/s.
Run: .venv/bin/python scripts/make_sample_drive.py
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from sim.gnss import gga, rmc

OUT = Path(__file__).resolve().parent.parent / "sample_data" / "drives" / "sample"
START = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)
ROADS = OUT.parent.parent / "world" / "roads.geojson"
ROAD_ID = "r34"
SPEED = 10.0  # m/s
N_FRAMES = 12


def along_road(distance_m: float) -> tuple[float, float, float]:
    """(lat, lon, course_deg) at `distance_m` along the road's polyline."""
    road = next(f for f in json.loads(ROADS.read_text())["features"] if f["id"] == ROAD_ID)
    coords = road["geometry"]["coordinates"]
    left = distance_m
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(coords):
        kx = 111_320.0 * math.cos(math.radians(lat1))
        dx, dy = (lon2 - lon1) * kx, (lat2 - lat1) * 110_574.0
        seg = math.hypot(dx, dy)
        if left <= seg:
            w = left / seg
            return (
                lat1 + w * (lat2 - lat1),
                lon1 + w * (lon2 - lon1),
                math.degrees(math.atan2(dx, dy)) % 360,
            )
        left -= seg
    raise ValueError("the drive is longer than the road")


def sentences(t: datetime, lat: float, lon: float, course: float) -> list[str]:
    """GGA + RMC of one fix, written by the simulator's NMEA writer."""
    return [gga(t, lat, lon, True, 9, 0.9, 18.0), rmc(t, lat, lon, True, SPEED, course)]


def draw(i: int, rng: np.random.Generator) -> np.ndarray:
    h, w = 720, 1280
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = (235, 206, 160)  # sky (BGR)
    img[h // 2 :] = (90, 110, 90)  # verge
    road = np.array([[w * 0.1, h], [w * 0.47, h // 2], [w * 0.53, h // 2], [w * 0.9, h]], np.int32)
    cv2.fillPoly(img, [road], (70, 70, 70))
    for k in range(6):  # dashed centre line moving towards the camera
        y0 = h // 2 + ((k * 60 + i * 25) % 360)
        y1 = min(y0 + 25, h)
        cv2.line(img, (w // 2, y0), (w // 2, y1), (240, 240, 240), max(1, (y0 - h // 2) // 20))
    for side in (-1, 1):  # buildings
        for k in range(4):
            x = w // 2 + side * (200 + k * 130 + (i * 7) % 40)
            top = h // 2 - int(rng.integers(60, 200))
            cv2.rectangle(
                img,
                (x - 55, top),
                (x + 55, h // 2 + 10),
                tuple(int(v) for v in rng.integers(80, 200, 3)),
                -1,
            )
            for wy in range(top + 10, h // 2, 30):
                cv2.rectangle(img, (x - 40, wy), (x - 20, wy + 15), (60, 50, 40), -1)
                cv2.rectangle(img, (x + 20, wy), (x + 40, wy + 15), (60, 50, 40), -1)
    cx, cy, r = int(w * 0.78), int(h * 0.42), 28 + i * 2  # a speed-limit sign coming closer
    cv2.line(img, (cx, cy), (cx, h // 2 + 40), (120, 120, 120), 5)
    cv2.circle(img, (cx, cy), r, (255, 255, 255), -1)
    cv2.circle(img, (cx, cy), r, (0, 0, 220), max(3, r // 6))
    cv2.putText(
        img, "40", (cx - r // 2, cy + r // 4), cv2.FONT_HERSHEY_SIMPLEX, r / 40, (0, 0, 0), 2
    )
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(7)
    frames_dir = OUT / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for s in range(N_FRAMES + 2):
        t = START + timedelta(seconds=s)
        lines += sentences(t, *along_road(20.0 + s * SPEED))
    (OUT / "track.nmea").write_text("\n".join(lines) + "\n")
    rows = ["file,captured_at"]
    for i in range(N_FRAMES):
        t = START + timedelta(seconds=i + 0.5)
        name = f"frames/{i:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", draw(i, rng), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        (OUT / name).write_bytes(buf.tobytes())
        rows.append(f"{name},{t.isoformat().replace('+00:00', 'Z')}")
    (OUT / "frames.csv").write_text("\n".join(rows) + "\n")
    print(
        f"wrote {N_FRAMES} frames to {OUT} ({math.ceil(sum(p.stat().st_size for p in frames_dir.iterdir()) / 1024)} KiB)"
    )


if __name__ == "__main__":
    main()
