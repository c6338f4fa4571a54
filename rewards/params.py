"""Epoch parameters: the pool, its shares, and every weight of the scoring, as one value.

They are written into the epoch's published inputs file, so anyone recomputing the epoch
uses exactly these numbers. `EpochParams.from_dict` refuses unknown keys and values out of
range with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from rewards.errors import ParamsError

TOKEN = 10**18  # base units per token (18 decimals)
SHARE_SCALE = 1_000_000  # shares are applied to the pool in millionths, in integers


@dataclass(frozen=True)
class Region:
    """A polygon (lon, lat pairs, WGS84) whose cells are worth `weight` times the base value."""

    name: str
    weight: float
    polygon: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class EpochParams:
    epoch: int
    starts_at: int  # unix seconds, inclusive
    ends_at: int  # unix seconds, exclusive
    pool: int = 100_000 * TOKEN  # base units for the whole epoch
    # -- shares of the pool (the rest, and any share without inputs, stays unallocated)
    coverage_share: float = 0.85
    review_share: float = 0.15
    compute_share: float = 0.0  # reserved for community GPU workers; no inputs yet
    # -- a covered cell is worth base_value x freshness x region x demand
    base_value: float = 1.0
    fresh_full_days: float = 30.0  # weight 1.0 when last covered this many days before the epoch
    fresh_floor: float = 0.1  # weight of a cell covered just before the epoch
    fresh_cap: float = 2.0  # the most a cell can be worth for freshness; never-covered cells
    regions: tuple[Region, ...] = ()
    region_resolution: int = 8  # regions are rasterised to H3 cells of this resolution
    default_region_weight: float = 1.0
    demand_resolution: int = 9  # API usage is counted on H3 cells of this resolution
    demand_gain: float = 1.0  # demand weight = 1 + gain * r / (r + demand_half_requests)
    demand_half_requests: float = 100.0
    # -- repeated coverage in one epoch: pass k in a cell adds repeat_decay**(k-1)
    repeat_decay: float = 0.5
    max_passes: int = 32
    # -- caps, in points (a point is one fresh, plain cell covered alone)
    device_cap_points: float = 100_000.0
    owner_cap_points: float = 100_000.0
    # -- contributor quality
    sharpness_ref: float = 100.0  # server-side Laplacian variance that counts as fully sharp
    brightness_low: float = 40.0  # mean grey in [low, high] counts as well exposed
    brightness_high: float = 220.0
    hdop_good: float = 1.0
    hdop_bad: float = 5.0
    min_satellites: int = 6
    review_ref: float = 0.8  # this share of detections confirmed counts as fully precise
    review_prior_weight: float = 10.0  # pseudo-reviews at review_ref before any real one
    min_trust: float = 0.9  # devices the fraud checks trust less than this earn nothing
    # -- reviewers
    gold_prior: float = 0.5
    gold_prior_weight: float = 4.0
    min_gold_accuracy: float = 0.6
    extra: dict[str, Any] = field(default_factory=dict)  # operator notes, carried verbatim

    def __post_init__(self) -> None:
        _check(self)

    @property
    def fixed_point_shares(self) -> tuple[int, int, int]:
        return tuple(  # type: ignore[return-value]
            round(s * SHARE_SCALE)
            for s in (self.coverage_share, self.review_share, self.compute_share)
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["regions"] = [
            {"name": r.name, "weight": r.weight, "polygon": [list(p) for p in r.polygon]}
            for r in self.regions
        ]
        d["pool"] = str(self.pool)  # JSON readers lose integers past 2**53
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamsError(f"unknown epoch parameter(s): {', '.join(unknown)}")
        values = dict(data)
        if "pool" in values:
            try:
                values["pool"] = int(values["pool"])
            except (TypeError, ValueError):
                raise ParamsError(f"pool={values['pool']!r} is not an integer") from None
        if "regions" in values:
            values["regions"] = tuple(_region(r) for r in values["regions"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ParamsError(str(exc)) from None

    @classmethod
    def from_json(cls, text: str) -> EpochParams:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"epoch parameters are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ParamsError("epoch parameters must be a JSON object")
        return cls.from_dict(data)


def _region(raw: Any) -> Region:
    try:
        polygon = tuple((float(lon), float(lat)) for lon, lat in raw["polygon"])
        region = Region(str(raw["name"]), float(raw["weight"]), polygon)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParamsError(
            f"a region needs name, weight and polygon [[lon, lat], ...]: {exc}"
        ) from None
    if len(region.polygon) < 3:
        raise ParamsError(f"region {region.name!r}: a polygon needs at least 3 points")
    return region


def _check(p: EpochParams) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ParamsError(message)

    need(p.epoch >= 1, f"epoch={p.epoch} must be 1 or more")
    need(p.ends_at > p.starts_at, "ends_at must be after starts_at")
    need(0 <= p.pool < 2**256, f"pool={p.pool} must be a non-negative uint256")
    for name in ("coverage_share", "review_share", "compute_share"):
        need(0.0 <= getattr(p, name) <= 1.0, f"{name}={getattr(p, name)} must be in [0, 1]")
    need(sum(p.fixed_point_shares) <= SHARE_SCALE, "the shares of the pool add up to more than 1")
    need(p.base_value > 0, "base_value must be positive")
    need(p.fresh_full_days > 0, "fresh_full_days must be positive")
    need(0 <= p.fresh_floor <= p.fresh_cap, "need 0 <= fresh_floor <= fresh_cap")
    need(p.fresh_cap <= 10, "fresh_cap must be at most 10")
    need(0 <= p.region_resolution <= 12, "region_resolution must be in [0, 12]")
    need(0 <= p.demand_resolution <= 12, "demand_resolution must be in [0, 12]")
    need(0 < p.default_region_weight <= 10, "default_region_weight must be in (0, 10]")
    need(all(0 < r.weight <= 10 for r in p.regions), "region weights must be in (0, 10]")
    need(0 <= p.demand_gain <= 10, "demand_gain must be in [0, 10]")
    need(p.demand_half_requests > 0, "demand_half_requests must be positive")
    need(0 <= p.repeat_decay < 1, "repeat_decay must be in [0, 1)")
    need(1 <= p.max_passes <= 1000, "max_passes must be in [1, 1000]")
    need(p.device_cap_points > 0 and p.owner_cap_points > 0, "caps must be positive")
    need(p.device_cap_points <= 1e9 and p.owner_cap_points <= 1e9, "caps must be at most 1e9")
    need(p.sharpness_ref > 0, "sharpness_ref must be positive")
    need(0 < p.brightness_low <= p.brightness_high < 255, "need 0 < brightness_low <= high < 255")
    need(0 < p.hdop_good < p.hdop_bad, "need 0 < hdop_good < hdop_bad")
    need(p.min_satellites >= 1, "min_satellites must be 1 or more")
    need(0 < p.review_ref <= 1, "review_ref must be in (0, 1]")
    need(p.review_prior_weight >= 0, "review_prior_weight must be >= 0")
    need(0 <= p.min_trust <= 1, "min_trust must be in [0, 1]")
    need(0 <= p.gold_prior <= 1 and p.gold_prior_weight >= 0, "bad gold prior")
    need(0 <= p.min_gold_accuracy <= 1, "min_gold_accuracy must be in [0, 1]")
