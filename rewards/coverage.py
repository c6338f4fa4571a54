"""Coverage: how many distinct H3 res-12 cells each contributor brought, weighted by freshness.

A cell counts once per contributor, at its most recent observation; its weight halves
every `half_life_days` of age. Pure: takes observations, returns scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Observation:
    contributor: str
    cell: int  # H3 res-12 cell id (int64)
    captured_at: datetime


@dataclass(frozen=True, slots=True)
class CoverageScore:
    contributor: str
    cells: int
    fresh_cells: float  # sum over cells of 0.5 ** (age_days / half_life_days)


def coverage(
    observations: Iterable[Observation], *, now: datetime, half_life_days: float = 30.0
) -> list[CoverageScore]:
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    latest: dict[tuple[str, int], datetime] = {}
    for obs in observations:
        key = (obs.contributor, obs.cell)
        if key not in latest or obs.captured_at > latest[key]:
            latest[key] = obs.captured_at
    totals: dict[str, list[float]] = {}
    for (contributor, _cell), when in latest.items():
        age_days = max((now - when).total_seconds(), 0.0) / 86400.0
        entry = totals.setdefault(contributor, [0.0, 0.0])
        entry[0] += 1
        entry[1] += 0.5 ** (age_days / half_life_days)
    return sorted(
        (CoverageScore(c, int(n), w) for c, (n, w) in totals.items()),
        key=lambda s: (-s.fresh_cells, s.contributor),
    )
