"""Hostile learners: an honest learner's model and data with the proposal (and, for colluders, the vote)
replaced. Shared by the adversarial agents (tests/integration/hostile.py, one process per member) and the
in-memory attack benchmark (bench/attacks.py), so both attack the same way. Pure: no chain, no store.

* ``random`` / ``huge``: random normal weights / every weight 1e308 (finite), with the model's shapes;
* ``sign_flip``: the honest local update reversed and scaled, ``global - 5 x (local - global)``;
* ``label_flip``: honest training on labels shifted by one class;
* ``free_rider``: the current weights, unchanged;
* ``collude``: sign-flipped proposals carrying a mark; colluders approve marked proposals, reject the rest.

Otherwise a hostile member votes as its honest learner would, on its own proposals too; with
``self_approve`` it always approves its own proposal (``bench/attacks.py --self-approve``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from colearn_chain.learners import ClassifierLearner, make_learner
from colearn_chain.learners.data import Split
from colearn_chain.mli import MachineLearningInterface, ProposedWeights
from colearn_chain.typing import Weights

LEARNER_ATTACKS = ("random", "huge", "sign_flip", "label_flip", "free_rider", "collude")
SENDER_ATTACKS = ("silent", "spam", "hostile_cid")
ATTACKS = LEARNER_ATTACKS + SENDER_ATTACKS

#: The colluders' mark: the first element of their proposals' first tensor (by name) holds this value.
COLLUDER_MARK = 12345.678
#: A CID no honest reader may crash on: invalid UTF-8, an escape sequence, a newline and a forged log line.
HOSTILE_CID = b"Qm\xff\xfe\x1b[2J\nINFO epoch 0 accepted\x00"


def _first(weights: Weights) -> str:
    return min(weights)


class HostileLearner(MachineLearningInterface):
    """An honest learner's model and data, with the proposal (and for colluders, the vote) replaced."""

    def __init__(self, honest: ClassifierLearner, attack: str, seed: int, *, self_approve: bool = False) -> None:
        self.honest = honest
        self.attack = attack
        self.rng = np.random.default_rng([seed, 7919])
        # By default a hostile member tests its own proposal honestly; a stronger one always approves it.
        self.self_approve = self_approve
        self._last: Weights | None = None

    def propose_weights(self) -> Weights:
        self._last = self._propose()
        return {k: v.copy() for k, v in self._last.items()}

    def _propose(self) -> Weights:
        current = self.honest.current_weights()
        if self.attack == "random":
            return {k: self.rng.normal(0.0, 1.0, v.shape).astype(v.dtype) for k, v in current.items()}
        if self.attack == "huge":
            return {k: np.full(v.shape, 1e308, dtype=v.dtype) for k, v in current.items()}
        if self.attack == "free_rider":
            return current
        local = self.honest.propose_weights()
        if self.attack == "label_flip":
            return local
        flipped = {k: current[k] - 5.0 * (local[k] - current[k]) for k in current}
        if self.attack == "collude":
            flipped[_first(flipped)].flat[0] = COLLUDER_MARK
        return flipped

    def test_weights(self, weights: Weights) -> ProposedWeights:
        result = self.honest.test_weights(weights)
        if self.self_approve and self._last is not None and all(
            np.array_equal(self._last[k], weights[k]) for k in self._last
        ):
            return dataclasses.replace(result, vote=True)
        if self.attack != "collude":
            return result
        marked = bool(weights[_first(weights)].flat[0] == COLLUDER_MARK)
        return dataclasses.replace(result, vote=marked)

    def accept_weights(self, weights: Weights) -> None:
        self.honest.accept_weights(weights)

    def current_weights(self) -> Weights:
        return self.honest.current_weights()

    def restore_proposal_count(self, count: int) -> None:
        self.honest.restore_proposal_count(count)


def hostile_factory(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> HostileLearner:
    """A learner factory (``--learner hostile_learners:hostile_factory``): options ``attack`` and ``honest``,
    the spec of the honest learner it turns hostile."""
    honest = {**options["honest"], "n_learners": n_learners, "seed": seed}
    return hostile_learner(honest, index, str(options["attack"]))


def hostile_learner(
    config: Mapping[str, Any], index: int, attack: str, *, self_approve: bool = False
) -> HostileLearner:
    """The learner ``make_learner(config, index)`` would build, turned hostile."""
    honest = make_learner(config, index)
    assert isinstance(honest, ClassifierLearner), "the adversarial tests use the scikit-learn-style learners"
    if attack == "label_flip":
        train = honest.data.train
        flipped = Split(train.x, (train.y + 1) % honest.data.n_classes, train.rows)
        honest.data = dataclasses.replace(honest.data, train=flipped)
    return HostileLearner(honest, attack, int(config.get("seed", 0)), self_approve=self_approve)


