"""A tiny ONNX graph shaped like an exported YOLO detector, for the runtime's tests.

Its output is a fixed head `(B, 4 + nc, N)` (cx, cy, w, h in input pixels, then class
scores) broadcast over the batch, plus ultralytics-style metadata; nothing is learned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_fake_yolo(
    path: Path,
    head: np.ndarray,
    names: dict[int, str],
    imgsz: tuple[int, int] = (64, 64),
    dynamic: bool = True,
    extra_meta: dict[str, str] | None = None,
) -> Path:
    """`head`: (4 + nc, N) float32, the raw prediction every image gets."""
    c = numpy_helper.from_array(head[None].astype(np.float32), "head")
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    shape = numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    nodes = [
        helper.make_node("ReduceSum", ["images", "axes"], ["s"], keepdims=1),
        helper.make_node("Reshape", ["s", "shape"], ["s3"]),
        helper.make_node("Mul", ["s3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "head"], ["output0"]),
    ]
    dims: list[int | str] = ["B", 3, "H", "W"] if dynamic else [1, 3, imgsz[0], imgsz[1]]
    graph = helper.make_graph(
        nodes,
        "fake_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, ["B", head.shape[0], head.shape[1]]
            )
        ],
        [c, axes, shape, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "task": "detect",
        "stride": "32",
        "imgsz": str(list(imgsz)),
        "names": str(names),
        "roadmesh_version": "fake-1",
    } | (extra_meta or {})
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, str(path))
    return path
