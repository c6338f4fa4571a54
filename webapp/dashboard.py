"""What the contributor dashboard shows a driver, gathered from the database: their devices,
the frames the network refused (the same reasons their receipts carry), this epoch's
coverage and quality so far, and their earnings per epoch with a ready claim transaction.
Plain functions that return dicts; the page only renders them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, Max, Min
from django.utils import timezone

from webapp.accounts.models import User
from webapp.fleet.lifecycle import FLAG_SCORE, REWARDABLE
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.payouts.models import Allocation, Epoch

TOKEN_DECIMALS = 18
MULTIPLIERS = {
    "image": "image quality: sharpness and exposure the server measured on your frames",
    "gnss": "GNSS quality: fix type, satellites and HDOP your receiver reported",
    "review": "reviewers' verdicts on your detections (confirmed share)",
    "fraud": "1 unless the fraud checks flagged the device (then 0 for flagged frames)",
    "quality": "the product of the multipliers above: what each covered cell is worth to you",
}


def tokens(amount: Decimal | int | str) -> str:
    """Base units (18 decimals) as a decimal token amount."""
    value = Decimal(str(amount)) / (Decimal(10) ** TOKEN_DECIMALS)
    return f"{value:.4f}"


def devices(owner: User) -> list[dict[str, Any]]:
    rows = (
        Device.objects.filter(owner=owner)
        .annotate(n=Count("frames"), last_frame=Max("frames__captured_at"))
        .order_by("device_id")
    )
    return [
        {
            "device_id": d.device_id,
            "status": d.status,
            "online": d.online,
            "last_seen_at": d.last_seen_at,
            "frames": d.n,
            "last_frame_at": d.last_frame,
            "trust_score": d.trust_score,
            # from the device's newest telemetry (ingest.door keeps it): None when it sent none
            "outbox_depth": _outbox_depth(d.telemetry),
            "telemetry_at": d.telemetry_at,
        }
        for d in rows
    ]


def _outbox_depth(telemetry: Any) -> int | None:
    outbox = telemetry.get("outbox") if isinstance(telemetry, dict) else None
    depth = outbox.get("depth") if isinstance(outbox, dict) else None
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else None


def refused(owner: User, limit: int = 50) -> dict[str, Any]:
    """Messages the door refused and stored frames flagged later, newest first."""
    ids = list(Device.objects.filter(owner=owner).values_list("device_id", flat=True))
    rejected = list(
        RejectedMessage.objects.filter(device_id__in=ids)
        .order_by("-last_seen_at")
        .values("device_id", "seq", "reason", "detail", "times_seen", "last_seen_at")[:limit]
    )
    by_reason = dict(
        RejectedMessage.objects.filter(device_id__in=ids)
        .values_list("reason")
        .annotate(n=Count("id"))
    )
    flagged = []
    for f in (
        Frame.objects.filter(device__owner=owner, state=Frame.State.FLAGGED)
        .select_related("device")
        .order_by("-captured_at")[:limit]
    ):
        reasons = [
            str(flag.get("reason") or flag.get("check"))
            for flag in f.flags or []
            if float(flag.get("score", 0)) >= FLAG_SCORE
        ]
        flagged.append(
            {"device_id": f.device.device_id, "seq": f.seq, "at": f.captured_at, "reasons": reasons}
        )
    return {"rejected": rejected, "by_reason": by_reason, "flagged": flagged}


def current_window() -> tuple[datetime, int]:
    """Where the open epoch starts, and its number."""
    last = Epoch.objects.order_by("-number").first()
    if last is None:
        first = Frame.objects.aggregate(t=Min("captured_at"))["t"] or timezone.now()
        return first - timedelta(seconds=1), 1
    return last.ends_at, last.number + 1


def this_epoch(owner: User) -> dict[str, Any]:
    starts_at, number = current_window()
    frames = Frame.objects.filter(device__owner=owner, captured_at__gte=starts_at)
    good = frames.filter(state__in=REWARDABLE)
    agg = good.aggregate(
        cells=Count("h3_r12", distinct=True),
        sharp=Avg("server_sharpness"),
        hdop=Avg("hdop"),
        sats=Avg("satellites"),
    )
    return {
        "number": number,
        "starts_at": starts_at,
        "frames": frames.count(),
        "accepted": good.count(),
        "flagged": frames.filter(state=Frame.State.FLAGGED).count(),
        "pending": frames.filter(state=Frame.State.PENDING).count(),
        "cells": agg["cells"],
        "mean_sharpness": agg["sharp"],
        "mean_hdop": agg["hdop"],
        "mean_satellites": agg["sats"],
    }


def claim_transaction(epoch: Epoch, alloc: Allocation) -> dict[str, Any] | None:
    """The distributor's `claim(account, cumulativeAmount, proof)` call, ready to send."""
    if not epoch.distributor:
        return None
    from web3 import Web3

    from contracts.chain import artifact

    contract = Web3().eth.contract(abi=artifact("CumulativeMerkleDistributor")["abi"])
    data = contract.encode_abi(
        "claim",
        args=[
            Web3.to_checksum_address(alloc.wallet_address),
            int(alloc.cumulative_amount),
            [bytes.fromhex(p.removeprefix("0x")) for p in alloc.proof],
        ],
    )
    return {
        "to": Web3.to_checksum_address(epoch.distributor),
        "chainId": epoch.chain_id,
        "data": data,
        "value": "0x0",
        "cast": (
            f"cast send {Web3.to_checksum_address(epoch.distributor)} "
            f"'claim(address,uint256,bytes32[])' {alloc.wallet_address} "
            f"{alloc.cumulative_amount} '[{','.join(alloc.proof)}]'"
        ),
    }


def explained(breakdown: dict[str, Any]) -> list[dict[str, Any]]:
    """Each device's multipliers with the reason behind each."""
    out = []
    for d in (breakdown.get("coverage") or {}).get("devices", []):
        out.append(
            {
                "device": d.get("device"),
                "frames": d.get("frames"),
                "cells": d.get("cells"),
                "multipliers": [
                    {"name": k, "value": d.get(k), "why": why}
                    for k, why in MULTIPLIERS.items()
                    if d.get(k) is not None
                ],
            }
        )
    return out


def multiplier_rows(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per multiplier: its reason and each device's value (a device per column)."""
    rows = []
    for name, why in MULTIPLIERS.items():
        values = [
            next((m["value"] for m in d["multipliers"] if m["name"] == name), None) for d in devices
        ]
        if any(v is not None for v in values):
            rows.append({"name": name, "why": why, "values": values})
    return rows


def earnings(owner: User) -> list[dict[str, Any]]:
    rows = (
        Allocation.objects.filter(account=owner).select_related("epoch").order_by("-epoch__number")
    )
    out = []
    for a in rows:
        coverage = (a.breakdown or {}).get("coverage") or {}
        out.append(
            {
                "epoch": a.epoch.number,
                "state": a.epoch.state,
                "starts_at": a.epoch.starts_at,
                "ends_at": a.epoch.ends_at,
                "amount": tokens(a.amount),
                "coverage_amount": tokens(a.coverage_amount),
                "review_amount": tokens(a.review_amount),
                "cumulative": tokens(a.cumulative_amount),
                "cells": coverage.get("cells"),
                "mean_freshness": coverage.get("mean_freshness"),
                "mean_region": coverage.get("mean_region"),
                "mean_demand": coverage.get("mean_demand"),
                "devices": explained(a.breakdown or {}),
                "multipliers": multiplier_rows(explained(a.breakdown or {})),
                "wallet": a.wallet_address,
                "proof": a.proof,
                "cumulative_base_units": str(a.cumulative_amount),
                "claim": claim_transaction(a.epoch, a)
                if a.epoch.state == Epoch.State.PUBLISHED
                else None,
            }
        )
    return out


def frames_extent(owner: User) -> list[float] | None:
    agg = Frame.objects.filter(device__owner=owner).aggregate(
        a=Min("lon"), b=Min("lat"), c=Max("lon"), d=Max("lat")
    )
    if agg["a"] is None:
        return None
    return [round(agg[k], 6) for k in "abcd"]
