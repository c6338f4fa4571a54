"""The image-check job: each frame decoded once, its pixel checks, its facts kept.

The door commits frames `pending` and makes an `image_check` job due for their device
(`webapp.fleet.lifecycle`). A worker leases one device's job and checks that device's
pending frames in capture order, up to `max_frames` a lease:

* one reduced decode (libjpeg DCT scaling, the door's pixel limits again) per frame;
* the facts other checks read later without decoding: the perceptual hash (and its four
  bands), server-side sharpness, brightness and highlights, a 64x36 thumbnail (the
  audit's camera check), a global place descriptor (the audit's image-vs-place check:
  `imaging.place_descriptor`), and the motion of the picture since the device's previous frame
  (tracked corners, yaw, mean change: the audit's still-picture and turn checks), when
  that frame is at most 5 s older;
* flags: `near_duplicate_image` (a stored frame of another device, or of the same device
  more than 120 s apart, within `near_duplicate_bits` of its pHash), `low_quality`, and
  `undecodable_image` for a JPEG whose header passed but whose data does not decode.

Then `lifecycle.record_image_checks` writes it all and moves each frame out of `pending`,
in the job's transaction (webapp.jobs.worker). A frame that arrived out of order makes the
motion of the already-checked frame after it wrong: that frame is measured again (a
second decode, for out-of-order frames only).

With a `stage` (the vision job, `webapp.mapping.vision_job.VisionStage`: detection, then
the privacy re-check), each frame's JPEG, read from the store once, is also decoded once
in colour at full size, and the stage runs on those pixels in the same transaction, after
the checks, on the frames still accepted. The checks' own reduced grey decode is unchanged
(libjpeg's DCT scaling: about a tenth of a full decode), so their numbers do not move.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Protocol

import numpy as np
from django.db.models import Q

from ingest import fraud
from ingest.imaging import (
    ImageDecodeError,
    facts_of,
    hamming,
    phash_bands,
    place_descriptor,
    reduced_grey,
    thumb_array,
    thumbnail,
    to_signed64,
    visual_motion,
)
from ingest.policy import IntakePolicy
from webapp.fleet import lifecycle
from webapp.fleet.models import Device, Frame
from webapp.images import ObjectStore
from webapp.jobs.queue import Lease
from webapp.mapping.vision_job import DecodedFrame, decode_colour

logger = logging.getLogger(__name__)

VISUAL_MAX_GAP_S = 5.0  # pictures further apart than this are not compared
NEAR_DUPLICATE_CANDIDATES = 200  # frames sharing a pHash band read per frame at most
GREY_CACHE = 64  # reduced decodes kept between leases (the previous frame of each device)


@dataclass
class _Frame:
    id: int
    seq: int
    t: datetime
    lat: float
    lon: float
    sha: str
    checked: bool
    visual_prev: int | None


class FrameStage(Protocol):
    """What runs after the checks on the same decode (the vision job)."""

    def process(self, frames: list[DecodedFrame]) -> object: ...


@dataclass
class ImageCheckHandler:
    """The `image_check` job handler (webapp.jobs.worker.Handler)."""

    store: ObjectStore
    policy: IntakePolicy = field(default_factory=IntakePolicy)
    max_frames: int = 200
    kind: str = lifecycle.IMAGE_CHECK
    stage: FrameStage | None = None
    decodes: int = 0  # JPEG decodes made (a benchmark counts them)
    colour_decodes: int = 0  # full colour decodes for the stage
    _greys: OrderedDict[str, np.ndarray | None] = field(default_factory=OrderedDict)
    _jpegs: dict[str, bytes] = field(default_factory=dict)  # this lease's bytes, for the stage

    def run(self, lease: Lease) -> bool:
        device = Device.objects.filter(device_id=lease.key).first()
        if device is None:
            return False
        pending = self._rows(
            Frame.objects.filter(device=device, image_checked_at__isnull=True).order_by(
                "captured_at", "seq"
            )[: self.max_frames + 1]
        )
        more = len(pending) > self.max_frames
        pending = pending[: self.max_frames]
        if not pending:
            return False
        results: dict[int, lifecycle.ImageChecks] = {}
        facts_by_id: dict[int, tuple[np.ndarray, bytes] | None] = {}
        for row in pending:
            grey = self._grey(row.sha)
            if grey is None:
                results[row.id] = lifecycle.ImageChecks(flags=[_undecodable(row)])
                facts_by_id[row.id] = None
                continue
            facts = facts_of(grey)
            b0, b1, b2, b3 = phash_bands(facts.phash)
            thumb = thumbnail(grey)
            facts_by_id[row.id] = (grey, thumb)
            results[row.id] = lifecycle.ImageChecks(
                facts={
                    "phash": to_signed64(facts.phash),
                    "phash_b0": b0,
                    "phash_b1": b1,
                    "phash_b2": b2,
                    "phash_b3": b3,
                    "server_sharpness": facts.sharpness,
                    "server_brightness": facts.brightness,
                    "server_highlights": facts.highlights,
                    "thumb": thumb,
                    "place_desc": place_descriptor(grey),
                },
                flags=[
                    f.as_json()
                    for f in fraud.check_quality(
                        facts.sharpness, facts.brightness, self.policy.fraud
                    )
                ],
            )
        self._near_duplicates(device, pending, results)
        self._motion(device, pending, results, facts_by_id)
        lifecycle.record_image_checks(results)
        if self.stage is not None:
            self.stage.process(self._colour(pending, facts_by_id))
        self._jpegs.clear()
        return more

    def _colour(
        self, pending: list[_Frame], facts_by_id: dict[int, tuple[np.ndarray, bytes] | None]
    ) -> list[DecodedFrame]:
        out = []
        for row in pending:
            if facts_by_id.get(row.id) is None:
                continue  # undecodable: flagged, nothing to detect
            data = self._jpegs.get(row.sha)
            if data is None:  # its grey came from the cache of an earlier lease
                try:
                    data = self.store.get(row.sha)
                except KeyError:
                    continue
            self.colour_decodes += 1
            image = decode_colour(data)
            if image is not None:
                out.append(DecodedFrame(row.id, image))
        return out

    # -- decoding -------------------------------------------------------------------------
    def _grey(self, sha: str) -> np.ndarray | None:
        if sha in self._greys:
            self._greys.move_to_end(sha)
            return self._greys[sha]
        try:
            self.decodes += 1
            data = self.store.get(sha)
            if self.stage is not None:
                self._jpegs[sha] = data
            grey: np.ndarray | None = reduced_grey(
                data,
                max_pixels=self.policy.max_pixels,
                max_pixels_per_byte=self.policy.max_pixels_per_byte,
            )
        except (KeyError, ImageDecodeError) as exc:
            logger.warning("image %s cannot be decoded: %s", sha, exc)
            grey = None
        self._greys[sha] = grey
        while len(self._greys) > GREY_CACHE:
            self._greys.popitem(last=False)
        return grey

    @staticmethod
    def _rows(qs: object) -> list[_Frame]:
        fields = (
            "id",
            "seq",
            "captured_at",
            "lat",
            "lon",
            "image_sha256",
            "image_checked_at",
            "visual_prev",
        )
        return [
            _Frame(i, s, t, la, lo, sha, chk is not None, vp)
            for i, s, t, la, lo, sha, chk, vp in qs.values_list(*fields)  # type: ignore[attr-defined]
        ]

    # -- near-duplicates of stored pictures -----------------------------------------------
    def _near_duplicates(
        self, device: Device, pending: list[_Frame], results: dict[int, lifecycle.ImageChecks]
    ) -> None:
        pol = self.policy.fraud
        hashes = {r.id: int(results[r.id].facts["phash"]) for r in pending if results[r.id].facts}
        if not hashes:
            return
        bands = [phash_bands(h) for h in hashes.values()]
        query = reduce(
            operator.or_,
            (Q(**{f"phash_b{k}__in": sorted({b[k] for b in bands})}) for k in range(4)),
        )
        limit = NEAR_DUPLICATE_CANDIDATES * len(hashes)
        rows = list(
            Frame.objects.filter(query)
            .exclude(pk__in=list(hashes))
            .values_list(
                "id",
                "device_id",
                "captured_at",
                "phash",
                "device__device_id",
                "phash_b0",
                "phash_b1",
                "phash_b2",
                "phash_b3",
            )[:limit]
        )
        window = timedelta(seconds=pol.near_duplicate_same_device_s)
        by_id = {r.id: r for r in pending}
        for fid, phash in hashes.items():
            fb = phash_bands(phash)
            t = by_id[fid].t
            best: tuple[int, int, str] | None = None
            candidates = [r for r in rows if any(r[5 + k] == fb[k] for k in range(4))]
            for oid, dev_pk, captured, other, name, *_ in candidates[:NEAR_DUPLICATE_CANDIDATES]:
                if other is None or (dev_pk == device.pk and abs(captured - t) < window):
                    continue  # the same car a few seconds apart: similar pictures are expected
                dist = hamming(other, phash)
                if dist <= pol.near_duplicate_bits and (best is None or dist < best[1]):
                    best = (oid, dist, name)
            if best is not None:
                evidence = {
                    "other_frame": best[0],
                    "other_device": best[2],
                    "phash_distance": best[1],
                }
                results[fid].flags.append(
                    fraud.Flag(
                        fraud.Check.NEAR_DUPLICATE_IMAGE,
                        0.9,
                        "a near copy of an image already submitted",
                        evidence,
                    ).as_json()
                )

    # -- motion since the device's previous frame -------------------------------------------
    def _motion(
        self,
        device: Device,
        pending: list[_Frame],
        results: dict[int, lifecycle.ImageChecks],
        facts_by_id: dict[int, tuple[np.ndarray, bytes] | None],
    ) -> None:
        """Each pending frame against the frame just before it; and the already-checked frame
        just after a pending one, if it was measured against another frame (out of order)."""
        first, last = pending[0].t, pending[-1].t
        gap = timedelta(seconds=VISUAL_MAX_GAP_S)
        span = self._rows(
            Frame.objects.filter(
                device=device, captured_at__gte=first - gap, captured_at__lte=last + gap
            ).order_by("captured_at", "seq")
        )
        pending_ids = {r.id for r in pending}
        for prev, cur in itertools.pairwise(span):
            if cur.id not in pending_ids and not (
                prev.id in pending_ids and cur.visual_prev != prev.id
            ):
                continue
            measured = self._pair(prev, cur, facts_by_id)
            if cur.id in results:
                results[cur.id].facts.update(measured)
            else:  # checked before its predecessor arrived: measured again
                results[cur.id] = lifecycle.ImageChecks(facts=measured, checked=False)
        for r in pending:  # the first frame of a device, or after a gap: nothing to compare
            if "visual_prev" not in results[r.id].facts:
                results[r.id].facts.update(_no_motion())

    def _pair(
        self, prev: _Frame, cur: _Frame, facts_by_id: dict[int, tuple[np.ndarray, bytes] | None]
    ) -> dict[str, object]:
        if (cur.t - prev.t).total_seconds() > VISUAL_MAX_GAP_S:
            return _no_motion()
        a = self._decoded(prev, facts_by_id)
        b = self._decoded(cur, facts_by_id)
        if a is None or b is None:
            return _no_motion()
        motion = visual_motion(a[0], b[0])
        change = float(
            np.abs(
                thumb_array(a[1]).astype(np.float32) - thumb_array(b[1]).astype(np.float32)
            ).mean()
            / 255.0
        )
        return {
            "visual_prev": prev.id,
            "visual_flow": motion.flow,
            "visual_points": motion.points,
            "visual_yaw": motion.yaw_deg,
            "visual_change": change,
        }

    def _decoded(
        self, row: _Frame, facts_by_id: dict[int, tuple[np.ndarray, bytes] | None]
    ) -> tuple[np.ndarray, bytes] | None:
        if row.id in facts_by_id:
            return facts_by_id[row.id]
        grey = self._grey(row.sha)
        facts_by_id[row.id] = None if grey is None else (grey, thumbnail(grey))
        return facts_by_id[row.id]


def _no_motion() -> dict[str, object]:
    return {
        "visual_prev": None,
        "visual_flow": None,
        "visual_points": None,
        "visual_yaw": None,
        "visual_change": None,
    }


def _undecodable(row: _Frame) -> dict[str, object]:
    return fraud.Flag(
        fraud.Check.UNDECODABLE_IMAGE,
        1.0,
        "the JPEG's header is valid but its image data does not decode",
        {"image_sha256": row.sha},
    ).as_json()
