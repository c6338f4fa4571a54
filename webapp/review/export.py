"""Settled review labels as a YOLO dataset for retraining (`roadmesh web export-yolo OUT`):

    OUT/images/train/<frame>.jpg   the stored (blurred) JPEGs
    OUT/labels/train/<frame>.txt   one line per box: class cx cy w h (0..1 of the image)
    OUT/data.yaml                  path, train/val and the class names, as ultralytics reads it

A frame's boxes: detections whose task settled on accept (its class) or a relabel (the new
class), and the boxes reviewers marked as missed. Rejected detections are left out, so a
frame whose only detection was rejected is kept as a background image with an empty file.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from webapp.api.frames import public_sha
from webapp.fleet.models import Frame
from webapp.images import ObjectStoreError, shared_store
from webapp.mapping.models import ReviewTask
from webapp.review.consensus import ACCEPT, REJECT
from webapp.review.models import MissedBox


class ExportError(Exception):
    pass


@dataclass(frozen=True)
class ExportSummary:
    images: int
    boxes: int
    classes: list[str]


Box = tuple[str, float, float, float, float]


def settled_boxes() -> dict[int, list[Box]]:
    """frame id -> (class, x0, y0, x1, y1) of every settled or hand-marked box."""
    boxes: dict[int, list[Box]] = defaultdict(list)
    tasks = ReviewTask.objects.filter(
        state=ReviewTask.State.DECIDED, is_gold=False, detection__isnull=False
    ).select_related("detection")
    for t in tasks:
        d = t.detection
        assert d is not None
        if t.decided_label == REJECT:
            boxes.setdefault(d.frame_id, [])
            continue
        label = d.label if t.decided_label == ACCEPT else t.decided_label
        boxes[d.frame_id].append((label, d.x0, d.y0, d.x1, d.y1))
    for m in MissedBox.objects.all():
        boxes[m.frame_id].append((m.label, m.x0, m.y0, m.x1, m.y1))
    return boxes


def yolo_line(index: int, box: Box, width: int, height: int) -> str:
    _label, x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    w, h = (x1 - x0) / width, (y1 - y0) / height
    return f"{index} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def export_yolo(out: Path) -> ExportSummary:
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty")
    boxes = settled_boxes()
    if not boxes:
        raise ExportError("no settled labels yet")
    classes = sorted({b[0] for frame_boxes in boxes.values() for b in frame_boxes})
    index = {c: i for i, c in enumerate(classes)}
    images, labels = out / "images" / "train", out / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    store = shared_store(settings.SERVER)
    n_images = n_boxes = 0
    for frame in Frame.objects.filter(pk__in=list(boxes)).order_by("pk"):
        if not frame.image_width or not frame.image_height:
            continue
        try:
            data = store.get(public_sha(frame))  # the re-blurred image where there is one
        except (KeyError, ObjectStoreError):
            continue
        name = f"frame-{frame.pk:09d}"
        (images / f"{name}.jpg").write_bytes(data)
        lines = [
            yolo_line(index[b[0]], b, frame.image_width, frame.image_height)
            for b in boxes[frame.pk]
        ]
        (labels / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
        n_images += 1
        n_boxes += len(lines)
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(classes))
    (out / "data.yaml").write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/train\nnames:\n{names}\n"
    )
    return ExportSummary(n_images, n_boxes, classes)
