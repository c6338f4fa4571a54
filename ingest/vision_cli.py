"""`roadmesh vision ...`: vision's own commands (vision.cli) plus the two server processes
that need the database and the image-check job, which `vision` may not import:

worker   image checks + detection + privacy re-check on one decode per frame (the
         `image_check` job with the vision stage), and the `vision` job for frames an
         image-check worker without a detector checked. Run any number on any machines.
map      recompute the map features from the detections (the mapper)

/metrics and /healthz (with the execution providers the session really got) are served
with `--metrics-port`.
"""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from vision import cli as vision_cli
from webapp.django_setup import setup_django


def register(sub: argparse._SubParsersAction) -> None:
    vision_cli.register(sub)
    parser = sub.choices["vision"]
    cmds = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    w = cmds.add_parser("worker", help="the vision worker: image checks, detection, privacy")
    w.add_argument("--until-idle", action="store_true", help="stop when no frame waits")
    w.add_argument("--max-frames", type=int, default=64, help="frames of one device per lease")
    w.add_argument("--sweep-s", type=float, default=60.0, help="look for unseen frames this often")
    w.add_argument("--metrics-port", type=int, default=0, help="serve /metrics and /healthz")
    w.add_argument("--metrics-host", default="127.0.0.1")
    w.set_defaults(func=_worker)
    m = cmds.add_parser("map", help="recompute the map features from the detections")
    m.set_defaults(func=_map)


def _worker(args: argparse.Namespace) -> int:
    setup_django()
    from django.conf import settings
    from prometheus_client import Counter, Gauge

    from ingest.health import serve_metrics
    from ingest.image_checks import ImageCheckHandler
    from ingest.policy import IntakePolicy
    from vision.detector import DetectorError, YoloDetector, settings_from_env
    from webapp.images import store_for
    from webapp.jobs import queue
    from webapp.jobs.worker import Worker
    from webapp.mapping.vision_job import VISION, VisionHandler, VisionStage, sweep

    try:
        detector = YoloDetector(settings_from_env())
    except DetectorError as exc:
        raise vision_cli.CommandError(str(exc)) from exc
    store = store_for(settings.SERVER)
    stage = VisionStage(detector, store)
    checks = ImageCheckHandler(
        store, IntakePolicy.from_env(), max_frames=args.max_frames, stage=stage
    )
    workers = [Worker(checks), Worker(VisionHandler(stage, store, max_frames=args.max_frames))]
    provider = Gauge(
        "roadmesh_vision_provider_info", "Execution providers of the detector", ["provider"]
    )
    for p in detector.providers:
        provider.labels(p).set(1)
    frames = Counter("roadmesh_vision_frames_total", "Frames the detector processed")
    misses = Counter(
        "roadmesh_vision_privacy_misses_total", "Faces and plates the devices left", ["kind"]
    )
    if args.metrics_port:

        def probe() -> tuple[bool, dict[str, Any]]:
            return True, {
                "detector": detector.model_version,
                "providers": detector.providers,
                "device": detector.device,
                "fp16": detector.half,
                "image_check_jobs": queue.depth(checks.kind),
                "vision_jobs": queue.depth(VISION),
            }

        serve_metrics(args.metrics_host, args.metrics_port, probe)

    stopping = False

    def _stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            w.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"vision worker {workers[0].owner}: {detector.model_version} on {detector.providers}",
        flush=True,
    )
    last_sweep = 0.0
    seen = (0, 0, 0)
    while not stopping:
        if time.monotonic() - last_sweep >= args.sweep_s:
            sweep()
            last_sweep = time.monotonic()
        ran = sum(w.run_once() for w in workers)
        t = stage.totals
        frames.inc(t.frames - seen[0])
        misses.labels("face").inc(t.faces_missed - seen[1])
        misses.labels("license_plate").inc(t.plates_missed - seen[2])
        seen = (t.frames, t.faces_missed, t.plates_missed)
        if not ran:
            if args.until_idle and not sweep():
                break
            workers[0].stopping.wait(workers[0].idle_s)
    t = stage.totals
    print(
        f"vision worker {workers[0].owner}: stopped; {t.frames} frames, {t.detections} detections,"
        f" {t.derived} derived images ({t.faces_missed} faces, {t.plates_missed} plates missed)",
        flush=True,
    )
    return 0


def _map(args: argparse.Namespace) -> int:
    setup_django()
    from webapp.mapping.mapper_job import run_mapper

    print(run_mapper().line())
    return 0
