"""The decision rule, as one pure function that mirrors the contract (and the seed's driver).

The seed accepts iff ``approves >= len(learners) * vote_threshold``. The contract keeps the
threshold in basis points and decides in exact integers: ``approvals * 10_000 >= voters * bps``.
"""

from __future__ import annotations

from fractions import Fraction

BPS_DENOMINATOR = 10_000


def threshold_to_bps(threshold: float) -> int:
    """Convert a fraction such as 0.5 to basis points (5000), exactly.

    A fraction that is not a whole number of basis points (2/3 written 0.666667) is refused rather
    than rounded: rounding would silently change how many approvals the contract requires.
    """
    exact = Fraction(str(threshold)) * BPS_DENOMINATOR
    if exact.denominator != 1:
        lower, upper = exact.numerator // exact.denominator, exact.numerator // exact.denominator + 1
        raise ValueError(
            f"vote threshold {threshold} is not a whole number of basis points; "
            f"use {lower / BPS_DENOMINATOR} or {upper / BPS_DENOMINATOR}"
        )
    bps = int(exact)
    if not 1 <= bps <= BPS_DENOMINATOR:
        raise ValueError(f"vote threshold must be in (0, 1], got {threshold}")
    return bps


def is_accepted(approvals: int, voters: int, threshold_bps: int) -> bool:
    """Return whether ``approvals`` out of ``voters`` meet the threshold (missing votes do not approve)."""
    return approvals * BPS_DENOMINATOR >= voters * threshold_bps


def voter_count(n_learners: int, proposer_votes: bool) -> int:
    """Number of voters in an epoch: everyone (seed rule) or everyone but the proposer (colearn 0.2.8)."""
    return n_learners if proposer_votes else n_learners - 1
