"""The protocol's shared rules and constants, each defined once: the phase enum, the score scale, the
proposer rotation and the model record.

Why one module: the contract, the agents, the history reader, the status table and the reference
driver must agree on these, and a second copy of any of them is a place to disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from typing import Any, Final, TypeVar

__all__ = [
    "INVALID_SCORE",
    "SCORE_SCALE",
    "ZERO_DIGEST",
    "ModelRecord",
    "Phase",
    "from_fixed_point",
    "phase_name",
    "proposer_index",
    "proposer_of",
    "to_fixed_point",
]

T = TypeVar("T")

#: A bytes32 of zeros: the contract's digest before a proposal.
ZERO_DIGEST: Final[str] = "0x" + "00" * 32

#: Vote scores go on chain as int256 fixed point with 18 decimals: SCORE_SCALE is 1.0.
SCORE_SCALE: Final[int] = 10**18
#: The lowest int256: the score of a proposal that could not be evaluated (non-finite score).
INVALID_SCORE: Final[int] = -(2**255)
_INT256_MAX: Final[int] = 2**255 - 1


class Phase(IntEnum):
    """The contract's ``Phase`` enum, in its declaration order."""

    Proposing = 0
    Voting = 1
    ProposalExpired = 2
    VotingExpired = 3


def phase_name(value: int) -> str:
    """The name of phase ``value``; the number itself for a value the enum does not know."""
    try:
        return Phase(value).name
    except ValueError:
        return str(value)


def to_fixed_point(score: float) -> int:
    """``score`` as an int256 with 18 decimals, clamped; a non-finite score becomes INVALID_SCORE."""
    if not math.isfinite(score):
        return INVALID_SCORE
    scaled = round(Fraction(score) * SCORE_SCALE)  # exact: a float product would overflow for huge scores
    return max(INVALID_SCORE + 1, min(_INT256_MAX, scaled))


def from_fixed_point(fixed: int) -> float:
    """An on-chain fixed-point score as the float it stands for."""
    return fixed / SCORE_SCALE


def proposer_index(epoch: int, n_learners: int) -> int:
    """Position of the proposer of ``epoch`` in the learner list: the contract's ``epoch % n``."""
    if n_learners <= 0:
        raise ValueError("there is no proposer without learners")
    return epoch % n_learners


def proposer_of(epoch: int, learners: Sequence[T]) -> T:
    """The proposer of ``epoch`` among the ordered ``learners``."""
    return learners[proposer_index(epoch, len(learners))]


@dataclass(frozen=True)
class ModelRecord:
    """A model the chain names: the digest and CID of its encoded weights, current since ``since_epoch``.

    ``since_epoch`` is the first epoch in which it was current (0 for the initial model; e + 1 for the
    proposal accepted in epoch e).
    """

    digest: str
    #: the content id (an escaped rendering when ``cid_invalid``)
    cid: str
    since_epoch: int
    #: why ``cid`` is not a plausible CID (read from an older deployment, say), else None
    cid_invalid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "cid": self.cid, "since_epoch": self.since_epoch}
