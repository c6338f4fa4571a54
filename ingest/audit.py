"""The periodic track-level audit: whole tracks, image-vs-track motion, device trust scores.

The door (`ingest.door`) sees one frame and what was stored before it; frames of one
device can arrive out of order and through different workers. The audit walks each
device's frames in capture order, re-runs the motion checks with the full picture, and
runs the checks over runs of frames on what the image-check job measured and kept (the
picture must change when the claimed position moves, claimed turns must show, a camera
must not stay obstructed): no image is decoded for those. Only the copy check compares
pictures of two devices and decodes them. Flags change through the frame lifecycle
(`webapp.fleet.lifecycle.change_flags`), and every device's trust score is recomputed with
the evidence operators see. Frames whose image checks have not run yet wait for the next
run. Run it as `roadmesh ingest audit` (cron / systemd timer).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import transaction
from django.utils import timezone

from ingest import fraud, tracks
from ingest.imaging import (
    CopyMatch,
    ImageDecodeError,
    block_change,
    camera_stats,
    copy_match,
    orb_features,
    reduced_grey,
    thumb_array,
)
from ingest.mapmatch import HmmMatcher, MapMatcher, check_map_match
from ingest.places import find_place_mismatches, find_shared_tracks
from ingest.roads import RoadNetwork
from webapp.fleet import lifecycle
from webapp.fleet.models import Device, Frame
from webapp.images import ObjectStore

logger = logging.getLogger(__name__)

STATIONARY_LOOKBACK = 200  # frames before this one the stationary check may grow its run over
EXAMPLES_PER_CHECK = 5
CAMERA_LOOKBACK = 60  # earlier frames the camera check looks at together with the new ones
CAMERA_MAX_FRAMES = 300


@dataclass
class AuditReport:
    devices: int = 0
    frames: int = 0
    newly_flagged: int = 0
    # flagged frames returned to `accepted` (an unconfirmed near-duplicate cleared)
    unflagged: int = 0
    by_check: Counter[str] = field(default_factory=Counter)


@dataclass
class _Row:
    id: int
    seq: int
    t: float
    lat: float
    lon: float
    speed: float | None
    flags: list[dict[str, object]]
    audited: bool
    checked: bool  # its image checks ran: the facts below are there
    visual_prev: int | None
    visual_flow: float | None
    visual_points: int | None
    visual_yaw: float | None
    visual_change: float | None

    @property
    def point(self) -> fraud.TrackPoint:
        return fraud.TrackPoint(self.id, self.seq, self.t, self.lat, self.lon, self.speed)


ROW_FIELDS = (
    "id",
    "seq",
    "captured_at",
    "lat",
    "lon",
    "speed_mps",
    "flags",
    "audited_at",
    "image_checked_at",
    "visual_prev",
    "visual_flow",
    "visual_points",
    "visual_yaw",
    "visual_change",
)


class Auditor:
    """`roads`: the region's road network; with it every trip is map matched
    (`ingest.mapmatch`), or pass a `matcher` of your own (the seam: Valhalla, OSRM ...)."""

    def __init__(
        self,
        store: ObjectStore,
        policy: fraud.FraudPolicy | None = None,
        *,
        visual: bool = True,
        roads: RoadNetwork | None = None,
        matcher: MapMatcher | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or fraud.FraudPolicy()
        self.visual = visual
        self.matcher = matcher if matcher is not None else HmmMatcher(roads) if roads else None

    def run(self, devices: Iterable[Device] | None = None, *, full: bool = False) -> AuditReport:
        report = AuditReport()
        audited: list[int] = []
        for device in devices if devices is not None else Device.objects.all().order_by("pk"):
            audited += self.audit_device(device, report, full=full)
            report.devices += 1
        if self.visual and audited:
            self.cross_device(audited, report)
        return report

    def cross_device(self, frame_ids: list[int], report: AuditReport) -> None:
        """Frames compared with other devices' frames: uploads of another device's drive
        (`find_copies`), another device's track claimed and pictures that do not show the
        places they claim (`ingest.places`). The door's pHash near-duplicate flags that the stronger comparison
        does not confirm are cleared: score 0, the door's score, reason and numbers kept as
        evidence. A frame that only such a flag had flagged goes back to `accepted`, and gets
        the vision job an accepted frame has if it has none."""
        found = find_copies(frame_ids, self.store, self.policy)
        shared = find_shared_tracks(frame_ids, self.policy)
        changes: dict[int, lifecycle.FlagChange] = {}
        for fid in set(found.flags) | set(found.cleared) | set(shared):
            add = [f.as_json() for f in (found.flags.get(fid), shared.get(fid)) if f is not None]
            replace = [f.as_json() for f in found.cleared.get(fid, {}).values()]
            changes[fid] = lifecycle.FlagChange(add=add, replace=replace)
            for f in (found.flags.get(fid), shared.get(fid)):
                if f is not None:
                    report.by_check[f.check] += 1
        result = lifecycle.change_flags(changes, audited=True)
        report.newly_flagged += len(result.flagged)
        report.unflagged += len(result.cleared)
        # then the places, against what is known there now: accepted frames only (the
        # copies and stolen tracks just found are no longer what a place looks like)
        mismatched = find_place_mismatches(frame_ids, self.policy)
        for f in mismatched.values():
            report.by_check[f.check] += 1
        more = {fid: lifecycle.FlagChange(add=[f.as_json()]) for fid, f in mismatched.items()}
        result = lifecycle.change_flags(more, audited=True)
        report.newly_flagged += len(result.flagged)
        now = timezone.now()
        touched = set(
            Frame.objects.filter(pk__in=list(changes) + list(more)).values_list(
                "device_id", flat=True
            )
        )
        for device in Device.objects.filter(pk__in=touched):
            self.update_trust(device, now)

    def audit_device(self, device: Device, report: AuditReport, *, full: bool = False) -> list[int]:
        """Audit one device's track; returns the ids of the frames it looked at anew."""
        rows = [
            _Row(
                i, s, c.timestamp(), la, lo, sp, list(fl or []), a is not None, chk is not None, *v
            )
            for i, s, c, la, lo, sp, fl, a, chk, *v in Frame.objects.filter(device=device)
            .order_by("captured_at", "seq")
            .values_list(*ROW_FIELDS)
        ]
        pol = self.policy
        points = [r.point for r in rows]
        new_by_row: dict[int, list[fraud.Flag]] = {}
        yaw: list[float | None] = [
            r.visual_yaw if i and r.checked and r.visual_prev == rows[i - 1].id else None
            for i, r in enumerate(rows)
        ]
        jumps: dict[int, fraud.Flag] = {}
        still: dict[int, list[fraud.Flag]] = {}
        # the frames looked at anew: not audited yet, and their image checks done
        fresh = [i for i, r in enumerate(rows) if r.checked and (full or not r.audited)]
        fresh_set = set(fresh)
        thumbs = self._thumbs(rows, fresh) if self.visual else {}
        start = 0
        for i, row in enumerate(rows):
            jumps.update((i, f) for f in _stored_jumps(row.flags))
            if i not in fresh_set:
                continue
            while rows[start].t < row.t - pol.clone_window_s:
                start += 1
            new = fraud.check_motion(row.point, points[start:i], pol)
            if not new:
                new += fraud.check_acceleration(points[max(0, i - 2) : i + 1], pol)
            if not new and i:
                new += fraud.check_kinematics(points[i - 1], row.point, pol)
            jumps.update((i, f) for f in new if f.check in JUMPS)
            stationary = fraud.check_stationary(
                row.point, points[max(0, i - STATIONARY_LOOKBACK) : i], pol
            )
            new += stationary
            if stationary:  # the whole run of frames inside the circle is farmed, not only its end
                run = int(stationary[0].evidence["frames"])
                for j in range(max(0, i - run + 1), i):
                    new_by_row.setdefault(j, []).extend(stationary)
            if self.visual:
                still[i] = self._visual(rows, i, thumbs)
            new_by_row.setdefault(i, []).extend(new)
        for j, flags in _still_runs(points, still, pol).items():
            new_by_row.setdefault(j, []).extend(flags)
        cloned = sorted(i for i, f in jumps.items() if f.check == fraud.Check.CLONED_KEY)
        track_level = [
            tracks.check_after_teleport(points, jumps, pol),
            tracks.check_novelty(points, pol),
            tracks.check_clone_period(points, cloned, pol),
        ]
        if self.visual:
            track_level.append(tracks.check_visual_turns(points, yaw, pol))
            if fresh:
                track_level.append(self._camera(rows, fresh))
        if self.matcher is not None and fresh:
            touched = [
                (a, b) for a, b in tracks.trips(points, pol) if any(a <= i < b for i in fresh)
            ]
            track_level.append(check_map_match(points, touched, self.matcher, pol)[0])
        for by_index in track_level:
            for j, flag in by_index.items():
                new_by_row.setdefault(j, []).append(flag)
        changes = {
            rows[j].id: lifecycle.FlagChange(add=[f.as_json() for f in new])
            for j, new in new_by_row.items()
            if new
        }
        for new in new_by_row.values():
            report.by_check.update(f.check for f in new)
        audited = [rows[i].id for i in fresh]
        with transaction.atomic():
            result = lifecycle.change_flags(changes, audited=audited)
            lifecycle.mark_audited([fid for fid in audited if fid not in changes])
            report.newly_flagged += len(result.flagged)
            report.frames += len(new_by_row)
            self.update_trust(device, timezone.now())
        return audited

    def _camera(self, rows: list[_Row], fresh: list[int]) -> dict[int, fraud.Flag]:
        """The device-level camera check over its new frames and up to CAMERA_LOOKBACK before
        them, on the thumbnails and facts the image-check job kept (no decode), in windows of
        at most CAMERA_MAX_FRAMES frames: each window is judged and flagged on its own (a
        short last window joins the one before)."""
        lo = max(0, fresh[0] - CAMERA_LOOKBACK)
        ids = [r.id for r in rows[lo:]]
        kept = {
            fid: (thumb, sharp, bright, high)
            for fid, thumb, sharp, bright, high in Frame.objects.filter(
                pk__in=ids, thumb__isnull=False
            ).values_list(
                "id", "thumb", "server_sharpness", "server_brightness", "server_highlights"
            )
        }
        bounds = [*range(lo, len(rows), CAMERA_MAX_FRAMES), len(rows)]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < self.policy.camera_min_frames * 3:
            bounds.pop(-2)
        out: dict[int, fraud.Flag] = {}
        for a, b in itertools.pairwise(bounds):
            found = [kept[r.id] for r in rows[a:b] if r.id in kept and kept[r.id][0] is not None]
            stats = camera_stats(
                [thumb_array(bytes(k[0] or b"")) for k in found],
                [float(k[1] or 0.0) for k in found],
                [float(k[2] or 0.0) for k in found],
                [float(k[3] or 0.0) for k in found],
            )
            points = [r.point for r in rows[a:b]]
            flag = fraud.camera_fault(stats, tracks.path_m(points, self.policy), self.policy)
            if flag is not None:
                out.update(dict.fromkeys(range(a, b), flag))
        return out

    def _thumbs(self, rows: list[_Row], fresh: list[int]) -> dict[int, bytes]:
        """The kept thumbnails of the fresh frames whose motion falls back to picture change,
        and of the frames before them."""
        pol = self.policy
        need: set[int] = set()
        for i in fresh:
            r = rows[i]
            if i and r.visual_prev == rows[i - 1].id and r.visual_flow is not None:
                if (r.visual_points or 0) < pol.static_min_corners or (
                    r.visual_flow <= pol.static_max_flow
                ):
                    need.update((r.id, rows[i - 1].id))
        if not need:
            return {}
        rows_t = Frame.objects.filter(pk__in=list(need), thumb__isnull=False).values_list(
            "id", "thumb"
        )
        return {fid: bytes(t or b"") for fid, t in rows_t}

    def _visual(self, rows: list[_Row], i: int, thumbs: dict[int, bytes]) -> list[fraud.Flag]:
        """The motion the image-check job measured between this frame and the one before.
        Where too few corners could be tracked (an empty country road: sky and tarmac), or
        they did not move, the picture's change decides: the largest change of any block of
        the two thumbnails (`imaging.block_change`). A moving camera changes some part of the
        picture (the lane marks, the verge beside it) even where the mean change is tiny; a
        still picture changes nowhere beyond its sensor noise."""
        pol = self.policy
        row = rows[i]
        if i == 0 or row.visual_prev != rows[i - 1].id or row.visual_flow is None:
            return []
        a, b = rows[i - 1].point, row.point
        points = row.visual_points or 0
        new = fraud.check_visual_flow(a, b, row.visual_flow, points, pol)
        if points < pol.static_min_corners or row.visual_flow <= pol.static_max_flow:
            ta, tb = thumbs.get(rows[i - 1].id), thumbs.get(row.id)
            if ta is not None and tb is not None:
                change = block_change(thumb_array(ta), thumb_array(tb))
                new += fraud.check_visual_motion(a, b, change, pol)
        return new

    def update_trust(self, device: Device, now: datetime) -> None:
        """trust = 1 - share of flagged frames (a cloned key caps it at 0.1), with the evidence."""
        total = Frame.objects.filter(device=device).count()
        flagged_rows = list(
            Frame.objects.filter(device=device, state=Frame.State.FLAGGED).values_list(
                "id", "seq", "flags"
            )
        )
        by_check: Counter[str] = Counter()
        examples: dict[str, list[dict[str, object]]] = {}
        for fid, seq, flags in flagged_rows:
            for flag in flags or []:
                check = str(flag.get("check"))
                by_check[check] += 1
                if len(examples.setdefault(check, [])) < EXAMPLES_PER_CHECK:
                    examples[check].append(
                        {
                            "frame": fid,
                            "seq": seq,
                            "reason": flag.get("reason"),
                            "evidence": flag.get("evidence"),
                        }
                    )
        trust = 1.0 - (len(flagged_rows) / total if total else 0.0)
        if by_check.get(fraud.Check.CLONED_KEY):
            trust = min(trust, 0.1)
        evidence = {
            "frames": total,
            "flagged": len(flagged_rows),
            "by_check": dict(by_check),
            "examples": examples,
        }
        Device.objects.filter(pk=device.pk).update(
            trust_score=round(trust, 4), trust_evidence=evidence, trust_updated_at=now
        )


def _still_runs(
    points: list[fraud.TrackPoint], still: dict[int, list[fraud.Flag]], pol: fraud.FraudPolicy
) -> dict[int, list[fraud.Flag]]:
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
            out.append(
                fraud.Flag(
                    str(f["check"]),
                    float(str(f.get("score", 0))),
                    str(f.get("reason", "")),
                    dict(ev) if isinstance(ev, dict) else {},
                )
            )
    return out


# -- uploads of another device's drive ---------------------------------------------------------
@dataclass
class Copies:
    flags: dict[int, fraud.Flag] = field(default_factory=dict)  # frame id -> duplicate_drive flag
    cleared: dict[int, dict[str, fraud.Flag]] = field(
        default_factory=dict
    )  # frame id -> check -> score-0 flag


@dataclass(frozen=True)
class _Near:
    id: int
    device: int
    device_name: str
    t: float
    received: float
    lat: float
    lon: float
    heading: float | None
    sha: str
    flags: tuple[dict[str, object], ...]


COPY_CANDIDATES = 40  # other devices' frames compared with one frame at most


def find_copies(frame_ids: list[int], store: ObjectStore, pol: fraud.FraudPolicy) -> Copies:
    """Frames that are another device's pictures re-uploaded (cropped, re-toned, re-encoded).

    Each frame is compared with other devices' frames claimed within `copy_radius_m` and
    `copy_max_heading_deg` (ingest.imaging.copy_match). A pair of devices with
    `copy_min_frames` matched frames is one device uploading the other's drive; the device
    whose matched frames reached the server later is the copier, and every frame of its
    trips that hold a match is flagged, with the pairs as evidence. A door pHash
    near-duplicate of another device that the comparison does not confirm is cleared."""
    feats = _Features(store)
    rows = {r.id: r for r in _near_rows(Frame.objects.filter(pk__in=frame_ids))}
    matches: dict[tuple[int, int], dict[tuple[int, int], CopyMatch]] = {}
    near: dict[int, _Near] = dict(rows)
    checked: dict[tuple[int, int], CopyMatch] = {}
    for r in rows.values():
        dlat = pol.copy_radius_m / 111_000.0
        dlon = dlat / max(0.1, np.cos(np.radians(r.lat)))
        cands = _near_rows(
            Frame.objects.filter(
                lat__range=(r.lat - dlat, r.lat + dlat), lon__range=(r.lon - dlon, r.lon + dlon)
            ).exclude(device_id=r.device)[:COPY_CANDIDATES]
        )
        linked = _near_duplicate_of(r)  # the image checks' pHash match: any place, any time
        if linked is not None and linked not in {c.id for c in cands}:
            cands += [
                c for c in _near_rows(Frame.objects.filter(pk=linked)) if c.device != r.device
            ]
        for c in cands:
            near.setdefault(c.id, c)
            placed = fraud.distance_m(
                r.lat, r.lon, c.lat, c.lon
            ) <= pol.copy_radius_m and _same_way(r, c, pol)
            if not placed and c.id != linked:
                continue
            key = (min(r.id, c.id), max(r.id, c.id))
            if key not in checked:
                checked[key] = feats.compare(r.sha, c.sha)
            m = checked[key]
            if m.detail_ncc >= pol.copy_min_ncc and m.inliers >= pol.copy_min_inliers:
                a, b = near[key[0]], near[key[1]]
                matches.setdefault((min(a.device, b.device), max(a.device, b.device)), {})[key] = m
    out = Copies()
    copier: dict[tuple[int, int], int] = {}  # a copying pair of devices -> the one that copies
    for (da, db), pairs in matches.items():
        side = {d: [near[i] for k in pairs for i in k if near[i].device == d] for d in (da, db)}
        # Matched *pictures*, counted once on each side: a picture sent twice (a replay of
        # it, byte for byte) or matched by two frames of the other device is one picture.
        pictures = min(len({n.sha for n in side[d]}) for d in (da, db))
        if pictures < pol.copy_min_frames:
            continue
        late = max((da, db), key=lambda d: float(np.median([n.received for n in side[d]])))
        other = db if late == da else da
        copier[(da, db)] = late
        examples = [
            {
                "frame": near[k[0] if near[k[0]].device == late else k[1]].id,
                "other_frame": near[k[1] if near[k[0]].device == late else k[0]].id,
                "detail_ncc": round(m.detail_ncc, 3),
                "inliers": m.inliers,
            }
            for k, m in list(pairs.items())[:5]
        ]
        apart = [
            fraud.distance_m(near[i].lat, near[i].lon, near[j].lat, near[j].lon) for i, j in pairs
        ]
        evidence = {
            "other_device": side[other][0].device_name,
            "matched_frames": pictures,
            # where the copies claim to be, from where the pictures were taken (a copy under a
            # shifted track claims other places than its pictures show)
            "median_claimed_apart_m": round(float(np.median(apart)), 1),
            "examples": examples,
        }
        flag = fraud.Flag(
            fraud.Check.DUPLICATE_DRIVE,
            0.9,
            f"{pictures} pictures are another device's, re-uploaded",
            evidence,
        )
        track = _near_rows(Frame.objects.filter(device_id=late).order_by("captured_at", "seq"))
        points = [fraud.TrackPoint(n.id, 0, n.t, n.lat, n.lon) for n in track]
        hit = {n.id for n in side[late]}
        for start, end in tracks.trips(points, pol):
            if any(points[k].frame_id in hit for k in range(start, end)):
                for k in range(start, end):
                    out.flags[track[k].id] = flag
    for r in rows.values():
        cleared = _unconfirmed_near_duplicate(r, near, checked, feats, copier, pol)
        if cleared is not None and r.id not in out.flags:
            out.cleared.setdefault(r.id, {})[fraud.Check.NEAR_DUPLICATE_IMAGE] = cleared
    return out


def _unconfirmed_near_duplicate(
    r: _Near,
    near: dict[int, _Near],
    checked: dict[tuple[int, int], CopyMatch],
    feats: _Features,
    copier: dict[tuple[int, int], int],
    pol: fraud.FraudPolicy,
) -> fraud.Flag | None:
    """The score-0 replacement of the door's pHash near-duplicate flag on `r`, when the audit
    does not confirm it: another device's frame, unless the two devices are a copying pair
    and `r`'s device is the copier (one matching picture proves nothing: two cars at one
    spot can take near-identical ones; and the victim's pictures look like the copies of its
    own drive that reached the server first); the same device's frame, unless its fine
    detail matches (a re-sent picture)."""
    door = next(
        (
            f
            for f in r.flags
            if f.get("check") == fraud.Check.NEAR_DUPLICATE_IMAGE
            and float(str(f.get("score", 0))) > 0
        ),
        None,
    )
    if door is None:
        return None
    ev = door.get("evidence")
    other_id = ev.get("other_frame") if isinstance(ev, dict) else None
    if not isinstance(ev, dict) or not isinstance(other_id, int):
        return None
    o = near.get(other_id) or next(iter(_near_rows(Frame.objects.filter(pk=other_id))), None)
    if o is None:
        return None
    m = checked.get((min(r.id, o.id), max(r.id, o.id))) or feats.compare(r.sha, o.sha)
    if o.device == r.device:
        # The same picture again is a re-sent one only when it claims another place: a car
        # standing at one spot for minutes takes the same picture, honestly.
        moved = fraud.distance_m(r.lat, r.lon, o.lat, o.lon) > pol.gnss_noise_m
        if m.detail_ncc >= pol.copy_min_ncc and moved:
            return None
    elif copier.get((min(r.device, o.device), max(r.device, o.device))) == r.device:
        return None
    return fraud.Flag(
        fraud.Check.NEAR_DUPLICATE_IMAGE,
        0.0,
        "cleared by the audit: not confirmed as a copy",
        {
            **ev,
            "door_score": door.get("score"),
            "door_reason": door.get("reason"),
            "detail_ncc": round(m.detail_ncc, 3),
            "inliers": m.inliers,
        },
    )


def _near_duplicate_of(r: _Near) -> int | None:
    """The frame the image checks found `r` a near copy of (its pHash flag), if any."""
    for f in r.flags:
        if f.get("check") == fraud.Check.NEAR_DUPLICATE_IMAGE:
            ev = f.get("evidence")
            other = ev.get("other_frame") if isinstance(ev, dict) else None
            if isinstance(other, int):
                return other
    return None


def _same_way(a: _Near, b: _Near, pol: fraud.FraudPolicy) -> bool:
    if a.heading is None or b.heading is None:
        return True
    return abs((a.heading - b.heading + 180) % 360 - 180) <= pol.copy_max_heading_deg


def _near_rows(qs: object) -> list[_Near]:
    fields = (
        "id",
        "device_id",
        "device__device_id",
        "captured_at",
        "received_at",
        "lat",
        "lon",
        "heading_deg",
        "image_sha256",
        "flags",
    )
    return [
        _Near(i, d, dn, c.timestamp(), rc.timestamp(), la, lo, h, sha, tuple(fl or []))
        for i, d, dn, c, rc, la, lo, h, sha, fl in qs.values_list(*fields)  # type: ignore[attr-defined]
    ]


class _Features:
    """Reduced grey decodes and ORB features of the frames compared in one audit run."""

    def __init__(self, store: ObjectStore, size: int = 4_000) -> None:
        self.store = store
        self.size = size
        self.items: dict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None]] | None] = {}

    def get(self, sha: str) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None]] | None:
        if sha not in self.items:
            if len(self.items) >= self.size:
                self.items.pop(next(iter(self.items)))
            try:
                grey = reduced_grey(self.store.get(sha))
                self.items[sha] = (grey, orb_features(grey))
            except (KeyError, ImageDecodeError):
                logger.warning("image %s missing or unreadable; copy check skipped", sha)
                self.items[sha] = None
        return self.items[sha]

    def compare(self, a: str, b: str) -> CopyMatch:
        fa, fb = self.get(a), self.get(b)
        if fa is None or fb is None:
            return CopyMatch(0, 0.0)
        return copy_match(fa[0], fb[0], fa[1], fb[1])
