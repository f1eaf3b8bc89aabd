"""Baselines a collective run is judged against, all measured on the global held-out test set.

* **solo**: each learner alone, as a consortium of one: it proposes every epoch with the same
  local budget and keeps a proposal only if its own vote approves (so its vote part acts as
  validation, as in the collective run). It gets as many proposals as the collective run has
  epochs, i.e. ``n_learners`` times its share of the collective's training: solo is not starved.
* **centralized**: one learner holding every learner's training part (and vote part, for its
  votes), same model, budget and vote rule, for the same number of epochs.
* **collective**: the reference driver on freshly built learners, with their final global test accuracy.

Every function builds fresh learners from the config, so baselines never disturb a run's learners.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, List, Mapping, Sequence, Tuple

from ..driver import EpochResult, run
from ..mli import MachineLearningInterface
from . import federated_data, learner_config, make_learner
from .data import LearnerData
from .sklearn import ClassifierLearner


@dataclass(frozen=True)
class Accuracies:
    """Global test accuracy per learner (one entry for centralized) and their mean."""

    per_learner: Tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_learner)


def global_test_accuracy(learners: Sequence[MachineLearningInterface]) -> Accuracies:
    """Accuracy of each learner's current weights on the global test set (ready-made learners only)."""
    accuracies = []
    for learner in learners:
        if not isinstance(learner, ClassifierLearner):
            raise TypeError(f"global test accuracy needs ClassifierLearner, got {type(learner).__name__}")
        accuracies.append(learner.evaluate())
    return Accuracies(tuple(accuracies))


def collective(
    config: Mapping[str, Any], epochs: int, *, vote_threshold: float = 0.5, proposer_votes: bool = True
) -> Tuple[List[EpochResult], Accuracies]:
    """Run the reference driver on fresh learners built from ``config``; return its epochs and final accuracies."""
    full = learner_config(**dict(config))
    learners = [make_learner(full, i) for i in range(full["n_learners"])]
    results = run(learners, epochs, vote_threshold=vote_threshold, proposer_votes=proposer_votes)
    return results, global_test_accuracy(learners)


def solo(config: Mapping[str, Any], epochs: int) -> Accuracies:
    """Each learner alone for ``epochs`` proposals (a consortium of one: its own vote decides)."""
    full = learner_config(**dict(config))
    accuracies = []
    for i in range(full["n_learners"]):
        learner = make_learner(full, i)
        run([learner], epochs)
        accuracies.append(global_test_accuracy([learner]).per_learner[0])
    return Accuracies(tuple(accuracies))


def centralized(config: Mapping[str, Any], epochs: int) -> Accuracies:
    """One learner on the pooled training data (features scaled on the pooled training data), for ``epochs`` proposals."""
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
    learner = ClassifierLearner(
        pooled, first.model, index=0, seed=full["seed"], training=first.training, vote_rule=first.vote_rule
    )
    run([learner], epochs)
    return global_test_accuracy([learner])


__all__ = ["Accuracies", "centralized", "collective", "global_test_accuracy", "solo"]
