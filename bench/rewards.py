"""Fairness and speed of the epoch rewards: what the simulator's adversaries earn, how honest
pay follows true fresh coverage, and how long closing a large epoch takes.

    python bench/rewards.py [--world DIR] [--seed 5] [--devices 16] [--minutes 6]
                            [--fleet DIR] [--no-privacy] [--skip-fleet] [--skip-timing]

1. Fleet. `roadmesh sim fleet --adversaries all` renders the fleet (one device of every
   adversary kind, the rest honest; kept under out/ and shared with bench/fraud.py); each
   device's drive becomes the frames its software publishes (bench/fraud.py's helpers:
   the stock edge pipeline, or the cheat's own software). Every device gets its own owner
   and wallet (a cloned key is one device, so one owner). All frames go through the real
   server path in arrival order: the door (`ingest.door.Door`), the image-check jobs
   (`ingest.image_checks` on the job worker) and the audit (`ingest.audit.Auditor`), into
   SQLite in a temp dir. A synthetic coverage history (seeded) marks a share of the
   world's cells as covered 0-60 days before the epoch, so freshness matters. Then
   `close-epoch` runs (webapp.payouts.epochs) against an in-process EVM, and
   `verify` recomputes the epoch from its published file.
2. Shares: the coverage pool's share paid to each adversary type, to the honest drivers,
   and to the duplicate farmer's victim (an honest drive whose pictures were copied: it is
   not an adversary). `adversary_share` sums every device of an adversary type, the honest
   parts of the spoofer's and replayer's drives included.
3. `honest_r`: Pearson r, over the honest drives (the victim's included), between coverage
   pay and true fresh coverage: the H3 res-12 cells of the device's true track
   (truth/track.csv), each worth its freshness weight (the same history and parameters),
   shared equally among the honest drives that truly covered it.
4. Timing: closing a synthetic epoch of 1,000,000 frames from 10,000 contributors (12,000
   devices) on one core (the process pinned to CPU 0): typing and sorting the tables,
   writing the inputs file with its SHA-256, scoring, the cumulative Merkle tree and
   every proof, the claims file.

Last line: `RESULT adversary_share=<x> honest_r=<x> close_epoch_s=<n>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

VICTIM = "victim"  # the duplicate farmer's original: an honest drive


# -- timing --------------------------------------------------------------------------------
def synthetic_tables(
    n_frames: int, n_accounts: int, seed: int
) -> tuple[Any, dict[str, pd.DataFrame]]:
    """An epoch's tables: 12 devices per 10 accounts, drives along runs of neighbouring
    res-12 cells in a res-5 area (~250 km2), quality and GNSS spread like real devices,
    a third of the cells covered before, a few distrusted devices, gold-weighted votes."""
    import h3.api.basic_int as h3i

    from rewards.cells import parents
    from rewards.params import EpochParams, Region

    rng = np.random.default_rng(seed)
    n_dev = n_accounts * 12 // 10
    dev_acc = np.concatenate(
        [np.arange(n_accounts), rng.integers(0, n_accounts, n_dev - n_accounts)]
    )
    area = np.array(h3i.cell_to_children(h3i.latlng_to_cell(60.17, 24.94, 5), 12), dtype=np.int64)
    per_dev = rng.multinomial(n_frames, np.ones(n_dev) / n_dev)
    dev = np.repeat(np.arange(n_dev), per_dev)
    start = rng.integers(0, len(area) - 400, n_dev)
    offset = np.concatenate([np.arange(k) * 4 // 5 for k in per_dev]) % 400
    cells = area[np.repeat(start, per_dev) + offset]
    seq = np.concatenate([np.arange(k) for k in per_dev])
    names = np.array([f"dev{i:05d}" for i in range(n_dev)], dtype=object)
    accounts = np.array([f"u{i}" for i in range(n_accounts)], dtype=object)
    t0 = 1_790_000_000
    used = np.unique(cells)
    hist = used[rng.random(len(used)) < 1 / 3]
    lat, lon = 60.17, 24.94
    params = EpochParams(
        1,
        t0,
        t0 + 7 * 86400,
        regions=(
            Region(
                "centre",
                2.0,
                (
                    (lon - 0.1, lat - 0.05),
                    (lon + 0.1, lat - 0.05),
                    (lon + 0.1, lat + 0.05),
                    (lon - 0.1, lat + 0.05),
                ),
            ),
        ),
    )
    n_votes = 50_000
    demand_cells = np.unique(parents(used[::50], 9))
    return params, dict(
        accounts=pd.DataFrame(
            {"account": accounts, "wallet": [f"0x{i + 1:040x}" for i in range(n_accounts)]}
        ),
        devices=pd.DataFrame(
            {
                "device": names,
                "account": accounts[dev_acc],
                "trust": rng.choice([1.0, 0.97, 0.2], n_dev, p=[0.9, 0.08, 0.02]),
            }
        ),
        frames=pd.DataFrame(
            {
                "device": names[dev],
                "seq": seq,
                "h3_r12": cells,
                "hdop": rng.uniform(0.6, 3.0, n_frames),
                "satellites": rng.integers(4, 16, n_frames),
                "fix_type": rng.choice([1, 2, 3], n_frames, p=[0.05, 0.9, 0.05]),
                "sharpness": rng.uniform(40, 900, n_frames),
                "brightness": rng.uniform(20, 230, n_frames),
            }
        ),
        history=pd.DataFrame(
            {"h3_r12": hist, "last_covered_at": t0 - rng.integers(3600, 90 * 86400, len(hist))}
        ),
        usage=pd.DataFrame(
            {"h3": demand_cells, "requests": rng.integers(0, 1000, len(demand_cells))}
        ),
        detection_reviews=pd.DataFrame(
            {
                "device": names[rng.integers(0, n_dev, 20_000)],
                "confirmed": rng.integers(0, 2, 20_000),
            }
        ),
        votes=pd.DataFrame(
            {
                "account": accounts[rng.integers(0, n_accounts, n_votes)],
                "task": np.arange(n_votes),
                "answer": rng.choice(["accept", "reject"], n_votes),
                "consensus": rng.choice(["accept", "reject", ""], n_votes),
                "gold": rng.choice(["", "", "", "accept"], n_votes),
            }
        ),
    )


def time_close_epoch(n_frames: int, n_accounts: int, seed: int) -> float:
    from rewards.epoch import close
    from rewards.inputs import EpochInputs

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    params, tables = synthetic_tables(n_frames, n_accounts, seed)
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    inputs = EpochInputs.of(params, **tables)
    steps["tables"] = time.perf_counter() - t0
    t = time.perf_counter()
    data = inputs.to_bytes()
    sha = hashlib.sha256(data).hexdigest()
    steps["inputs file"] = time.perf_counter() - t
    t = time.perf_counter()
    result = close(inputs, sha)
    steps["score + tree"] = time.perf_counter() - t
    t = time.perf_counter()
    claims = result.claims_json()
    steps["proofs + claims file"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    print(
        f"close epoch: {len(inputs.frames):,} frames, {len(inputs.accounts):,} contributors, "
        f"{len(inputs.devices):,} devices, {len(inputs.votes):,} votes -> {len(result.allocations):,} "
        f"wallets; inputs {len(data) / 1e6:.1f} MB, claims {len(claims) / 1e6:.1f} MB; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
        + f"; total {total:.1f}s on one core"
    )
    return total


# -- the fleet through the server ----------------------------------------------------------
def ensure_fleet(args: argparse.Namespace) -> Path:
    tag = f"fleet-d{args.devices}-m{args.minutes:g}-s{args.seed}"
    if args.fleet:
        out = Path(args.fleet)
    elif args.world:
        out = REPO / "out" / "bench-rewards" / f"{Path(args.world).name}-{tag}"
    else:
        out = REPO / "out" / "bench-fraud" / tag  # shared with bench/fraud.py
    if (out / "fleet.json").exists():
        return out
    start = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = [
        sys.executable, "-m", "roadmesh.cli", "sim", "fleet",
        "--devices", str(args.devices), "--minutes", f"{args.minutes:g}",
        "--seed", str(args.seed), "--adversaries", "all", "--start", start, "--out", str(out),
    ]  # fmt: skip
    if args.world:
        cmd += ["--world", str(args.world)]
    print("rendering the fleet: " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return out


def group_of(dev: dict[str, Any]) -> str:
    if dev["role"] == "duplicate_farmer" and dev.get("detail") == "original":
        return VICTIM
    return str(dev["role"])


def true_cells(fleet: Path, dev: dict[str, Any]) -> set[int]:
    import h3.api.basic_int as h3i

    track = pd.read_csv(fleet / "devices" / dev["dir"] / "truth" / "track.csv")
    return {h3i.latlng_to_cell(a, o, 12) for a, o in zip(track["lat"], track["lon"], strict=True)}


def feed_fleet(fleet: Path, no_privacy: bool, work: Path) -> dict[str, Any]:
    """Every published frame through door, image checks and audit; one owner per device."""
    import protocol
    from bench.fraud import _NoDetector, published
    from vision.privacy import Redactor

    redactor = Redactor(_NoDetector(), _NoDetector()) if no_privacy else Redactor.default()
    t0 = time.perf_counter()
    sent = published(fleet, redactor, fleet / f"published{'-np' if no_privacy else ''}.pickle")
    sent.sort(key=lambda s: (s.arrival, s.device_dir, s.frame.seq))
    print(f"fleet {fleet.name}: {len(sent)} frames ({time.perf_counter() - t0:.0f}s edge pipeline)")

    from ingest.audit import Auditor
    from ingest.door import Door
    from ingest.image_checks import ImageCheckHandler
    from webapp.accounts.models import User
    from webapp.fleet.provisioning import register_device
    from webapp.images import LocalObjectStore
    from webapp.jobs.worker import Worker

    keys: dict[str, Any] = {}
    wallets: dict[str, str] = {}
    for device_id in sorted({s.frame.device_id for s in sent}):
        keys[device_id] = protocol.generate_private_key()
        wallets[device_id] = "0x" + hashlib.sha256(device_id.encode()).hexdigest()[:40]
        owner = User.objects.create_user(f"owner-{device_id}", wallet_address=wallets[device_id])
        register_device(owner, device_id, protocol.public_key_bytes(keys[device_id]))
    store = LocalObjectStore(work / "images")
    door = Door(store)
    statuses: dict[str, int] = defaultdict(int)
    t0 = time.perf_counter()
    for s in sent:
        topic = protocol.topic_for(s.frame.device_id, protocol.Channel.FRAMES)
        try:
            payload = protocol.encode(s.frame, keys[s.frame.device_id])
        except protocol.ProtocolError:
            statuses["unsendable"] += 1
            continue
        statuses[door.handle(topic, payload).status] += 1
    door_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Worker(ImageCheckHandler(store)).run_until_idle(timeout_s=3600)
    checks_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = Auditor(store).run()
    print(
        f"door {dict(statuses)} in {door_s:.0f}s; image checks {checks_s:.0f}s; audit "
        f"{time.perf_counter() - t0:.0f}s, {report.newly_flagged} newly flagged"
    )
    return wallets


def seed_history(fleet: Path, devices: list[dict[str, Any]], seed: int, starts_at: datetime) -> int:
    """Mark a seeded half of the cells any device truly drove as covered 0-60 days before."""
    from webapp.payouts.models import CellCoverage

    cells = sorted(set().union(*(true_cells(fleet, d) for d in devices)))
    rng = np.random.default_rng([seed, 7])
    rows = [
        CellCoverage(
            h3_r12=c,
            last_covered_at=starts_at - timedelta(seconds=int(rng.integers(3600, 60 * 86400))),
            epoch=0,
        )
        for c in cells
        if rng.random() < 0.5
    ]
    CellCoverage.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def fleet_fairness(args: argparse.Namespace) -> tuple[float, float]:
    fleet = ensure_fleet(args)
    devices = json.loads((fleet / "fleet.json").read_text())["devices"]
    work = Path(tempfile.mkdtemp(prefix="bench-rewards-"))
    os.environ["ROADMESH_DATA_DIR"] = str(work)
    os.environ.pop("ROADMESH_DATABASE_URL", None)
    from webapp.django_setup import setup_django

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    wallets = feed_fleet(fleet, args.no_privacy, work)

    from web3 import EthereumTesterProvider, Web3

    from contracts.chain import Chain
    from rewards.params import EpochParams
    from rewards.scoring import cell_weights
    from webapp.payouts.epochs import close_epoch
    from webapp.payouts.models import Allocation
    from webapp.payouts.verify import verify_epoch

    ends_at = datetime.now(UTC)
    starts_at = ends_at - timedelta(days=1)
    n_hist = seed_history(fleet, devices, args.seed, starts_at)
    w3 = Web3(EthereumTesterProvider())
    chain = Chain(w3, w3.eth.accounts[0])
    chain.deploy(cap=10**9 * 10**18, root_delay_s=0)
    closed = close_epoch(
        ends_at=ends_at,
        epoch_days=1,
        overrides={},
        publish_dir=work / "published",
        file_uri=lambda p: p.resolve().as_uri(),
        chain=chain,
        progress=lambda line: print("  " + line),
    )
    verdict = verify_epoch(chain, closed.epoch.number)
    print(f"verify epoch {closed.epoch.number}: {'ok' if verdict.ok else verdict.problems}")
    result = closed.result
    assert result is not None
    pool = result.scores.coverage_pool
    coverage = {
        a.wallet_address: int(a.coverage_amount)
        for a in Allocation.objects.filter(epoch=closed.epoch)
    }

    # pay per sim device (a cloned key's two drives are one device: shown as cloned_key)
    by_group: dict[str, int] = defaultdict(int)
    pay: dict[str, int] = {}
    for dev in devices:
        if dev["device_id"] in pay:
            continue
        pay[dev["device_id"]] = coverage.get(wallets[dev["device_id"]], 0)
        by_group[group_of(dev)] += pay[dev["device_id"]]
    print(f"coverage pool {pool} base units; history: {n_hist} cells covered before")
    scored = result.scores.devices.set_index("device")
    for dev in devices:
        if group_of(dev) in ("honest", VICTIM) or dev["device_id"] not in scored.index:
            continue  # adversaries with no rewardable frame left are not listed
        d = scored.loc[dev["device_id"]]
        print(
            f"  {dev['dir']} {group_of(dev):18s} {int(d['frames']):4d} rewardable frames, "
            f"quality {d['quality']:.2f} (image {d['image']:.2f}, gnss {d['gnss']:.2f}, "
            f"fraud {d['fraud']:.0f}), pay {pay[dev['device_id']] / pool:.2%}"
        )
    for group in sorted(by_group):
        print(f"  {group:18s} {by_group[group] / pool:7.2%} of the coverage pool")
    adversary = sum(v for g, v in by_group.items() if g not in ("honest", VICTIM)) / pool
    print(
        f"without the trust factor (min_trust 0, rescored from the published file): "
        f"adversaries {_share_without_trust(Path(closed.epoch.inputs_file), devices, wallets):.2%}"
    )

    # true fresh coverage of the honest drives, with the epoch's own weights
    honest = [d for d in devices if group_of(d) in ("honest", VICTIM)]
    truth = {d["device_id"]: true_cells(fleet, d) for d in honest}
    count: dict[int, int] = defaultdict(int)
    for cells in truth.values():
        for c in cells:
            count[c] += 1
    inputs_params = EpochParams.from_dict(closed.epoch.params)
    from rewards.inputs import EpochInputs

    published_inputs = EpochInputs.read(Path(closed.epoch.inputs_file))
    history = pd.DataFrame(
        [(c.h3_r12, int(c.last_covered_at.timestamp())) for c in _history_rows(starts_at)],
        columns=["h3_r12", "last_covered_at"],
    )
    truth_inputs = EpochInputs.of(inputs_params, history=history)
    true_value = {}
    for device_id, cells in truth.items():
        ids = np.array(sorted(cells), dtype=np.int64)
        fresh, region, demand = cell_weights(ids, truth_inputs)
        shares = np.array([1 / count[int(c)] for c in ids])
        true_value[device_id] = float((fresh * region * demand * shares).sum())
    names = sorted(truth)
    x = np.array([true_value[n] for n in names])
    y = np.array([pay[n] for n in names], dtype=np.float64)
    r = float(np.corrcoef(x, y)[0, 1]) if len(names) > 2 and y.std() > 0 else float("nan")
    for n in names:
        print(f"  {n}: true fresh coverage {true_value[n]:8.1f}, pay {pay[n] / pool:6.2%}")
    print(
        f"honest drives: {len(names)}; Pearson r = {r:.3f}; published frames {len(published_inputs.frames)}"
    )
    return adversary, r


def _share_without_trust(
    inputs_file: Path, devices: list[dict[str, Any]], wallets: dict[str, str]
) -> float:
    """The adversaries' coverage share had the fraud checks' trust not zeroed any device:
    what the scoring's own rules (per-owner effort, repeats, quality, caps) leave them."""
    import dataclasses

    from rewards.inputs import EpochInputs
    from rewards.scoring import score

    inputs = EpochInputs.read(inputs_file)
    inputs = dataclasses.replace(inputs, params=dataclasses.replace(inputs.params, min_trust=0.0))
    s = score(inputs)
    paid = dict(zip(s.accounts["wallet"], s.accounts["coverage_amount"], strict=True))
    bad = {wallets[d["device_id"]] for d in devices if group_of(d) not in ("honest", VICTIM)}
    return sum(int(paid.get(w, 0)) for w in bad) / s.coverage_pool


def _history_rows(before: datetime) -> list[Any]:
    from webapp.payouts.models import CellCoverage

    return list(CellCoverage.objects.filter(epoch=0, last_covered_at__lt=before))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--world", default="", help="world folder (default: the sample world)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--fleet", default="", help="an existing `sim fleet` output to use")
    ap.add_argument("--no-privacy", action="store_true", help="skip face/plate blurring")
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--contributors", type=int, default=10_000)
    ap.add_argument("--skip-fleet", action="store_true", help="timing only")
    ap.add_argument("--skip-timing", action="store_true", help="fleet only")
    args = ap.parse_args()
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}", flush=True)
    adversary = honest_r = float("nan")
    if not args.skip_fleet:
        adversary, honest_r = fleet_fairness(args)
    close_s = float("nan")
    if not args.skip_timing:
        close_s = time_close_epoch(args.frames, args.contributors, args.seed)
    print(
        f"RESULT adversary_share={adversary:.4f} honest_r={honest_r:.3f} close_epoch_s={close_s:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
