"""Renderer throughput on one core: frames per second at 1920x1080 and 1280x720 along a
real drive through the sample world (render + post effects; video encoding shown apart).

    .venv/bin/python bench/sim.py [--frames 80]

The last line is machine-readable: RESULT fps_1080p=<n> fps_720p=<n>
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2

from sim.drive import DriveSpec, load_context, plan_drive, render_frame
from sim.render import Renderer


def measure(width: int, height: int, frames: int) -> tuple[float, float]:
    ctx = load_context()
    spec = DriveSpec(
        "bench", 4, datetime(2025, 6, 2, 8, 0, tzinfo=UTC), frames / 5.0 + 1.0, 5.0, width, height
    )
    sim = plan_drive(ctx, spec)
    r = Renderer(ctx.scene, spec.intrinsics, seed=4)
    render_frame(r, sim, 0)  # warm caches (sprites, sky)
    n = min(frames, sim.frame_count)
    imgs = []
    t0 = time.perf_counter()
    for i in range(n):
        img, _ = render_frame(r, sim, i)
        if i < 20:
            imgs.append(img)
    render_fps = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        vw = cv2.VideoWriter(
            os.path.join(d, "v.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), 5.0, (width, height)
        )
        t0 = time.perf_counter()
        for img in imgs:
            vw.write(img)
        vw.release()
        enc_ms = (time.perf_counter() - t0) / len(imgs) * 1000
    return render_fps, enc_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=80)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    res = {}
    for name, (w, h) in (("1080p", (1920, 1080)), ("720p", (1280, 720))):
        fps, enc = measure(w, h, args.frames)
        with_enc = 1.0 / (1.0 / fps + enc / 1000.0)
        print(
            f"{name}: {fps:.1f} rendered frames/s on one core; mp4v encode {enc:.1f} ms/frame; {with_enc:.1f} frames/s with encoding"
        )
        res[name] = fps
    print(f"RESULT fps_1080p={res['1080p']:.1f} fps_720p={res['720p']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
