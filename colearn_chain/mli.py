"""The learner interface every model implements to take part (the seed's MachineLearningInterface).

Three methods, as in colearn and Flower's NumPyClient: propose, test, accept. Weights are named numpy
arrays (:data:`colearn_chain.typing.Weights`), so any framework can plug in.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from .typing import Weights


@dataclass(frozen=True)
class ProposedWeights:
    """A learner's verdict on proposed weights.

    ``vote_score`` is measured on the learner's vote split and decides ``vote``;
    ``test_score`` is measured on its separate test split and is only reported.
    ``reason`` says why the learner refused the weights outright (e.g. non-finite or far outside the
    current model's scale) whatever their scores, so an agent can log it; None for an ordinary vote.
    """

    weights: Weights
    vote_score: float
    test_score: float
    vote: bool
    reason: str | None = None


class MachineLearningInterface(abc.ABC):
    """What a learner implements. The driver (in memory or on chain) calls nothing else."""

    @abc.abstractmethod
    def propose_weights(self) -> Weights:
        """Train from the current weights on local data and return new weights.

        Must not change the current weights: they change only through :meth:`accept_weights`.
        """

    @abc.abstractmethod
    def test_weights(self, weights: Weights) -> ProposedWeights:
        """Evaluate ``weights`` on local data and decide the vote; must not change the current weights."""

    @abc.abstractmethod
    def accept_weights(self, weights: Weights) -> None:
        """Adopt ``weights`` as the current weights (called when the consortium accepts them)."""

    @abc.abstractmethod
    def current_weights(self) -> Weights:
        """Return the current weights (a copy the caller may keep)."""

    def restore_proposal_count(self, count: int) -> None:  # noqa: B027 - optional hook, deliberately a no-op
        """Set how many proposals this learner has made, as the chain records them.

        Optional. A learner whose proposals depend on how many it made before (its randomness drawn
        per proposal) overrides this, so that an agent restarting, or one whose proposal the chain
        never recorded, continues the sequence the in-memory reference produces. The default keeps
        nothing, for learners whose proposals do not depend on it.
        """


def copy_weights(weights: Weights) -> Weights:
    """Return an independent copy, so no two learners ever share (and mutate) the same arrays."""
    return {name: array.copy() for name, array in weights.items()}

