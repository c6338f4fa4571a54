"""Inference cost of the detector: our pipeline vs a bare `session.run` vs ultralytics
`predict`, the same ONNX model on the same images, batch 1 and 8, in one run.

    python bench/detector.py [--model sample_data/models/roadmesh-v1.onnx] [--images 16]
                             [--threads 0] [--repeats 3]

* pipeline: `vision.detector.YoloDetector.detect(images)`: letterbox + session.run + decode
  and class-aware NMS, BGR uint8 frames in, boxes out.
* bare: `session.run` of the same session on a tensor prepared beforehand (the floor).
* ultralytics: `YOLO(model.onnx).predict(images, imgsz, batch)` (ultralytics' own ONNX
  Runtime session; it letterboxes ONNX models to a square imgsz x imgsz).

Frames are rendered by the simulator (1280x720, seeded, not from the training set).
Threads: every ONNX Runtime session here uses `--threads` intra-op threads (0 = all cores,
which is what ultralytics' session takes), so the three compete on equal terms.
On a machine with an NVIDIA GPU the bench also measures frames per second through
PyTorch on the same weights (the `.pt` beside the model or `--weights`), batch 8, fp16,
and says so: no TensorRT or onnxruntime-gpu is assumed.

Last line: `RESULT overhead_vs_bare=<x> speedup_vs_ultralytics=<x>` (both at batch 8:
pipeline seconds / bare seconds, and ultralytics seconds / pipeline seconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from vision.detector import DEFAULT_MODEL, DetectorSettings, YoloDetector  # noqa: E402


def rendered_frames(n: int, seed: int = 4242) -> list[np.ndarray]:
    from sim.dataset import render_scene, sample_scene
    from sim.drive import load_context
    from sim.render import Renderer
    from vision.camera import Intrinsics

    ctx = load_context(None)
    renderer = Renderer(ctx.scene, Intrinsics.from_hfov(1280, 720, 120.0), seed=seed)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        img, _ = render_scene(renderer, sample_scene(ctx, rng), seed + i)
        out.append(img)
    return out


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def gpu_fps(weights: Path | None, images: list[np.ndarray], imgsz: int) -> str:
    try:
        import torch
    except ImportError:
        return "no torch: GPU throughput not measured"
    if not torch.cuda.is_available():
        return "no NVIDIA GPU visible to torch: GPU throughput not measured"
    if weights is None or not weights.exists():
        return f"GPU {torch.cuda.get_device_name(0)} present but no .pt weights: not measured"
    from vision.train import offline_environment

    offline_environment()
    from ultralytics import YOLO

    net: Any = YOLO(str(weights)).model
    model = net.to("cuda").half().eval()
    det = YoloDetector(DetectorSettings(model=DEFAULT_MODEL, batch=8))
    blob, _ = det.preprocess(images[:8])
    x = torch.from_numpy(blob).to("cuda").half()
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        n = 50
        for _ in range(n):
            model(x)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
    return (
        f"GPU {torch.cuda.get_device_name(0)}: {n * len(x) / dt:.0f} frames/s per GPU"
        f" (PyTorch fp16, batch {len(x)} at {x.shape[2]}x{x.shape[3]}, the same weights,"
        " model forward only on a ready tensor, measured with torch.cuda.synchronize)"
    )


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def privacy_recall(det: YoloDetector, data: Path, limit: int) -> list[str]:
    """Recall of plates >= 20 px tall and faces >= 30 px tall in a YOLO dataset's val
    images (the held-out rendered set): the model's classes, and CenterFace for faces.
    A box is found when a detection of its class overlaps it with IoU >= 0.3 (the blur
    grows each box by 25 % a side, so a looser box still covers it)."""
    import cv2

    from vision.privacy import CenterFaceDetector
    from vision.train import read_labels

    names = {n: i for i, n in enumerate(det.names)}
    plate, face = names.get("license_plate"), names.get("face")
    cf = CenterFaceDetector(threads=det.settings.threads or 1)
    hits: dict[str, list[bool]] = {"plate_model": [], "face_model": [], "face_centerface": []}
    images = sorted((data / "images" / "val").glob("*.jpg"))[:limit]
    det.settings.batch = 1
    for path in images:
        img = cv2.imread(str(path))
        if img is None:
            continue
        h, w = img.shape[:2]
        truth = read_labels(data / "labels" / "val" / f"{path.stem}.txt", w, h)
        found = det.detect([img])[0]
        cfaces = None
        for c, x1, y1, x2, y2 in truth.tolist():
            box = (x1, y1, x2, y2)
            if c == plate and y2 - y1 >= 20:
                hits["plate_model"].append(
                    any(d.cls == plate and iou(box, (d.x1, d.y1, d.x2, d.y2)) >= 0.3 for d in found)
                )
            if c == face and y2 - y1 >= 30:
                hits["face_model"].append(
                    any(d.cls == face and iou(box, (d.x1, d.y1, d.x2, d.y2)) >= 0.3 for d in found)
                )
                cfaces = cf.detect(np.asarray(img, np.uint8)) if cfaces is None else cfaces
                hits["face_centerface"].append(
                    any(iou(box, (b.x1, b.y1, b.x2, b.y2)) >= 0.3 for b in cfaces)
                )
    out = []
    for k, v in hits.items():
        out.append(f"{k}: {sum(v)}/{len(v)} = {sum(v) / max(1, len(v)):.3f}")
    return [
        f"privacy recall on {len(images)} held-out rendered frames ({data.name}): " + "; ".join(out)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--weights", type=Path, default=None, help=".pt for the GPU measurement")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-ultralytics", action="store_true")
    ap.add_argument(
        "--privacy-set",
        type=Path,
        default=REPO / "out" / "vision" / "ds-heldout",
        help="a YOLO dataset to measure plate and face recall on (skipped when missing)",
    )
    ap.add_argument("--privacy-images", type=int, default=300)
    args = ap.parse_args()
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}", flush=True)
    images = rendered_frames(max(8, args.images))
    det = YoloDetector(DetectorSettings(model=args.model, threads=args.threads, batch=8))
    print(
        f"model {args.model.name} ({det.model_version}), {det.info.num_classes} classes, imgsz"
        f" {det.info.imgsz}; providers {det.providers}; {len(images)} frames 1280x720;"
        f" {os.cpu_count()} CPUs, {args.threads or 'all'} threads",
        flush=True,
    )
    results: dict[int, dict[str, float]] = {}
    for batch in (1, 8):
        det.settings.batch = batch
        chunks = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
        blobs = [det.preprocess(c)[0] for c in chunks]
        n = sum(len(c) for c in chunks)
        pipe = timed(lambda: [det.detect(c) for c in chunks], args.repeats)  # noqa: B023
        bare = timed(lambda: [det.infer(b) for b in blobs], args.repeats)  # noqa: B023
        row = {"pipeline": pipe / n, "bare": bare / n}
        if not args.no_ultralytics:
            from vision.train import offline_environment

            offline_environment()
            from ultralytics import YOLO

            ul = YOLO(str(args.model), task="detect")
            imgsz = det.info.imgsz[1]

            def run_ul(ul: YOLO = ul, imgsz: int = imgsz, batch: int = batch) -> None:
                for c in chunks:  # noqa: B023
                    ul.predict(
                        c, imgsz=imgsz, batch=batch, conf=0.25, iou=0.5, device="cpu", verbose=False
                    )

            row["ultralytics"] = timed(run_ul, args.repeats) / n
        results[batch] = row
        print(
            f"batch {batch}: pipeline {1000 * row['pipeline']:.0f} ms/frame, bare session.run"
            f" {1000 * row['bare']:.0f} ms/frame"
            + (
                f", ultralytics predict {1000 * row['ultralytics']:.0f} ms/frame"
                if "ultralytics" in row
                else ""
            )
            + f"; pipeline/bare {row['pipeline'] / row['bare']:.3f}"
            + (
                f", ultralytics/pipeline {row['ultralytics'] / row['pipeline']:.2f}"
                if "ultralytics" in row
                else ""
            ),
            flush=True,
        )
    if (args.privacy_set / "images" / "val").is_dir():
        for line in privacy_recall(det, args.privacy_set, args.privacy_images):
            print(line, flush=True)
    else:
        print(f"no {args.privacy_set}: plate and face recall not measured")
    weights = args.weights or args.model.with_suffix(".pt")
    print(gpu_fps(weights if weights.exists() else None, images, det.info.imgsz[1]))
    r8 = results[8]
    speed = r8["ultralytics"] / r8["pipeline"] if "ultralytics" in r8 else float("nan")
    print(
        f"RESULT overhead_vs_bare={r8['pipeline'] / r8['bare']:.3f} speedup_vs_ultralytics={speed:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
