"""Training round trip (the train extra): one epoch on a few rendered tiles, export, run
the ONNX on ONNX Runtime through our detector. Skipped when ultralytics is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ultralytics") is None, reason="the train extra is not installed"
    ),
    # ultralytics and torch warn about their own internals on import and while training
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def test_one_epoch_trains_and_the_export_runs_on_onnx_runtime(tmp_path: Path, monkeypatch) -> None:
    from sim.dataset import write_dataset
    from vision import train
    from vision.detector import DetectorSettings, YoloDetector

    monkeypatch.setenv("ROADMESH_YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    monkeypatch.setattr(train, "TRAIN_CONFIG_DIR", tmp_path / "yolo")
    data = tmp_path / "sim"
    write_dataset(
        data, 6, seed=3, width=320, height=180, val_fraction=0.0, workers=1, show_progress=False
    )
    tiles = tmp_path / "tiles"
    stats = train.make_tiles(data, tiles, train.TileSettings(size=96, background_tiles=0), seed=1)
    assert stats["train_tiles"] >= 6
    train.write_data_yaml(
        tiles, list(train._names_from_yaml(data / "data.yaml")), val="images/train"
    )
    weights = train.train(
        tiles / "data.yaml",
        tmp_path / "run",
        train.TrainSettings(
            imgsz=96, epochs=1, hours=None, batch=4, workers=0, cache=False, device="cpu"
        ),
    )
    assert weights.exists()
    onnx_path = train.export(weights, tmp_path / "m.onnx", imgsz=96, version="test-1")
    digest = (tmp_path / "m.onnx.sha256").read_text().split()[0]
    det = YoloDetector(DetectorSettings(model=onnx_path, conf=0.0001))
    assert det.info.sha256 == digest
    assert det.info.version == "test-1"
    assert det.info.imgsz == (96, 96)
    assert det.names[0] == "stop" and det.names[-1] == "face"
    img = cv2.imread(str(next((data / "images").rglob("*.jpg"))))
    out = det.detect([img, np.zeros_like(img)])
    assert len(out) == 2
    assert all(0 <= d.x1 <= d.x2 <= img.shape[1] for d in out[0])
