"""`roadmesh vision ...`: the vision runtime on image files, and training (train extra).

quality   sharpness, exposure and obstruction scores of images
detect    the detector on image files (prints one line per detection)
tiles     native-resolution training crops from a `roadmesh sim dataset` folder
train     train the detector (ultralytics, offline; a CUDA GPU when torch sees one)
export    write the ONNX (+ .sha256) from trained weights
evaluate  per-class mAP50 / mAP50-95 of a model on a YOLO dataset
worker, map  the server processes, added by ingest.vision_cli (they need the database)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class CommandError(Exception):
    """A fatal user error of a vision command: `roadmesh` prints it and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("vision", help="detector, training, the vision worker")
    cmds = parser.add_subparsers(dest="vision_command", metavar="ACTION", required=True)
    q = cmds.add_parser("quality", help="sharpness, exposure and obstruction scores of images")
    q.add_argument("images", type=Path, nargs="+")
    q.set_defaults(func=_quality)

    d = cmds.add_parser("detect", help="run the detector on image files")
    d.add_argument("images", type=Path, nargs="+")
    d.add_argument("--model", type=Path, help="ONNX model (default: the shipped one)")
    d.add_argument("--conf", type=float, default=0.25)
    d.add_argument("--provider", default="auto", help="auto, tensorrt, cuda or cpu")
    d.add_argument("--threads", type=int, default=1)
    d.set_defaults(func=_detect)

    t = cmds.add_parser("tiles", help="training crops from a `roadmesh sim dataset` folder")
    t.add_argument("--data", type=Path, required=True, help="the sim dataset folder")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--size", type=int, default=224)
    t.add_argument("--object-tiles", type=int, default=1, help="crops near objects, per image")
    t.add_argument("--background-tiles", type=float, default=0.25, help="random crops, per image")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_tiles)

    tr = cmds.add_parser("train", help="train the detector (ultralytics, offline)")
    tr.add_argument("--data", type=Path, required=True, help="data.yaml (tiles or sim dataset)")
    tr.add_argument("--out", type=Path, default=Path("out/vision/train"))
    tr.add_argument("--model", default="yolov8n.yaml")
    tr.add_argument("--imgsz", type=int, default=224)
    tr.add_argument("--epochs", type=int, default=300)
    tr.add_argument("--hours", type=float, default=0.8, help="wall-clock budget (0: epochs only)")
    tr.add_argument("--batch", type=int, default=16)
    tr.add_argument("--workers", type=int, default=2)
    tr.add_argument("--device", default=None, help="cpu or a CUDA index (default: GPU if any)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--lr0", type=float, default=0.002)
    tr.add_argument("--warmup-epochs", type=float, default=0.5)
    tr.set_defaults(func=_train)

    e = cmds.add_parser("export", help="write the ONNX and its .sha256 from trained weights")
    e.add_argument("--weights", type=Path, required=True)
    e.add_argument("--out", type=Path, default=Path("sample_data/models/roadmesh-v1.onnx"))
    e.add_argument("--imgsz", type=int, default=1280)
    e.add_argument("--version", default="roadmesh-v1")
    e.set_defaults(func=_export)

    v = cmds.add_parser("evaluate", help="per-class mAP of a model on a YOLO dataset")
    v.add_argument("--model", type=Path, required=True)
    v.add_argument("--data", type=Path, required=True, help="data.yaml")
    v.add_argument("--imgsz", type=int, default=1280)
    v.add_argument("--json", type=Path, help="also write the numbers here")
    v.set_defaults(func=_evaluate)


def _quality(args: argparse.Namespace) -> int:
    import cv2

    from vision.quality import score

    failures = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{path}: not a readable image")
            failures += 1
            continue
        s = score(image)
        print(
            f"{path}: sharpness={s.sharpness:.1f} exposure={s.exposure:.3f} obstruction={s.obstruction:.3f}"
        )
    if failures == len(args.images):
        raise CommandError("no readable image")
    return 1 if failures else 0


def _detect(args: argparse.Namespace) -> int:
    import cv2

    from vision.detector import DetectorError, DetectorSettings, YoloDetector

    s = DetectorSettings(conf=args.conf, provider=args.provider, threads=args.threads)
    if args.model:
        s.model = args.model
    try:
        det = YoloDetector(s)
    except DetectorError as exc:
        raise CommandError(str(exc)) from exc
    print(f"model {det.model_version} on {det.providers}")
    failures = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{path}: not a readable image")
            failures += 1
            continue
        found = det.detect([image])[0]
        print(f"{path}: {len(found)} detections")
        for d in found:
            print(f"  {d.label} {d.score:.2f} [{d.x1:.0f} {d.y1:.0f} {d.x2:.0f} {d.y2:.0f}]")
    if failures == len(args.images):
        raise CommandError("no readable image")
    return 1 if failures else 0


def _train_module():  # type: ignore[no-untyped-def]
    try:
        from vision import train
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CommandError(f"training needs the train extra: {exc}") from exc
    return train


def _tiles(args: argparse.Namespace) -> int:
    train = _train_module()
    try:
        stats = train.make_tiles(
            args.data,
            args.out,
            train.TileSettings(
                size=args.size,
                object_tiles=args.object_tiles,
                background_tiles=args.background_tiles,
            ),
            args.seed,
        )
    except train.TrainError as exc:
        raise CommandError(str(exc)) from exc
    print(f"tiles {args.out}: {json.dumps(stats)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    train = _train_module()
    s = train.TrainSettings(
        model=args.model,
        imgsz=args.imgsz,
        epochs=args.epochs,
        hours=args.hours or None,
        batch=args.batch,
        workers=args.workers,
        device=args.device,
        seed=args.seed,
        lr0=args.lr0,
        warmup_epochs=args.warmup_epochs,
    )
    try:
        best = train.train(args.data, args.out, s)
    except train.TrainError as exc:
        raise CommandError(str(exc)) from exc
    print(f"trained {best}")
    return 0


def _export(args: argparse.Namespace) -> int:
    train = _train_module()
    try:
        out = train.export(args.weights, args.out, args.imgsz, args.version)
    except train.TrainError as exc:
        raise CommandError(str(exc)) from exc
    print(f"exported {out} (sha256 {train.write_sha256(out)})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    train = _train_module()
    res = train.evaluate(args.model, args.data, args.imgsz)
    for name, m in res["per_class"].items():
        print(
            f"{name}: mAP50={m['map50']:.3f} mAP50-95={m['map50_95']:.3f} P={m['precision']:.3f} R={m['recall']:.3f}"
        )
    print(f"all: mAP50={res['map50']:.3f} mAP50-95={res['map50_95']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0
