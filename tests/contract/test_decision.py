"""The decision rule on chain equals the seed's formula `approves >= n * threshold`, exactly."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from colearn_chain.decision import is_accepted
from conftest import propose

THRESHOLDS = [1, 3333, 5000, 6667, 10000]


def seed_accepts(approves: int, n: int, threshold_bps: int) -> bool:
    """The seed's `approves >= len(learners) * vote_threshold`, in exact rational arithmetic."""
    return approves >= n * Fraction(threshold_bps, 10_000)


@pytest.mark.parametrize("threshold_bps", THRESHOLDS)
@pytest.mark.parametrize("n", range(1, 8))
def test_boundary_matches_seed(
    n: int, threshold_bps: int, deploy: Callable[..., Any], many_accounts: list[Any]
) -> None:
    # Prepare
    learners = many_accounts[:n]
    cl = deploy(learners, threshold_bps=threshold_bps)
    needed = min(a for a in range(n + 1) if seed_accepts(a, n, threshold_bps))
    # Execute: one epoch with exactly the needed approvals, one with one fewer (when possible)
    cases = [needed] + ([needed - 1] if needed > 0 else [])
    outcomes = []
    for epoch, approvals in enumerate(cases):
        propose(cl, epoch, learners[epoch % n])
        for i, voter in enumerate(learners):
            tx = cl.vote(epoch, i < approvals, 0, {"from": voter})
        outcomes.append("ProposalAccepted" in tx.events)
    # Assert
    assert cl.approvalsNeeded() == needed
    assert outcomes == [seed_accepts(a, n, threshold_bps) for a in cases]
    assert outcomes == [is_accepted(a, n, threshold_bps) for a in cases]
