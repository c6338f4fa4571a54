"""Closing an epoch against the database: gather the input tables, score them
(`rewards.epoch.close`), store allocations and proofs, count the frames, write the published
files, and publish the root on chain.

Frames are selected only through `webapp.fleet.lifecycle.rewardable_frames` and counted only
through `mark_rewarded`. The input tables hold no positions or times of frames, no names:
device ids, account keys ("u" + user id) with their wallets, and H3 cells.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from django.db import transaction
from django.utils import timezone

from contracts.chain import Chain
from rewards.epoch import EpochResult, close, explain
from rewards.errors import RewardsError
from rewards.inputs import EpochInputs, sha256_hex
from rewards.params import EpochParams
from webapp.accounts.models import User
from webapp.fleet import lifecycle
from webapp.fleet.models import Device
from webapp.payouts.models import Allocation, CellCoverage, Epoch

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class EpochError(RewardsError):
    """An epoch cannot be closed or published now."""


@dataclass(frozen=True)
class Closed:
    epoch: Epoch
    result: EpochResult | None  # None when an already scored epoch was only published


def account_key(user_id: int) -> str:
    return f"u{user_id}"


# -- the input tables ------------------------------------------------------------------------
def gather(
    params: EpochParams, window_start: datetime, ends_at: datetime
) -> tuple[EpochInputs, list[int]]:
    """The epoch's input tables from the database, and the ids of the frames they hold.

    Frames: rewardable frames captured in [window_start, ends_at) and not yet counted (a
    frame that reached the server after its own epoch closed counts in the next one)."""
    rows = list(
        lifecycle.rewardable_frames(window_start, ends_at)
        .order_by()
        .values_list(
            "pk",
            "device__device_id",
            "seq",
            "h3_r12",
            "hdop",
            "satellites",
            "fix_type",
            "server_sharpness",
            "server_brightness",
        )
        .iterator(chunk_size=20_000)
    )
    cols = [
        "pk",
        "device",
        "seq",
        "h3_r12",
        "hdop",
        "satellites",
        "fix_type",
        "sharpness",
        "brightness",
    ]
    frames = pd.DataFrame(rows, columns=cols)
    frame_ids = [int(i) for i in frames["pk"]]
    device_ids = sorted(set(frames["device"]))
    devices = list(
        Device.objects.filter(device_id__in=device_ids).values_list(
            "device_id", "owner_id", "trust_score"
        )
    )
    votes = _votes(params)
    owner_ids = {o for _d, o, _t in devices} | {int(u) for u in votes["owner_id"]}
    votes = votes.drop(columns=["owner_id"])
    wallets = dict(User.objects.filter(pk__in=owner_ids).values_list("pk", "wallet_address"))
    accounts = pd.DataFrame(
        {
            "account": [account_key(u) for u in sorted(owner_ids)],
            "wallet": [(wallets.get(u) or "").lower() for u in sorted(owner_ids)],
        }
    )
    cells = sorted(set(frames["h3_r12"]))
    history = pd.DataFrame(
        [
            (c, int(t.timestamp()))
            for c, t in _chunked_cells(cells)
            if t < datetime.fromtimestamp(params.starts_at, UTC)
        ],
        columns=["h3_r12", "last_covered_at"],
    )
    inputs = EpochInputs.of(
        params,
        accounts=accounts,
        devices=pd.DataFrame(
            {
                "device": [d for d, _o, _t in devices],
                "account": [account_key(o) for _d, o, _t in devices],
                "trust": [t for _d, _o, t in devices],
            }
        ),
        frames=frames.drop(columns=["pk"]),
        history=history,
        usage=_usage(params),
        detection_reviews=_detection_reviews(device_ids),
        votes=votes,
        cumulative_before=_cumulative_before(params.epoch),
    )
    return inputs, frame_ids


def _usage(params: EpochParams) -> pd.DataFrame:
    """API requests per demand cell in the epoch before this one (webapp.api.usage)."""
    from webapp.api.usage import usage_by_cell

    start = datetime.fromtimestamp(params.starts_at, UTC)
    end = datetime.fromtimestamp(params.ends_at, UTC)
    return usage_by_cell(start - (end - start), start, params.demand_resolution)


def _chunked_cells(cells: list[int]) -> list[tuple[int, datetime]]:
    out: list[tuple[int, datetime]] = []
    for start in range(0, len(cells), 900):
        out += CellCoverage.objects.filter(h3_r12__in=cells[start : start + 900]).values_list(
            "h3_r12", "last_covered_at"
        )
    return out


def _detection_reviews(device_ids: list[str]) -> pd.DataFrame:
    """Decided reviews of the devices' detections: confirmed when the reviewers accepted
    the detection (or relabelled it to the class it already had). Decided labels are in the
    votes' space: "accept", "reject" or a new class (webapp.review.consensus)."""
    from webapp.mapping.models import ReviewTask
    from webapp.review.consensus import ACCEPT

    rows = ReviewTask.objects.filter(
        state=ReviewTask.State.DECIDED,
        detection__isnull=False,
        detection__frame__device__device_id__in=device_ids,
    ).values_list("detection__frame__device__device_id", "detection__label", "decided_label")
    return pd.DataFrame(
        [(d, int(decided in (ACCEPT, label))) for d, label, decided in rows],
        columns=["device", "confirmed"],
    )


def _votes(params: EpochParams) -> pd.DataFrame:
    """Votes cast in the epoch: the answer (a label for a relabel, else the verdict), the
    task's decided label once settled, and its gold label for gold tasks."""
    from webapp.mapping.models import ReviewTask, Vote

    start = datetime.fromtimestamp(params.starts_at, UTC)
    end = datetime.fromtimestamp(params.ends_at, UTC)
    rows = Vote.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
        "reviewer_id",
        "task_id",
        "verdict",
        "label",
        "task__state",
        "task__decided_label",
        "task__is_gold",
        "task__gold_label",
    )
    out = [
        (
            account_key(r),
            task,
            (label if verdict == Vote.Verdict.RELABEL else verdict) or verdict,
            decided if state == ReviewTask.State.DECIDED else "",
            gold_label if is_gold else "",
            r,
        )
        for r, task, verdict, label, state, decided, is_gold, gold_label in rows
    ]
    return pd.DataFrame(out, columns=["account", "task", "answer", "consensus", "gold", "owner_id"])


def _cumulative_before(number: int) -> pd.DataFrame:
    rows = Allocation.objects.filter(epoch__number=number - 1).values_list(
        "wallet_address", "cumulative_amount"
    )
    return pd.DataFrame([(w, int(c)) for w, c in rows], columns=["wallet", "cumulative_amount"])


# -- close and publish -----------------------------------------------------------------------
def close_epoch(
    *,
    ends_at: datetime,
    epoch_days: int,
    overrides: dict[str, Any],
    publish_dir: Path,
    file_uri: Callable[[Path], str],
    chain: Chain | None,
    progress: Progress = print,
) -> Closed:
    """Close the next epoch (or publish the last one, when it was scored but never reached
    the chain)."""
    last = Epoch.objects.order_by("-number").first()
    if last is not None and last.state == Epoch.State.SCORED:
        progress(f"epoch {last.number} was scored but not published: publishing it")
        return Closed(publish(last, chain, progress), None)
    number = 1 if last is None else last.number + 1
    starts_at = ends_at - timedelta(days=epoch_days) if last is None else last.ends_at
    if ends_at <= starts_at:
        raise EpochError(f"epoch {number} would end ({ends_at:%Y-%m-%d %H:%M}) before it starts")
    first = Epoch.objects.order_by("number").first()
    window_start = first.starts_at if first is not None else starts_at
    params = EpochParams.from_dict(
        {
            **overrides,
            "epoch": number,
            "starts_at": int(starts_at.timestamp()),
            "ends_at": int(ends_at.timestamp()),
        }
    )
    inputs, frame_ids = gather(params, window_start, ends_at)
    progress(
        f"epoch {number}: {len(inputs.frames)} rewardable frames from {len(inputs.devices)} "
        f"devices, {len(inputs.accounts)} accounts, {len(inputs.votes)} votes"
    )
    data = inputs.to_bytes()
    sha = sha256_hex(data)
    result = close(inputs, sha)
    progress(
        f"epoch {number}: {len(result.allocations)} wallets, {result.new_amount} new base units, "
        f"{result.withheld} withheld (no wallet), root "
        + ("0x" + result.root.hex() if result.root else "none")
    )
    stem = f"epoch-{number:06d}"
    inputs_path = publish_dir / f"{stem}-inputs.zip"
    claims_path = publish_dir / f"{stem}-claims.json"
    with transaction.atomic():
        epoch = Epoch.objects.create(
            number=number,
            starts_at=starts_at,
            ends_at=ends_at,
            state=Epoch.State.SCORED if result.tree else Epoch.State.EMPTY,
            params=params.to_dict(),
            frames=len(frame_ids),
            inputs_sha256=sha,
            inputs_file=str(inputs_path),
            claims_file=str(claims_path),
            inputs_uri=file_uri(inputs_path),
            merkle_root="0x" + result.root.hex() if result.root else "",
            new_amount=result.new_amount,
            withheld_amount=result.withheld,
            closed_at=timezone.now(),
        )
        _store_allocations(epoch, result)
        _store_coverage(number, inputs, frame_ids)
        marked = lifecycle.mark_rewarded(number, frame_ids)
        if marked != len(frame_ids):
            raise EpochError(
                f"{len(frame_ids) - marked} of the epoch's frames changed while it closed "
                "(flagged or counted meanwhile): nothing was stored, run close-epoch again"
            )
    publish_dir.mkdir(parents=True, exist_ok=True)
    _write(inputs_path, data)
    _write(claims_path, result.claims_json().encode())
    progress(f"epoch {number}: wrote {inputs_path} (sha256 {sha[:16]}...) and {claims_path.name}")
    if epoch.state == Epoch.State.SCORED:
        publish(epoch, chain, progress)
    return Closed(epoch, result)


def publish(epoch: Epoch, chain: Chain | None, progress: Progress = print) -> Epoch:
    """Fund the epoch's new allocations and propose its root and inputs hash on chain."""
    if chain is None:
        progress(f"epoch {epoch.number}: no chain configured; left scored")
        return epoch
    if chain.active_epoch() >= epoch.number or chain.epoch_root(epoch.number).status == "pending":
        on = chain.epoch_root(epoch.number)
        if "0x" + on.root.hex() != epoch.merkle_root:
            raise EpochError(
                f"the chain already holds another root for epoch {epoch.number} ({on.status})"
            )
        progress(f"epoch {epoch.number}: its root is already on chain ({on.status})")
        tx = epoch.publish_tx
    else:
        tx = chain.publish_epoch(
            epoch.number,
            bytes.fromhex(epoch.merkle_root[2:]),
            bytes.fromhex(epoch.inputs_sha256),
            epoch.inputs_uri,
            int(epoch.new_amount),
        )
    deployment = chain.deployment
    Epoch.objects.filter(pk=epoch.pk).update(
        state=Epoch.State.PUBLISHED,
        publish_tx=tx,
        chain_id=deployment.chain_id if deployment else None,
        distributor=deployment.distributor if deployment else "",
        published_at=timezone.now(),
    )
    epoch.refresh_from_db()
    status = chain.epoch_root(epoch.number).status
    progress(f"epoch {epoch.number}: root published in {tx} ({status}), funded {epoch.new_amount}")
    return epoch


def _store_allocations(epoch: Epoch, result: EpochResult) -> None:
    acc = result.scores.accounts
    by_wallet: dict[str, list[Any]] = {}
    for _, row in acc.iterrows():
        if row["wallet"]:
            by_wallet.setdefault(str(row["wallet"]).lower(), []).append(row)
    tree = result.tree
    rows = []
    for a in result.allocations:
        mine = by_wallet.get(a.wallet, [])
        user_id = int(mine[0]["account"][1:]) if mine else None
        rows.append(
            Allocation(
                epoch=epoch,
                account_id=user_id,
                wallet_address=a.wallet,
                amount=a.amount,
                coverage_amount=sum(int(r["coverage_amount"]) for r in mine),
                review_amount=sum(int(r["review_amount"]) for r in mine),
                cumulative_amount=a.cumulative_amount,
                proof=["0x" + h.hex() for h in tree.proof(a.wallet)] if tree else [],
                breakdown={
                    "accounts": [
                        explain(result.scores, r["account"]) for r in mine if int(r["amount"])
                    ]
                },
            )
        )
    Allocation.objects.bulk_create(rows, batch_size=500)


def _store_coverage(number: int, inputs: EpochInputs, frame_ids: list[int]) -> None:
    """Each covered cell's last coverage: the latest capture time of its counted frames."""
    from django.db.models import Max

    from webapp.fleet.models import Frame

    latest: dict[int, datetime] = {}
    for start in range(0, len(frame_ids), 900):
        for cell, when in (
            Frame.objects.filter(pk__in=frame_ids[start : start + 900])
            .values("h3_r12")
            .annotate(latest=Max("captured_at"))
            .values_list("h3_r12", "latest")
        ):
            if cell not in latest or when > latest[cell]:
                latest[cell] = when
    existing = {
        c.h3_r12: c
        for start in range(0, len(latest), 900)
        for c in CellCoverage.objects.filter(h3_r12__in=list(latest)[start : start + 900])
    }
    new, changed = [], []
    for cell, when in latest.items():
        row = existing.get(cell)
        if row is None:
            new.append(CellCoverage(h3_r12=cell, last_covered_at=when, epoch=number))
        elif when > row.last_covered_at:
            row.last_covered_at, row.epoch = when, number
            changed.append(row)
    CellCoverage.objects.bulk_create(new, batch_size=500)
    CellCoverage.objects.bulk_update(changed, ["last_covered_at", "epoch"], batch_size=500)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
