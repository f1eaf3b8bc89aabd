"""The in-memory reference driver: the seed's ``run_one_epoch``, and the oracle for the on-chain run.

The seed, for epoch ``e`` over ``n`` learners::

    proposer = e % n
    new_weights = learners[proposer].propose_weights()
    votes = [ln.test_weights(new_weights) for ln in learners]
    accepted = approvals >= n * vote_threshold      # then every learner accepts

Two deliberate, documented choices keep this identical to what the agents do on chain:

* every learner receives its *own copy* of the proposed weights (to test and to accept), as an
  agent does when it decodes the blob from the store; a learner that mutates what it is given
  cannot change what the others see. The seed hands each learner its own ``ProposedWeights``,
  whose weights are the proposal, so the accepted values are the same;
* the threshold is decided in exact integers by :func:`colearn_chain.decision.is_accepted`, the
  same rule the contract applies. The seed compares floats (``approves >= n * 0.55`` can differ
  from the exact rational comparison at rounding edges); thresholds are whole basis points here
  (:func:`colearn_chain.decision.threshold_to_bps` refuses others), compared exactly.

Under the colearn 0.2.8 variant (``proposer_votes=False``) the proposer is not asked to test its
own proposal, its entry in :attr:`EpochResult.votes` is ``None``, and the threshold is over the
``n - 1`` other learners.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .decision import is_accepted, threshold_to_bps, voter_count
from .learners.checked import checked
from .mli import MachineLearningInterface, ProposedWeights, copy_weights
from .protocol import proposer_index
from .typing import Weights

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochResult:
    """What one epoch decided, in the order the learners were given.

    ``votes[j]`` is learner ``j``'s verdict, or ``None`` for the proposer when it does not vote.
    ``proposal`` is the proposer's weights as proposed (not compared, arrays have no plain ``==``).
    """

    epoch: int
    proposer: int
    votes: tuple[ProposedWeights | None, ...]
    approvals: int
    rejections: int
    accepted: bool
    proposal: Weights = field(compare=False, repr=False, default_factory=dict)

    @property
    def vote_flags(self) -> tuple[bool | None, ...]:
        """Each learner's approve/reject (``None`` for a non-voting proposer), handy for comparisons."""
        return tuple(None if v is None else v.vote for v in self.votes)




def run_one_epoch(
    epoch_index: int,
    learners: Sequence[MachineLearningInterface],
    *,
    vote_threshold: float = 0.5,
    proposer_votes: bool = True,
) -> EpochResult:
    """Run epoch ``epoch_index`` exactly as the seed does and return what was decided."""
    n = len(learners)
    if n == 0:
        raise ValueError("run_one_epoch needs at least one learner")
    if epoch_index < 0:
        raise ValueError(f"epoch index must be >= 0, got {epoch_index}")
    threshold_bps = threshold_to_bps(vote_threshold)

    learners = [checked(learner) for learner in learners]  # an interface violation is a LearnerContractError
    proposer = proposer_index(epoch_index, n)
    proposal = copy_weights(learners[proposer].propose_weights())

    votes: list[ProposedWeights | None] = []
    for j, learner in enumerate(learners):
        if j == proposer and not proposer_votes:
            votes.append(None)
            continue
        votes.append(learner.test_weights(copy_weights(proposal)))

    approvals = sum(1 for v in votes if v is not None and v.vote)
    voters = voter_count(n, proposer_votes)
    accepted = is_accepted(approvals, voters, threshold_bps)
    if accepted:
        for learner in learners:
            learner.accept_weights(copy_weights(proposal))

    result = EpochResult(
        epoch=epoch_index,
        proposer=proposer,
        votes=tuple(votes),
        approvals=approvals,
        rejections=voters - approvals,
        accepted=accepted,
        proposal=proposal,
    )
    # Debug, not info: every run replays hundreds of these epochs for its baselines.
    logger.debug(
        "epoch %d proposer %d: %s (%d approve / %d reject of %d voters)",
        epoch_index, proposer, "accepted" if accepted else "rejected", approvals, voters - approvals, voters,
    )
    return result


def run(
    learners: Sequence[MachineLearningInterface],
    epochs: int,
    *,
    start_epoch: int = 0,
    **kwargs: Any,
) -> list[EpochResult]:
    """Run ``epochs`` consecutive epochs from ``start_epoch``; keyword arguments go to :func:`run_one_epoch`."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    learners = [checked(learner) for learner in learners]  # once: the weights' layout is checked across epochs
    return [run_one_epoch(e, learners, **kwargs) for e in range(start_epoch, start_epoch + epochs)]
