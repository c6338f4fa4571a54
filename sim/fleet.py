"""A fleet of simulated devices driving at once: mostly honest, some adversarial, each
labelled in ``fleet.json``. Work is spread over processes; output is deterministic under
a seed (same seed -> identical ground truth and NMEA; frames are rendered deterministically).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sim.conditions import CameraFaults
from sim.drive import DriveSpec, default_start, load_context, plan_drive, record, shift_vector
from sim.world import ATTRIBUTION

logger = logging.getLogger(__name__)

ADVERSARY_KINDS = (
    "gnss_spoofer",
    "replayer",
    "duplicate_farmer",
    "stationary_farmer",
    "loop_camper",
    "cloned_key",
    "bad_camera",
    "shifted_track",
    "shifted_copy",
    "track_thief",
    "late_track_thief",
)
PAIRED = {  # kinds that take two devices: (the other device's detail, this one's)
    "duplicate_farmer": ("original", "copy"),
    "cloned_key": ("original", "clone"),
    "shifted_copy": ("original", "copy"),
    "track_thief": ("victim", "thief"),
    "late_track_thief": ("victim", "thief"),
}
LATE_THIEF_S = 90.0  # how long after the victim drove it the late thief claims its track
# offsets (m) the shifted-track kinds draw from (by the fleet's seed) unless one is named,
# as in `shifted_track@200`
SHIFT_OFFSETS_M = (30.0, 50.0, 100.0, 200.0, 500.0)
ROLE_NOTES = {
    "honest": "drives and records normally",
    "gnss_spoofer": "honest first third; then a teleport, 20 s at 288 km/h, then a smooth fake track elsewhere that the images contradict (see truth/fixes.csv note)",
    "replayer": "second half re-sends the first half's frames and its old GNSS fixes with new timestamps",
    "duplicate_farmer": "two devices upload the same drive: the copy is slightly cropped, re-toned and recompressed, track jittered",
    "stationary_farmer": "parked at the kerb the whole time, still recording and sending",
    "loop_camper": "laps the same few blocks all the time: a circuit of 300-1000 m (out and back along one stretch where no circuit exists), over and over",
    "cloned_key": "two devices with one identity (device_id and key) driving in two places at once",
    "bad_camera": "blurred, obstructed or dark camera",
    "shifted_track": "uploads its own real drive with every fix moved by one constant offset (detail: metres): plausible speeds, no jumps, cells it never drove",
    "shifted_copy": "a pair: the copy uploads the original's pictures (altered like a duplicate farmer's) under a track shifted by a constant offset (detail of the copy: copy@metres)",
    "track_thief": "a pair: the thief uploads its own real pictures under the victim's real GNSS track, live (where the victim is at each moment: a drivable route somewhere else, at plausible speeds)",
    "late_track_thief": "a pair: the thief uploads its own real pictures under the victim's real GNSS track 90 s after the victim drove it (never where the victim is at the same moment): a real, drivable track whose places the victim's pictures show and the thief's do not",
}


@dataclass
class Device:
    dir: str
    device_id: str
    role: str
    detail: str = ""
    pair: str = ""  # the other device of a duplicate/cloned pair
    spec: DriveSpec | None = None
    copy_of: str = ""  # duplicate farmer's copy: rendered with its original

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        d: dict[str, Any] = {
            "dir": self.dir,
            "device_id": self.device_id,
            "role": self.role,
            "adversarial": self.role != "honest",
        }
        if self.detail:
            d["detail"] = self.detail
        if self.pair:
            d["pair"] = self.pair
        if s is not None:
            d.update(
                {
                    "start_time_utc": s.start_utc.isoformat(timespec="milliseconds").replace(
                        "+00:00", "Z"
                    ),
                    "seed": s.seed,
                    "mode": s.mode,
                    "light": s.light,
                }
            )
            if s.shift_m is not None:
                d["shift_m"] = list(s.shift_m)
            if s.faults is not None:
                d["faults"] = {
                    "blur_sigma": s.faults.blur_sigma,
                    "obstruction": s.faults.obstruction,
                    "exposure": s.faults.exposure,
                }
        d["note"] = ROLE_NOTES[self.role]
        return d


@dataclass
class FleetPlan:
    seed: int
    devices: list[Device] = field(default_factory=list)


def plan_fleet(
    n: int,
    minutes: float,
    seed: int,
    adversaries: str = "auto",
    fps: float = 5.0,
    width: int = 1280,
    height: int = 720,
    gnss_hz: float = 1.0,
    light: str = "day",
    start: datetime | None = None,
) -> FleetPlan:
    """Assign roles. adversaries: "auto" (~30 % of devices), "all" (one of each kind),
    "none", or a comma list of kinds. `start`: UTC time of the first device's first frame
    (default: a fixed time derived from the seed)."""
    rng = np.random.default_rng([seed, 100])
    if adversaries == "none":
        kinds: list[str] = []
    elif adversaries == "all":
        kinds = list(ADVERSARY_KINDS)
    elif adversaries == "auto":
        k = round(0.3 * n) if n >= 3 else 0
        order = list(rng.permutation(ADVERSARY_KINDS))
        kinds, used = [], 0
        for kind in order * 3:
            cost = 2 if kind in PAIRED else 1
            if used + cost > k:
                continue
            kinds.append(str(kind))
            used += cost
            if used >= k:
                break
    else:
        kinds = [x.strip() for x in adversaries.split(",") if x.strip()]
        bad = [x for x in kinds if x.partition("@")[0] not in ADVERSARY_KINDS]
        if bad:
            raise ValueError(
                f"unknown adversary kind(s): {', '.join(bad)} (choose from {', '.join(ADVERSARY_KINDS)})"
            )
    offsets: dict[int, float] = {}  # index into kinds -> shift (m)
    for k, x in enumerate(kinds):
        kind, _, off = x.partition("@")
        if off:
            try:
                offsets[k] = float(off)
            except ValueError:
                raise ValueError(f"{x}: the offset after @ must be metres") from None
            if kind not in ("shifted_track", "shifted_copy") or offsets[k] <= 0:
                raise ValueError(
                    f"{x}: only shifted_track and shifted_copy take a positive @offset"
                )
        elif kind in ("shifted_track", "shifted_copy"):
            offsets[k] = float(SHIFT_OFFSETS_M[int(rng.integers(0, len(SHIFT_OFFSETS_M)))])
        kinds[k] = kind
    need = sum(2 if x in PAIRED else 1 for x in kinds)
    if need > n:
        raise ValueError(f"{n} devices cannot hold adversaries {kinds} ({need} devices needed)")
    roles: list[tuple[str, str]] = [("honest", "")] * n
    shift_of: dict[int, float] = {}  # device index -> its track's offset (m)
    slots = list(rng.permutation(n))
    for k, kind in enumerate(kinds):
        if kind in PAIRED:
            a, b = int(slots.pop()), int(slots.pop())
            first, second = PAIRED[kind]
            roles[a] = (kind, f"{first}:{b}")
            roles[b] = (kind, f"{second}:{a}")
            if k in offsets:
                shift_of[b] = offsets[k]
        else:
            i = int(slots.pop())
            roles[i] = (kind, "")
            if k in offsets:
                shift_of[i] = offsets[k]
    base = start if start is not None else default_start(seed)
    plan = FleetPlan(seed)
    for i, (role, _detail) in enumerate(roles):
        dev = f"dev{i:02d}" if n <= 100 else f"dev{i:04d}"
        spec = DriveSpec(
            dev,
            seed * 10007 + i,
            base + timedelta(seconds=7 * i),
            minutes * 60.0,
            fps,
            width,
            height,
            gnss_hz=gnss_hz,
            light=light,
        )
        d = Device(dev, dev, role, spec=spec)
        if role == "gnss_spoofer":
            d.spec = replace(spec, spoof=True)
        elif role == "replayer":
            d.spec = replace(spec, replay=True)
        elif role == "stationary_farmer":
            d.spec = replace(spec, mode="parked")
        elif role == "loop_camper":
            d.spec = replace(spec, mode="loop")
            d.detail = "circuit"
        elif role == "bad_camera":
            which = ("blurred", "obstructed", "dark")[int(rng.integers(0, 3))]
            f = {
                "blurred": CameraFaults(blur_sigma=4.0),
                "obstructed": CameraFaults(obstruction=0.35),
                "dark": CameraFaults(exposure=0.22),
            }[which]
            d.spec = replace(spec, faults=f)
            d.detail = which
        if i in shift_of and d.spec is not None:
            d.spec = replace(d.spec, shift_m=shift_vector(shift_of[i], spec.seed))
            d.detail = f"{shift_of[i]:g}"
        plan.devices.append(d)
    for i, (role, detail) in enumerate(roles):
        if role in PAIRED:
            what, other = detail.split(":")
            d = plan.devices[i]
            d.detail = what if i not in shift_of else f"{what}@{shift_of[i]:g}"
            d.pair = plan.devices[int(other)].dir
            if role in ("track_thief", "late_track_thief") and what == "thief":
                # live: at every moment it claims where the victim is at that moment; late:
                # where the victim was LATE_THIEF_S before
                victim = plan.devices[int(other)].spec
                assert d.spec is not None and victim is not None
                lag = timedelta(seconds=LATE_THIEF_S if role == "late_track_thief" else 0.0)
                d.spec = replace(d.spec, track_of=victim, start_utc=victim.start_utc + lag)
    for d in plan.devices:
        if d.role == "cloned_key" and d.detail == "clone":
            d.device_id = next(o.device_id for o in plan.devices if o.dir == d.pair)
            assert d.spec is not None
            d.spec = replace(d.spec, device_id=d.device_id, key_id=d.device_id)
        if d.role in ("duplicate_farmer", "shifted_copy") and d.detail.startswith("copy"):
            d.copy_of = d.pair
    return plan


_progress: Any = None


def _init_worker(q: Any) -> None:
    global _progress
    _progress = q
    import cv2

    cv2.setNumThreads(1)


def _job(
    args: tuple[str, dict[str, Any], str | None, dict[str, Any] | None, str | None, str],
) -> str:
    out_dir, spec_d, copy_dir, copy_spec_d, world_dir, features_file = args
    spec: DriveSpec = spec_d["spec"]
    ctx = load_context(Path(world_dir) if world_dir else None, features_file)
    sim = plan_drive(ctx, spec)
    copy_to = None
    if copy_dir is not None and copy_spec_d is not None:
        copy_to = (Path(copy_dir), copy_spec_d["device_id"], copy_spec_d["spec"])
    q = _progress

    def tick(n: int) -> None:
        if q is not None:
            q.put(n)

    record(ctx, sim, Path(out_dir), progress=tick, copy_to=copy_to)
    return out_dir


def run_fleet(
    plan: FleetPlan,
    out: Path,
    workers: int | None = None,
    world_dir: Path | None = None,
    show_progress: bool = True,
    features_file: str = "features.geojson",
) -> dict[str, Any]:
    """Render every device's drive. `features_file`: which version of the world's features
    stands in the streets (features_v2.geojson: the later one, for change detection)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "devices").mkdir(exist_ok=True)
    jobs = []
    total = 0
    for d in plan.devices:
        assert d.spec is not None
        total += round(d.spec.duration_s * d.spec.fps)
        if d.copy_of:
            continue  # written by its original's job
        copy = next((o for o in plan.devices if o.copy_of == d.dir), None)
        jobs.append(
            (
                str(out / "devices" / d.dir),
                {"spec": d.spec},
                str(out / "devices" / copy.dir) if copy else None,
                {"device_id": copy.device_id, "spec": copy.spec} if copy else None,
                str(world_dir) if world_dir else None,
                features_file,
            )
        )
    # longest jobs (pairs) first for a better spread over the workers
    jobs.sort(key=lambda j: j[2] is None)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    t0 = time.time()
    # a fresh process serves the workers: a fork of this one would inherit whatever locks its
    # threads (a test's database, OpenCV's pool) held at that moment, and can hang on them
    ctxm = mp.get_context("forkserver")
    q = ctxm.Queue()
    bar = tqdm(total=total, unit="frame", desc="sim fleet", disable=not show_progress)
    with ctxm.Pool(workers, initializer=_init_worker, initargs=(q,)) as pool:
        pending = pool.map_async(_job, jobs, chunksize=1)
        while True:
            try:
                bar.update(q.get(timeout=0.5))
            except queue.Empty:
                pass
            if pending.ready():
                while True:
                    try:
                        bar.update(q.get_nowait())
                    except queue.Empty:
                        break
                break
        pending.get()
    bar.close()
    elapsed = time.time() - t0
    doc = {
        "format": "roadmesh-fleet/1",
        "seed": plan.seed,
        "features": features_file,
        "world": str(world_dir) if world_dir else "sample",
        "minutes": round(max(d.spec.duration_s for d in plan.devices if d.spec) / 60.0, 3),
        "map_attribution": ATTRIBUTION,
        "devices": [d.to_dict() for d in plan.devices],
        "roles": {k: v for k, v in ROLE_NOTES.items()},
    }
    (out / "fleet.json").write_text(json.dumps(doc, indent=2) + "\n")
    return {
        "devices": len(plan.devices),
        "frames": total,
        "seconds": round(elapsed, 1),
        "fps": round(total / max(elapsed, 1e-9), 1),
    }
