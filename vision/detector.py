"""The map-feature detector: a YOLO ONNX model on ONNX Runtime, batched.

predict = preprocess -> infer -> postprocess (the ultralytics shape, without torch):

* preprocess: one rectangular letterbox for the whole batch. Each image is scaled so its
  longer side fits the model's input size (`imgsz` from the metadata), then padded to the
  next multiple of the model's stride only (1280x720 -> 1280x736, not 1280x1280), grey 114
  as in training. A dynamic-shape model gets that minimal shape; a fixed-shape one gets
  its fixed shape.
* infer: one `session.run` per batch.
* postprocess: the raw head `(B, 4 + nc, anchors)` (exported YOLO has no NMS inside):
  confidence threshold, class-aware NMS (OpenCV's batched NMS), boxes mapped back to each
  image's own pixels.

Everything model-specific comes from the ONNX metadata that ultralytics writes
(`names`, `imgsz`, `stride`, `task`) plus our own `roadmesh_version`, so an operator can
drop in another YOLO detection ONNX without code changes.

Execution providers: TensorRT, then CUDA, then CPU, from what this ONNX Runtime build
offers; the session's `get_providers()` is what it really got (the GPU wheel lists CUDA
even on a machine without a GPU and then falls back to CPU), and that is what `providers`
reports. On a GPU the model runs in fp16 (TensorRT's fp16 flag; for CUDA the graph is
converted to fp16 at load with fp32 inputs and outputs kept).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

Image = NDArray[Any]  # BGR uint8, H x W x 3
PAD_VALUE = 114
TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
GPU_PROVIDERS = frozenset({TENSORRT, CUDA})
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "sample_data" / "models" / "roadmesh-v1.onnx"


class DetectorError(RuntimeError):
    """The detector cannot run: no model file, not a YOLO detection model, bad settings."""


# -- what the model says about itself ------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """Read from the ONNX file: class names, input size, stride, version and hash."""

    names: tuple[str, ...]
    imgsz: tuple[int, int]  # (height, width) the longer image side is scaled to fit
    stride: int
    version: str
    sha256: str
    dynamic: bool  # the input's height and width are symbolic (rectangular letterbox works)
    input_name: str
    input_type: str  # "tensor(float)" or "tensor(float16)"

    @property
    def num_classes(self) -> int:
        return len(self.names)


def _literal(raw: str | None, what: str) -> Any:
    if raw is None:
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise DetectorError(f"the model's metadata {what!r} is not readable: {raw[:80]!r}") from exc


def model_info(session: Any, sha256: str) -> ModelInfo:
    """Class names, input size, stride and version from a session's model metadata."""
    meta = dict(session.get_modelmeta().custom_metadata_map)
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise DetectorError(f"expected an NCHW image input, the model has {shape}")
    task = meta.get("task", "detect")
    if task != "detect":
        raise DetectorError(f"not a detection model (task={task!r})")
    names_raw = _literal(meta.get("names"), "names")
    if isinstance(names_raw, dict):
        names = tuple(str(names_raw[k]) for k in sorted(names_raw))
    elif isinstance(names_raw, list | tuple):
        names = tuple(str(n) for n in names_raw)
    else:
        out = session.get_outputs()[0].shape
        nc = out[1] - 4 if isinstance(out[1], int) else 0
        if nc <= 0:
            raise DetectorError("the model has no class names in its metadata")
        names = tuple(f"class{i}" for i in range(nc))
    dynamic = not (isinstance(shape[2], int) and isinstance(shape[3], int))
    imgsz_raw = _literal(meta.get("imgsz"), "imgsz")
    if imgsz_raw is None:
        if dynamic:
            raise DetectorError("a dynamic-shape model must say its input size (metadata imgsz)")
        imgsz = (int(shape[2]), int(shape[3]))
    elif isinstance(imgsz_raw, int):
        imgsz = (imgsz_raw, imgsz_raw)
    else:
        imgsz = (int(imgsz_raw[0]), int(imgsz_raw[1]))
    stride = int(_literal(meta.get("stride"), "stride") or 32)
    version = str(meta.get("roadmesh_version") or meta.get("version") or "unknown")
    return ModelInfo(
        names=names,
        imgsz=imgsz,
        stride=stride,
        version=version,
        sha256=sha256,
        dynamic=dynamic,
        input_name=inp.name,
        input_type=inp.type,
    )


# -- execution providers --------------------------------------------------------------------
def choose_providers(available: Sequence[str], prefer: str = "auto") -> list[str]:
    """The providers to ask for, best first: TensorRT, CUDA, CPU among `available`.

    `prefer`: "auto" (the best there is), "tensorrt", "cuda" or "cpu" (that one and what
    comes after it). CPU is always last: a session never ends up without a provider."""
    order = list(PROVIDER_ORDER)
    wanted = {"auto": 0, "tensorrt": 0, "cuda": 1, "cpu": 2}
    if prefer not in wanted:
        raise DetectorError(f"unknown provider {prefer!r}: use auto, tensorrt, cuda or cpu")
    chosen = [p for p in order[wanted[prefer] :] if p in available and p != CPU]
    return [*chosen, CPU]


def provider_options(providers: Sequence[str], half: bool, cache_dir: Path | None) -> list[Any]:
    """ONNX Runtime's (name, options) list: fp16 and an engine cache for TensorRT."""
    out: list[Any] = []
    for p in providers:
        if p == TENSORRT:
            opts: dict[str, str] = {"trt_fp16_enable": "1" if half else "0"}
            if cache_dir is not None:
                opts |= {"trt_engine_cache_enable": "1", "trt_engine_cache_path": str(cache_dir)}
            out.append((p, opts))
        elif p == CUDA:
            out.append((p, {"cudnn_conv_algo_search": "HEURISTIC"}))
        else:
            out.append(p)
    return out


def device_of(providers: Sequence[str]) -> str:
    """ "tensorrt", "cuda" or "cpu": the first provider the session really got."""
    first = providers[0] if providers else CPU
    return {TENSORRT: "tensorrt", CUDA: "cuda"}.get(first, "cpu")


def to_fp16(model_bytes: bytes) -> bytes:
    """The model with fp16 weights and arithmetic, fp32 inputs and outputs (for CUDA)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_from_string(model_bytes)
    half = convert_float_to_float16(model, keep_io_types=True)
    return bytes(half.SerializeToString())


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Detection:
    """One object in one image: class, score and box in that image's pixels (x1, y1, x2, y2)."""

    cls: int
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How one image sits in the batch tensor: scale, then offset (left, top)."""

    scale: float
    left: float
    top: float


# -- pre- and postprocessing (plain numpy/OpenCV, tested without a model) -----------------------
def batch_shape(
    sizes: Sequence[tuple[int, int]], imgsz: tuple[int, int], stride: int, dynamic: bool
) -> tuple[tuple[int, int], list[float]]:
    """The (height, width) of the batch tensor and each image's scale.

    Each image (h, w) is scaled by min(imgsz_h / h, imgsz_w / w): the longest side fits.
    A dynamic model gets the smallest stride multiple that holds every scaled image."""
    scales = [min(imgsz[0] / h, imgsz[1] / w) for h, w in sizes]
    if not dynamic:
        return imgsz, scales
    hs = [round(h * s) for (h, _), s in zip(sizes, scales, strict=True)]
    ws = [round(w * s) for (_, w), s in zip(sizes, scales, strict=True)]
    th = int(np.ceil(max(hs) / stride) * stride)
    tw = int(np.ceil(max(ws) / stride) * stride)
    return (th, tw), scales


def letterbox_batch(
    images: Sequence[Image],
    imgsz: tuple[int, int],
    stride: int,
    dynamic: bool = True,
    dtype: type = np.float32,
) -> tuple[NDArray[Any], list[Letterbox]]:
    """BGR uint8 images -> one NCHW RGB tensor in [0, 1] and each image's letterbox."""
    if not images:
        raise ValueError("an empty batch")
    sizes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
    (th, tw), scales = batch_shape(sizes, imgsz, stride, dynamic)
    padded = []
    boxes = []
    for im, (h, w), s in zip(images, sizes, scales, strict=True):
        nh, nw = round(h * s), round(w * s)
        if (nh, nw) != (h, w):
            im = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR)
        top = (th - nh) // 2
        left = (tw - nw) // 2
        if (nh, nw) != (th, tw):
            im = cv2.copyMakeBorder(
                im,
                top,
                th - nh - top,
                left,
                tw - nw - left,
                cv2.BORDER_CONSTANT,
                value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
            )
        padded.append(im)
        boxes.append(Letterbox(s, float(left), float(top)))
    blob = cv2.dnn.blobFromImages(padded, 1.0 / 255.0, swapRB=True)
    return (blob if dtype is np.float32 else blob.astype(dtype)), boxes


def decode(
    raw: NDArray[Any],
    letterboxes: Sequence[Letterbox],
    sizes: Sequence[tuple[int, int]],
    names: Sequence[str],
    conf: float,
    iou: float,
    max_det: int = 300,
) -> list[list[Detection]]:
    """The raw YOLO head (B, 4 + nc, N): cx, cy, w, h in input pixels, then class scores."""
    out: list[list[Detection]] = []
    nc = len(names)
    if raw.ndim != 3 or raw.shape[1] != 4 + nc:
        raise DetectorError(f"expected output (B, {4 + nc}, N), got {raw.shape}")
    for b, (lb, (h, w)) in enumerate(zip(letterboxes, sizes, strict=True)):
        pred = raw[b].T.astype(np.float32, copy=False)  # (N, 4 + nc)
        scores = pred[:, 4:]
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        keep = best >= conf
        if not keep.any():
            out.append([])
            continue
        xywh, cls, best = pred[keep, :4], cls[keep], best[keep]
        x1 = (xywh[:, 0] - xywh[:, 2] / 2 - lb.left) / lb.scale
        y1 = (xywh[:, 1] - xywh[:, 3] / 2 - lb.top) / lb.scale
        bw, bh = xywh[:, 2] / lb.scale, xywh[:, 3] / lb.scale
        idx = cv2.dnn.NMSBoxesBatched(
            np.stack([x1, y1, bw, bh], axis=1).tolist(),
            best.tolist(),
            cls.astype(np.int32).tolist(),
            conf,
            iou,
        )
        kept = np.asarray(idx, dtype=np.int64).reshape(-1)[:max_det]
        dets = [
            Detection(
                int(cls[i]),
                names[int(cls[i])],
                float(best[i]),
                float(np.clip(x1[i], 0, w)),
                float(np.clip(y1[i], 0, h)),
                float(np.clip(x1[i] + bw[i], 0, w)),
                float(np.clip(y1[i] + bh[i], 0, h)),
            )
            for i in kept
        ]
        out.append(dets)
    return out


# -- the detector -----------------------------------------------------------------------------
@dataclass
class DetectorSettings:
    """How to run the model. `threads`: ONNX Runtime's intra-op threads (1 suits a worker on
    a shared 2-core box; 0 lets ONNX Runtime take every core). Spinning threads are off, so
    an idle session gives its core back at once."""

    model: Path = DEFAULT_MODEL
    provider: str = "auto"
    threads: int = 1
    conf: float = 0.25
    iou: float = 0.5
    batch: int = 8
    half: bool | None = None  # None: fp16 on a GPU, fp32 on the CPU
    imgsz: int | None = None  # None: the model's own (metadata)
    trt_cache: Path | None = None
    max_det: int = 300
    extra_session_config: dict[str, str] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class YoloDetector:
    """A YOLO detection ONNX on ONNX Runtime. `detect(images)` takes any number of BGR
    images (batched `settings.batch` at a time) and returns one list of detections each."""

    def __init__(
        self, settings: DetectorSettings | None = None, *, available: Sequence[str] | None = None
    ) -> None:
        import onnxruntime as ort

        self.settings = s = settings or DetectorSettings()
        path = Path(s.model)
        if not path.is_file():
            raise DetectorError(f"no detector model at {path}")
        model_bytes = path.read_bytes()
        sha = hashlib.sha256(model_bytes).hexdigest()
        wanted = choose_providers(
            ort.get_available_providers() if available is None else available, s.provider
        )
        gpu = wanted[0] in GPU_PROVIDERS
        half = gpu if s.half is None else s.half
        if half and wanted[0] == CUDA:
            model_bytes = to_fp16(model_bytes)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, s.threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for k, v in s.extra_session_config.items():
            opts.add_session_config_entry(k, v)
        self.session = ort.InferenceSession(
            model_bytes, opts, providers=provider_options(wanted, half, s.trt_cache)
        )
        self.providers: list[str] = list(self.session.get_providers())
        self.device = device_of(self.providers)
        self.half = half and self.device != "cpu"
        self.info = model_info(self.session, sha)
        if s.imgsz is not None:
            if s.imgsz % self.info.stride:
                raise DetectorError(
                    f"imgsz {s.imgsz} is not a multiple of the stride {self.info.stride}"
                )
            self.info = _with_imgsz(self.info, s.imgsz)
        self._dtype = np.float16 if self.info.input_type == "tensor(float16)" else np.float32
        logger.info(
            "detector %s (%s, sha256 %s): providers %s, %d classes, imgsz %s",
            path.name,
            self.info.version,
            sha[:12],
            self.providers,
            self.info.num_classes,
            self.info.imgsz,
        )

    @property
    def names(self) -> tuple[str, ...]:
        return self.info.names

    @property
    def model_sha256(self) -> str:
        return self.info.sha256

    @property
    def model_version(self) -> str:
        """`<version>@<sha256 prefix>`: what a Detection row records about the model."""
        return f"{self.info.version}@{self.info.sha256[:12]}"

    def preprocess(self, images: Sequence[Image]) -> tuple[NDArray[Any], list[Letterbox]]:
        return letterbox_batch(
            images, self.info.imgsz, self.info.stride, self.info.dynamic, self._dtype
        )

    def infer(self, blob: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(self.session.run(None, {self.info.input_name: blob})[0])

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        n = max(1, self.settings.batch)
        for start in range(0, len(images), n):
            chunk = images[start : start + n]
            blob, boxes = self.preprocess(chunk)
            raw = self.infer(blob)
            out += decode(
                raw,
                boxes,
                [(int(im.shape[0]), int(im.shape[1])) for im in chunk],
                self.info.names,
                self.settings.conf,
                self.settings.iou,
                self.settings.max_det,
            )
        return out


def _with_imgsz(info: ModelInfo, size: int) -> ModelInfo:
    from dataclasses import replace

    return replace(info, imgsz=(size, size))


def settings_from_env(env: dict[str, str] | None = None) -> DetectorSettings:
    """`ROADMESH_VISION_*` variables: MODEL, PROVIDER, THREADS, CONF, IOU, BATCH, HALF, IMGSZ,
    TRT_CACHE. A bad value raises DetectorError naming the variable."""
    e = os.environ if env is None else env
    s = DetectorSettings()

    def num(name: str, kind: type, lo: float, hi: float) -> Any:
        raw = e.get(f"ROADMESH_VISION_{name}")
        if raw is None or raw == "":
            return None
        try:
            value = kind(raw)
        except ValueError as exc:
            raise DetectorError(f"ROADMESH_VISION_{name}={raw!r} is not a {kind.__name__}") from exc
        if not lo <= value <= hi:
            raise DetectorError(f"ROADMESH_VISION_{name}={raw!r} must be in [{lo}, {hi}]")
        return value

    if e.get("ROADMESH_VISION_MODEL"):
        s.model = Path(e["ROADMESH_VISION_MODEL"])
    if e.get("ROADMESH_VISION_PROVIDER"):
        s.provider = e["ROADMESH_VISION_PROVIDER"].strip().lower()
        try:
            choose_providers([], s.provider)
        except DetectorError as exc:
            raise DetectorError(f"ROADMESH_VISION_PROVIDER: {exc}") from exc
    for name, attr, kind, lo, hi in (
        ("THREADS", "threads", int, 0, 256),
        ("CONF", "conf", float, 0.0, 1.0),
        ("IOU", "iou", float, 0.0, 1.0),
        ("BATCH", "batch", int, 1, 256),
        ("IMGSZ", "imgsz", int, 32, 8192),
    ):
        v = num(name, kind, lo, hi)
        if v is not None:
            setattr(s, attr, v)
    half = e.get("ROADMESH_VISION_HALF", "").strip().lower()
    if half:
        if half not in {"auto", "1", "0", "true", "false"}:
            raise DetectorError(f"ROADMESH_VISION_HALF={half!r}: use auto, true or false")
        s.half = None if half == "auto" else half in {"1", "true"}
    if e.get("ROADMESH_VISION_TRT_CACHE"):
        s.trt_cache = Path(e["ROADMESH_VISION_TRT_CACHE"])
    return s
