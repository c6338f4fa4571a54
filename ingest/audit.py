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
from ingest.imaging import ImageDecodeError, reduced_grey, visual_motion
from ingest.store import ObjectStore
from webapp.fleet.models import Device, Frame

logger = logging.getLogger(__name__)

VISUAL_MAX_GAP_S = 5.0
STATIONARY_LOOKBACK = 200  # frames before this one the stationary check may grow its run over  # compare pictures only of frames this close in time
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
        points = [r.point for r in rows]
        greys = _GreyCache(self.store)
        new_by_row: dict[int, list[fraud.Flag]] = {}
        yaw: list[float | None] = [None] * len(rows)
        jumps: dict[int, fraud.Flag] = {}
        still: dict[int, list[fraud.Flag]] = {}
        start = 0
        for i, row in enumerate(rows):
            jumps.update((i, f) for f in _stored_jumps(row.flags))
            if row.audited and not full:
                continue
            while rows[start].t < row.t - pol.clone_window_s:
                start += 1
            new = fraud.check_motion(row.point, points[start:i], pol)
            if not new:
                new += fraud.check_acceleration(points[max(0, i - 2) : i + 1], pol)
            jumps.update((i, f) for f in new if f.check in JUMPS)
            stationary = fraud.check_stationary(row.point, points[max(0, i - STATIONARY_LOOKBACK) : i], pol)
            new += stationary
            if stationary:  # the whole run of frames inside the circle is farmed, not only its end
                run = int(stationary[0].evidence["frames"])
                for j in range(max(0, i - run + 1), i):
                    new_by_row.setdefault(j, []).extend(stationary)
            if self.visual:
                still[i] = self._visual(rows, i, greys, yaw)
            new_by_row.setdefault(i, []).extend(new)
        for j, flags in _still_runs(points, still, pol).items():
            new_by_row.setdefault(j, []).extend(flags)
        track_level = [fraud.check_after_teleport(points, jumps, pol), fraud.check_low_novelty(points, pol)]
        if self.visual:
            track_level.append(fraud.check_visual_turns(points, yaw, pol))
        for by_index in track_level:
            for j, flag in by_index.items():
                new_by_row.setdefault(j, []).append(flag)
        now = timezone.now()
        with transaction.atomic():
            for j, new in sorted(new_by_row.items()):
                row = rows[j]
                merged = fraud.merge_flags(row.flags, new)
                report.by_check.update(f.check for f in new)
                score = fraud.fraud_score(merged)
                state = row.state
                if score >= pol.flag_score and state != Frame.State.FLAGGED:
                    state = Frame.State.FLAGGED
                    report.newly_flagged += 1
                Frame.objects.filter(pk=row.id).update(flags=merged, fraud_score=score, state=state, audited_at=now)
            report.frames += len(new_by_row)
            self.update_trust(device, now)

    def _visual(self, rows: list[_Row], i: int, greys: _GreyCache, yaw: list[float | None]) -> list[fraud.Flag]:
        """Checks on the pictures: obstruction, and the motion between this frame and the one before."""
        pol = self.policy
        grey = greys.get(rows[i].sha)
        if grey is None:
            return []
        new: list[fraud.Flag] = []
        if i == 0 or rows[i].t - rows[i - 1].t > VISUAL_MAX_GAP_S:
            return new
        prev = greys.get(rows[i - 1].sha)
        if prev is None:
            return new
        a, b = rows[i - 1].point, rows[i].point
        new += fraud.check_visual_motion(a, b, fraud.image_change(prev, grey), pol)
        motion = visual_motion(prev, grey)
        yaw[i] = motion.yaw_deg
        new += fraud.check_visual_flow(a, b, motion.flow, motion.points, pol)
        return new

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


def _still_runs(points: list[fraud.TrackPoint], still: dict[int, list[fraud.Flag]], pol: fraud.FraudPolicy) -> dict[int, list[fraud.Flag]]:
    """Keep the picture-did-not-move flags of runs whose claimed net displacement reaches
    `static_run_min_m`: a stopped honest car's GNSS wanders a few metres, a fake track leaves."""
    out: dict[int, list[fraud.Flag]] = {}
    run: list[int] = []
    for i in [*sorted(k for k, v in still.items() if v), -1]:
        if run and (i != run[-1] + 1):
            a, b = points[run[0] - 1], points[run[-1]]
            if fraud.distance_m(a.lat, a.lon, b.lat, b.lon) >= pol.static_run_min_m:
                for k in run:
                    out[k] = still[k]
            run = []
        if i >= 0:
            run.append(i)
    return out


JUMPS = (fraud.Check.TELEPORT, fraud.Check.IMPOSSIBLE_SPEED, fraud.Check.CLONED_KEY)


def _stored_jumps(flags: list[dict[str, object]]) -> list[fraud.Flag]:
    """Teleport / impossible-speed flags the door or an earlier audit stored on a frame."""
    out = []
    for f in flags:
        if f.get("check") in JUMPS:
            ev = f.get("evidence")
            out.append(fraud.Flag(str(f["check"]), float(str(f.get("score", 0))), str(f.get("reason", "")),
                                  dict(ev) if isinstance(ev, dict) else {}))
    return out


class _GreyCache:
    """Reduced grey decodes of a device's latest images (a frame is compared with the one before)."""

    def __init__(self, store: ObjectStore, size: int = 8) -> None:
        self.store = store
        self.size = size
        self.items: dict[str, np.ndarray | None] = {}

    def get(self, sha: str) -> np.ndarray | None:
        if sha not in self.items:
            if len(self.items) >= self.size:
                self.items.pop(next(iter(self.items)))
            try:
                self.items[sha] = reduced_grey(self.store.get(sha))
            except (KeyError, ImageDecodeError):
                logger.warning("image %s missing or unreadable; visual checks skipped", sha)
                self.items[sha] = None
        return self.items[sha]
