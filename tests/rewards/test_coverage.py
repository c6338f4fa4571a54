from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rewards.coverage import Observation, coverage

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_cell_counts_once_per_contributor_at_its_freshest_observation() -> None:
    obs = [
        Observation("alice", 1, NOW - timedelta(days=60)),
        Observation("alice", 1, NOW - timedelta(days=30)),
        Observation("alice", 2, NOW),
        Observation("bob", 1, NOW - timedelta(days=90)),
    ]
    scores = {s.contributor: s for s in coverage(obs, now=NOW, half_life_days=30)}
    assert scores["alice"].cells == 2
    assert scores["alice"].fresh_cells == pytest.approx(0.5 + 1.0)
    assert scores["bob"].fresh_cells == pytest.approx(0.125)


def test_scores_are_ordered_by_fresh_coverage() -> None:
    obs = [Observation("a", 1, NOW), Observation("b", 1, NOW), Observation("b", 2, NOW)]
    assert [s.contributor for s in coverage(obs, now=NOW)] == ["b", "a"]


def test_a_non_positive_half_life_is_refused() -> None:
    with pytest.raises(ValueError, match="half_life_days"):
        coverage([], now=NOW, half_life_days=0)
