"""The detector runtime: providers, metadata, letterbox, decoding and class-aware NMS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.vision.fake_yolo import write_fake_yolo
from vision.detector import (
    CPU,
    CUDA,
    TENSORRT,
    DetectorError,
    DetectorSettings,
    Letterbox,
    YoloDetector,
    batch_shape,
    choose_providers,
    decode,
    device_of,
    letterbox_batch,
    provider_options,
    settings_from_env,
)

NAMES = {0: "stop", 1: "face"}


def head(*boxes: tuple[float, float, float, float, int, float], n: int = 8) -> np.ndarray:
    """Raw (4 + nc, n) with the given (cx, cy, w, h, cls, score) rows, the rest empty."""
    h = np.zeros((4 + len(NAMES), n), np.float32)
    for i, (cx, cy, w, hh, c, s) in enumerate(boxes):
        h[:4, i] = (cx, cy, w, hh)
        h[4 + c, i] = s
    return h


def test_it_prefers_tensorrt_then_cuda_then_cpu():
    assert choose_providers([CPU, CUDA, TENSORRT]) == [TENSORRT, CUDA, CPU]
    assert choose_providers([CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers(["AzureExecutionProvider", CPU]) == [CPU]


def test_it_always_keeps_the_cpu_last_even_when_the_build_does_not_list_it():
    assert choose_providers([TENSORRT]) == [TENSORRT, CPU]


def test_a_preferred_provider_skips_the_better_ones():
    assert choose_providers([TENSORRT, CUDA, CPU], "cuda") == [CUDA, CPU]
    assert choose_providers([TENSORRT, CUDA, CPU], "cpu") == [CPU]


def test_an_unknown_provider_name_is_refused():
    with pytest.raises(DetectorError, match="unknown provider"):
        choose_providers([CPU], "rocm")


def test_tensorrt_gets_fp16_and_an_engine_cache(tmp_path):
    opts = provider_options([TENSORRT, CUDA, CPU], half=True, cache_dir=tmp_path)
    assert opts[0][0] == TENSORRT
    assert opts[0][1]["trt_fp16_enable"] == "1"
    assert opts[0][1]["trt_engine_cache_path"] == str(tmp_path)
    assert opts[1][0] == CUDA
    assert opts[2] == CPU


def test_the_device_is_what_the_session_really_got():
    assert device_of([TENSORRT, CUDA, CPU]) == "tensorrt"
    assert device_of([CUDA, CPU]) == "cuda"
    assert device_of([CPU]) == "cpu"


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_a_gpu_build_that_falls_back_to_the_cpu_reports_the_cpu(tmp_path):
    """The GPU wheel lists CUDA on a machine without a GPU; the session then runs on the
    CPU. What we report comes from the session, not from the list we asked for."""
    model = write_fake_yolo(tmp_path / "m.onnx", head(), NAMES)
    det = YoloDetector(DetectorSettings(model=model), available=[CUDA, CPU])
    assert det.providers == [CPU]
    assert det.device == "cpu"
    assert det.half is False


def test_the_batch_is_letterboxed_to_the_smallest_stride_multiple():
    (h, w), scales = batch_shape([(720, 1280)], (1280, 1280), 32, dynamic=True)
    assert (h, w) == (736, 1280)
    assert scales == [1.0]
    (h, w), scales = batch_shape([(1080, 1920), (720, 1280)], (1280, 1280), 32, dynamic=True)
    assert (h, w) == (736, 1280)
    assert scales == pytest.approx([2 / 3, 1.0])


def test_a_fixed_shape_model_gets_its_own_shape():
    (h, w), _ = batch_shape([(720, 1280)], (640, 640), 32, dynamic=False)
    assert (h, w) == (640, 640)


def test_letterbox_centres_the_image_in_grey_and_keeps_rgb_order():
    img = np.zeros((40, 64, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    blob, boxes = letterbox_batch([img], (64, 64), 32)
    assert blob.shape == (1, 3, 64, 64)
    assert boxes == [Letterbox(1.0, 0.0, 12.0)]
    assert blob[0, 2, 20, 10] == pytest.approx(1.0)  # blue is channel 2 in RGB
    assert blob[0, 0, 20, 10] == pytest.approx(0.0)
    assert blob[0, 0, 2, 10] == pytest.approx(114 / 255)  # padding


def test_boxes_come_back_in_each_images_own_pixels():
    raw = head((32, 32, 10, 20, 0, 0.9))[None]
    out = decode(raw, [Letterbox(0.5, 0.0, 12.0)], [(80, 128)], list(NAMES.values()), 0.25, 0.5)
    (d,) = out[0]
    assert d.label == "stop"
    assert (d.x1, d.y1, d.x2, d.y2) == pytest.approx((54, 20, 74, 60))


def test_nms_is_class_aware():
    raw = head(
        (30, 30, 20, 20, 0, 0.9),
        (31, 30, 20, 20, 0, 0.8),  # the same stop sign twice: suppressed
        (31, 30, 20, 20, 1, 0.7),  # a face in the same place: another class, kept
        (30, 30, 20, 20, 1, 0.1),  # under the threshold
    )[None]
    out = decode(raw, [Letterbox(1.0, 0, 0)], [(64, 64)], list(NAMES.values()), 0.25, 0.5)[0]
    assert sorted((d.label, round(d.score, 1)) for d in out) == [("face", 0.7), ("stop", 0.9)]


def test_a_head_of_the_wrong_width_is_refused():
    raw = np.zeros((1, 5, 8), np.float32)
    with pytest.raises(DetectorError, match="expected output"):
        decode(raw, [Letterbox(1.0, 0, 0)], [(64, 64)], list(NAMES.values()), 0.25, 0.5)


def test_names_input_size_and_version_come_from_the_metadata(tmp_path):
    names = {0: "a", 1: "b", 2: "c"}
    raw = np.zeros((7, 4), np.float32)
    model = write_fake_yolo(tmp_path / "m.onnx", raw, names, imgsz=(96, 96))
    det = YoloDetector(DetectorSettings(model=model))
    assert det.names == ("a", "b", "c")
    assert det.info.imgsz == (96, 96)
    assert det.info.version == "fake-1"
    assert det.model_version.startswith("fake-1@")
    assert len(det.info.sha256) == 64


def test_detect_batches_any_number_of_images(tmp_path):
    model = write_fake_yolo(tmp_path / "m.onnx", head((32, 32, 16, 16, 0, 0.9)), NAMES)
    det = YoloDetector(DetectorSettings(model=model, batch=2))
    images = [np.full((48, 64, 3), 100, np.uint8) for _ in range(5)]
    out = det.detect(images)
    assert len(out) == 5
    assert all(len(o) == 1 and o[0].label == "stop" for o in out)


def test_a_segmentation_model_is_refused(tmp_path):
    model = write_fake_yolo(tmp_path / "m.onnx", head(), NAMES, extra_meta={"task": "segment"})
    with pytest.raises(DetectorError, match="not a detection model"):
        YoloDetector(DetectorSettings(model=model))


def test_a_missing_model_file_is_an_error(tmp_path):
    with pytest.raises(DetectorError, match="no detector model"):
        YoloDetector(DetectorSettings(model=tmp_path / "none.onnx"))


def test_settings_come_from_roadmesh_vision_variables(tmp_path):
    s = settings_from_env(
        {
            "ROADMESH_VISION_MODEL": str(tmp_path / "x.onnx"),
            "ROADMESH_VISION_PROVIDER": "CUDA",
            "ROADMESH_VISION_THREADS": "2",
            "ROADMESH_VISION_BATCH": "4",
            "ROADMESH_VISION_HALF": "false",
        }
    )
    assert (s.model, s.provider, s.threads, s.batch, s.half) == (
        tmp_path / "x.onnx",
        "cuda",
        2,
        4,
        False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("THREADS", "two"), ("CONF", "1.5"), ("PROVIDER", "rocm"), ("HALF", "maybe")],
)
def test_a_bad_setting_names_its_variable(name, value):
    with pytest.raises(DetectorError, match=f"ROADMESH_VISION_{name}"):
        settings_from_env({f"ROADMESH_VISION_{name}": value})


def test_the_cuda_path_converts_the_graph_to_fp16_with_fp32_io(tmp_path):
    """What a CUDA session is given; it runs here on the CPU provider."""
    import onnx

    from vision.detector import to_fp16

    model = write_fake_yolo(tmp_path / "m.onnx", head((1, 2, 3, 4, 0, 0.5)), NAMES)
    half = onnx.load_from_string(to_fp16(Path(model).read_bytes()))
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
