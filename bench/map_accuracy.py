"""Map accuracy: a simulated fleet through edge, the door, the image-check + vision job and the
mapper, matched against the world's ground truth; then the world's second version.

    python bench/map_accuracy.py [--world sample|DIR|KIND[:SEED]] [--seed 1] [--devices 10] [--minutes 5]
                                 [--detector truth|model] [--model FILE] [--no-v2]

1. Fleets: `roadmesh sim fleet --adversaries none` on the world's features (v1), and a
   second fleet a day later on `features_v2.geojson` (some removed, added, moved), seed
   +1000. Cached under out/bench-map/ and reused.
2. Each device's drive becomes the frames its device software publishes (the edge pipeline's
   stages, as bench/fraud.py builds them: geotag from the NMEA fixes -> sample -> quality
   -> JPEG -> sign; the face/plate blur is skipped, it does not move any sign).
3. The real door stores every frame (SQLite in a temp dir); the image-check job with the
   vision stage runs every `CHECK_EVERY` frames, as a worker keeps up; then the mapper.
   `--detector model` runs the shipped ONNX (or `--model`) at 1280 on ONNX Runtime CPU;
   `--detector truth` (the default: fast, and it isolates the mapper) answers with the
   simulator's own boxes for the frame (visible >= 40 %, at least 5 px), score 0.9.
4. Scoring (map-accuracy rule): a map feature matches a ground-truth feature of the same
   class and value within 5 m, one to one, nearest first. Precision counts every feature
   in state confirmed; recall counts the ground-truth features that kept frames saw at
   least twice (in view, within 40 m, facing the camera: the renderer labels only a sign's
   face). Position errors are over matched features. Class accuracy: among confirmed
   features within 5 m of a ground-truth feature of the same group (speed limits are one
   group), the share with the right class and value. Per class, and per light condition
   of the devices that saw the feature.
5. Change detection on v2: a predicted change is a feature the v2 run turned `removed`
   (correct when it matches a v1 feature that v2 removed or moved away) or a confirmed
   feature first seen in the v2 drives (correct when it matches a v2 feature that was
   added or moved there). Recall is over the true changes the fleets could see: a removed
   or moved-away feature the v1 kept frames saw at least twice and at least 3 v2 passes
   drove by in clear view (6-30 m, in the field of view, facing its old position), and an
   added or moved-to feature the v2 kept frames saw at least twice.

Last line: `RESULT precision=<x> recall=<x> median_m=<x> p90_m=<x> change_precision=<x> change_recall=<x>`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import protocol  # noqa: E402
from bench.fraud import Sent, device_frames  # noqa: E402
from vision.detector import Detection as Found  # noqa: E402
from vision.geo import LocalFrame  # noqa: E402
from vision.mapper import match_nearest, split_label  # noqa: E402
from vision.privacy import Box, Redactor  # noqa: E402

CHECK_EVERY = 50
MATCH_M = 5.0
SEEN_M = 40.0
MIN_BOX_PX = 5.0
MIN_VISIBLE = 0.4
MAP_CLASSES = {
    "stop",
    "yield",
    "no_entry",
    "speed_limit_30",
    "speed_limit_40",
    "speed_limit_50",
    "speed_limit_60",
    "pedestrian_crossing",
    "traffic_light",
    "fire_hydrant",
}


class _NoDetector:
    def detect(self, image: np.ndarray) -> list[Box]:
        return []


def pixel_key(image: np.ndarray) -> str:
    """A key for a decoded frame (the oracle looks up the frame's truth by it)."""
    return hashlib.blake2b(
        np.ascontiguousarray(image[::17, ::13]).tobytes(), digest_size=12
    ).hexdigest()


class TruthDetector:
    """The simulator's own boxes for each frame (the detector seam of the vision stage)."""

    model_version = "sim-truth"
    model_sha256 = "0" * 64

    def __init__(self, labels: dict[str, list[dict[str, Any]]]) -> None:
        self.labels = labels
        self.misses = 0

    def detect(self, images: Any) -> list[list[Found]]:
        out = []
        for im in images:
            labels = self.labels.get(pixel_key(im))
            if labels is None:
                self.misses += 1
                labels = []
            found = []
            for lb in labels:
                x1, y1, x2, y2 = lb["box"]
                if lb["visible"] < MIN_VISIBLE or min(x2 - x1, y2 - y1) < MIN_BOX_PX:
                    continue
                found.append(Found(0, lb["cls"], 0.9, x1, y1, x2, y2))
            out.append(found)
        return out


# -- fleets -----------------------------------------------------------------------------------
def ensure_fleet(
    world: Path | None, devices: int, minutes: float, seed: int, version: str, start: datetime
) -> Path:
    tag = (world.name if world else "sample") + f"-d{devices}-m{minutes:g}-s{seed}-{version}"
    out = REPO / "out" / "bench-map" / tag
    if (out / "fleet.json").exists():
        return out
    cmd = [
        sys.executable, "-m", "roadmesh.cli", "sim", "fleet", "--devices", str(devices),
        "--minutes", f"{minutes:g}", "--seed", str(seed), "--adversaries", "none",
        "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--features", version, "--out", str(out),
    ]  # fmt: skip
    if world:
        cmd += ["--world", str(world)]
    print("rendering: " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return out


def frame_truth(fleet: Path, sent: list[Sent]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(device id, seq) -> the truth labels of the video frame a kept frame shows."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    by_dir: dict[str, list[Sent]] = defaultdict(list)
    for s in sent:
        by_dir[s.device_dir].append(s)
    for d, items in by_dir.items():
        drive = fleet / "devices" / d
        man = json.loads((drive / "manifest.json").read_text())
        start = datetime.fromisoformat(man["start_time_utc"].replace("Z", "+00:00"))
        fps = float(man["fps"])
        wanted = {
            round((s.frame.captured_at - start).total_seconds() * fps): s.frame.seq for s in items
        }
        with (drive / "truth" / "boxes.jsonl").open() as fh:
            for line in fh:
                row = json.loads(line)
                if row["frame"] in wanted:
                    out[(items[0].frame.device_id, wanted[row["frame"]])] = row["labels"]
    return out


def camera_truth(fleet: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    out = {}
    for dev in json.loads((fleet / "fleet.json").read_text())["devices"]:
        with (fleet / "devices" / dev["dir"] / "truth" / "track.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        out[dev["device_id"]] = tuple(
            np.array([float(r[k]) for r in rows]) for k in ("t_s", "east", "north", "heading_deg")
        )
    return out  # type: ignore[return-value]


def load_truth(path: Path) -> tuple[LocalFrame, dict[str, tuple[str, float, float, float]]]:
    doc = json.loads(path.read_text())
    origin = doc["metadata"]["origin"]
    local = LocalFrame(origin["lat"], origin["lon"])
    out = {}
    for f in doc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        e, n = local.to_enu(lon, lat)
        p = f["properties"]
        out[p["id"]] = (p["class"], float(e), float(n), float(p["facing_deg"]))
    return local, out


# -- the pipeline -----------------------------------------------------------------------------
@dataclass
class Run:
    sent: list[Sent]
    truth_labels: dict[tuple[str, int], list[dict[str, Any]]]
    seconds: dict[str, float]


def publish(fleet: Path) -> list[Sent]:
    import pickle

    cache = fleet / "published-np.pickle"
    if cache.exists():
        return list(pickle.loads(cache.read_bytes()))  # our own file
    redactor = Redactor(_NoDetector(), _NoDetector())
    sent: list[Sent] = []
    for dev in json.loads((fleet / "fleet.json").read_text())["devices"]:
        sent += device_frames(fleet, dev, redactor)
    cache.write_bytes(pickle.dumps(sent))
    return sent


def ingest(sent: list[Sent], keys: dict[str, Any], door: Any, worker: Any) -> tuple[float, float]:
    sent = sorted(sent, key=lambda s: (s.arrival, s.device_dir, s.frame.seq))
    t0 = time.perf_counter()
    work_s = 0.0
    for k, s in enumerate(sent):
        if k and k % CHECK_EVERY == 0:
            t1 = time.perf_counter()
            worker.run_until_idle(timeout_s=86400)
            work_s += time.perf_counter() - t1
        topic = protocol.topic_for(s.frame.device_id, protocol.Channel.FRAMES)
        try:
            payload = protocol.encode(s.frame, keys[s.frame.device_id])
        except protocol.ProtocolError:
            continue
        door.handle(topic, payload)
    t1 = time.perf_counter()
    worker.run_until_idle(timeout_s=86400)
    work_s += time.perf_counter() - t1
    return time.perf_counter() - t0 - work_s, work_s


# -- scoring ----------------------------------------------------------------------------------
def seen_counts(
    truth_labels: dict[tuple[str, int], list[dict[str, Any]]], ids: set[str]
) -> dict[str, int]:
    n: dict[str, int] = defaultdict(int)
    for labels in truth_labels.values():
        for lb in labels:
            if lb["id"] in ids and lb["visible"] >= MIN_VISIBLE and lb["distance_m"] <= SEEN_M:
                n[lb["id"]] += 1
    return n


def pct(x: list[float], q: float) -> float:
    return float(np.percentile(x, q)) if x else float("nan")


def score(
    features: list[tuple[str, float, float, str]],  # label, east, north, status
    truth: dict[str, tuple[str, float, float, float]],
    eligible: set[str],
    light_of: dict[str, str],
) -> dict[str, Any]:
    confirmed = [f for f in features if f[3] == "confirmed"]
    tids = sorted(truth)
    t_list = [(truth[i][0], truth[i][1], truth[i][2]) for i in tids]
    matches = match_nearest([(f[0], f[1], f[2]) for f in confirmed], t_list, MATCH_M)
    matched_truth = {tids[m.truth]: m.distance_m for m in matches}
    hits = [d for i, d in matched_truth.items() if i in eligible]
    precision = len(matches) / len(confirmed) if confirmed else float("nan")
    recall = len(hits) / len(eligible) if eligible else float("nan")
    # class accuracy: match on the group only, then compare labels
    groups = match_nearest(
        [(split_label(f[0])[0], f[1], f[2]) for f in confirmed],
        [(split_label(c)[0], e, n) for c, e, n in t_list],
        MATCH_M,
    )
    class_ok = [confirmed[m.feature][0] == t_list[m.truth][0] for m in groups]
    per_class: dict[str, dict[str, float]] = {}
    for cls in sorted({t[0] for t in truth.values()}):
        el = [i for i in eligible if truth[i][0] == cls]
        got = [matched_truth[i] for i in el if i in matched_truth]
        n_conf = sum(1 for f in confirmed if f[0] == cls)
        n_match = sum(1 for m in matches if confirmed[m.feature][0] == cls)
        per_class[cls] = {
            "eligible": len(el),
            "recall": len(got) / len(el) if el else float("nan"),
            "precision": n_match / n_conf if n_conf else float("nan"),
            "median_m": pct(got, 50),
        }
    per_light: dict[str, dict[str, float]] = {}
    for light in sorted(set(light_of.values())):
        el = [i for i in eligible if light_of.get(i) == light]
        got = [matched_truth[i] for i in el if i in matched_truth]
        per_light[light] = {
            "eligible": len(el),
            "recall": len(got) / len(el) if el else float("nan"),
            "median_m": pct(got, 50),
        }
    return {
        "confirmed": len(confirmed),
        "candidates": sum(1 for f in features if f[3] == "candidate"),
        "removed": sum(1 for f in features if f[3] == "removed"),
        "eligible": len(eligible),
        "precision": precision,
        "recall": recall,
        "median_m": pct(hits, 50),
        "p90_m": pct(hits, 90),
        "class_accuracy": sum(class_ok) / len(class_ok) if class_ok else float("nan"),
        "per_class": per_class,
        "per_light": per_light,
    }


def passes_by(
    cams: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    frames: dict[str, list[float]],
    where: tuple[str, float, float, float],
) -> int:
    """Kept frames' passes (gaps > 30 s split them) within 30 m of `where`, facing it."""
    _cls, e, n, facing = where
    visits = 0
    for dev, ts in frames.items():
        t_s, ce, cn, hd = cams[dev]
        last = -1e9
        for t in ts:
            i = int(np.searchsorted(t_s, t))
            i = min(i, len(t_s) - 1)
            dx, dy = e - ce[i], n - cn[i]
            d = math.hypot(dx, dy)
            to_f = math.degrees(math.atan2(dx, dy)) % 360
            off = (to_f - hd[i] + 180) % 360 - 180
            back = (to_f + 180) % 360
            face_off = (back - facing + 180) % 360 - 180
            if 6 <= d <= 30 and abs(off) <= 45 and abs(face_off) <= 60:
                if t - last > 30:
                    visits += 1
                last = t
    return visits


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--world",
        default=None,
        help="sample (default), a world folder, or a procedural KIND[:SEED]"
        " (rural, suburban, mountain, oldtown; made once under out/worlds)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--detector", choices=("truth", "model"), default="truth")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-v2", action="store_true", help="skip the change-detection run")
    ap.add_argument("--v2-minutes", type=float, default=None, help="v2 drives (default --minutes)")
    ap.add_argument("--fleet", type=Path, default=None, help="an existing v1 `sim fleet` output")
    args = ap.parse_args()
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}", flush=True)
    from sim.worlds import resolve

    world_dir = resolve(args.world)
    world = None if args.world in (None, "", "sample") else world_dir
    t_v1 = (datetime.now(UTC) - timedelta(days=3)).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    t_v2 = t_v1 + timedelta(days=1)
    fleets = {
        "v1": args.fleet or ensure_fleet(world, args.devices, args.minutes, args.seed, "v1", t_v1)
    }
    runs: dict[str, Run] = {}

    def load(v: str) -> None:
        t0 = time.perf_counter()
        sent = publish(fleets[v])
        if v == "v2":  # the same device ids as v1 would be refused as replays: other cars
            sent = [
                dataclasses.replace(
                    s, frame=dataclasses.replace(s.frame, device_id=s.frame.device_id + "-b")
                )
                for s in sent
            ]
        runs[v] = Run(sent, frame_truth(fleets[v], sent), {"edge": time.perf_counter() - t0})
        print(
            f"{v}: {fleets[v].name}: {len(sent)} kept frames ({runs[v].seconds['edge']:.0f}s edge)",
            flush=True,
        )

    load("v1")

    work = Path(tempfile.mkdtemp(prefix="bench-map-"))
    os.environ["ROADMESH_DATA_DIR"] = str(work)
    os.environ.pop("ROADMESH_DATABASE_URL", None)
    from webapp.django_setup import setup_django

    setup_django()
    from django.core.management import call_command

    from ingest.audit import Auditor
    from ingest.door import Door
    from ingest.image_checks import ImageCheckHandler
    from webapp.accounts.models import User
    from webapp.fleet.models import Frame
    from webapp.fleet.provisioning import register_device
    from webapp.images import LocalObjectStore
    from webapp.jobs.worker import Worker
    from webapp.mapping.mapper_job import run_mapper
    from webapp.mapping.models import MapFeature
    from webapp.mapping.vision_job import VisionStage

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("fleet-owner", role=User.Role.DRIVER)
    keys: dict[str, Any] = {}

    def register(run: Run) -> None:
        for device_id in sorted({s.frame.device_id for s in run.sent}):
            if device_id not in keys:
                keys[device_id] = protocol.generate_private_key()
                register_device(owner, device_id, protocol.public_key_bytes(keys[device_id]))

    store = LocalObjectStore(work / "images")
    if args.detector == "model":
        from vision.detector import DetectorSettings, YoloDetector

        s = DetectorSettings(threads=args.threads)
        if args.model:
            s.model = args.model
        detector: Any = YoloDetector(s)
    else:
        detector = TruthDetector({})

    def teach(run: Run) -> None:
        """The truth detector's answers for this run's frames."""
        if not isinstance(detector, TruthDetector):
            return
        for snt in run.sent:
            im = cv2.imdecode(np.frombuffer(snt.frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if im is not None:
                detector.labels[pixel_key(im)] = run.truth_labels.get(
                    (snt.frame.device_id, snt.frame.seq), []
                )

    stage = VisionStage(detector, store)
    worker = Worker(ImageCheckHandler(store, stage=stage))
    door = Door(store)

    results: dict[str, dict[str, Any]] = {}
    _, truth_v1 = load_truth(world_dir / "features.geojson")
    local_t, truth_v2 = load_truth(world_dir / "features_v2.geojson")
    snapshots: dict[str, dict[int, tuple[str, str, float, float]]] = {}
    for v in ("v1", "v2"):
        if v == "v2":
            if args.no_v2:
                break
            minutes = args.v2_minutes or args.minutes
            fleets["v2"] = ensure_fleet(world, args.devices, minutes, args.seed + 1000, "v2", t_v2)
            load("v2")
        run = runs[v]
        register(run)
        teach(run)
        door_s, work_s = ingest(run.sent, keys, door, worker)
        t0 = time.perf_counter()
        audit = Auditor(store).run()
        worker.run_until_idle(timeout_s=86400)  # frames the audit cleared
        audit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = run_mapper()
        map_s = time.perf_counter() - t0
        print(
            f"{v}: door {door_s:.0f}s, image checks + vision {work_s:.0f}s, audit {audit_s:.0f}s"
            f" ({audit.newly_flagged} flagged); {stage.totals.frames}"
            f" frames, {stage.totals.detections} detections so far), mapper {map_s:.1f}s: {rep.line()}"
        )
        truth = truth_v1 if v == "v1" else truth_v2
        snap = {}
        feats = []
        for f in MapFeature.objects.all():
            e, n = local_t.to_enu(f.lon, f.lat)
            feats.append((f.label, float(e), float(n), f.status))
            snap[f.pk] = (f.label, f.status, float(e), float(n))
        snapshots[v] = snap
        ids = {i for i, t in truth.items() if t[0] in MAP_CLASSES}
        seen = seen_counts(run.truth_labels, ids)
        eligible = {i for i, c in seen.items() if c >= 2}
        light = {
            d["device_id"]: d["light"]
            for d in json.loads((fleets[v] / "fleet.json").read_text())["devices"]
        }
        light_of: dict[str, str] = {}
        for (dev, _seq), labels_ in run.truth_labels.items():
            for lb in labels_:
                if lb["id"] in eligible:
                    prev = light_of.get(lb["id"])
                    here = light.get(dev.removesuffix("-b"), "?")
                    light_of[lb["id"]] = here if prev in (None, here) else "mixed"
        results[v] = score(feats, truth, eligible, light_of)
        r = results[v]
        print(
            f"{v}: {r['eligible']} ground-truth features seen >= 2 times; {r['confirmed']} confirmed,"
            f" {r['candidates']} candidates, {r['removed']} removed; precision {r['precision']:.3f}"
            f" recall {r['recall']:.3f} median {r['median_m']:.2f} m p90 {r['p90_m']:.2f} m"
            f" class accuracy {r['class_accuracy']:.3f}"
        )
        for cls, m in r["per_class"].items():
            print(
                f"    {cls:20s} eligible {m['eligible']:3d} recall {m['recall']:.3f}"
                f" precision {m['precision']:.3f} median {m['median_m']:.2f} m"
            )
        for light_, m in r["per_light"].items():
            print(
                f"    light {light_:10s} eligible {m['eligible']:3d} recall {m['recall']:.3f}"
                f" median {m['median_m']:.2f} m"
            )

    change_p = change_r = float("nan")
    if "v2" in runs:
        changes = json.loads((world_dir / "changes.json").read_text())
        gone = {c["id"] for c in changes["removed"]} | {c["id"] for c in changes["moved"]}
        new = {c["id"] for c in changes["added"]} | {c["id"] for c in changes["moved"]}
        v1, v2 = snapshots["v1"], snapshots["v2"]
        turned_removed = [
            pk for pk, x in v2.items() if x[1] == "removed" and v1.get(pk, ("", ""))[1] != "removed"
        ]
        added = [pk for pk, x in v2.items() if pk not in v1 and x[1] == "confirmed"]
        t1_ids = sorted(truth_v1)
        t1 = [(truth_v1[i][0], truth_v1[i][1], truth_v1[i][2]) for i in t1_ids]
        t2_ids = sorted(truth_v2)
        t2 = [(truth_v2[i][0], truth_v2[i][1], truth_v2[i][2]) for i in t2_ids]
        m_rm = match_nearest(
            [(v2[pk][0], v2[pk][2], v2[pk][3]) for pk in turned_removed], t1, MATCH_M
        )
        m_add = match_nearest([(v2[pk][0], v2[pk][2], v2[pk][3]) for pk in added], t2, MATCH_M)
        ok_rm = {t1_ids[m.truth] for m in m_rm if t1_ids[m.truth] in gone}
        ok_add = {t2_ids[m.truth] for m in m_add if t2_ids[m.truth] in new}
        predicted = len(turned_removed) + len(added)
        change_p = (len(ok_rm) + len(ok_add)) / predicted if predicted else float("nan")
        # what the v2 fleet could see
        cams = camera_truth(fleets["v2"])
        frames_v2: dict[str, list[float]] = defaultdict(list)
        starts = {
            d["device_id"]: datetime.fromisoformat(d["start_time_utc"].replace("Z", "+00:00"))
            for d in json.loads((fleets["v2"] / "fleet.json").read_text())["devices"]
        }
        for snt in runs["v2"].sent:
            dev = snt.frame.device_id.removesuffix("-b")
            frames_v2[dev].append((snt.frame.captured_at - starts[dev]).total_seconds())
        for ts in frames_v2.values():
            ts.sort()
        seen_v1 = seen_counts(runs["v1"].truth_labels, gone)
        observable_gone = {
            i
            for i in gone
            if i in truth_v1
            and seen_v1.get(i, 0) >= 2
            and passes_by(cams, frames_v2, truth_v1[i]) >= 3
        }
        seen_v2 = seen_counts(runs["v2"].truth_labels, new)
        observable_new = {i for i, c in seen_v2.items() if c >= 2}
        found = len(ok_rm & observable_gone) + len(ok_add & observable_new)
        total = len(observable_gone) + len(observable_new)
        change_r = found / total if total else float("nan")
        print(
            f"changes: {len(turned_removed)} features turned removed ({len(ok_rm)} right), {len(added)}"
            f" new confirmed ({len(ok_add)} right); observable: {len(observable_gone)} removed/moved away"
            f" (seen in v1, >= 3 v2 passes by), {len(observable_new)} added/moved here (seen >= 2 in v2)"
        )
    r = results["v1"]
    print(
        f"detector: {args.detector}; world {world_dir.name}; fleet seed {args.seed}; "
        f"{len(Frame.objects.all())} frames stored"
    )
    print(
        f"RESULT precision={r['precision']:.3f} recall={r['recall']:.3f} median_m={r['median_m']:.2f}"
        f" p90_m={r['p90_m']:.2f} change_precision={change_p:.3f} change_recall={change_r:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
