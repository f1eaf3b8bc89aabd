"""A nearest-centroid learner, written only against the public interface (colearn_chain.mli).

    colearn-chain run --learner examples.centroid:make_learner --learners 3 --epochs 5
"""

from __future__ import annotations

from typing import Any

import numpy as np

from colearn_chain.mli import MachineLearningInterface, ProposedWeights

CLASSES, FEATURES = 3, 2
Weights = dict[str, np.ndarray]


class CentroidLearner(MachineLearningInterface):
    """The model is one centroid per class; a point belongs to the class of the nearest one."""

    def __init__(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        third = len(y) // 3  # private data: train, vote and test parts
        self.train, self.vote, self.test = ((x[i:i + third], y[i:i + third]) for i in (0, third, 2 * third))
        self.centroids = np.random.default_rng(seed).normal(size=(CLASSES, FEATURES))  # the same for everyone

    def propose_weights(self) -> Weights:
        """Move every centroid half-way to its class's mean in the local training data."""
        x, y = self.train
        means = np.array([x[y == c].mean(axis=0) if (y == c).any() else self.centroids[c] for c in range(CLASSES)])
        return {"centroids": (self.centroids + means) / 2}

    def test_weights(self, weights: Weights) -> ProposedWeights:
        """Approve weights that classify the vote part at least as well as the current ones."""
        score = accuracy(weights["centroids"], *self.vote)
        vote = score >= accuracy(self.centroids, *self.vote)
        return ProposedWeights(weights, score, accuracy(weights["centroids"], *self.test), vote)

    def accept_weights(self, weights: Weights) -> None:
        self.centroids = weights["centroids"].copy()

    def current_weights(self) -> Weights:
        return {"centroids": self.centroids.copy()}


def accuracy(centroids: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    nearest = ((x[:, None, :] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    return float(np.mean(nearest == y))


def make_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> CentroidLearner:
    """Learner ``index``'s own synthetic data: ``samples`` points around class centres the seed fixes."""
    centres = np.random.default_rng([seed, 1]).normal(scale=2.0, size=(CLASSES, FEATURES))
    rng = np.random.default_rng([seed, 2, index])
    y = rng.integers(0, CLASSES, size=int(options.get("samples", 150)))
    return CentroidLearner(centres[y] + rng.normal(size=(len(y), FEATURES)), y, seed)
