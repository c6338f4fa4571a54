from __future__ import annotations

from pathlib import Path

import cv2

from sim.dataset import write_dataset
from sim.features import CLASS_NAMES


def test_a_yolo_dataset_has_images_labels_and_class_names(tmp_path: Path) -> None:
    stats = write_dataset(
        tmp_path,
        8,
        seed=2,
        width=480,
        height=270,
        val_fraction=0.25,
        workers=1,
        show_progress=False,
    )
    data = (tmp_path / "data.yaml").read_text()
    for i, name in enumerate(CLASS_NAMES):
        assert f"  {i}: {name}\n" in data
    images = sorted((tmp_path / "images").rglob("*.jpg"))
    assert len(images) == 8
    boxes = 0
    for img in images:
        lbl = tmp_path / "labels" / img.parent.name / (img.stem + ".txt")
        assert cv2.imread(str(img)).shape == (270, 480, 3)
        for line in lbl.read_text().splitlines():
            c, *xywh = line.split()
            assert 0 <= int(c) < len(CLASS_NAMES)
            assert all(0.0 <= float(v) <= 1.0 for v in xywh)
            boxes += 1
    assert boxes > 8 and sum(stats["boxes"].values()) == boxes  # type: ignore[union-attr]
