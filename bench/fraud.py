"""Fraud checks over an adversarial fleet: share of fraudulent and honest frames flagged, per type.

    python bench/fraud.py [--honest 20] [--frames 100] [--seed 7]

The simulator's `roadmesh sim fleet` has not landed yet, so this builds its own fleet from
protocol frames (tests.ingest.streams): honest drivers, plus one device per adversary type,
every adversarial frame labelled. Frames go through the real door (FrameIntake, in capture
order across the fleet, SQLite in a temp dir), then the periodic audit (ingest.audit).
Last line: `RESULT fraud_flagged=<x> honest_flagged=<x> types_caught=<k>/<n>`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import protocol  # noqa: E402
from tests.ingest.streams import (  # noqa: E402
    FRAME_H,
    FRAME_W,
    crop,
    encode_jpeg,
    frame_jpeg,
    make_frame,
    offset,
    world_strip,
)

Item = tuple[int, str, protocol.Frame, str]  # (t_us, device, frame, label: "honest" or adversary type)
CAUGHT_SHARE = 0.9  # a type counts as caught when this share of its frames is flagged


def honest_track(device: str, seed: int, start_us: int, n: int, label: str = "honest",
                 lat0: float | None = None, lon0: float | None = None, seq0: int = 1,
                 seq_step: int = 1) -> list[Item]:
    rng = random.Random(seed)
    strip = world_strip(seed)
    lat0 = lat0 if lat0 is not None else 60.10 + rng.random() * 0.15
    lon0 = lon0 if lon0 is not None else 24.70 + rng.random() * 0.40
    speed = rng.uniform(7, 16)
    heading = rng.uniform(0, 2 * np.pi)
    items: list[Item] = []
    metres = north = east = 0.0
    for i in range(n):
        heading += rng.gauss(0, 0.05)
        metres += speed
        north, east = north + speed * np.cos(heading), east + speed * np.sin(heading)
        lat, lon = offset(lat0, lon0, north + rng.gauss(0, 2), east + rng.gauss(0, 2))
        t = start_us + int(i * 1e6) + rng.randint(0, 50_000)
        items.append((t, device, make_frame(device, seq0 + i * seq_step, t, lat, lon, frame_jpeg(strip, metres), speed), label))
    return items


def build_fleet(n_honest: int, n_frames: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    start = int((time.time() - 6 * 3600) * 1e6)
    items: list[Item] = []
    honest: list[list[Item]] = []
    for i in range(n_honest):
        track = honest_track(f"honest-{i}", seed * 100 + i, start + rng.randint(0, 60) * 10**6, n_frames)
        honest.append(track)
        items += track
    victim = honest[0]

    def relabel(track: list[Item], label: str) -> list[Item]:
        return [(t, d, f, label) for t, d, f, _ in track]

    def rebuild(track: list[Item], device: str, label: str, image: Callable[[int, protocol.Frame], bytes] | None = None,
                move: Callable[[int, protocol.Frame], tuple[float, float]] | None = None, t_shift_s: float = 0) -> list[Item]:
        out = []
        for i, (t, _, f, _) in enumerate(track):
            lat, lon = move(i, f) if move else (f.position.lat, f.position.lon)
            jpeg = image(i, f) if image else f.jpeg
            t2 = t + int(t_shift_s * 1e6)
            out.append((t2, device, make_frame(device, i + 1, t2, lat, lon, jpeg), label))
        return out

    base = honest_track("x", seed + 9001, start, n_frames)
    # 1. Teleporter: every frame somewhere else in the region (spoofed GNSS).
    items += rebuild(base, "adv-teleport", "teleport", move=lambda i, f: (60.0 + rng.random() * 0.8, 24.0 + rng.random() * 2.0))
    # 2. Speeder: the same track stretched fifteenfold (about 150 m/s).
    lat0, lon0 = base[0][2].position.lat, base[0][2].position.lon
    items += rebuild(honest_track("x", seed + 9002, start, n_frames), "adv-speed", "impossible_speed",
                     move=lambda i, f: (lat0 + (f.position.lat - lat0) * 15, lon0 + (f.position.lon - lon0) * 15))
    # 3. Cloned key: two cars under one identity, 3 km apart, frames interleaved (odd / even seq).
    items += relabel(honest_track("adv-clone", seed + 9003, start, n_frames // 2, lat0=60.17, lon0=24.90, seq0=1, seq_step=2), "cloned_key")
    items += relabel(honest_track("adv-clone", seed + 9004, start + 400_000, n_frames // 2, lat0=60.19, lon0=24.95, seq0=2, seq_step=2), "cloned_key")
    # 4. Exact duplicates: another driver's images, on a plausible track of its own, a day later.
    own = honest_track("x", seed + 9005, start, n_frames)
    items += rebuild(own, "adv-copy", "duplicate_image", image=lambda i, f: victim[i][2].jpeg, t_shift_s=1800)
    # 5. Near duplicates: the same images re-encoded, shifted 2 px and brightened.
    def near(i: int, f: protocol.Frame) -> bytes:
        img = cv2.imdecode(np.frombuffer(victim[i][2].jpeg, np.uint8), cv2.IMREAD_COLOR)
        img = cv2.convertScaleAbs(np.roll(img, 2, axis=1), alpha=1.05, beta=6)
        return encode_jpeg(img, quality=70)
    own = honest_track("x", seed + 9006, start, n_frames)
    items += rebuild(own, "adv-near", "near_duplicate_image", image=near, t_shift_s=2400)
    # 6. Stationary farming: one spot (jittered 8 m), a fresh picture every 10 s.
    strip = world_strip(seed + 9007)
    farm = []
    for i in range(n_frames):
        t = start + i * 10_000_000
        lat, lon = offset(60.2, 24.8, rng.gauss(0, 8), rng.gauss(0, 8))
        farm.append((t, "adv-farm", make_frame("adv-farm", i + 1, t, lat, lon, frame_jpeg(strip, rng.uniform(0, 4))), "stationary_farming"))
    items += farm
    # 7. Fake track: a parked camera (one scene, sensor noise) with a GNSS track that drives.
    scene = crop(world_strip(seed + 9008), 0).astype(np.int16)
    def still(i: int, f: protocol.Frame) -> bytes:
        noise = np.random.default_rng(i).integers(-3, 4, size=scene.shape)
        return encode_jpeg(np.clip(scene + noise, 0, 255).astype(np.uint8))
    items += rebuild(honest_track("x", seed + 9009, start, n_frames), "adv-still", "static_image_moving_gnss", image=still)
    # 8. Low quality: heavy blur and night-dark frames.
    def poor(i: int, f: protocol.Frame) -> bytes:
        img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        img = cv2.GaussianBlur(img, (0, 0), 9) if i % 2 else (img * 0.06).astype(np.uint8)
        return encode_jpeg(img)
    items += rebuild(honest_track("x", seed + 9010, start, n_frames), "adv-blur", "low_quality", image=poor)
    assert all(f.jpeg[:2] == b"\xff\xd8" for _, _, f, _ in items) and FRAME_W and FRAME_H
    return sorted(items, key=lambda it: it[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--honest", type=int, default=20)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fraud-"))
    os.environ["ROADMESH_DATA_DIR"] = str(work)
    os.environ.pop("ROADMESH_DATABASE_URL", None)
    from webapp.django_setup import setup_django

    setup_django()
    from django.core.management import call_command

    from ingest.audit import Auditor
    from ingest.intake import FrameIntake
    from ingest.store import LocalObjectStore
    from webapp.accounts.models import User
    from webapp.fleet.models import Device, Frame
    from webapp.fleet.provisioning import register_device

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    items = build_fleet(args.honest, args.frames, args.seed)
    print(f"fleet: {len(items)} frames from {len({d for _, d, _, _ in items})} devices ({time.perf_counter() - t0:.1f}s to render)")
    owner = User.objects.create_user("fleet-owner", role=User.Role.DRIVER)
    keys = {}
    for device in sorted({d for _, d, _, _ in items}):
        keys[device] = protocol.generate_private_key()
        register_device(owner, device, protocol.public_key_bytes(keys[device]))
    store = LocalObjectStore(work / "images")
    intake = FrameIntake(store)
    labels: dict[tuple[str, int], str] = {}
    t0 = time.perf_counter()
    statuses: dict[str, int] = defaultdict(int)
    for _, device, frame, label in items:
        labels[(device, frame.seq)] = label
        outcome = intake.handle(protocol.topic_for(device, protocol.Channel.FRAMES), protocol.encode(frame, keys[device]))
        statuses[outcome.status] += 1
    door_s = time.perf_counter() - t0
    door_flagged = Frame.objects.filter(state=Frame.State.FLAGGED).count()
    t0 = time.perf_counter()
    report = Auditor(store).run()
    audit_s = time.perf_counter() - t0
    print(f"door: {dict(statuses)} in {door_s:.1f}s ({len(items) / door_s:.0f} frames/s), {door_flagged} flagged; "
          f"audit: {report.frames} frames in {audit_s:.1f}s, {report.newly_flagged} newly flagged")
    per_type: dict[str, list[bool]] = defaultdict(list)
    checks_by_type: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for dev, seq, state, flags in Frame.objects.values_list("device__device_id", "seq", "state", "flags"):
        label = labels[(dev, seq)]
        per_type[label].append(state == Frame.State.FLAGGED)
        for f in flags:
            checks_by_type[label][f["check"]] += 1
    honest = per_type.pop("honest", [])
    fraud = [x for v in per_type.values() for x in v]
    for label in sorted(per_type):
        v = per_type[label]
        print(f"  {label:26s} {sum(v):4d}/{len(v):4d} flagged ({sum(v) / len(v):6.1%})  checks: {dict(checks_by_type[label])}")
    print(f"  {'honest':26s} {sum(honest):4d}/{len(honest):4d} flagged ({sum(honest) / len(honest):6.1%})  checks: {dict(checks_by_type['honest'])}")
    low = sorted(Device.objects.values_list("trust_score", "device_id"))[:4]
    print("lowest trust: " + ", ".join(f"{d}={s:.2f}" for s, d in low))
    caught = sum(1 for v in per_type.values() if sum(v) / len(v) >= CAUGHT_SHARE)
    print(f"RESULT fraud_flagged={sum(fraud) / len(fraud):.3f} honest_flagged={sum(honest) / len(honest):.3f} "
          f"types_caught={caught}/{len(per_type)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
