"""A tiny deterministic learner for fast protocol tests (after colearn's ``PlusOneLearner``).

``PlusOneLearner`` always improves, so every epoch is accepted; protocol tests need rejections
too. Here each learner pulls a shared vector ``w`` (starting at zero) toward its *own* private
target. The targets scatter (``spread``) around a centre common to the seed, so early proposals
help everyone and later ones help the proposer but may hurt the others, and the votes split.
With the defaults, 5 learners x 8 epochs (and 3 learners x 8 epochs) give both accepted and
rejected epochs under both voting rules for each of seeds 0-99 (about 45% accepted);
``tests/unit/test_toy.py`` checks this through the reference driver. With 4 learners the seed
rule accepts on 2 of 4 votes, so a few seeds accept every epoch: prefer 3 or 5 in tests.

Everything is a pure function of ``(seed, index, number of proposals made so far, current w)``:
the proposal noise comes from a generator seeded by ``(seed, index, k)`` for the ``k``-th proposal,
so a restarted agent that restores the count (:meth:`ToyLearner.restore_proposal_count`, with the
number the chain recorded) proposes exactly what the in-memory reference would.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import WeightsMismatch
from ..mli import MachineLearningInterface, ProposedWeights
from ..typing import Weights

_TARGET, _TEST_TARGET, _NOISE, _CENTRE = 0, 1, 2, 3


class ToyLearner(MachineLearningInterface):
    """Weights ``{"w": float64[dim]}``; votes for a proposal that brings ``w`` closer to its own target."""

    def __init__(
        self, index: int, *, seed: int = 0, dim: int = 4, step: float = 0.5, noise: float = 0.3, spread: float = 0.7
    ) -> None:
        if index < 0 or dim < 1:
            raise ValueError(f"need index >= 0 and dim >= 1, got index={index}, dim={dim}")
        self.index = index
        self.seed = seed
        self.dim = dim
        self.step = step
        self.noise = noise
        centre = np.random.default_rng([seed, _CENTRE]).normal(size=dim)
        self.target = centre + spread * np.random.default_rng([seed, index, _TARGET]).normal(size=dim)
        # the test target is near the vote target, as a learner's test data resembles its vote data
        self.test_target = self.target + 0.5 * np.random.default_rng([seed, index, _TEST_TARGET]).normal(size=dim)
        #: how many times propose_weights was called; restore it to resume the same proposal sequence
        self.proposals_made = 0
        self._w = np.zeros(dim, dtype=np.float64)  # identical for every learner: the shared start

    def propose_weights(self) -> Weights:
        """Step part of the way toward the own target, plus reproducible noise; ``w`` itself is untouched."""
        rng = np.random.default_rng([self.seed, self.index, _NOISE, self.proposals_made])
        self.proposals_made += 1
        proposed = self._w + self.step * (self.target - self._w) + self.noise * rng.normal(size=self.dim)
        return {"w": proposed}

    def test_weights(self, weights: Weights) -> ProposedWeights:
        """Approve iff the proposal is at least as close to the own target as the current ``w`` (ties approve)."""
        w = self._check(weights)
        vote_score = -float(np.linalg.norm(w - self.target))
        current_score = -float(np.linalg.norm(self._w - self.target))
        test_score = -float(np.linalg.norm(w - self.test_target))
        return ProposedWeights(
            weights=weights, vote_score=vote_score, test_score=test_score, vote=vote_score >= current_score
        )

    def accept_weights(self, weights: Weights) -> None:
        """Adopt the accepted weights (a private copy)."""
        self._w = self._check(weights).copy()

    def restore_proposal_count(self, count: int) -> None:
        """Continue the proposal sequence after ``count`` proposals (what the chain recorded)."""
        self.proposals_made = count

    def current_weights(self) -> Weights:
        """Return a copy of ``w``."""
        return {"w": self._w.copy()}

    def _check(self, weights: Weights) -> np.ndarray:
        """Return ``weights["w"]`` if the weights fit this model, else raise WeightsMismatch saying why."""
        if set(weights) != {"w"}:
            raise WeightsMismatch(f"toy learner expects exactly one tensor 'w', got {sorted(weights)}")
        w = weights["w"]
        if w.shape != (self.dim,) or w.dtype != np.float64:
            raise WeightsMismatch(f"'w' must be float64 of shape ({self.dim},), got {w.dtype} {w.shape}")
        return w
