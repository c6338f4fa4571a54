"""Per-frame cost of each edge stage on one CPU core at 1920x1080, and the whole pipeline
as a ratio to the floor (one JPEG decode + one JPEG encode of the same frame), same run.

    .venv/bin/python bench/edge.py [--frames 20]

The last line is `RESULT ratio_to_floor=<x> kept_fps_one_core=<n>`: kept frames per second
the whole pipeline (quality, privacy, encode, sign, durable outbox write) sustains on one
core. 60 km/h with one frame every 8 m needs 2.08.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

NEEDED_FPS = 60 / 3.6 / 8  # 2.08


def timed(fn: Callable[[], object], n: int) -> float:
    fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)

    import protocol
    from edge.gnss import Fix, Track
    from edge.identity import DeviceIdentity, MqttLogin
    from edge.outbox import Outbox
    from edge.pipeline import Captured, Pipeline
    from edge.settings import EdgeSettings
    from tests.edge.synthetic import face_tiles
    from vision.privacy import CenterFaceDetector, ClassicalPlateDetector, Redactor, encode_redacted
    from vision.quality import score

    # A real street photo (the sample drive) at 1080p with two real faces pasted in.
    src_path = Path(__file__).resolve().parents[1] / "sample_data/drives/sample/frames/000003.jpg"
    src = cv2.imread(str(src_path))
    if src is None:
        raise SystemExit(f"cannot read {src_path}")
    image: np.ndarray = np.ascontiguousarray(
        cv2.resize(src, (1920, 1080), interpolation=cv2.INTER_CUBIC), dtype=np.uint8
    )
    for k, tile in enumerate(face_tiles(2, 64)):
        image[500:564, 300 + 200 * k : 364 + 200 * k] = tile
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    jpeg = buf.tobytes()
    n = args.frames

    decode = timed(lambda: cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), n)
    encode = timed(lambda: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88]), n)
    floor = decode + encode
    faces, plates = CenterFaceDetector(threads=1), ClassicalPlateDetector()
    redactor = Redactor(faces, plates)
    stages = {
        "jpeg decode (floor)": decode,
        "jpeg encode (floor)": encode,
        "quality scores": timed(lambda: score(image), n),
        "faces (CenterFace 1280)": timed(lambda: faces.detect(image), n),
        "plates (classical)": timed(lambda: plates.detect(image), n),
        "redact + encode": timed(lambda: encode_redacted(redactor.redact(image)), n),
    }
    key = protocol.generate_private_key()
    stages["ed25519 sign (encode)"] = timed(
        lambda: protocol.encode(protocol.Status("dev-bench", 1, protocol.DeviceState.ONLINE), key),
        n,
    )

    # The whole pipeline, every frame a kept one: decode -> geotag -> quality -> privacy ->
    # encode -> sign -> outbox commit (synchronous=FULL).
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    fixes = [
        Fix(
            t0 + timedelta(seconds=s),
            60.17 + s * 16.7 / 111195,
            24.94,
            18.0,
            16.7,
            0.0,
            1,
            9,
            0.9,
            3,
        )
        for s in range(3600)
    ]
    track = Track(fixes)
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3")
        identity = DeviceIdentity("dev-bench", MqttLogin("127.0.0.1", 1883, "dev-bench", "x"))
        pipe = Pipeline(
            EdgeSettings(trim_m=0.0, sample_distance_m=0.0), identity, key, outbox, redactor
        )
        times = []
        for i in range(n + 1):
            t = time.perf_counter()
            frame = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
            result = pipe.process(Captured(frame, t0 + timedelta(seconds=1 + i * 0.5)), track)
            times.append(time.perf_counter() - t)
            assert result == "kept", result
        pipe.finish()
        whole = statistics.median(times[1:])
    for name, sec in stages.items():
        print(f"{name:28s} {sec * 1000:8.1f} ms")
    print(f"{'whole pipeline per kept frame':28s} {whole * 1000:8.1f} ms")
    fps = 1.0 / whole
    print(
        f"needed at 60 km/h, one frame per 8 m: {NEEDED_FPS:.2f} kept fps; margin x{fps / NEEDED_FPS:.2f}"
    )
    print(f"RESULT ratio_to_floor={whole / floor:.1f} kept_fps_one_core={fps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
