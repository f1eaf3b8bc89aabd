"""Baselines a collective run is judged against, all measured on the global held-out test set.

Two test sets appear in a run, and every number says which it is on:

* the **global test set** (``global_test_fraction`` of the data, stratified, held out before the
  split): no learner trains, votes or tests on it; it compares the shared model with the baselines;
* each learner's **local test split**, cut from its own share: a voter reports the proposal's
  accuracy on it (``test_score``) each epoch. Under label skew it is not the global distribution.

The baselines:

* **solo**: each learner alone, as a consortium of one: it proposes every epoch with the same
  local budget and keeps a proposal only if its own vote approves (so its vote part acts as
  validation, as in the collective run). It gets as many proposals as the collective run has
  epochs, i.e. ``n_learners`` times its share of the collective's training: solo is not starved.
* **centralized**: one learner holding every learner's training part (and vote part, for its
  votes), same model, budget and vote rule, for the same number of epochs.
* **collective**: the reference driver on freshly built learners, with their final global test accuracy.

Every function builds fresh learners from the config, so baselines never disturb a run's learners.
``on_epoch`` is called after each in-memory epoch (for a progress line).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..driver import EpochResult, run_one_epoch
from ..mli import MachineLearningInterface
from . import federated_data, learner_config, make_learner
from .checked import checked
from .data import LearnerData
from .numpy_models import ClassifierLearner

#: Called after each in-memory epoch.
OnEpoch = Callable[[], None]


def _nothing() -> None:
    """The default ``on_epoch``: no progress to show."""


@dataclass(frozen=True)
class Accuracies:
    """Test accuracy per learner (one entry for centralized) and their mean."""

    per_learner: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_learner)


def _classifiers(learners: Sequence[MachineLearningInterface], what: str) -> list[ClassifierLearner]:
    for learner in learners:
        if not isinstance(learner, ClassifierLearner):
            raise TypeError(f"{what} needs ClassifierLearner, got {type(learner).__name__}")
    return [learner for learner in learners if isinstance(learner, ClassifierLearner)]


def global_test_accuracy(learners: Sequence[MachineLearningInterface]) -> Accuracies:
    """Accuracy of each learner's current weights on the global test set (ready-made learners only)."""
    return Accuracies(tuple(learner.evaluate() for learner in _classifiers(learners, "global test accuracy")))


def local_test_accuracy(learners: Sequence[MachineLearningInterface]) -> Accuracies:
    """Accuracy of each learner's current weights on its own local test split (what its votes report)."""
    return Accuracies(tuple(
        learner.evaluate(learner.data.test) for learner in _classifiers(learners, "local test accuracy")
    ))


def run_epochs(
    learners: Sequence[MachineLearningInterface], epochs: int, on_epoch: OnEpoch = _nothing, **kwargs: Any
) -> list[EpochResult]:
    """The reference driver's ``run``, calling ``on_epoch`` after each epoch."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    learners = [checked(learner) for learner in learners]  # once: the weights' layout is checked across epochs
    results = []
    for epoch in range(epochs):
        results.append(run_one_epoch(epoch, learners, **kwargs))
        on_epoch()
    return results


def collective(
    config: Mapping[str, Any], epochs: int, *, vote_threshold: float = 0.5, proposer_votes: bool = True,
    on_epoch: OnEpoch = _nothing,
) -> tuple[list[EpochResult], Accuracies]:
    """Run the reference driver on fresh learners built from ``config``; return its epochs and final accuracies."""
    full = learner_config(**dict(config))
    learners = [make_learner(full, i) for i in range(full["n_learners"])]
    results = run_epochs(learners, epochs, on_epoch, vote_threshold=vote_threshold, proposer_votes=proposer_votes)
    return results, global_test_accuracy(learners)


def solo(config: Mapping[str, Any], epochs: int, *, on_epoch: OnEpoch = _nothing) -> Accuracies:
    """Each learner alone for ``epochs`` proposals (a consortium of one: its own vote decides)."""
    full = learner_config(**dict(config))
    accuracies = []
    for i in range(full["n_learners"]):
        learner = make_learner(full, i)
        run_epochs([learner], epochs, on_epoch)
        accuracies.append(global_test_accuracy([learner]).per_learner[0])
    return Accuracies(tuple(accuracies))


def centralized(config: Mapping[str, Any], epochs: int, *, on_epoch: OnEpoch = _nothing) -> Accuracies:
    """One learner on the pooled training data (features scaled on the pooled training data).

    Trained for ``epochs`` proposals.
    """
    full = learner_config(**{**dict(config), "scaling": "pooled"})
    federated = federated_data(full)
    first = make_learner(full, 0)
    assert isinstance(first, ClassifierLearner)
    pooled = LearnerData(
        index=0,
        train=federated.pooled_train(),
        vote=federated.pooled_vote(),
        test=federated.pooled_test(),
        global_test=federated.learners[0].global_test,
        n_classes=federated.n_classes,
    )
    learner = type(first)(  # the same learner class: estimator learners train their own way
        pooled, first.model, index=0, seed=full["seed"], training=first.training, vote_rule=first.vote_rule
    )
    run_epochs([learner], epochs, on_epoch)
    return global_test_accuracy([learner])


__all__ = [
    "Accuracies",
    "OnEpoch",
    "centralized",
    "collective",
    "global_test_accuracy",
    "local_test_accuracy",
    "run_epochs",
    "solo",
]
