"""Epoch scoring: a pure, vectorised function of an epoch's input tables.

Coverage (the coverage share of the pool)
  A *pass* is a run of a device's consecutive frames (by seq) in one H3 res-12 cell.
  For each cell c covered in the epoch:
    value V_c = base_value x freshness_c x region_c x demand_c
      freshness_c = clip(days since c was last covered / fresh_full_days, fresh_floor, fresh_cap),
                    fresh_cap for a cell never covered before
      region_c    = weight of the configured polygon holding c (default_region_weight elsewhere)
      demand_c    = 1 + demand_gain x r / (r + demand_half_requests), r = last epoch's API
                    requests in c's demand cell
  Each owner o that covered c has an effort e_oc = 1 + d + d^2 + ... (d = repeat_decay)
  over the passes of its device with the most passes there: the owner's devices together
  count as one, so splitting one drive over many devices (or mounting ten on one car)
  gains nothing. Each device d has a quality q_d (below); the owner's weight in the cell
  is e_oc x (pass-weighted mean q of its devices there), and device d's part of it is
  w_dc = e_oc x passes_dc x q_d / P_oc, P_oc the owner's passes there over all its devices.
  The cell's value is split by weight: device d earns V_c x w_dc / max(1, W_c), W_c the sum
  of all weights in c. A lone contributor of quality 1 earns V_c; one of quality 0.5 earns
  half of it and the rest stays unallocated.
  A device earns at most device_cap_points, an owner at most owner_cap_points.
  The coverage pool is split over owners in proportion to their points.

Quality q_d = image x gnss x review x fraud, each in [0, 1]:
  image  = mean over frames of min(1, sharpness / sharpness_ref) x exposure score (1 inside
           [brightness_low, brightness_high], falling linearly to 0 at 0 and 255);
           a frame the server did not measure counts 0.5
  gnss   = mean over frames of hdop score (1 at hdop_good, 0 at hdop_bad; 0.5 unknown)
           x min(1, satellites / min_satellites) x fix score (3D or better 1, 2D 0.5, none 0)
  review = min(1, smoothed share of the device's reviewed detections that reviewers
           confirmed / review_ref), smoothed with review_prior_weight pseudo-reviews at
           review_ref (1.0 with no reviews)
  fraud  = 0 when the fraud checks' trust in the device is below min_trust, else 1

Reviews (the review share of the pool)
  A reviewer's gold accuracy is (correct gold answers + gold_prior x gold_prior_weight) /
  (gold answers + gold_prior_weight); below min_gold_accuracy it counts 0. Each settled,
  non-gold vote that agreed with the consensus earns the reviewer its accuracy in points.

Determinism: every per-row score is rounded to millionths and summed as integers, and the
pool is split with integer arithmetic, so a recomputation on another machine gives the same
token amounts, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rewards.cells import lookup, parents, region_cells
from rewards.inputs import EpochInputs
from rewards.params import SHARE_SCALE, EpochParams

SCALE = 1_000_000  # fixed point: millionths
DAY_S = 86_400


@dataclass(frozen=True)
class Scores:
    """What `score` computes. Points are integers in millionths of a point."""

    accounts: (
        pd.DataFrame
    )  # account, wallet, coverage_points, review_points, coverage_amount, review_amount, amount
    devices: pd.DataFrame  # device, account, frames, cells, passes, image, gnss, review, fraud, quality, points_raw, points
    cells: pd.DataFrame  # device, account, h3_r12, passes, freshness, region, demand, value, weight, cell_weight, points
    reviewers: (
        pd.DataFrame
    )  # account, settled, agreed, gold_answered, gold_correct, accuracy, points
    coverage_pool: int
    review_pool: int
    compute_pool: int

    @property
    def allocated(self) -> int:
        paid = self.accounts[self.accounts["wallet"] != ""]
        return int(sum(int(a) for a in paid["amount"]))


def _q(x: np.ndarray) -> np.ndarray:
    """Round to millionths, as int64."""
    return np.rint(np.asarray(x, dtype=np.float64) * SCALE).astype(np.int64)


def _split(pool: int, points: np.ndarray) -> list[int]:
    """floor(pool x points_i / sum(points)) for each i, exactly."""
    total = int(points.sum()) if len(points) else 0
    if total <= 0:
        return [0] * len(points)
    return [pool * int(p) // total for p in points]


def image_scores(sharpness: np.ndarray, brightness: np.ndarray, p: EpochParams) -> np.ndarray:
    sharp = np.minimum(1.0, np.maximum(0.0, sharpness) / p.sharpness_ref)
    b = brightness
    expo = np.where(
        b < p.brightness_low,
        np.maximum(0.0, b) / p.brightness_low,
        np.where(
            b > p.brightness_high, np.maximum(0.0, 255.0 - b) / (255.0 - p.brightness_high), 1.0
        ),
    )
    score = sharp * np.minimum(1.0, expo)
    return np.where(np.isnan(sharpness) | np.isnan(brightness), 0.5, score)


def gnss_scores(
    hdop: np.ndarray, satellites: np.ndarray, fix_type: np.ndarray, p: EpochParams
) -> np.ndarray:
    h = np.clip((p.hdop_bad - hdop) / (p.hdop_bad - p.hdop_good), 0.0, 1.0)
    h = np.where(np.isnan(hdop), 0.5, h)
    sats = np.minimum(1.0, satellites / p.min_satellites)
    fix = np.where(fix_type >= 2, 1.0, np.where(fix_type == 1, 0.5, 0.0))
    return h * sats * fix


def repeat_effort(p: EpochParams) -> np.ndarray:
    """effort[k] = 1 + d + ... + d^(k-1) in millionths, for k = 0 .. max_passes."""
    out, total, term = [0], 0.0, 1.0
    for _ in range(p.max_passes):
        total += term
        term *= p.repeat_decay
        out.append(round(total * SCALE))
    return np.array(out, dtype=np.int64)


def cell_weights(
    cells: np.ndarray, inputs: EpochInputs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """freshness, region and demand weights of each cell (unique int64 ids)."""
    p = inputs.params
    hist = inputs.history
    last = lookup(
        cells,
        hist["h3_r12"].to_numpy(np.int64),
        hist["last_covered_at"].to_numpy(np.float64),
        np.nan,
    )
    age_days = np.maximum(0.0, p.starts_at - last) / DAY_S
    fresh = np.where(
        np.isnan(last),
        p.fresh_cap,
        np.clip(age_days / p.fresh_full_days, p.fresh_floor, p.fresh_cap),
    )
    region = np.full(len(cells), p.default_region_weight)
    if p.regions:
        ids, weights = region_cells(p.regions, p.region_resolution)
        region = lookup(parents(cells, p.region_resolution), ids, weights, p.default_region_weight)
    demand = np.ones(len(cells))
    usage = inputs.usage
    if len(usage) and p.demand_gain > 0:
        req = lookup(
            parents(cells, p.demand_resolution),
            usage["h3"].to_numpy(np.int64),
            usage["requests"].to_numpy(np.float64),
            0.0,
        )
        req = np.maximum(req, 0.0)
        demand = 1.0 + p.demand_gain * req / (req + p.demand_half_requests)
    return fresh, region, demand


def _device_quality(inputs: EpochInputs, dcode: np.ndarray) -> pd.DataFrame:
    p = inputs.params
    f = inputs.frames
    devices = inputs.devices
    n = len(devices)
    nframes = np.bincount(dcode, minlength=n)
    img = _q(image_scores(f["sharpness"].to_numpy(), f["brightness"].to_numpy(), p))
    gns = _q(
        gnss_scores(
            f["hdop"].to_numpy(),
            f["satellites"].to_numpy(np.float64),
            f["fix_type"].to_numpy(),
            p,
        )
    )
    # integer-valued float sums below 2**53 are exact
    denom = np.maximum(nframes, 1)
    image = np.bincount(dcode, weights=img, minlength=n) / denom / SCALE
    gnss = np.bincount(dcode, weights=gns, minlength=n) / denom / SCALE
    dev_index = pd.Index(devices["device"])
    rv = inputs.detection_reviews
    rcode = dev_index.get_indexer(rv["device"])
    reviewed = np.bincount(rcode, minlength=n).astype(np.float64)
    confirmed = np.bincount(rcode, weights=(rv["confirmed"].to_numpy() > 0), minlength=n)
    k = p.review_prior_weight
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = (confirmed + k * p.review_ref) / (reviewed + k)
    precision = np.where(reviewed + k > 0, precision, p.review_ref)
    review = np.minimum(1.0, precision / p.review_ref)
    fraud = (devices["trust"].to_numpy() >= p.min_trust).astype(np.float64)
    # the product of millionth-rounded factors, rounded again: what the cells use
    quality_q = _q((_q(image) / SCALE) * (_q(gnss) / SCALE) * (_q(review) / SCALE) * fraud)
    return pd.DataFrame(
        {
            "device": devices["device"].to_numpy(),
            "account": devices["account"].to_numpy(),
            "frames": nframes,
            "image": _q(image) / SCALE,
            "gnss": _q(gnss) / SCALE,
            "review": _q(review) / SCALE,
            "fraud": fraud,
            "quality": quality_q / SCALE,
            "quality_q": quality_q,
        }
    )


def _coverage(inputs: EpochInputs) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = inputs.params
    f = inputs.frames
    devices = inputs.devices
    acc_index = pd.Index(inputs.accounts["account"])
    dev_index = pd.Index(devices["device"])
    dcode = dev_index.get_indexer(f["device"]).astype(np.int64)
    dev_acc = acc_index.get_indexer(devices["account"]).astype(np.int64)
    quality = _device_quality(inputs, dcode)
    cells = f["h3_r12"].to_numpy(np.int64)

    # passes: runs of a device's consecutive frames in one cell (frames are sorted by device, seq)
    new = np.ones(len(f), dtype=bool)
    new[1:] = (dcode[1:] != dcode[:-1]) | (cells[1:] != cells[:-1])
    dc = (
        pd.DataFrame({"d": dcode[new], "c": cells[new]})
        .groupby(["d", "c"], sort=True)
        .size()
        .rename("passes")
        .reset_index()
    )
    d = dc["d"].to_numpy(np.int64)
    c = dc["c"].to_numpy(np.int64)
    passes = np.minimum(dc["passes"].to_numpy(np.int64), p.max_passes)
    o = dev_acc[d]
    by_owner_cell = pd.Series(passes).groupby([o, c])
    owner_passes = by_owner_cell.transform("sum").to_numpy(np.int64)
    most_passes = by_owner_cell.transform("max").to_numpy(np.int64)
    effort = repeat_effort(p)[most_passes]
    q = quality["quality_q"].to_numpy(np.int64)[d]
    weight = (effort * passes * q) // (owner_passes * SCALE)  # int64: <= 1e9 * 1e3 * 1e6

    ucells, cinv = np.unique(c, return_inverse=True)
    fresh, region, demand = cell_weights(ucells, inputs)
    value = _q(p.base_value * fresh * region * demand)
    cell_weight = np.bincount(cinv, weights=weight.astype(np.float64), minlength=len(ucells))
    cell_weight = np.rint(cell_weight).astype(np.int64)  # exact: a sum of integers < 2**53
    den = np.maximum(cell_weight, SCALE)[cinv]
    points = (value[cinv].astype(object) * weight.astype(object)) // den.astype(object)
    points = points.astype(np.int64)

    n = len(devices)
    raw = pd.Series(points).groupby(d).sum().reindex(range(n), fill_value=0).to_numpy(np.int64)
    capped = np.minimum(raw, round(p.device_cap_points * SCALE))
    ndc = np.bincount(d, minlength=n)
    npass = pd.Series(passes).groupby(d).sum().reindex(range(n), fill_value=0).to_numpy(np.int64)
    dev = quality.drop(columns=["quality_q"]).assign(
        cells=ndc, passes=npass, points_raw=raw, points=capped
    )
    cell_table = pd.DataFrame(
        {
            "device": dev_index.to_numpy()[d],
            "account": acc_index.to_numpy()[o],
            "h3_r12": c,
            "passes": passes,
            "freshness": fresh[cinv],
            "region": region[cinv],
            "demand": demand[cinv],
            "value": value[cinv],
            "weight": weight,
            "cell_weight": cell_weight[cinv],
            "points": points,
        }
    )
    return dev, cell_table


def _reviewers(inputs: EpochInputs) -> pd.DataFrame:
    p = inputs.params
    v = inputs.votes
    accounts = inputs.accounts["account"].to_numpy()
    acc_index = pd.Index(accounts)
    a = acc_index.get_indexer(v["account"])
    n = len(accounts)
    gold = v["gold"].to_numpy(dtype=object) != ""
    answer = v["answer"].to_numpy(dtype=object)
    consensus = v["consensus"].to_numpy(dtype=object)
    gold_answered = np.bincount(a[gold], minlength=n)
    gold_correct = np.bincount(a[gold & (answer == v["gold"].to_numpy(dtype=object))], minlength=n)
    settled = ~gold & (consensus != "")
    n_settled = np.bincount(a[settled], minlength=n)
    agreed = np.bincount(a[settled & (answer == consensus)], minlength=n)
    k = p.gold_prior_weight
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (gold_correct + p.gold_prior * k) / (gold_answered + k)
    acc = np.where(gold_answered + k > 0, acc, p.gold_prior)
    acc_q = _q(acc)
    acc_q = np.where(acc_q >= round(p.min_gold_accuracy * SCALE), acc_q, 0)
    return pd.DataFrame(
        {
            "account": accounts,
            "settled": n_settled,
            "agreed": agreed,
            "gold_answered": gold_answered,
            "gold_correct": gold_correct,
            "accuracy": acc_q / SCALE,
            "points": agreed * acc_q,
        }
    )


def score(inputs: EpochInputs) -> Scores:
    p = inputs.params
    cov_share, rev_share, cmp_share = p.fixed_point_shares
    coverage_pool = p.pool * cov_share // SHARE_SCALE
    review_pool = p.pool * rev_share // SHARE_SCALE
    compute_pool = p.pool * cmp_share // SHARE_SCALE

    devices, cells = _coverage(inputs)
    reviewers = _reviewers(inputs)
    accounts = inputs.accounts
    acc_index = pd.Index(accounts["account"])
    n = len(accounts)
    a = acc_index.get_indexer(devices["account"])
    owner_points = (
        pd.Series(devices["points"].to_numpy(np.int64))
        .groupby(a)
        .sum()
        .reindex(range(n), fill_value=0)
        .to_numpy(np.int64)
    )
    owner_points = np.minimum(owner_points, round(p.owner_cap_points * SCALE))
    review_points = reviewers["points"].to_numpy(np.int64)
    cov_amount = _split(coverage_pool, owner_points)
    rev_amount = _split(review_pool, review_points)
    table = pd.DataFrame(
        {
            "account": accounts["account"].to_numpy(),
            "wallet": accounts["wallet"].to_numpy(),
            "coverage_points": owner_points,
            "review_points": review_points,
            "coverage_amount": np.array(cov_amount, dtype=object),
            "review_amount": np.array(rev_amount, dtype=object),
            "amount": np.array(
                [x + y for x, y in zip(cov_amount, rev_amount, strict=True)], dtype=object
            ),
        }
    )
    return Scores(table, devices, cells, reviewers, coverage_pool, review_pool, compute_pool)
