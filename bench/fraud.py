"""Fraud checks on the simulator's adversarial fleet: share of fraudulent and honest frames flagged.

    python bench/fraud.py [--devices 16] [--minutes 6] [--seed 5] [--fleet DIR] [--no-privacy]

Six minutes is the default: a loop camper cannot be told from an honest drive in two (it
has not come round yet); rendering that fleet takes ~15 min on 2 cores, the bench ~4 min.

1. `roadmesh sim fleet --adversaries all` renders the fleet (one device of every adversary
   kind, the rest honest) with capture times a few hours ago; it is kept under
   out/bench-fraud/ and reused by later runs with the same arguments.
2. Each device's drive becomes the frames its device software would publish, built from
   the edge pipeline's own stages (geotag -> sample -> quality -> privacy -> JPEG -> sign).
   Honest devices, the loop camper, the GNSS spoofer (its receiver lies, its software is
   stock), both duplicate-farmer devices and both cloned-key devices run the stock
   pipeline with its default sampling. Cheating software differs where the cheat needs it:
   the stationary farmer sends one parked frame every 2 s (the stock sampler would send
   none), the replayer re-sends its first half's frames with new timestamps, the bad
   camera has its quality gate removed, the clone numbers its frames from 1,000,000 (so
   they do not collide with the original's), the duplicate copy publishes each stolen
   frame 30 s after the original was captured at the earliest.
3. Every frame goes through the real door (ingest.door, SQLite in a temp dir) in arrival
   order across the fleet, with the image-check job (ingest.image_checks, each frame
   decoded once) keeping up every `CHECK_EVERY` frames as a worker does, then the periodic
   audit (ingest.audit) runs once.
4. Scoring, per frame, against fleet.json and truth/fixes.csv. A *fraudulent frame* is a
   frame that carries its device's cheat: every frame of the stationary farmer, the loop
   camper, the bad camera, the duplicate copy and both cloned-key devices (one identity in
   two places: neither side's frames can be trusted); the replayer's re-sent frames; the
   GNSS spoofer's frames from its first spoofed fix on. *Honest frames* are those of the
   honest devices and of the duplicate farmer's original (the victim, an honest drive).
   The spoofer's honest first third is neither. A frame counts as flagged when it was
   stored `flagged` or rejected. A type is caught when 90 % of its fraudulent frames are.
   The share over every frame an adversarial device sent is printed too.

Last line: `RESULT fraud_flagged=<x> honest_flagged=<x> types_caught=<k>/<n>`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import protocol  # noqa: E402
from edge.identity import DeviceIdentity, MqttLogin  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from edge.pipeline import Pipeline, Prepared, build_frame  # noqa: E402
from edge.replay import open_recording  # noqa: E402
from edge.settings import EdgeSettings  # noqa: E402
from vision.privacy import Box, Redactor  # noqa: E402

CAUGHT_SHARE = 0.95  # a type counts as caught when this share of its fraudulent frames is flagged (on every world)
FARM_EVERY = 10  # the stationary farmer sends every 10th video frame (one every 2 s at 5 fps)
CLONE_SEQ0 = 1_000_000
COPY_DELAY_S = 30.0
CHECK_EVERY = 50  # the image-check worker catches up after this many frames reach the door


@dataclass
class Sent:
    """One frame a device published, with what the bench knows about it."""

    arrival: float  # unix seconds: the order frames reach the door
    device_dir: str
    role: str
    frame: protocol.Frame
    cheat: bool  # carries its device's cheat (see the module docstring)
    honest: bool  # counts in the honest false-positive rate


class _Collect(Pipeline):
    """The stock pipeline, but the signed-frame step is the bench's: kept frames land in `.kept`."""

    def __init__(
        self, settings: EdgeSettings, identity: DeviceIdentity, redactor: Redactor, *, sample: bool
    ) -> None:
        super().__init__(
            settings, identity, protocol.generate_private_key(), _NO_OUTBOX, redactor, sample=sample
        )
        self.kept: list[Prepared] = []

    def _enqueue(self, p: Prepared) -> None:
        self.kept.append(p)


_NO_OUTBOX: Outbox = None  # type: ignore[assignment]  # _Collect never touches the outbox


class _NoDetector:
    def detect(self, image: np.ndarray) -> list[Box]:
        return []


# -- 1. the fleet ------------------------------------------------------------------------------
ADVERSARIES = (
    "gnss_spoofer,replayer,duplicate_farmer,stationary_farmer,loop_camper,cloned_key,bad_camera,"
    "shifted_track@{shift},shifted_copy@{copy_shift},track_thief,late_track_thief"
)


def fleet_dir(world: str, devices: int, minutes: float, seed: int, fps: float = 5.0) -> Path:
    from sim.worlds import name_of

    rate = "" if fps == 5.0 else f"-f{fps:g}"
    return (
        REPO
        / "out"
        / f"bench-fraud-{name_of(world)}"
        / f"fleet-d{devices}-m{minutes:g}{rate}-s{seed}"
    )


def resolve_world(world: str) -> Path:
    from sim.worlds import resolve

    return resolve(world).resolve()


def fleet_args(fleet: Path) -> dict[str, Any]:
    """What an existing fleet was made with (its fleet.json and manifests)."""
    doc = json.loads((fleet / "fleet.json").read_text())
    first = json.loads((fleet / "devices" / doc["devices"][0]["dir"] / "manifest.json").read_text())
    return {
        "devices": len(doc["devices"]),
        "minutes": round(int(first["frame_count"]) / float(first["fps"]) / 60.0, 3),
        "seed": int(doc["seed"]),
        "world": doc.get("world"),
    }


def ensure_fleet(
    world: str,
    devices: int,
    minutes: float,
    seed: int,
    adversaries: str,
    out: Path,
    fps: float = 5.0,
) -> Path:
    if (out / "fleet.json").exists():
        return out
    start = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = [
        sys.executable,
        "-m",
        "roadmesh.cli",
        "sim",
        "fleet",
        "--world",
        world,
        "--devices",
        str(devices),
        "--minutes",
        f"{minutes:g}",
        "--seed",
        str(seed),
        "--adversaries",
        adversaries,
        "--fps",
        f"{fps:g}",
        "--start",
        start,
        "--out",
        str(out),
    ]
    print("rendering the fleet: " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return out


# -- 2. what each device publishes ------------------------------------------------------------
VICTIM_ROLES = {
    "duplicate_farmer": "original",
    "shifted_copy": "original",
    "track_thief": "victim",
    "late_track_thief": "victim",
}


def _is_victim(role: str, detail: str) -> bool:
    """The honest half of a pair: the drive a duplicate farmer or shifted copy re-uploads,
    the track a thief claims."""
    return VICTIM_ROLES.get(role) == detail


def _spoof_start(drive: Path) -> float | None:
    """Unix time of the first spoofed fix (truth/fixes.csv note), or None."""
    with (drive / "truth" / "fixes.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row.get("note") in ("teleport", "impossible_speed", "fake_track"):
                return float(row["t_s"]) + _start(drive).timestamp()
    return None


def _start(drive: Path) -> datetime:
    from edge.sources import manifest_start, read_manifest

    return manifest_start(read_manifest(drive))


def device_frames(fleet: Path, dev: dict[str, Any], redactor: Redactor) -> list[Sent]:
    drive = fleet / "devices" / dev["dir"]
    role, detail = dev["role"], dev.get("detail", "")
    rec = open_recording(drive)
    manifest = json.loads((drive / "manifest.json").read_text())
    fps = float(manifest["fps"])
    settings = EdgeSettings()
    sample = True
    frames = rec.frames
    if role == "bad_camera":  # its software skips the quality gate
        settings = dataclasses.replace(
            settings, min_sharpness=0.0, min_exposure=0.0, max_obstruction=1.0
        )
    if role == "stationary_farmer":  # no distance sampling: a parked frame every 2 s
        sample = False
        frames = (c for i, c in enumerate(rec.frames) if i % FARM_EVERY == 0)
    identity = DeviceIdentity(dev["device_id"], MqttLogin("localhost", 1883, dev["device_id"], "-"))
    pipe = _Collect(settings, identity, redactor, sample=sample)
    for captured in frames:
        pipe.process(captured, rec.track)
    pipe.finish()
    kept: list[tuple[Prepared, bool]] = []
    spoof_t = _spoof_start(drive) if role == "gnss_spoofer" else None
    if (
        role == "replayer"
    ):  # second half: the first half's frames again, new times, the replayed fixes
        start = _start(drive)
        half = timedelta(seconds=(int(manifest["frame_count"]) // 2) / fps)
        first = [p for p in pipe.kept if p.captured_at < start + half]
        kept = [(p, False) for p in first]
        for p in first:
            when = p.captured_at + half
            kept.append(
                (dataclasses.replace(p, captured_at=when, fix=rec.track.at(when) or p.fix), True)
            )
    else:
        for p in pipe.kept:
            if role == "gnss_spoofer":
                cheat = spoof_t is not None and p.captured_at.timestamp() >= spoof_t
            elif role in VICTIM_ROLES:
                cheat = not _is_victim(role, detail)
            else:
                cheat = role != "honest"
            kept.append((p, cheat))
    seq0 = CLONE_SEQ0 if role == "cloned_key" and detail == "clone" else 1
    orig_start = None
    if role in ("duplicate_farmer", "shifted_copy") and detail.startswith("copy"):
        orig_start = _start(fleet / "devices" / dev["pair"])
    out: list[Sent] = []
    for k, (p, cheat) in enumerate(kept):
        arrival = p.captured_at.timestamp()
        if role == "track_thief" and detail == "thief":  # it needs the victim's fixes first
            arrival += COPY_DELAY_S
        if orig_start is not None and p.source_key:
            i = int(p.source_key.rsplit("::", 1)[1])
            arrival = max(arrival, orig_start.timestamp() + i / fps + COPY_DELAY_S)
        frame = build_frame(identity, seq0 + k, p)
        honest = role == "honest" or _is_victim(role, detail)
        out.append(Sent(arrival, dev["dir"], role, frame, cheat, honest))
    return out


EDGE_CODE = (
    "edge/pipeline.py",
    "edge/sampling.py",
    "edge/settings.py",
    "edge/replay.py",
    "edge/sources.py",
    "edge/gnss.py",
    "edge/nmea.py",
    "vision/privacy.py",
    "vision/quality.py",
    "protocol/frame.py",
)


def cache_key(fleet: Path, privacy: bool) -> str:
    """What the published frames depend on: the fleet (its fleet.json names every drive and
    seed; the drives are never rewritten), the edge code that turns drives into frames, this
    bench's cheating software (`device_frames`), the privacy flag."""
    import inspect

    h = hashlib.sha256()
    h.update((fleet / "fleet.json").read_bytes())
    h.update(str(fleet.resolve()).encode())
    for rel in EDGE_CODE:
        f = REPO / rel
        h.update(f.read_bytes() if f.exists() else rel.encode())
    h.update(inspect.getsource(device_frames).encode())
    h.update(f"{FARM_EVERY}:{CLONE_SEQ0}:{COPY_DELAY_S}:privacy={privacy}".encode())
    return h.hexdigest()[:20]


def published(fleet: Path, redactor: Redactor, cache: Path) -> list[Sent]:
    if cache.exists():
        print(f"published frames from the cache {cache.relative_to(REPO)}", flush=True)
        return pickle.loads(cache.read_bytes())  # our own file
    devices = json.loads((fleet / "fleet.json").read_text())["devices"]
    sent: list[Sent] = []
    for dev in devices:
        t0 = time.perf_counter()
        mine = device_frames(fleet, dev, redactor)
        print(
            f"  {dev['dir']} {dev['role']:18s} {len(mine):4d} frames ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
        sent += mine
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(sent))
    tmp.replace(cache)
    return sent


def _revision() -> str:
    """The commit the bench runs, and the checks' files changed since (they decide the result)."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [
            *git,
            "status",
            "--porcelain",
            "--",
            "ingest",
            "edge",
            "protocol",
            "sim",
            "bench/fraud.py",
        ],
        capture_output=True,
        text=True,
    )
    changed = [line[3:] for line in dirty.stdout.splitlines()]
    return head.stdout.strip() + (f" + uncommitted {', '.join(changed)}" if changed else "")


# -- 3. door and audit; 4. scoring ------------------------------------------------------------
def run_world(world: str, fleet: Path, privacy: bool, keep: bool, sweep: bool) -> dict[str, Any]:
    """One world's fleet through the door, the image checks and the audit, in a database of
    its own (a temp folder, removed afterwards unless `keep`); the scores as a summary."""
    from sim.worlds import name_of, resolve

    world_dir = resolve(world)
    redactor = Redactor.default() if privacy else Redactor(_NoDetector(), _NoDetector())
    t0 = time.perf_counter()
    cache = REPO / "out" / "bench-fraud-cache" / f"published-{cache_key(fleet, privacy)}.pickle"
    sent = published(fleet, redactor, cache)
    sent.sort(key=lambda s: (s.arrival, s.device_dir, s.frame.seq))
    print(
        f"fleet {fleet.relative_to(REPO) if fleet.is_relative_to(REPO) else fleet}: {len(sent)} frames"
        f" from {len({s.device_dir for s in sent})} devices ({time.perf_counter() - t0:.0f}s through"
        f" the edge pipeline); world {name_of(world)} ({world_dir})",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-fraud-"))
    try:
        return _score_world(world, world_dir, sent, work, sweep)
    finally:
        if keep:
            print(f"kept the database and images in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _score_world(
    world: str, world_dir: Path, sent: list[Sent], work: Path, sweep: bool
) -> dict[str, Any]:
    from sim.worlds import name_of

    os.environ["ROADMESH_DATA_DIR"] = str(work)
    os.environ.pop("ROADMESH_DATABASE_URL", None)
    from webapp.django_setup import setup_django

    setup_django()
    from django.core.management import call_command

    from ingest.audit import Auditor
    from ingest.door import Door
    from ingest.image_checks import ImageCheckHandler
    from ingest.roads import RoadNetwork
    from webapp.accounts.models import User
    from webapp.fleet.models import Device, Frame
    from webapp.fleet.provisioning import register_device
    from webapp.images import LocalObjectStore
    from webapp.jobs.worker import Worker

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("fleet-owner", role=User.Role.DRIVER)
    keys = {}
    for device_id in sorted({s.frame.device_id for s in sent}):
        keys[device_id] = protocol.generate_private_key()
        register_device(owner, device_id, protocol.public_key_bytes(keys[device_id]))
    store = LocalObjectStore(work / "images")
    door = Door(store)
    checks_handler = ImageCheckHandler(store)
    checker = Worker(checks_handler)
    outcome_of: dict[int, str] = {}
    statuses: dict[str, int] = defaultdict(int)
    checks_s = 0.0
    t0 = time.perf_counter()
    for k, s in enumerate(sent):
        if k and k % CHECK_EVERY == 0:
            t1 = time.perf_counter()
            checker.run_until_idle()
            checks_s += time.perf_counter() - t1
        topic = protocol.topic_for(s.frame.device_id, protocol.Channel.FRAMES)
        try:
            payload = protocol.encode(s.frame, keys[s.frame.device_id])
        except protocol.ProtocolError as exc:  # the device could not have sent it either
            statuses[f"unsendable:{s.role}"] += 1
            outcome_of[k] = "unsendable"
            print(f"  {s.device_dir} seq {s.frame.seq} cannot be encoded: {exc}")
            continue
        out = door.handle(topic, payload)
        statuses[out.status if out.status != "rejected" else f"rejected:{out.reason}"] += 1
        outcome_of[k] = out.status
    t1 = time.perf_counter()
    checker.run_until_idle()
    checks_s += time.perf_counter() - t1
    door_s = time.perf_counter() - t0 - checks_s
    door_flagged = Frame.objects.filter(state=Frame.State.FLAGGED).count()
    pending = Frame.objects.filter(state=Frame.State.PENDING).count()
    roads = RoadNetwork.load(world_dir)
    t0 = time.perf_counter()
    report = Auditor(store, roads=roads).run()
    audit_s = time.perf_counter() - t0
    print(
        f"door: {dict(statuses)} in {door_s:.1f}s ({len(sent) / door_s:.0f} frames/s); image checks:"
        f" {checks_handler.decodes} decodes in {checks_s:.1f}s, {pending} frames left pending;"
        f" {door_flagged} flagged before the audit; audit ({roads.length_km():.0f} km of road):"
        f" {report.frames} frames in {audit_s:.1f}s, {report.newly_flagged} newly flagged,"
        f" {report.unflagged} un-flagged, {dict(report.by_check)}",
        flush=True,
    )
    rows = {
        (d, q): (st, fl)
        for d, q, st, fl in Frame.objects.values_list("device__device_id", "seq", "state", "flags")
    }
    summary: dict[str, Any] = {
        "world": name_of(world),
        "types": {},
        "honest": [0, 0],
        "honest_flags": [],
        "checks": {},
    }
    cheat: dict[str, list[bool]] = defaultdict(list)
    every: dict[str, list[bool]] = defaultdict(list)
    honest: list[bool] = []
    checks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cleared: dict[str, int] = defaultdict(int)  # near-duplicate flags the audit cleared
    for k, s in enumerate(sent):
        if outcome_of[k] == "unsendable":
            continue  # never reached the server: scored neither way
        state, flags = rows.get((s.frame.device_id, s.frame.seq), ("rejected", []))
        hit = outcome_of[k] == "rejected" or state == Frame.State.FLAGGED
        group = "honest" if s.honest else s.role
        if any(f["check"] == "near_duplicate_image" and f["score"] == 0 for f in flags):
            cleared["honest" if s.honest else "fraudulent" if s.cheat else "other"] += 1
        for f in flags if hit else []:
            if f["score"] >= 0.5:
                checks[group][f["check"]] += 1
        if s.honest:
            honest.append(hit)
            if hit:
                summary["honest_flags"].append(
                    {
                        "device": s.device_dir,
                        "role": s.role,
                        "seq": s.frame.seq,
                        "state": state if outcome_of[k] != "rejected" else "rejected",
                        "flags": [f for f in flags if f["score"] >= 0.5],
                    }
                )
        elif s.role != "honest":
            every[s.role].append(hit)
            if s.cheat:
                cheat[s.role].append(hit)
    name = name_of(world)
    for role in sorted(cheat):
        c, e = cheat[role], every[role]
        summary["types"][role] = [sum(c), len(c), sum(e), len(e)]
        print(
            f"  {name} {role:18s} fraudulent {sum(c):4d}/{len(c):4d} flagged ({sum(c) / len(c):6.1%}); "
            f"all its frames {sum(e):4d}/{len(e):4d} ({sum(e) / len(e):6.1%})  checks: {dict(checks[role])}"
        )
    summary["honest"] = [sum(honest), len(honest)]
    summary["checks"] = {g: dict(v) for g, v in checks.items()}
    print(
        f"  {name} {'honest':18s} {sum(honest):4d}/{len(honest):4d} flagged ({sum(honest) / max(1, len(honest)):6.1%})  "
        f"checks: {dict(checks['honest'])}"
    )
    print(f"near-duplicate flags (image checks) the audit cleared: {dict(cleared)}")
    if summary["honest_flags"]:
        print(f"every honest frame flagged ({len(summary['honest_flags'])}), with its flags:")
        for h in summary["honest_flags"]:
            for f in h["flags"]:
                ev = json.dumps(f.get("evidence"), separators=(",", ":"), default=str)
                print(
                    f"  HONEST-FLAGGED {name} {h['device']} ({h['role']}) seq {h['seq']} {h['state']}:"
                    f" {f['check']} {f['score']} {f.get('reason', '')} {ev[:400]}"
                )
    low = sorted(Device.objects.values_list("trust_score", "device_id"))[:6]
    print("lowest trust: " + ", ".join(f"{d}={t:.2f}" for t, d in low))
    if sweep:
        summary["sweep"] = shift_sweep(sent, roads)
    fraud = [x for v in cheat.values() for x in v]
    caught = sum(1 for v in cheat.values() if v and sum(v) / len(v) >= CAUGHT_SHARE)
    print(
        f"WORLD {name} fraud_flagged={sum(fraud) / max(1, len(fraud)):.3f}"
        f" honest_flagged={sum(honest) / max(1, len(honest)):.3f} types_caught={caught}/{len(cheat)}",
        flush=True,
    )
    return summary


SWEEP_OFFSETS_M = (20.0, 30.0, 50.0, 100.0, 200.0, 500.0)
SWEEP_DIRECTIONS = 4


def shift_sweep(sent: list[Sent], roads: Any) -> dict[str, Any]:
    """The map-matching checks alone on every honest device's published track, shifted by
    each offset in `SWEEP_DIRECTIONS` directions: the share of the frames they would flag."""
    from ingest import tracks
    from ingest.fraud import FraudPolicy, TrackPoint
    from ingest.mapmatch import HmmMatcher, check_map_match

    pol = FraudPolicy()
    matcher = HmmMatcher(roads)
    by_dev: dict[str, list[Sent]] = defaultdict(list)
    for s in sent:
        if s.honest:
            by_dev[s.device_dir].append(s)
    out: dict[str, Any] = {}
    for offset in (0.0, *SWEEP_OFFSETS_M):
        hit = total = 0
        for k in range(SWEEP_DIRECTIONS if offset else 1):
            a = 2 * np.pi * (k + 0.125) / SWEEP_DIRECTIONS
            de, dn = offset * np.sin(a), offset * np.cos(a)
            for frames in by_dev.values():
                frames = sorted(frames, key=lambda s: s.frame.captured_at_us)
                pts = []
                for s in frames:
                    lat, lon = s.frame.position.lat, s.frame.position.lon
                    lon += de / (111_195.0 * np.cos(np.radians(lat)))
                    lat += dn / 111_195.0
                    pts.append(
                        TrackPoint(None, s.frame.seq, s.frame.captured_at_us / 1e6, lat, lon)
                    )
                flags, _ = check_map_match(pts, tracks.trips(pts, pol), matcher, pol)
                hit += sum(1 for i in range(len(pts)) if i in flags and flags[i].score >= 0.5)
                total += len(pts)
        out[f"{offset:g}"] = [hit, total]
        print(
            f"  sweep: honest tracks shifted {offset:5g} m: {hit}/{total} frames flagged by map matching ({hit / max(1, total):.1%})",
            flush=True,
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--world",
        default=None,
        help="comma list of worlds: sample, a procedural KIND[:SEED] (rural, suburban, mountain,"
        " oldtown) or a world folder (default: sample; with --fleet, the fleet's own world)",
    )
    ap.add_argument("--devices", type=int, default=None, help="default 16")
    ap.add_argument("--minutes", type=float, default=None, help="default 6")
    ap.add_argument("--seed", type=int, default=None, help="default 5")
    ap.add_argument(
        "--fps", type=float, default=5.0, help="video frames/s of a fleet rendered here"
    )
    ap.add_argument(
        "--fleet",
        type=Path,
        default=None,
        help="an existing `sim fleet` output to use (one world); its devices, minutes and seed"
        " must agree with any given",
    )
    ap.add_argument(
        "--no-privacy",
        action="store_true",
        help="skip face/plate blurring (faster; the checks do not depend on it)",
    )
    ap.add_argument("--shift", type=float, default=30.0, help="shifted_track offset (m)")
    ap.add_argument("--copy-shift", type=float, default=30.0, help="shifted_copy offset (m)")
    ap.add_argument("--sweep", action="store_true", help="also shift honest tracks 20-500 m")
    ap.add_argument("--keep", action="store_true", help="keep each world's database and images")
    ap.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)  # child: one world
    args = ap.parse_args()
    if args.world is None and args.fleet is not None and (args.fleet / "fleet.json").exists():
        args.world = fleet_args(args.fleet)["world"] or "sample"
    worlds = [w.strip() for w in (args.world or "sample").split(",") if w.strip()]
    if args.one is not None:  # a child: one world, its summary to a file
        summary = run_world(worlds[0], args.fleet, not args.no_privacy, args.keep, args.sweep)
        args.one.write_text(json.dumps(summary))
        return 0
    print(
        f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}; code: {_revision()}",
        flush=True,
    )
    if args.fleet is not None and len(worlds) != 1:
        print("--fleet names one fleet: give one --world with it", file=sys.stderr)
        return 2
    plan: list[tuple[str, Path]] = []
    for world in worlds:
        if args.fleet is not None:
            fleet = args.fleet.resolve()
            if not (fleet / "fleet.json").exists():
                print(
                    f"--fleet {fleet}: no fleet.json (make it with `roadmesh sim fleet`)",
                    file=sys.stderr,
                )
                return 2
            have = fleet_args(fleet)
            made_on = have["world"] or "sample"
            if resolve_world(made_on) != resolve_world(world):
                print(
                    f"--world {world} disagrees with the fleet {fleet} (made on {made_on})",
                    file=sys.stderr,
                )
                return 2
            for key in ("devices", "minutes", "seed"):
                want = getattr(args, key)
                if want is not None and float(want) != float(have[key]):
                    print(
                        f"--{key} {want} disagrees with the fleet {fleet} ({key} {have[key]})",
                        file=sys.stderr,
                    )
                    return 2
            print(
                f"fleet {fleet}: devices {have['devices']}, minutes {have['minutes']:g}, seed {have['seed']}"
            )
        else:
            devices = 16 if args.devices is None else args.devices
            minutes = 6.0 if args.minutes is None else args.minutes
            seed = 5 if args.seed is None else args.seed
            adversaries = ADVERSARIES.format(
                shift=f"{args.shift:g}", copy_shift=f"{args.copy_shift:g}"
            )
            fleet = ensure_fleet(
                world,
                devices,
                minutes,
                seed,
                adversaries,
                fleet_dir(world, devices, minutes, seed, args.fps),
                args.fps,
            )
        plan.append((world, fleet))
    summaries = []
    for world, fleet in plan:
        with tempfile.TemporaryDirectory(prefix="bench-fraud-summary-") as tmp:
            out = Path(tmp) / "summary.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--one",
                str(out),
                "--world",
                world,
                "--fleet",
                str(fleet),
            ]
            cmd += ["--no-privacy"] if args.no_privacy else []
            cmd += ["--keep"] if args.keep else []
            cmd += ["--sweep"] if args.sweep else []
            rc = subprocess.run(cmd, cwd=REPO).returncode
            if rc != 0 or not out.exists():
                print(f"world {world}: the run failed (exit {rc})", file=sys.stderr)
                return 1
            summaries.append(json.loads(out.read_text()))
    return report(summaries)


def report(summaries: list[dict[str, Any]]) -> int:
    """Pooled over the worlds: per type, per check; the RESULT line."""
    types: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    caught_everywhere: dict[str, bool] = {}
    for s in summaries:
        for role, (c, n, e, m) in s["types"].items():
            t = types[role]
            t[0], t[1], t[2], t[3] = t[0] + c, t[1] + n, t[2] + e, t[3] + m
            caught_everywhere[role] = (
                caught_everywhere.get(role, True) and n > 0 and c / n >= CAUGHT_SHARE
            )
    print(f"over {len(summaries)} world(s): " + ", ".join(s["world"] for s in summaries))
    for role in sorted(types):
        c, n, e, m = types[role]
        per = ", ".join(
            f"{s['world']} {s['types'][role][0] / max(1, s['types'][role][1]):.1%}"
            for s in summaries
            if role in s["types"]
        )
        print(
            f"  {role:18s} fraudulent {c:5d}/{n:5d} flagged ({c / max(1, n):6.1%}); all its frames {e}/{m}; per world: {per}"
        )
    checks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in summaries:
        for group, per_check in s["checks"].items():
            for check, k in per_check.items():
                checks[check][group] += k
    print("flagged frames per check (a frame counts once under each check that flagged it):")
    for check in sorted(checks):
        print(f"  {check:26s} " + ", ".join(f"{g} {k}" for g, k in sorted(checks[check].items())))
    hon = [s["honest"] for s in summaries]
    worst = max((h[0] / max(1, h[1]) for h in hon), default=0.0)
    fraud_hit = sum(t[0] for t in types.values())
    fraud_all = sum(t[1] for t in types.values())
    caught = sum(1 for v in caught_everywhere.values() if v)
    print(
        "honest per world: "
        + ", ".join(f"{s['world']} {s['honest'][0]}/{s['honest'][1]}" for s in summaries)
    )
    print(
        f"RESULT fraud_flagged={fraud_hit / max(1, fraud_all):.3f}"
        f" honest_flagged={sum(h[0] for h in hon) / max(1, sum(h[1] for h in hon)):.3f}"
        f" types_caught={caught}/{len(caught_everywhere)} worst_world_honest={worst:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
