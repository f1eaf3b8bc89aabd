"""The vote rule of the ready-made learners: when a voter approves a proposal.

A voter scores the proposal and its current weights on its vote part and approves when the proposal
is not worse by more than ``tolerance`` (balanced accuracy by default). On a vote part of a few
samples (wine learners under label skew vote on 2 to 12) accuracy cannot tell models apart: a
sign-flipped update, ``global - 5 x (local - global)``, predicts the same classes on those samples
and passed, while its confidence in them dropped. So a voter whose vote part has fewer than
``small_part`` (20) samples, where one sample moves accuracy by 5 points or more, also requires the
mean log-loss not to get worse by more than ``small_part_tolerance`` (0.01). Larger vote parts decide
by the metric alone: there log-loss judges skewed honest proposals harshly (as the only metric it
cost digits 0.6 points and mnist1d 2 points without an attack).

Chosen by ``bench/vote_rules.py`` (the README has the table): of 5 learners, one attacker, Dirichlet
0.5, seeds 0-2, this rule let none of wine's sign-flipped proposals through (4 of 12 before, linear;
3 of 12 MLP) and left digits and mnist1d bit-for-bit as they were (their vote parts have 23 samples
or more). Not worse at all (tolerance 0) cost wine 1 to 2 points without an attack (iid, MLP);
0.02 let one sign-flipped proposal in of 12; a threshold of 10 samples let one in, 40 cost digits.

A voter whose current model scores no better than guessing on its vote part (``GUESS_MARGIN`` above
chance: epoch 0, or a voter whose classes the model has not learned yet) has no reference worth the
name: "no worse than the current model" admits almost anything. There, too, the proposal's mean
log-loss may get worse by at most ``untrained_tolerance`` (1 nat). Random weights and a 5x sign-flipped
update got in this way at epoch 0 (digits and mnist1d MLP, with an attacker that approves its own
proposals): their accuracy was a few points above guessing, by luck, while their log-loss went from
about 2.6 to 14-26 nats. Any allowance from 0.25 to 3 left every no-attack run (Dirichlet 0.5, seeds
0-2, both models) bit for bit as it was and stopped both; 0 changed mnist1d, 10 let one back in.
``bench/learning.py`` prints the same accuracies with it as without (every cell, and the digits sweep).

``confidence`` (off by default) is the other way to weigh how few samples there are, measured and not
chosen (it cost digits and mnist1d accuracy without an attack): approve only if a one-sided lower
confidence bound on the paired per-sample difference, ``mean - confidence x standard error``, is
above ``-tolerance``.

Pure functions of numpy arrays: the learner module computes the class scores (logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Metric = Literal["accuracy", "balanced_accuracy", "log_loss"]
METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "log_loss")
_EPS = 1e-12
#: A score within this much of guessing (1/k among the k classes of a vote part) is guessing: a proposal
#: no better is refused outright (the learner's guessing floor), a current model no better is no reference.
GUESS_MARGIN = 0.05


@dataclass(frozen=True)
class SampleScores:
    """One model's per-sample scores on a split, their weights (summing to 1) and the metric itself.

    ``mean`` is the weighted mean of ``values`` up to rounding, computed the way the metric is
    reported (a vote's score) so the plain rule compares exactly what voters publish.
    """

    values: np.ndarray
    weights: np.ndarray
    mean: float


@dataclass(frozen=True)
class VoteScores:
    """What a voter compares: the rule's metric per sample, the mean log-loss (negated) on the same samples,
    and the metric's score of guessing there (None with a single class: see :func:`chance_score`)."""

    metric: SampleScores
    log_loss: float
    chance: float | None = None

    def __len__(self) -> int:
        return int(self.metric.values.size)


@dataclass(frozen=True)
class VoteRule:
    """Approve iff the metric is not worse by more than ``tolerance``, and on a small vote part neither is log-loss.

    Scores are "higher is better" (log-loss is negated). With ``confidence`` 0 the metric's means
    are compared; above 0, its paired per-sample differences' lower confidence bound
    (:func:`lower_bound`). A tolerance of 0 approves ties, which lets a consortium move off a
    plateau; the default 0.02 is about one sample of a digits vote part. ``small_part`` 0 turns the
    small-part log-loss check off, an infinite ``untrained_tolerance`` the one against an untrained
    current model.
    """

    metric: Metric = "balanced_accuracy"
    tolerance: float = 0.02
    confidence: float = 0.0
    small_part: int = 20
    small_part_tolerance: float = 0.01
    untrained_tolerance: float = 1.0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown vote metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        tolerances = (self.tolerance, self.small_part_tolerance, self.untrained_tolerance)
        if not all(t >= 0 for t in tolerances):
            raise ValueError(f"vote tolerances must be >= 0, got {', '.join(map(str, tolerances))}")
        if not 0 <= self.confidence < float("inf"):
            raise ValueError(f"vote confidence must be finite and >= 0, got {self.confidence}")
        if self.small_part < 0:
            raise ValueError(f"the small vote part size must be >= 0, got {self.small_part}")

    def scores(self, logits: np.ndarray, y: np.ndarray) -> VoteScores:
        """What :meth:`approves` compares, from one model's class scores on the vote part."""
        main = sample_scores(logits, y, self.metric)
        loss = main.mean if self.metric == "log_loss" else sample_scores(logits, y, "log_loss").mean
        return VoteScores(main, loss, chance_score(self.metric, y))

    @staticmethod
    def guessing(scores: VoteScores) -> bool:
        """Whether ``scores`` are no better than guessing (within ``GUESS_MARGIN``); never on a single class."""
        return scores.chance is not None and scores.metric.mean <= scores.chance + GUESS_MARGIN

    def approves(self, proposal: VoteScores, current: VoteScores) -> bool:
        """Whether ``proposal`` scores well enough against ``current`` (the same samples)."""
        if self.confidence == 0:  # the plain rule, on the means exactly as reported
            ok = proposal.metric.mean >= current.metric.mean - self.tolerance
        else:
            differences = proposal.metric.values - current.metric.values
            ok = lower_bound(differences, current.metric.weights, self.confidence) >= -self.tolerance
        if ok and len(current) < self.small_part:
            ok = proposal.log_loss >= current.log_loss - self.small_part_tolerance
        if ok and self.guessing(current):  # an untrained reference: log-loss must not collapse either
            ok = proposal.log_loss >= current.log_loss - self.untrained_tolerance
        return ok


def lower_bound(differences: np.ndarray, weights: np.ndarray, confidence: float) -> float:
    """``mean - confidence x se`` of ``differences`` under ``weights`` (summing to 1); 0 when there are none.

    The standard error is that of a weighted mean with the sample variance (``n - 1``), so one
    sample or identical differences carry no spread. ``confidence`` 0 never looks at the spread.
    """
    n = differences.size
    if n == 0:
        return 0.0
    mean = float(np.dot(weights, differences))
    if confidence == 0 or n == 1:
        return mean
    variance = float(np.sum(np.square(weights * (differences - mean)))) * n / (n - 1)
    return mean - confidence * float(np.sqrt(variance))


def sample_scores(logits: np.ndarray, y: np.ndarray, metric: Metric) -> SampleScores:
    """Per-sample scores of class scores ``logits`` against labels ``y``, higher is better (log-loss negated).

    A sample whose class scores are not all finite counts as wrong (log-loss: probability ~0), so
    hostile weights get a finite, bad score rather than NaN. No samples: every score is 0.
    """
    n = len(y)
    if n == 0:
        return SampleScores(np.zeros(0), np.zeros(0), 0.0)
    finite = np.all(np.isfinite(logits), axis=1)
    z = np.where(finite[:, None], logits, 0.0)
    if metric == "log_loss":
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = np.where(finite, (e / e.sum(axis=1, keepdims=True))[np.arange(n), y], 0.0)
        losses = -np.log(np.clip(p, _EPS, 1.0))
        return SampleScores(-losses, np.full(n, 1.0 / n), -float(np.mean(losses)))
    if metric not in ("accuracy", "balanced_accuracy"):
        raise ValueError(f"unknown metric {metric!r}")
    correct = (np.argmax(z, axis=1) == y) & finite
    values = correct.astype(np.float64)
    if metric == "accuracy":
        return SampleScores(values, np.full(n, 1.0 / n), float(np.mean(correct)))
    classes, index, counts = np.unique(y, return_inverse=True, return_counts=True)
    mean = float(np.mean([np.mean(correct[y == c]) for c in classes]))
    return SampleScores(values, 1.0 / (len(classes) * counts[index]), mean)


def chance_score(metric: Metric, y: np.ndarray) -> float | None:
    """The score of guessing among the ``k`` classes present in ``y`` (1/k, log-loss -log k); None if k < 2.

    With a single class a vote part cannot tell a model from a constant guess, so there is no floor.
    """
    k = len(np.unique(y))
    if k < 2:
        return None
    return -float(np.log(k)) if metric == "log_loss" else 1.0 / k
