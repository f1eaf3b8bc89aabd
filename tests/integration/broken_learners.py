"""Learners that break the learner interface, as plug-in factories for `--learner broken_learners:FACTORY`.

Learner 1 trains in place (its proposal changes its current weights); learner 2 adopts every proposal it
tests. The others are honest toy learners. Used by the test that agents meet such learners with a clear
error and go on.
"""

from __future__ import annotations

from typing import Any

from colearn_chain.learners.toy import ToyLearner
from colearn_chain.mli import MachineLearningInterface, ProposedWeights
from colearn_chain.typing import Weights


class TrainsInPlace(ToyLearner):
    def propose_weights(self) -> Weights:
        proposal = super().propose_weights()
        self.accept_weights(proposal)  # forbidden: only accept_weights may change the current weights
        return proposal


class AdoptsWhatItTests(ToyLearner):
    def test_weights(self, weights: Weights) -> ProposedWeights:
        verdict = super().test_weights(weights)
        self.accept_weights(weights)  # forbidden: testing must leave the current weights as they are
        return verdict


def make_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    kind = {1: TrainsInPlace, 2: AdoptsWhatItTests}.get(index, ToyLearner)
    return kind(index, seed=seed)
