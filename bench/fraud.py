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
import json
import os
import pickle
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

CAUGHT_SHARE = 0.9  # a type counts as caught when this share of its fraudulent frames is flagged
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
def ensure_fleet(devices: int, minutes: float, seed: int, fleet_dir: Path | None) -> Path:
    out = fleet_dir or REPO / "out" / "bench-fraud" / f"fleet-d{devices}-m{minutes:g}-s{seed}"
    if (out / "fleet.json").exists():
        return out
    start = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = [
        sys.executable,
        "-m",
        "roadmesh.cli",
        "sim",
        "fleet",
        "--devices",
        str(devices),
        "--minutes",
        f"{minutes:g}",
        "--seed",
        str(seed),
        "--adversaries",
        "all",
        "--start",
        start,
        "--out",
        str(out),
    ]
    print("rendering the fleet: " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return out


# -- 2. what each device publishes ------------------------------------------------------------
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
            elif role == "duplicate_farmer":
                cheat = detail == "copy"
            else:
                cheat = role != "honest"
            kept.append((p, cheat))
    seq0 = CLONE_SEQ0 if role == "cloned_key" and detail == "clone" else 1
    orig_start = None
    if role == "duplicate_farmer" and detail == "copy":
        orig_start = _start(fleet / "devices" / dev["pair"])
    out: list[Sent] = []
    for k, (p, cheat) in enumerate(kept):
        arrival = p.captured_at.timestamp()
        if orig_start is not None and p.source_key:
            i = int(p.source_key.rsplit("::", 1)[1])
            arrival = max(arrival, orig_start.timestamp() + i / fps + COPY_DELAY_S)
        frame = build_frame(identity, seq0 + k, p)
        honest = role == "honest" or (role == "duplicate_farmer" and detail == "original")
        out.append(Sent(arrival, dev["dir"], role, frame, cheat, honest))
    return out


def published(fleet: Path, redactor: Redactor, cache: Path) -> list[Sent]:
    if cache.exists():
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
    cache.write_bytes(pickle.dumps(sent))
    return sent


def _revision() -> str:
    """The commit the bench runs, and the checks' files changed since (they decide the result)."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "ingest", "edge", "protocol", "sim"],
        capture_output=True,
        text=True,
    )
    changed = [line[3:] for line in dirty.stdout.splitlines()]
    return head.stdout.strip() + (f" + uncommitted {', '.join(changed)}" if changed else "")


# -- 3. door and audit; 4. scoring ------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument(
        "--fleet", type=Path, default=None, help="an existing `sim fleet` output to use"
    )
    ap.add_argument(
        "--no-privacy",
        action="store_true",
        help="skip face/plate blurring (faster; the checks do not depend on it)",
    )
    args = ap.parse_args()
    print(
        f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}; code: {_revision()}",
        flush=True,
    )
    fleet = ensure_fleet(args.devices, args.minutes, args.seed, args.fleet)
    redactor = Redactor(_NoDetector(), _NoDetector()) if args.no_privacy else Redactor.default()
    t0 = time.perf_counter()
    sent = published(fleet, redactor, fleet / f"published{'-np' if args.no_privacy else ''}.pickle")
    sent.sort(key=lambda s: (s.arrival, s.device_dir, s.frame.seq))
    print(
        f"fleet {fleet.name}: {len(sent)} frames from {len({s.device_dir for s in sent})} devices "
        f"({time.perf_counter() - t0:.0f}s through the edge pipeline)",
        flush=True,
    )

    work = Path(tempfile.mkdtemp(prefix="bench-fraud-"))
    os.environ["ROADMESH_DATA_DIR"] = str(work)
    os.environ.pop("ROADMESH_DATABASE_URL", None)
    from webapp.django_setup import setup_django

    setup_django()
    from django.core.management import call_command

    from ingest.audit import Auditor
    from ingest.door import Door
    from ingest.image_checks import ImageCheckHandler
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
    t0 = time.perf_counter()
    report = Auditor(store).run()
    audit_s = time.perf_counter() - t0
    print(
        f"door: {dict(statuses)} in {door_s:.1f}s ({len(sent) / door_s:.0f} frames/s); image checks:"
        f" {checks_handler.decodes} decodes in {checks_s:.1f}s, {pending} frames left pending;"
        f" {door_flagged} flagged before the audit; audit: {report.frames} frames in {audit_s:.1f}s,"
        f" {report.newly_flagged} newly flagged, {report.unflagged} un-flagged, {dict(report.by_check)}"
    )

    rows = {
        (d, q): (st, fl)
        for d, q, st, fl in Frame.objects.values_list("device__device_id", "seq", "state", "flags")
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
            checks[group][f["check"]] += 1
        if s.honest:
            honest.append(hit)
        elif s.role != "honest":
            every[s.role].append(hit)
            if s.cheat:
                cheat[s.role].append(hit)
    for role in sorted(cheat):
        c, e = cheat[role], every[role]
        print(
            f"  {role:18s} fraudulent {sum(c):4d}/{len(c):4d} flagged ({sum(c) / len(c):6.1%}); "
            f"all its frames {sum(e):4d}/{len(e):4d} ({sum(e) / len(e):6.1%})  checks: {dict(checks[role])}"
        )
    print(
        f"  {'honest':18s} {sum(honest):4d}/{len(honest):4d} flagged ({sum(honest) / max(1, len(honest)):6.1%})  "
        f"checks: {dict(checks['honest'])}"
    )
    print(f"near-duplicate flags (image checks) the audit cleared: {dict(cleared)}")
    low = sorted(Device.objects.values_list("trust_score", "device_id"))[:6]
    print("lowest trust: " + ", ".join(f"{d}={t:.2f}" for t, d in low))
    fraud = [x for v in cheat.values() for x in v]
    adv = [x for v in every.values() for x in v]
    caught = sum(1 for v in cheat.values() if v and sum(v) / len(v) >= CAUGHT_SHARE)
    print(f"every frame of an adversarial device: {sum(adv) / max(1, len(adv)):.3f} flagged")
    print(
        f"RESULT fraud_flagged={sum(fraud) / max(1, len(fraud)):.3f} honest_flagged={sum(honest) / max(1, len(honest)):.3f} "
        f"types_caught={caught}/{len(cheat)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
