"""Small epoch inputs for hand-checked scoring tests."""

from __future__ import annotations

from typing import Any

import h3.api.basic_int as h3i
import pandas as pd

from rewards.inputs import EpochInputs
from rewards.params import TOKEN, EpochParams

T0 = 1_790_000_000  # epoch start, unix seconds
DAY = 86_400
WALLETS = {
    "A": "0x" + "aa" * 20,
    "B": "0x" + "bb" * 20,
    "C": "0x" + "cc" * 20,
    "R": "0x" + "dd" * 20,
}
# cells of res 12 around Helsinki, a few tens of metres apart
CELLS = [h3i.latlng_to_cell(60.17 + 0.0005 * i, 24.94, 12) for i in range(8)]
X, Y, Z = CELLS[0], CELLS[1], CELLS[2]
GOOD = {"hdop": 1.0, "satellites": 10, "fix_type": 2, "sharpness": 500.0, "brightness": 128.0}


def params(**over: Any) -> EpochParams:
    base: dict[str, Any] = {
        "epoch": 1,
        "starts_at": T0,
        "ends_at": T0 + 7 * DAY,
        "pool": 1000 * TOKEN,
    }
    return EpochParams(**{**base, **over})


def frames(device: str, cells: list[int], seq0: int = 1, **quality: Any) -> list[dict[str, Any]]:
    return [
        {"device": device, "seq": seq0 + i, "h3_r12": c, **{**GOOD, **quality}}
        for i, c in enumerate(cells)
    ]


def inputs(
    frame_rows: list[dict[str, Any]],
    *,
    devices: dict[str, str] | None = None,  # device -> account
    trust: dict[str, float] | None = None,
    history: dict[int, int] | None = None,  # cell -> last covered (unix s)
    usage: dict[int, int] | None = None,
    reviews: list[tuple[str, int]] | None = None,
    votes: list[tuple[str, int, str, str, str]] | None = None,
    before: dict[str, int] | None = None,  # wallet -> cumulative
    wallets: dict[str, str] | None = None,
    **over: Any,
) -> EpochInputs:
    devices = devices or {"a1": "A", "a2": "A", "b1": "B"}
    wallets = {**WALLETS, **(wallets or {})}
    accounts = sorted(set(devices.values()) | {v[0] for v in votes or []})
    return EpochInputs.of(
        params(**over),
        accounts=pd.DataFrame({"account": accounts, "wallet": [wallets[a] for a in accounts]}),
        devices=pd.DataFrame(
            {
                "device": list(devices),
                "account": list(devices.values()),
                "trust": [(trust or {}).get(d, 1.0) for d in devices],
            }
        ),
        frames=pd.DataFrame(frame_rows) if frame_rows else None,
        history=pd.DataFrame(
            {"h3_r12": list(history or {}), "last_covered_at": list((history or {}).values())}
        ),
        usage=pd.DataFrame({"h3": list(usage or {}), "requests": list((usage or {}).values())}),
        detection_reviews=pd.DataFrame(reviews or [], columns=["device", "confirmed"]),
        votes=pd.DataFrame(votes or [], columns=["account", "task", "answer", "consensus", "gold"]),
        cumulative_before=pd.DataFrame(
            {"wallet": list(before or {}), "cumulative_amount": list((before or {}).values())}
        ),
    )
