"""Epoch scoring on small cases worked out by hand (default parameters unless stated:
a never-covered cell is worth 2 points, repeat decay 0.5, coverage 85 % of the pool)."""

from __future__ import annotations

import h3.api.basic_int as h3i
import pytest

from rewards.params import TOKEN, Region
from rewards.scoring import score
from tests.rewards.build import DAY, T0, X, Y, Z, frames, inputs

COVERAGE_POOL = 850 * TOKEN  # 85 % of 1000
REVIEW_POOL = 150 * TOKEN


def points(scores, account: str) -> float:  # type: ignore[no-untyped-def]
    row = scores.accounts.set_index("account").loc[account]
    return int(row["coverage_points"]) / 1e6


def amount(scores, account: str, col: str = "coverage_amount") -> int:  # type: ignore[no-untyped-def]
    return int(scores.accounts.set_index("account").loc[account][col])


def test_a_lone_good_driver_earns_the_full_value_of_a_new_cell_and_the_whole_pool() -> None:
    s = score(inputs(frames("a1", [X])))
    assert points(s, "A") == 2.0  # base 1 x never covered (fresh cap 2) x region 1 x demand 1
    assert amount(s, "A") == COVERAGE_POOL
    assert s.devices.set_index("device").loc["a1", "quality"] == 1.0


def test_two_owners_in_one_cell_split_its_value() -> None:
    s = score(inputs(frames("a1", [X]) + frames("b1", [X])))
    assert points(s, "A") == points(s, "B") == 1.0
    assert amount(s, "A") == amount(s, "B") == COVERAGE_POOL // 2


def test_a_second_pass_in_the_same_cell_has_diminishing_returns() -> None:
    # a1: X, Y, X -> two passes in X (effort 1 + 0.5), one in Y; b1: one pass in X.
    # X: weights 1.5 and 1 -> a1 gets 2 x 1.5/2.5 = 1.2, b1 0.8; Y: a1 alone, 2.
    s = score(inputs(frames("a1", [X, Y, X]) + frames("b1", [X])))
    assert points(s, "A") == pytest.approx(3.2)
    assert points(s, "B") == pytest.approx(0.8)
    assert amount(s, "A") == COVERAGE_POOL * 8 // 10
    # alone, repeating a cell earns nothing more than covering it once
    alone = score(inputs(frames("a1", [X, Y, X, Y, X])))
    assert points(alone, "A") == 4.0


def test_consecutive_frames_in_one_cell_are_one_pass() -> None:
    s = score(inputs(frames("a1", [X, X, X]) + frames("b1", [X])))
    assert points(s, "A") == points(s, "B") == 1.0


def test_splitting_one_drive_over_several_devices_earns_nothing_extra() -> None:
    one = score(inputs(frames("a1", [X, Y, Z]) + frames("b1", [X])))
    split = score(inputs(frames("a1", [X]) + frames("a2", [Y, Z]) + frames("b1", [X])))
    both = score(  # two dashcams on one car: both devices see every cell
        inputs(frames("a1", [X, Y, Z]) + frames("a2", [X, Y, Z]) + frames("b1", [X]))
    )
    assert points(one, "A") == points(split, "A") == points(both, "A") == 5.0
    assert amount(one, "B") == amount(split, "B") == amount(both, "B")


def test_image_and_gnss_quality_scale_what_a_lone_driver_earns() -> None:
    # sharpness 50 of 100 -> image 0.5; hdop 3 -> 0.5, 3 of 6 satellites -> 0.5, 2D fix -> 0.5
    s = score(
        inputs(
            frames("a1", [X], sharpness=50.0)
            + frames("b1", [Y], hdop=3.0, satellites=3, fix_type=1)
        )
    )
    q = s.devices.set_index("device")
    assert (q.loc["a1", "image"], q.loc["a1", "gnss"]) == (0.5, 1.0)
    assert (q.loc["b1", "image"], q.loc["b1", "gnss"]) == (1.0, 0.125)
    assert points(s, "A") == 1.0 and points(s, "B") == 0.25
    # a dark frame (mean grey 20 of the 40 that counts as well exposed): image 0.5
    dark = score(inputs(frames("a1", [X], brightness=20.0)))
    assert dark.devices.set_index("device").loc["a1", "image"] == 0.5


def test_quality_weights_the_split_of_a_shared_cell() -> None:
    # a1 quality 0.5, b1 quality 1 in X: weights 0.5 and 1 -> 2 x 1/3 and 2 x 2/3
    s = score(inputs(frames("a1", [X], sharpness=50.0) + frames("b1", [X])))
    assert points(s, "A") == pytest.approx(2 / 3, abs=1e-6)
    assert points(s, "B") == pytest.approx(4 / 3, abs=1e-6)


def test_a_device_the_fraud_checks_distrust_earns_nothing_and_takes_nothing() -> None:
    s = score(inputs(frames("a1", [X]) + frames("b1", [X, Y]), trust={"b1": 0.5}))
    assert points(s, "B") == 0.0
    assert points(s, "A") == 2.0 and amount(s, "A") == COVERAGE_POOL


def test_reviewers_confirming_few_detections_lower_the_multiplier() -> None:
    # 10 reviewed, 2 confirmed; smoothed with 10 pseudo-reviews at 0.8: (2 + 8) / 20 = 0.5,
    # over the 0.8 reference -> 0.625
    reviews = [("a1", 1)] * 2 + [("a1", 0)] * 8
    s = score(inputs(frames("a1", [X]), reviews=reviews))
    assert s.devices.set_index("device").loc["a1", "review"] == 0.625
    assert points(s, "A") == 1.25


def test_freshness_grows_with_the_time_since_a_cell_was_last_covered_and_is_capped() -> None:
    history = {X: T0 - 15 * DAY, Y: T0 - 90 * DAY, Z: T0 - DAY}
    s = score(inputs(frames("a1", [X, Y, Z]), history=history))
    cells = s.cells.set_index("h3_r12")
    assert cells.loc[X, "freshness"] == 0.5  # 15 of 30 days
    assert cells.loc[Y, "freshness"] == 2.0  # 3.0, capped
    assert cells.loc[Z, "freshness"] == 0.1  # 1/30, floored
    assert points(s, "A") == pytest.approx(2.6)


def test_region_and_demand_weights_multiply_a_cells_value() -> None:
    lat, lon = h3i.cell_to_latlng(X)
    box = (
        (lon - 0.01, lat - 0.01),
        (lon + 0.01, lat - 0.01),
        (lon + 0.01, lat + 0.01),
        (lon - 0.01, lat + 0.01),
    )
    usage = {h3i.cell_to_parent(X, 9): 100}  # 100 requests, half-saturation 100 -> 1 + 0.5
    s = score(
        inputs(
            frames("a1", [X]) + frames("b1", [CELL_FAR]),
            usage=usage,
            regions=(Region("centre", 3.0, box),),
        )
    )
    cells = s.cells.set_index("h3_r12")
    assert (cells.loc[X, "region"], cells.loc[X, "demand"]) == (3.0, 1.5)
    assert (cells.loc[CELL_FAR, "region"], cells.loc[CELL_FAR, "demand"]) == (1.0, 1.0)
    assert points(s, "A") == 9.0 and points(s, "B") == 2.0


CELL_FAR = h3i.latlng_to_cell(60.30, 25.20, 12)


def test_caps_apply_per_device_and_per_owner() -> None:
    # a1 and a2 each cover three new cells (6 points); device cap 4, owner cap 5
    rows = (
        frames("a1", [X, Y, Z]) + frames("a2", [CELL_FAR, *_more(2)]) + frames("b1", [_more(3)[2]])
    )
    s = score(inputs(rows, device_cap_points=4.0, owner_cap_points=5.0))
    d = s.devices.set_index("device")
    assert (d.loc["a1", "points_raw"], d.loc["a1", "points"]) == (6_000_000, 4_000_000)
    assert points(s, "A") == 5.0 and points(s, "B") == 2.0


def _more(n: int) -> list[int]:
    return [h3i.latlng_to_cell(60.25 + 0.001 * i, 25.0, 12) for i in range(n)]


def test_reviewers_are_paid_for_agreeing_settled_votes_weighted_by_gold_accuracy() -> None:
    votes = [
        # R: 4 of 4 gold right -> (4 + 0.5 x 4) / 8 = 0.75; 2 settled votes agree, 1 does not
        *[("R", 100 + i, "accept", "", "accept") for i in range(4)],
        ("R", 1, "accept", "accept", ""),
        ("R", 2, "reject", "reject", ""),
        ("R", 3, "accept", "reject", ""),
        ("R", 4, "accept", "", ""),  # not settled yet
        # C: 0 of 2 gold right -> 2 / 6 = 0.33 < 0.6: earns nothing
        ("C", 100, "reject", "", "accept"),
        ("C", 101, "reject", "", "accept"),
        ("C", 1, "accept", "accept", ""),
    ]
    s = score(inputs(frames("a1", [X]), votes=votes))
    r = s.reviewers.set_index("account")
    assert (r.loc["R", "accuracy"], r.loc["R", "agreed"], r.loc["R", "settled"]) == (0.75, 2, 3)
    assert r.loc["C", "accuracy"] == 0.0
    assert amount(s, "R", "review_amount") == REVIEW_POOL
    assert amount(s, "C", "review_amount") == 0


def test_empty_tables_allocate_nothing_and_do_not_fail() -> None:
    s = score(inputs([]))
    assert s.allocated == 0 and len(s.cells) == 0
    assert (s.coverage_pool, s.review_pool, s.compute_pool) == (COVERAGE_POOL, REVIEW_POOL, 0)


def test_amounts_are_integers_that_never_exceed_the_pools() -> None:
    rows = frames("a1", [X, Y]) + frames("a2", [Y, Z]) + frames("b1", [Z, X, Y], sharpness=77.0)
    s = score(inputs(rows, pool=10**18 + 7))  # a pool that does not divide evenly
    cov = sum(int(a) for a in s.accounts["coverage_amount"])
    assert cov <= s.coverage_pool and s.coverage_pool - cov < len(s.accounts)
    assert all(isinstance(a, int) for a in s.accounts["amount"])


def test_scoring_is_a_pure_function_of_its_inputs() -> None:
    rows = frames("a1", [X, Y, X]) + frames("b1", [Z, X], sharpness=60.0)
    a, b = score(inputs(rows)), score(inputs(list(reversed(rows))))
    assert a.accounts.equals(b.accounts) and a.cells.equals(b.cells)
