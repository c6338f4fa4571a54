"""The periodic track-level audit: whole tracks, image-vs-track motion, device trust scores.

The door (`ingest.intake`) sees one frame and what was stored before it; frames of one
device can arrive out of order and through different workers. The audit walks each
device's frames in capture order, re-runs the motion checks with the full picture, adds
the check that needs two images (the picture must change when the claimed position
moves), merges the flags into Frame.flags, and recomputes every device's trust score with
the evidence operators see. Run it as `roadmesh ingest audit` (cron / systemd timer).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import transaction
from django.utils import timezone

from ingest import fraud
from ingest.imaging import ImageDecodeError, reduced_grey
from ingest.store import ObjectStore
from webapp.fleet.models import Device, Frame

logger = logging.getLogger(__name__)

VISUAL_MAX_GAP_S = 15.0  # compare pictures only of frames this close in time
EXAMPLES_PER_CHECK = 5


@dataclass
class AuditReport:
    devices: int = 0
    frames: int = 0
    newly_flagged: int = 0
    by_check: Counter[str] = field(default_factory=Counter)


@dataclass
class _Row:
    id: int
    seq: int
    t: float
    lat: float
    lon: float
    sha: str
    flags: list[dict[str, object]]
    state: str
    audited: bool

    @property
    def point(self) -> fraud.TrackPoint:
        return fraud.TrackPoint(self.id, self.seq, self.t, self.lat, self.lon)


class Auditor:
    def __init__(self, store: ObjectStore, policy: fraud.FraudPolicy | None = None, *, visual: bool = True) -> None:
        self.store = store
        self.policy = policy or fraud.FraudPolicy()
        self.visual = visual

    def run(self, devices: Iterable[Device] | None = None, *, full: bool = False) -> AuditReport:
        report = AuditReport()
        for device in devices if devices is not None else Device.objects.all().order_by("pk"):
            self.audit_device(device, report, full=full)
            report.devices += 1
        return report

    def audit_device(self, device: Device, report: AuditReport, *, full: bool = False) -> None:
        rows = [
            _Row(i, s, c.timestamp(), la, lo, sha, list(fl or []), st, a is not None)
            for i, s, c, la, lo, sha, fl, st, a in Frame.objects.filter(device=device)
            .order_by("captured_at", "seq")
            .values_list("id", "seq", "captured_at", "lat", "lon", "image_sha256", "flags", "state", "audited_at")
        ]
        pol = self.policy
        grey_cache: dict[str, np.ndarray | None] = {}
        updates: list[tuple[_Row, list[dict[str, object]]]] = []
        back: dict[int, list[fraud.Flag]] = {}
        start = 0
        for i, row in enumerate(rows):
            if row.audited and not full:
                continue
            while rows[start].t < row.t - pol.clone_window_s:
                start += 1
            earlier = [r.point for r in rows[start:i]]
            new = fraud.check_motion(row.point, earlier, pol)
            if not new:
                new += fraud.check_acceleration([r.point for r in rows[max(0, i - 2) : i + 1]], pol)
            stationary = fraud.check_stationary(row.point, [r.point for r in rows[max(0, i - 24) : i]], pol)
            new += stationary
            if stationary:  # the whole run of frames inside the circle is farmed, not only its end
                for j in range(max(0, i - pol.stationary_min_frames + 1), i):
                    back.setdefault(j, []).extend(stationary)
            if self.visual and i > 0 and row.t - rows[i - 1].t <= VISUAL_MAX_GAP_S:
                change = self._change(rows[i - 1].sha, row.sha, grey_cache)
                if change is not None:
                    new += fraud.check_visual_motion(rows[i - 1].point, row.point, change, pol)
            merged = fraud.merge_flags(row.flags, new)
            updates.append((row, merged))
            report.by_check.update(f.check for f in new)
        index = {row.id: k for k, (row, _) in enumerate(updates)}
        for j, flags in back.items():
            k = index.get(rows[j].id)
            if k is None:
                updates.append((rows[j], fraud.merge_flags(rows[j].flags, flags)))
            else:
                updates[k] = (updates[k][0], fraud.merge_flags(updates[k][1], flags))
        now = timezone.now()
        with transaction.atomic():
            for row, merged in updates:
                score = fraud.fraud_score(merged)
                state = row.state
                if score >= pol.flag_score and state != Frame.State.FLAGGED:
                    state = Frame.State.FLAGGED
                    report.newly_flagged += 1
                Frame.objects.filter(pk=row.id).update(flags=merged, fraud_score=score, state=state, audited_at=now)
            report.frames += len(updates)
            self.update_trust(device, now)

    def _change(self, sha_a: str, sha_b: str, cache: dict[str, np.ndarray | None]) -> float | None:
        greys = []
        for sha in (sha_a, sha_b):
            if sha not in cache:
                if len(cache) > 64:
                    cache.clear()
                try:
                    cache[sha] = reduced_grey(self.store.get(sha))
                except (KeyError, ImageDecodeError):
                    logger.warning("image %s missing or unreadable; visual check skipped", sha)
                    cache[sha] = None
            greys.append(cache[sha])
        a, b = greys
        if a is None or b is None:
            return None
        return fraud.image_change(a, b)

    def update_trust(self, device: Device, now: datetime) -> None:
        """trust = 1 - share of flagged frames (a cloned key caps it at 0.1), with the evidence."""
        total = Frame.objects.filter(device=device).count()
        flagged_rows = list(
            Frame.objects.filter(device=device, state=Frame.State.FLAGGED).values_list("id", "seq", "flags")
        )
        by_check: Counter[str] = Counter()
        examples: dict[str, list[dict[str, object]]] = {}
        for fid, seq, flags in flagged_rows:
            for flag in flags or []:
                check = str(flag.get("check"))
                by_check[check] += 1
                if len(examples.setdefault(check, [])) < EXAMPLES_PER_CHECK:
                    examples[check].append({"frame": fid, "seq": seq, "reason": flag.get("reason"), "evidence": flag.get("evidence")})
        trust = 1.0 - (len(flagged_rows) / total if total else 0.0)
        if by_check.get(fraud.Check.CLONED_KEY):
            trust = min(trust, 0.1)
        evidence = {
            "frames": total,
            "flagged": len(flagged_rows),
            "by_check": dict(by_check),
            "examples": examples,
        }
        Device.objects.filter(pk=device.pk).update(trust_score=round(trust, 4), trust_evidence=evidence, trust_updated_at=now)
