"""Training and export of the map-feature detector (ultralytics, offline). The `train` extra.

Only `roadmesh vision train|export|tiles|evaluate` import this module; the runtime
(`vision.detector`) needs ONNX Runtime only. The import contracts allow ultralytics and
torch here and nowhere else in `vision`.

Why tiles: the simulator renders 1280x720 frames in which most signs are 5-30 px wide.
Shrinking whole frames to a 640 training size halves them again; training at 1280 costs
4x the compute of 640. So `make_tiles` cuts native-resolution crops (224x224 by default)
around labelled objects, plus background crops, and adds photometric domain randomisation
(colour cast, gamma, noise, blur, JPEG artefacts, haze, rain streaks, occluding blobs). The
network is fully convolutional: it is trained on 224 px crops and runs on whole frames at
1280 (rectangular letterbox, `vision.detector`).

Offline, ultralytics needs `YOLO_OFFLINE=1`, `YOLO_AUTOINSTALL=false`, a font named
`Arial.ttf` under `YOLO_CONFIG_DIR` (we copy DejaVuSans), and `amp=False` (its AMP check
downloads weights). No pretrained weights exist offline: the model trains from scratch
(`yolov8n.yaml`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from vision.detector import file_sha256

logger = logging.getLogger(__name__)

TRAIN_CONFIG_DIR = Path(os.environ.get("ROADMESH_YOLO_CONFIG_DIR", "out/yolo-config"))
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)


class TrainError(RuntimeError):
    """Training or export cannot run (the train extra missing, no dataset, bad arguments)."""


# -- offline ultralytics ----------------------------------------------------------------------
def offline_environment(config_dir: Path = TRAIN_CONFIG_DIR) -> Path:
    """Set the variables ultralytics needs offline and give it its font. Before importing it."""
    config_dir.mkdir(parents=True, exist_ok=True)
    font = config_dir / "Arial.ttf"
    if not font.exists():
        src = next((p for p in FONT_CANDIDATES if p.exists()), None)
        if src is None:
            try:
                import matplotlib

                src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
            except ImportError:
                src = None
        if src is None or not src.exists():
            raise TrainError("no TTF font to give ultralytics (install fonts-dejavu-core)")
        shutil.copyfile(src, font)
        shutil.copyfile(src, config_dir / "Arial.Unicode.ttf")
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir.resolve())
    os.environ.setdefault("YOLO_VERBOSE", "false")
    return config_dir


def _ultralytics() -> Any:
    offline_environment()
    try:
        import ultralytics
    except ImportError as exc:
        raise TrainError(
            "training needs the train extra: pip install -e '.[train,cpu]' "
            "(torch==2.14.1 torchvision==0.29.1 ultralytics)"
        ) from exc
    return ultralytics


def torch_device() -> str:
    """ "0" when torch sees a CUDA GPU, else "cpu": the same command trains on either."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


# -- tiles with domain randomisation -----------------------------------------------------------
@dataclass(frozen=True)
class TileSettings:
    size: int = 224
    object_tiles: int = 1  # crops centred near a labelled object, per image
    background_tiles: float = 0.25  # random crops per image (a fraction: that share of images)
    min_keep: float = 0.6  # a box is kept when this share of it lies inside the crop
    randomise: float = 0.7  # share of tiles that get photometric randomisation


def read_labels(path: Path, width: int, height: int) -> NDArray[np.float64]:
    """YOLO label file -> (n, 5) array of class, x1, y1, x2, y2 in pixels."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            c, cx, cy, w, h = (float(v) for v in parts)
            rows.append(
                [
                    c,
                    (cx - w / 2) * width,
                    (cy - h / 2) * height,
                    (cx + w / 2) * width,
                    (cy + h / 2) * height,
                ]
            )
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def crop_boxes(
    boxes: NDArray[np.float64], x0: int, y0: int, size: int, min_keep: float
) -> NDArray[np.float64]:
    """Boxes clipped to the crop [x0, x0+size) x [y0, y0+size), in crop pixels; a box with
    less than `min_keep` of its area inside is dropped."""
    if not len(boxes):
        return boxes
    b = boxes.copy()
    area = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
    b[:, [1, 3]] = np.clip(b[:, [1, 3]] - x0, 0, size)
    b[:, [2, 4]] = np.clip(b[:, [2, 4]] - y0, 0, size)
    inside = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
    keep = (
        (inside >= min_keep * np.maximum(area, 1e-9))
        & (b[:, 3] - b[:, 1] >= 2)
        & (b[:, 4] - b[:, 2] >= 2)
    )
    return b[keep]


def randomise(image: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Photometric domain randomisation: a few of colour cast, gamma, haze, rain, blur,
    noise, occluding blobs, and a JPEG round trip at a random quality."""
    img = image.astype(np.float32)
    if rng.random() < 0.5:  # colour cast / white balance
        img *= rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    if rng.random() < 0.4:  # gamma
        img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** float(rng.uniform(0.6, 1.6))
    if rng.random() < 0.15:  # haze / fog
        a = float(rng.uniform(0.15, 0.5))
        img = img * (1 - a) + a * float(rng.uniform(170, 230))
    if rng.random() < 0.1:  # rain streaks
        h, w = img.shape[:2]
        streaks = np.zeros((h, w), np.float32)
        n = int(rng.integers(40, 200))
        xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
        ln = int(rng.integers(6, 18))
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            cv2.line(streaks, (x, y), (x + ln // 4, y + ln), 1.0, 1)
        img = img * (1 - 0.35 * streaks[..., None]) + 200 * 0.35 * streaks[..., None]
    if rng.random() < 0.1:  # occluders (leaves, dirt, wipers)
        h, w = img.shape[:2]
        for _ in range(int(rng.integers(1, 4))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            r = int(rng.integers(4, max(5, w // 10)))
            cv2.circle(img, c, r, tuple(float(v) for v in rng.uniform(20, 120, 3)), -1)
    out: np.ndarray = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), float(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.3:
        noise = rng.normal(0, float(rng.uniform(2, 10)), out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        q = int(rng.integers(30, 90))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded
    return np.asarray(out, dtype=np.uint8)


def _tile_origins(
    boxes: NDArray[np.float64], w: int, h: int, t: TileSettings, rng: np.random.Generator
) -> Iterator[tuple[int, int]]:
    s = t.size
    if len(boxes):
        # rarer classes first: weights inverse to how often the class is in this image
        counts = np.bincount(boxes[:, 0].astype(int), minlength=64)
        wts = 1.0 / counts[boxes[:, 0].astype(int)]
        wts /= wts.sum()
        for _ in range(t.object_tiles):
            b = boxes[int(rng.choice(len(boxes), p=wts))]
            cx, cy = (b[1] + b[3]) / 2, (b[2] + b[4]) / 2
            x0 = int(np.clip(cx - rng.uniform(0.15, 0.85) * s, 0, max(0, w - s)))
            y0 = int(np.clip(cy - rng.uniform(0.15, 0.85) * s, 0, max(0, h - s)))
            yield x0, y0
    n_bg = int(t.background_tiles) + (rng.random() < t.background_tiles % 1)
    for _ in range(n_bg):
        yield int(rng.integers(0, max(1, w - s + 1))), int(rng.integers(0, max(1, h - s + 1)))


def make_tiles(
    src: Path, out: Path, settings: TileSettings | None = None, seed: int = 0
) -> dict[str, int]:
    """A YOLO dataset of crops from the simulator's dataset at `src` (`roadmesh sim dataset`).
    Keeps its class names; writes `out/data.yaml`. Counts of tiles and boxes per split."""
    t = settings or TileSettings()
    names = _names_from_yaml(src / "data.yaml")
    stats: dict[str, int] = {}
    for split in ("train", "val"):
        images = sorted((src / "images" / split).glob("*.jpg"))
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        n_tiles = n_boxes = 0
        for path in tqdm(images, desc=f"tiles {split}", unit="img"):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            h, w = img.shape[:2]
            boxes = read_labels(src / "labels" / split / f"{path.stem}.txt", w, h)
            rng = np.random.default_rng([seed, int(path.stem) if path.stem.isdigit() else 0])
            for k, (x0, y0) in enumerate(_tile_origins(boxes, w, h, t, rng)):
                crop = img[y0 : y0 + t.size, x0 : x0 + t.size]
                cb = crop_boxes(boxes, x0, y0, t.size, t.min_keep)
                ch, cw = crop.shape[:2]
                if split == "train" and rng.random() < t.randomise:
                    crop = randomise(np.asarray(crop, dtype=np.uint8), rng)
                name = f"{path.stem}_{k}"
                cv2.imwrite(
                    str(out / "images" / split / f"{name}.jpg"),
                    crop,
                    [cv2.IMWRITE_JPEG_QUALITY, 95],
                )
                lines = [
                    f"{int(c)} {(x1 + x2) / 2 / cw:.6f} {(y1 + y2) / 2 / ch:.6f} {(x2 - x1) / cw:.6f} {(y2 - y1) / ch:.6f}"
                    for c, x1, y1, x2, y2 in cb
                ]
                (out / "labels" / split / f"{name}.txt").write_text(
                    "".join(x + "\n" for x in lines)
                )
                n_tiles += 1
                n_boxes += len(lines)
        stats[f"{split}_tiles"] = n_tiles
        stats[f"{split}_boxes"] = n_boxes
    write_data_yaml(out, names)
    return stats


def _names_from_yaml(path: Path) -> list[str]:
    if not path.exists():
        raise TrainError(f"{path} is missing: make the dataset with `roadmesh sim dataset`")
    names: dict[int, str] = {}
    in_names = False
    for line in path.read_text().splitlines():
        if line.startswith("names:"):
            in_names = True
            continue
        if in_names and line.startswith("  ") and ":" in line:
            k, v = line.strip().split(":", 1)
            names[int(k)] = v.strip()
        elif in_names and line and not line.startswith(" "):
            in_names = False
    if not names:
        raise TrainError(f"{path} names no classes")
    return [names[k] for k in sorted(names)]


def write_data_yaml(root: Path, names: list[str], val: str = "images/val") -> Path:
    body = "\n".join(f"  {i}: {n}" for i, n in enumerate(names))
    path = root / "data.yaml"
    path.write_text(
        f"path: {root.resolve()}\ntrain: images/train\nval: {val}\nnc: {len(names)}\nnames:\n{body}\n"
    )
    return path


# -- train, export, evaluate ----------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    model: str = "yolov8n.yaml"  # from scratch: no pretrained weights offline
    imgsz: int = 224
    epochs: int = 300
    hours: float | None = 0.8  # wall-clock budget; ultralytics fits its schedule into it
    batch: int = 16
    optimizer: str = "AdamW"
    lr0: float = 0.002
    # ultralytics warms up for max(warmup_epochs x batches, 100) iterations: on a CPU budget
    # of a few epochs its default of 3 epochs would be the whole run
    warmup_epochs: float = 0.5
    workers: int = 2
    device: str | None = None  # None: a CUDA GPU when torch sees one, else the CPU
    seed: int = 0
    cache: str | bool = "ram"
    patience: int = 1000


def train(data: Path, out: Path, settings: TrainSettings | None = None) -> Path:
    """Train a YOLO detector on `data` (a data.yaml); the path of the best weights."""
    s = settings or TrainSettings()
    ul = _ultralytics()
    device = s.device or torch_device()
    model = ul.YOLO(s.model)
    t0 = time.time()
    model.train(
        data=str(data.resolve()),
        imgsz=s.imgsz,
        epochs=s.epochs,
        time=s.hours,
        batch=s.batch,
        workers=s.workers,
        device=device,
        amp=False,
        pretrained=s.model.endswith(".pt"),  # from scratch, or on from earlier weights
        seed=s.seed,
        deterministic=False,
        cache=s.cache,
        project=str(out.resolve()),
        name="train",
        exist_ok=True,
        plots=False,
        patience=s.patience,
        optimizer=s.optimizer,
        lr0=s.lr0,
        warmup_epochs=s.warmup_epochs,
        close_mosaic=1,
        fliplr=0.0,  # digits and pictograms are not mirror-symmetric
        mosaic=1.0,
        scale=0.5,
        hsv_h=0.02,
        hsv_s=0.6,
        hsv_v=0.5,
        verbose=True,
    )
    best = out / "train" / "weights" / "best.pt"
    if not best.exists():
        best = out / "train" / "weights" / "last.pt"
    (out / "train" / "roadmesh-train.json").write_text(
        json.dumps(
            {"device": device, "seconds": round(time.time() - t0, 1), "settings": s.__dict__},
            indent=2,
            default=str,
        )
    )
    return best


def export(
    weights: Path, out: Path, imgsz: int = 1280, version: str = "roadmesh-v1", opset: int = 17
) -> Path:
    """Write the ONNX (dynamic batch and size, metadata: names, imgsz, stride, our version)
    and its `.sha256` beside it."""
    ul = _ultralytics()
    import onnx

    model = ul.YOLO(str(weights))
    produced = Path(
        model.export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=opset, device="cpu"
        )
    )
    proto = onnx.load(str(produced))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta["roadmesh_version"] = version
    meta["imgsz"] = str([imgsz, imgsz])
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    write_sha256(out)
    return out


def write_sha256(path: Path) -> str:
    digest = file_sha256(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def evaluate(
    model: Path, data: Path, imgsz: int = 1280, batch: int = 4, split: str = "val"
) -> dict[str, Any]:
    """Per-class mAP50 and mAP50-95 of an ONNX or .pt model on a YOLO dataset (ultralytics'
    validator, rectangular batches at `imgsz`)."""
    ul = _ultralytics()
    m = ul.YOLO(str(model), task="detect")
    res = m.val(
        data=str(data.resolve()),
        imgsz=imgsz,
        batch=batch if str(model).endswith(".pt") else 1,
        split=split,
        device="cpu",
        plots=False,
        verbose=False,
        rect=True,
        workers=0,
    )
    names = res.names
    per: dict[str, dict[str, float]] = {}
    for i, c in enumerate(res.box.ap_class_index.tolist()):
        p, r, ap50, ap = res.box.class_result(i)
        per[names[c]] = {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "map50": round(float(ap50), 4),
            "map50_95": round(float(ap), 4),
        }
    return {
        "map50": round(float(res.box.map50), 4),
        "map50_95": round(float(res.box.map), 4),
        "per_class": per,
        "speed_ms": {k: round(float(v), 2) for k, v in res.speed.items()},
    }


def model_card(
    model: Path,
    evaluation: dict[str, Any],
    facts: dict[str, Any],
    real_photos: list[tuple[str, str]],
    failures: list[str],
) -> str:
    """The model card (Markdown) from measured numbers: `evaluation` is `evaluate()`'s
    result on the held-out rendered set, `facts` what the training run recorded."""
    digest = file_sha256(model)
    rows = "\n".join(
        f"| {name} | {m['map50']:.3f} | {m['map50_95']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} |"
        for name, m in evaluation["per_class"].items()
    )
    photos = "\n".join(f"- `{name}`: {what}" for name, what in real_photos)
    fails = "\n".join(f"- {f}" for f in failures)
    facts_md = "\n".join(f"| {k} | {v} |" for k, v in facts.items())
    return f"""# Model card: `{model.name}`

SHA-256 `{digest}` (also in `{model.name}.sha256`; a test checks it).
AGPL-3.0-or-later, like RoadMesh; trained with ultralytics (AGPL-3.0), which marks
exported models so. Map data in the training scenes (c) OpenStreetMap contributors, ODbL.

## What it is

| | |
|---|---|
{facts_md}

Classes, input size, stride and version are in the ONNX metadata (`names`, `imgsz`,
`stride`, `roadmesh_version`); `vision.detector` reads them from there.

## Held-out rendered set

{evaluation.get("set", "")}: mAP50 **{evaluation["map50"]:.3f}**, mAP50-95
**{evaluation["map50_95"]:.3f}** (ultralytics' validator on the exported ONNX, imgsz 1280,
rectangular batches). The validator's own timing there (batch 1, the machine shared with
other jobs; bench/detector.py measures speed properly): {evaluation.get("speed_ms", {})} ms
per image.

| class | mAP50 | mAP50-95 | precision | recall |
|---|---|---|---|---|
{rows}

## Real photos (the ones installed packages carry)

{photos}

## Where it fails

{fails}
"""
