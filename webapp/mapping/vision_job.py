"""The vision job: detection, then the privacy re-check, on frames decoded once.

`VisionStage.process(frames)` runs inside a job's transaction (webapp.jobs.worker), on
the colour pixels the image-check job decoded (`ingest.image_checks` calls it after its
checks), or, for frames that an image-check worker without a detector checked, the `vision`
job (`VisionHandler`, one device per lease) decodes them itself, once.

For each frame still accepted and not yet processed (the rows are locked first, so two
workers never both write one frame; a frame flagged meanwhile is left alone):

1. the detector, batched: map-feature classes become Detection rows (box, score, model
   version and SHA-256, bearing and size-based range from the camera model);
2. the privacy re-check: a face or licence plate the detector still finds is one the
   device did not blur. The server blurs it into a derived JPEG (content-addressed in the
   image store), records the derivation (DerivedImage: source hash, boxes, model), and
   counts the miss for the device (PrivacyTally);
3. `lifecycle.record_processed`: the frame is processed.

All of it commits with the job, or none of it does: a worker killed at any moment leaves
the job due again and nothing half-written; the lease token check in `queue.complete`
stops a worker whose lease expired from committing a second copy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import cv2
import numpy as np
from django.db.models import F
from django.utils import timezone

from vision.camera import intrinsics_for
from vision.detector import Detection as Found
from vision.mapper import CLASS_SIZES_M, PRIVACY_CLASSES, split_label
from vision.privacy import Box, blur_box
from webapp.fleet import lifecycle
from webapp.fleet.models import Device, Frame
from webapp.images import ObjectStore
from webapp.jobs import queue
from webapp.jobs.queue import Lease
from webapp.mapping.models import DerivedImage, Detection, PrivacyTally

logger = logging.getLogger(__name__)

VISION = "vision"  # the job kind: frames of a device checked without a detector (key: device id)
DERIVED_JPEG_QUALITY = 90


class Detector(Protocol):
    """What the stage needs of a detector (vision.detector.YoloDetector)."""

    @property
    def model_version(self) -> str: ...

    @property
    def model_sha256(self) -> str: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Found]]: ...


@dataclass(frozen=True)
class DecodedFrame:
    id: int
    image: np.ndarray  # BGR, full size


@dataclass
class VisionReport:
    frames: int = 0
    detections: int = 0
    derived: int = 0
    faces_missed: int = 0
    plates_missed: int = 0


@dataclass
class VisionStage:
    detector: Detector
    store: ObjectStore
    privacy_conf: float = 0.35  # a face/plate scored at least this is blurred by the server
    feature_conf: float = 0.25
    totals: VisionReport = field(default_factory=VisionReport)

    def process(self, frames: Sequence[DecodedFrame]) -> VisionReport:
        report = VisionReport()
        if not frames:
            return report
        by_id = {f.id: f for f in frames}
        rows = list(
            Frame.objects.select_for_update()
            .filter(pk__in=sorted(by_id), processed_at__isnull=True, state=Frame.State.ACCEPTED)
            .select_related("device")
            .order_by("pk")
        )
        if not rows:
            return report
        found = self.detector.detect([by_id[r.pk].image for r in rows])
        detections: list[Detection] = []
        derived: list[DerivedImage] = []
        tallies: dict[int, list[int]] = {}
        for row, dets in zip(rows, found, strict=True):
            image = by_id[row.pk].image
            h, w = image.shape[:2]
            intr = intrinsics_for(row.intrinsics_ref, w, h)
            private = [
                d for d in dets if d.label in PRIVACY_CLASSES and d.score >= self.privacy_conf
            ]
            for d in dets:
                if d.label in PRIVACY_CLASSES or d.score < self.feature_conf:
                    continue
                bearing, rng = _bearing_range(d, row.heading_deg, intr.fx, intr.fy, intr.cx)
                detections.append(
                    Detection(
                        frame=row,
                        label=d.label,
                        confidence=d.score,
                        x0=d.x1,
                        y0=d.y1,
                        x1=d.x2,
                        y1=d.y2,
                        model_version=self.detector.model_version[:64],
                        model_sha256=self.detector.model_sha256,
                        bearing_deg=bearing,
                        range_m=rng,
                    )
                )
            t = tallies.setdefault(row.device_id, [0, 0, 0, 0])
            t[0] += 1
            if private:
                derived.append(self._derive(row, image, private))
                faces = sum(d.label == "face" for d in private)
                t[1] += 1
                t[2] += faces
                t[3] += len(private) - faces
                report.faces_missed += faces
                report.plates_missed += len(private) - faces
        Detection.objects.bulk_create(detections)
        DerivedImage.objects.bulk_create(derived)
        for device_pk, (n, missed, faces, plates) in tallies.items():
            tally, _ = PrivacyTally.objects.get_or_create(device_id=device_pk)
            PrivacyTally.objects.filter(pk=tally.pk).update(
                frames_checked=F("frames_checked") + n,
                frames_with_misses=F("frames_with_misses") + missed,
                faces_missed=F("faces_missed") + faces,
                plates_missed=F("plates_missed") + plates,
            )
        lifecycle.record_processed([r.pk for r in rows])
        report.frames = len(rows)
        report.detections = len(detections)
        report.derived = len(derived)
        for k in ("frames", "detections", "derived", "faces_missed", "plates_missed"):
            setattr(self.totals, k, getattr(self.totals, k) + getattr(report, k))
        return report

    def _derive(self, row: Frame, image: np.ndarray, private: Sequence[Found]) -> DerivedImage:
        out = image.copy()
        for d in private:
            blur_box(out, Box(d.x1, d.y1, d.x2, d.y2, d.score))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, DERIVED_JPEG_QUALITY])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise RuntimeError("JPEG encoding of a derived image failed")
        sha = self.store.put(buf.tobytes())
        faces = sum(d.label == "face" for d in private)
        return DerivedImage(
            frame=row,
            image_sha256=sha,
            source_sha256=row.image_sha256,
            model_version=self.detector.model_version[:64],
            faces=faces,
            plates=len(private) - faces,
            boxes=[
                {"label": d.label, "score": round(d.score, 4), "box": [d.x1, d.y1, d.x2, d.y2]}
                for d in private
            ],
        )


def _bearing_range(
    d: Found, heading: float | None, fx: float, fy: float, cx: float
) -> tuple[float | None, float | None]:
    group, _ = split_label(d.label)
    size = CLASS_SIZES_M.get(group)
    off = math.degrees(math.atan(((d.x1 + d.x2) / 2 - cx) / fx))
    bearing = None if heading is None else (heading + off) % 360.0
    rng = None
    if size is not None and d.width > 0 and d.height > 0:
        depth = min(fx * size[0] / d.width, fy * size[1] / d.height)
        rng = depth / math.cos(math.radians(off))
    return bearing, rng


def decode_colour(jpeg: bytes) -> np.ndarray | None:
    """One full colour decode (None: the data does not decode)."""
    try:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    return image


@dataclass
class VisionHandler:
    """The `vision` job: a device's accepted frames that no detector has seen yet."""

    stage: VisionStage
    store: ObjectStore
    max_frames: int = 64
    kind: str = VISION
    decodes: int = 0

    def run(self, lease: Lease) -> bool:
        device = Device.objects.filter(device_id=lease.key).first()
        if device is None:
            return False
        ids = list(
            Frame.objects.filter(
                device=device, state=Frame.State.ACCEPTED, processed_at__isnull=True
            )
            .order_by("captured_at", "seq")
            .values_list("id", "image_sha256")[: self.max_frames + 1]
        )
        more = len(ids) > self.max_frames
        frames = []
        for fid, sha in ids[: self.max_frames]:
            try:
                data = self.store.get(sha)
            except KeyError:
                logger.warning("frame %s: image %s is not in the store", fid, sha)
                continue
            self.decodes += 1
            image = decode_colour(data)
            if image is not None:
                frames.append(DecodedFrame(fid, image))
        self.stage.process(frames)
        return more


def sweep(older_than_s: float = 0.0) -> int:
    """Make a `vision` job due for every device with accepted frames no detector has seen
    (checked by an image-check worker without one, or cleared by the audit later)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    keys = set(
        Frame.objects.filter(
            state=Frame.State.ACCEPTED, processed_at__isnull=True, image_checked_at__lte=cutoff
        )
        .values_list("device__device_id", flat=True)
        .distinct()
    )
    queue.enqueue(VISION, keys)
    return len(keys)
