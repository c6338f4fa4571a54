"""Closing an epoch, purely: inputs -> scores -> cumulative amounts per wallet -> Merkle tree
-> the claims file; and the comparison that `roadmesh rewards verify` reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

from rewards.errors import RewardsError
from rewards.inputs import EpochInputs
from rewards.merkle import MerkleTree
from rewards.scoring import SCALE, Scores, score

TOP_CELLS = 20  # cells listed in an account's explanation (the rest are counted)


@dataclass(frozen=True)
class WalletAllocation:
    wallet: str  # lower-case 0x address
    amount: int  # new this epoch
    cumulative_amount: int


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    inputs_sha256: str
    scores: Scores
    allocations: tuple[WalletAllocation, ...]  # every wallet with a cumulative amount, sorted
    tree: MerkleTree | None  # None when no wallet has anything (nothing to publish)
    withheld: int  # earned by accounts without a wallet: not allocated

    @property
    def root(self) -> bytes | None:
        return None if self.tree is None else self.tree.root

    @property
    def new_amount(self) -> int:
        return sum(a.amount for a in self.allocations)

    def claims(self) -> dict[str, Any]:
        """The claims file: every wallet's cumulative amount and proof, for claimers and for
        `verify` (which recomputes it from the inputs file)."""
        tree = self.tree
        return {
            "format": "roadmesh-claims/1",
            "epoch": self.epoch,
            "root": "0x" + tree.root.hex() if tree else None,
            "inputs_sha256": self.inputs_sha256,
            "new_amount": str(self.new_amount),
            "claims": {
                a.wallet: {
                    "amount": str(a.amount),
                    "cumulative_amount": str(a.cumulative_amount),
                    "proof": ["0x" + h.hex() for h in tree.proof(a.wallet)] if tree else [],
                }
                for a in self.allocations
            },
        }

    def claims_json(self) -> str:
        return json.dumps(self.claims(), indent=1, sort_keys=True) + "\n"


def close(inputs: EpochInputs, inputs_sha256: str) -> EpochResult:
    scores = score(inputs)
    acc = scores.accounts
    new: dict[str, int] = {}
    withheld = 0
    for wallet, amount in zip(acc["wallet"], acc["amount"], strict=True):
        if int(amount) == 0:
            continue
        if not wallet:
            withheld += int(amount)
            continue
        key = _wallet(wallet)
        new[key] = new.get(key, 0) + int(amount)
    before: dict[str, int] = {}
    for wallet, amount in zip(
        inputs.cumulative_before["wallet"],
        inputs.cumulative_before["cumulative_amount"],
        strict=True,
    ):
        key = _wallet(wallet)
        if key in before:
            raise RewardsError(f"cumulative_before lists {key} twice")
        before[key] = int(amount)
    allocations = tuple(
        WalletAllocation(w, new.get(w, 0), before.get(w, 0) + new.get(w, 0))
        for w in sorted(set(new) | set(before))
        if before.get(w, 0) + new.get(w, 0) > 0
    )
    tree = (
        MerkleTree.of([(a.wallet, a.cumulative_amount) for a in allocations])
        if allocations
        else None
    )
    return EpochResult(inputs.params.epoch, inputs_sha256, scores, allocations, tree, withheld)


def _wallet(text: str) -> str:
    w = str(text).strip().lower()
    if len(w) != 42 or not w.startswith("0x"):
        raise RewardsError(f"{text!r} is not a wallet address")
    try:
        int(w[2:], 16)
    except ValueError:
        raise RewardsError(f"{text!r} is not a wallet address") from None
    return w


def explain(scores: Scores, account: str, top: int = TOP_CELLS) -> dict[str, Any]:
    """Why `account` got what it got: cells, weights, multipliers (for the dashboard)."""
    row = scores.accounts[scores.accounts["account"] == account]
    if row.empty:
        raise RewardsError(f"account {account} is not in this epoch")
    r = row.iloc[0]
    devs = scores.devices[scores.devices["account"] == account]
    cells = scores.cells[scores.cells["account"] == account]
    best = cells.sort_values(["points", "h3_r12"], ascending=[False, True], kind="mergesort").head(
        top
    )
    rev = scores.reviewers[scores.reviewers["account"] == account].iloc[0]
    raw_total = int(devs["points_raw"].sum())
    return {
        "account": account,
        "amount": str(r["amount"]),
        "coverage": {
            "amount": str(r["coverage_amount"]),
            "points": int(r["coverage_points"]) / SCALE,
            "points_before_caps": raw_total / SCALE,
            "pool": str(scores.coverage_pool),
            "cells": int(cells["h3_r12"].nunique()),
            "passes": int(cells["passes"].sum()),
            "mean_freshness": _mean(cells["freshness"]),
            "mean_region": _mean(cells["region"]),
            "mean_demand": _mean(cells["demand"]),
            "devices": [
                {
                    "device": d["device"],
                    "frames": int(d["frames"]),
                    "cells": int(d["cells"]),
                    "image": float(d["image"]),
                    "gnss": float(d["gnss"]),
                    "review": float(d["review"]),
                    "fraud": float(d["fraud"]),
                    "quality": float(d["quality"]),
                    "points": int(d["points"]) / SCALE,
                    "points_before_cap": int(d["points_raw"]) / SCALE,
                }
                for _, d in devs.iterrows()
            ],
            "top_cells": [
                {
                    "h3": h3i.int_to_str(int(np.int64(c["h3_r12"]).astype(np.uint64))),
                    "device": c["device"],
                    "passes": int(c["passes"]),
                    "freshness": round(float(c["freshness"]), 6),
                    "region": float(c["region"]),
                    "demand": round(float(c["demand"]), 6),
                    "value": int(c["value"]) / SCALE,
                    "share": round(int(c["weight"]) / max(int(c["cell_weight"]), SCALE), 6),
                    "points": int(c["points"]) / SCALE,
                }
                for _, c in best.iterrows()
            ],
        },
        "review": {
            "amount": str(r["review_amount"]),
            "pool": str(scores.review_pool),
            "settled_votes": int(rev["settled"]),
            "agreed": int(rev["agreed"]),
            "gold_answered": int(rev["gold_answered"]),
            "gold_correct": int(rev["gold_correct"]),
            "gold_accuracy": float(rev["accuracy"]),
        },
    }


def _mean(s: pd.Series) -> float:
    return round(float(s.mean()), 6) if len(s) else 0.0


def first_difference(expected: dict[str, Any], published: dict[str, Any]) -> str | None:
    """The first wallet (in address order) whose amount differs between two claims files,
    described in one line; None when they agree."""
    a, b = expected.get("claims", {}), published.get("claims", {})
    for wallet in sorted(set(a) | set(b)):
        x, y = a.get(wallet), b.get(wallet)
        if x is None or y is None:
            side = "recomputed" if y is None else "published"
            return f"{wallet}: only in the {side} allocations"
        for key in ("cumulative_amount", "amount"):
            if str(x[key]) != str(y[key]):
                return f"{wallet}: {key} recomputed {x[key]}, published {y[key]}"
    return None
