"""API latency under load, against a static file of the same server, side by side in one run.

    python bench/api.py [--features 100000] [--frames 1000000] [--seconds 20] [--clients 8]

A PostgreSQL server of its own gets `--features` map features and `--frames` accepted
frames from `--devices` devices spread over a 30 x 30 km region around Helsinki (bulk COPY;
H3 cells computed in Python). `roadmesh web serve` (waitress, 8 threads) serves it, and a
second process (this file, `load`) runs `--clients` keep-alive HTTP clients for `--seconds`,
each picking at random one of:

- bbox: GET /api/v1/features?bbox=... a city-sized box (about 5 x 5 km) at a random place;
- detail: GET /api/v1/features/{id} of a random feature (with its observations);
- tile: GET /tiles/features/15/x/y.mvt of a random z15 tile in the region (the tile cache
  is off: every tile is built);
- static: GET /static/roadmesh/site.css (WhiteNoise), the reference.

It prints the median and 99th percentile of each kind and, last:
`RESULT bbox_p99_vs_static=<x> tile_p99_vs_static=<x>`. Throttles are raised for the run
(ROADMESH_API_ANON_RATE, _TILE_RATE, _EXPENSIVE_CONCURRENCY): the load comes from one address.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CENTER = (60.19, 24.94)  # lat, lon
SPAN_LAT, SPAN_LON = 0.27, 0.54  # about 30 x 30 km
CITY_LAT, CITY_LON = 0.045, 0.09  # about 5 x 5 km
CLASSES = [
    "stop",
    "yield",
    "no_entry",
    "speed_limit_30",
    "speed_limit_50",
    "traffic_light",
    "fire_hydrant",
]


def _cells(lat: float, lon: float) -> tuple[int, int, int]:
    import h3

    return tuple(h3.str_to_int(h3.latlng_to_cell(lat, lon, r)) for r in (12, 9, 7))  # type: ignore[return-value]


def populate(url: str, n_features: int, n_frames: int, n_devices: int) -> None:
    """Bulk rows: users and devices by SQL, frames and features by COPY."""
    import numpy as np
    import psycopg

    rng = np.random.default_rng(7)
    t0 = time.time()
    with psycopg.connect(url, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name,
                   email, is_staff, is_active, date_joined, role, wallet_address)
               SELECT '!', false, 'bench-' || g, '', '', '', false, true, now(), 'driver', ''
               FROM generate_series(1, %s) g""",
            (max(1, n_devices // 2),),
        )
        cur.execute(
            """INSERT INTO fleet_device (device_id, owner_id, public_key, mqtt_password_hash,
                   status, created_at, online, trust_score, trust_evidence)
               SELECT 'bench-dev-' || g, (SELECT min(id) FROM accounts_user) + (g %% %s),
                   decode(lpad(to_hex(g), 64, '0'), 'hex'), '', 'active', now(), false, 1.0, '{}'
               FROM generate_series(1, %s) g""",
            (max(1, n_devices // 2), n_devices),
        )
        cur.execute("SELECT id FROM fleet_device ORDER BY id")
        device_ids = [r[0] for r in cur.fetchall()]
        lat = CENTER[0] + (rng.random(n_frames) - 0.5) * SPAN_LAT
        lon = CENTER[1] + (rng.random(n_frames) - 0.5) * SPAN_LON
        dev = rng.integers(0, len(device_ids), n_frames)
        age = rng.integers(0, 200 * 86400, n_frames)
        now = time.time()
        columns = (
            "device_id, seq, captured_at, received_at, lat, lon, fix_type, satellites, hdop, camera_id,"
            " intrinsics_ref, h3_r12, h3_r9, h3_r7, image_sha256, image_bytes, quality_sharpness,"
            " quality_exposure, quality_obstruction, faces_blurred, plates_blurred, state, flags,"
            " fraud_score, image_width, image_height"
        )
        print(f"  computing H3 cells of {n_frames:,} frames", flush=True)
        with cur.copy(f"COPY fleet_frame ({columns}) FROM STDIN") as copy:
            for i in range(n_frames):
                r12, r9, r7 = _cells(float(lat[i]), float(lon[i]))
                at = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now - int(age[i])))
                copy.write_row(
                    (
                        device_ids[dev[i]],
                        i + 1,
                        at,
                        at,
                        float(lat[i]),
                        float(lon[i]),
                        2,
                        9,
                        0.8,
                        "cam0",
                        "bench",
                        r12,
                        r9,
                        r7,
                        f"{i:064x}",
                        200_000,
                        100.0,
                        0.5,
                        0.0,
                        0,
                        0,
                        "accepted",
                        "[]",
                        0.0,
                        1280,
                        720,
                    )
                )
        flat = CENTER[0] + (rng.random(n_features) - 0.5) * SPAN_LAT
        flon = CENTER[1] + (rng.random(n_features) - 0.5) * SPAN_LON
        fcols = (
            "label, lat, lon, uncertainty_m, facing_deg, h3_r12, n_passes, n_devices,"
            " first_seen_at, last_seen_at, status, ellipse_major_m, ellipse_minor_m,"
            " ellipse_bearing_deg, n_observations, missed_passes, score, status_by, updated_at"
        )
        with cur.copy(f"COPY mapping_mapfeature ({fcols}) FROM STDIN") as copy:
            for i in range(n_features):
                r12 = _cells(float(flat[i]), float(flon[i]))[0]
                copy.write_row(
                    (
                        CLASSES[i % len(CLASSES)],
                        float(flat[i]),
                        float(flon[i]),
                        1.5,
                        90.0,
                        r12,
                        3,
                        2,
                        "2026-01-01 00:00:00+00",
                        "2026-06-01 00:00:00+00",
                        "confirmed" if i % 5 else "candidate",
                        1.5,
                        0.8,
                        30.0,
                        3,
                        0,
                        0.8,
                        "mapper",
                        "2026-06-01 00:00:00+00",
                    )
                )
        # a few observations per feature for the detail view
        cur.execute(
            """INSERT INTO mapping_detection (frame_id, label, confidence, x0, y0, x1, y1,
                   model_version, model_sha256, created_at, feature_id)
               SELECT (m.id * 7 + f) %% %s + (SELECT min(id) FROM fleet_frame), m.label, 0.8,
                   100, 100, 160, 160, 'bench', '', now(), m.id
               FROM mapping_mapfeature m, generate_series(1, 3) f""",
            (n_frames,),
        )
        conn.commit()
        cur.execute("ANALYZE")
    print(f"  populated in {time.time() - t0:.0f} s", flush=True)


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    return int((lon + 180) / 360 * n), int(
        (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    )


def load(base: str, seconds: float, clients: int, max_feature: int) -> dict[str, Any]:
    """The load process: `clients` keep-alive connections, a random mix, latencies in ms."""
    host, port = base.removeprefix("http://").split(":")
    out: dict[str, list[float]] = {"bbox": [], "detail": [], "tile": [], "static": []}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def path(kind: str, rng: random.Random) -> str:
        if kind == "bbox":
            lat = CENTER[0] + (rng.random() - 0.5) * (SPAN_LAT - CITY_LAT)
            lon = CENTER[1] + (rng.random() - 0.5) * (SPAN_LON - CITY_LON)
            box = f"{lon - CITY_LON / 2:.5f},{lat - CITY_LAT / 2:.5f},{lon + CITY_LON / 2:.5f},{lat + CITY_LAT / 2:.5f}"
            return f"/api/v1/features?bbox={box}&limit=100"
        if kind == "detail":
            return f"/api/v1/features/{rng.randint(1, max_feature)}"
        if kind == "tile":
            lat = CENTER[0] + (rng.random() - 0.5) * SPAN_LAT
            lon = CENTER[1] + (rng.random() - 0.5) * SPAN_LON
            x, y = tile_of(lat, lon, 15)
            return f"/tiles/features/15/{x}/{y}.mvt"
        return "/static/roadmesh/site.css"

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.monotonic() < deadline:
            kind = rng.choice(list(out))
            t = time.perf_counter()
            try:
                conn.request("GET", path(kind, rng))
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                status = 0
            ms = (time.perf_counter() - t) * 1000
            with lock:
                if status == 200:
                    out[kind].append(ms)
                else:
                    errors[f"{kind} {status}"] = errors.get(f"{kind} {status}", 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {**out, "_errors": [errors]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=1_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    args = ap.parse_args()

    from broker import free_port, wait_for_port
    from tests.conftest import traversable_tmpdir
    from tests.support.postgres import PostgresServer

    pg = PostgresServer.start(traversable_tmpdir("bench-api-pg-"))
    base = traversable_tmpdir("bench-api-")
    server = None
    try:
        url = pg.create_database("benchapi")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROADMESH_")}
        env.update(
            {
                "ROADMESH_DATABASE_URL": url,
                "ROADMESH_DATA_DIR": str(base / "data"),
                "ROADMESH_API_ANON_RATE": "100000000/minute",
                "ROADMESH_TILE_RATE": "100000000/minute",
                "ROADMESH_EXPENSIVE_CONCURRENCY": str(args.threads),
                "ROADMESH_TILE_CACHE_SECONDS": "0",
            }
        )
        roadmesh = [sys.executable, "-m", "roadmesh"]
        subprocess.run(
            [*roadmesh, "web", "migrate"], env=env, cwd=REPO, check=True, capture_output=True
        )
        print(
            f"== populating PostgreSQL: {args.features:,} features, {args.frames:,} frames",
            flush=True,
        )
        populate(url, args.features, args.frames, args.devices)
        port = free_port()
        log = open(base / "web.log", "wb")
        server = subprocess.Popen(
            [*roadmesh, "web", "serve", "--port", str(port), "--threads", str(args.threads)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if not wait_for_port("127.0.0.1", port, 60):
            print((base / "web.log").read_text(), file=sys.stderr)
            return 1
        target = f"http://127.0.0.1:{port}"
        load_argv = [
            sys.executable,
            __file__,
            "load",
            target,
            str(5.0),
            str(args.clients),
            str(args.features),
        ]
        subprocess.run(load_argv, cwd=REPO, check=True, capture_output=True)  # warm up
        print(
            f"== load: {args.clients} clients for {args.seconds:.0f} s from a second process",
            flush=True,
        )
        load_argv[4] = str(args.seconds)
        done = subprocess.run(load_argv, cwd=REPO, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout)
        errors = result.pop("_errors")[0]
        print(f"{'kind':<8} {'requests':>9} {'median ms':>10} {'p99 ms':>8}")
        for kind, values in result.items():
            if not values:
                print(f"{kind:<8} no successful requests")
                continue
            print(
                f"{kind:<8} {len(values):>9} {statistics.median(values):>10.2f} {pct(values, 0.99):>8.2f}"
            )
        if errors:
            print(f"non-200 answers: {errors}")
        static = pct(result["static"], 0.99)
        print(
            f"RESULT bbox_p99_vs_static={pct(result['bbox'], 0.99) / static:.2f}"
            f" tile_p99_vs_static={pct(result['tile'], 0.99) / static:.2f}"
        )
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        pg.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        _base, _seconds, _clients, _features = sys.argv[2:6]
        print(json.dumps(load(_base, float(_seconds), int(_clients), int(_features))))
        sys.exit(0)
    sys.exit(main())
