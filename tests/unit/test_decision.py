"""The decision rule and threshold conversion, which mirror the contract exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest

from colearn_chain.decision import is_accepted, threshold_to_bps, voter_count


@pytest.mark.parametrize("threshold,bps", [(0.5, 5000), (0.0001, 1), (1, 10000), (0.6667, 6667), (0.3333, 3333)])
def test_threshold_to_bps_is_exact(threshold: float, bps: int) -> None:
    assert threshold_to_bps(threshold) == bps


def test_threshold_between_basis_points_is_refused_with_the_neighbours() -> None:
    with pytest.raises(ValueError, match=r"use 0\.6666 or 0\.6667"):
        threshold_to_bps(0.666667)


@pytest.mark.parametrize("threshold", [0, -0.5, 1.0001, 2])
def test_threshold_out_of_range_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="must be in"):
        threshold_to_bps(threshold)


@pytest.mark.parametrize("n", range(1, 12))
@pytest.mark.parametrize("bps", [1, 3333, 5000, 6667, 9999, 10000])
def test_is_accepted_equals_exact_rational_seed_rule(n: int, bps: int) -> None:
    for approvals in range(n + 1):
        assert is_accepted(approvals, n, bps) == (approvals >= n * Fraction(bps, 10_000))


def test_voter_count_under_both_rules() -> None:
    assert voter_count(5, proposer_votes=True) == 5
    assert voter_count(5, proposer_votes=False) == 4
