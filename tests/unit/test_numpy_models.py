"""The ready-made learners: fixed shapes, pure proposals, reproducible rebuilds, votes that protect the model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from colearn_chain.driver import run, run_one_epoch
from colearn_chain.exceptions import WeightsMismatch
from colearn_chain.learners import NUMPY_DEFAULTS, learner_config, make_learner, make_learners
from colearn_chain.learners.baselines import centralized, collective, global_test_accuracy, solo
from colearn_chain.learners.numpy_models import (
    MLP,
    ClassifierLearner,
    Model,
    SoftmaxRegression,
    make_model,
    score,
)
from colearn_chain.learners.vote_rule import VoteRule
from colearn_chain.mli import MachineLearningInterface, ProposedWeights
from colearn_chain.typing import Weights

SMALL: dict[str, Any] = {"n_learners": 3, "dataset": "digits", "split": "dirichlet", "alpha": 0.5, "seed": 0}


def _assert_same(a: Weights, b: Weights) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_shapes_depend_only_on_features_classes_and_hidden() -> None:
    # Execute
    linear = make_model("linear", 64, 10)
    mlp = make_model("mlp", 64, 10, hidden=16)
    # Assert
    assert linear.shapes == {"coef": (10, 64), "intercept": (10,)}
    assert mlp.shapes == {
        "layer0.weight": (16, 64), "layer0.bias": (16,), "layer1.weight": (10, 16), "layer1.bias": (10,)
    }


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_learners_start_equal_and_proposing_leaves_current_weights(model: str) -> None:
    # Prepare
    learners = make_learners(**SMALL, model=model)
    before = learners[1].current_weights()
    # Execute
    proposal = learners[1].propose_weights()
    # Assert
    _assert_same(learners[1].current_weights(), before)
    for other in learners:
        _assert_same(other.current_weights(), before)
    assert any(not np.array_equal(proposal[k], before[k]) for k in before)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_an_agent_rebuilds_the_same_learner_from_a_json_config(model: str) -> None:
    # Prepare
    config = json.loads(json.dumps(learner_config(**SMALL, model=model)))
    reference = make_learners(**SMALL, model=model)
    probe = reference[0].propose_weights()
    # Execute
    rebuilt = make_learner(config, 2)
    # Assert
    _assert_same(rebuilt.propose_weights(), reference[2].propose_weights())
    ours, theirs = rebuilt.test_weights(probe), reference[2].test_weights(probe)
    assert (ours.vote_score, ours.test_score, ours.vote) == (theirs.vote_score, theirs.test_score, theirs.vote)


def test_restored_proposal_count_resumes_the_same_sequence() -> None:
    # Prepare
    original = make_learner(learner_config(**SMALL), 0)
    proposals = [original.propose_weights() for _ in range(2)]
    restarted = make_learner(learner_config(**SMALL), 0)
    assert isinstance(restarted, ClassifierLearner)
    # Execute
    restarted.proposals_made = 1
    # Assert
    _assert_same(restarted.propose_weights(), proposals[1])


def test_scores_come_from_the_vote_part_and_the_test_part() -> None:
    # Prepare
    learner = make_learner(learner_config(**SMALL), 1)
    assert isinstance(learner, ClassifierLearner)
    proposal = learner.propose_weights()
    # Execute
    verdict = learner.test_weights(proposal)
    # Assert
    assert verdict.vote_score == score(learner.model, proposal, learner.data.vote, "balanced_accuracy")
    assert verdict.test_score == score(learner.model, proposal, learner.data.test, "accuracy")


def test_vote_rule_tolerance() -> None:
    # Prepare: the current weights scored exactly; a tie approves, a loss within the tolerance approves.
    # The worse model is another learner's training (same scale), not the zero start: the vote refuses
    # a model shrunk to nothing outright, whatever the tolerance.
    config = learner_config(**SMALL, vote_tolerance=0.0)
    learner = make_learner(config, 0)
    assert isinstance(learner, ClassifierLearner)
    current = make_learner(config, 2).propose_weights()
    trained = learner.propose_weights()
    learner.accept_weights(trained)
    # Execute
    tie = learner.test_weights(learner.current_weights())
    worse = learner.test_weights(current)
    # Assert
    assert tie.vote
    assert worse.vote_score < tie.vote_score and not worse.vote
    learner.vote_rule = VoteRule(metric="balanced_accuracy", tolerance=tie.vote_score - worse.vote_score)
    assert learner.test_weights(current).vote


def _trained_consortium(model: str) -> list[MachineLearningInterface]:
    learners = make_learners(**{**SMALL, "n_learners": 5}, model=model)
    run(learners, 5)
    return learners


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_every_learner_rejects_random_weights(model: str) -> None:
    # Prepare
    learners = _trained_consortium(model)
    rng = np.random.default_rng(0)
    shapes = learners[0].current_weights()
    random_weights = {k: rng.normal(scale=1.0, size=v.shape) for k, v in shapes.items()}
    # Execute
    votes = [ln.test_weights({k: v.copy() for k, v in random_weights.items()}) for ln in learners]
    # Assert
    assert not any(v.vote for v in votes)


class RandomProposer(MachineLearningInterface):
    """A harmful learner: proposes random weights of the right shapes, and votes for them."""

    def __init__(self, honest: MachineLearningInterface) -> None:
        self.honest = honest
        self.rng = np.random.default_rng(1)

    def propose_weights(self) -> Weights:
        return {k: self.rng.normal(scale=3.0, size=v.shape) for k, v in self.honest.current_weights().items()}

    def test_weights(self, weights: Weights) -> ProposedWeights:
        return ProposedWeights(weights=weights, vote_score=1.0, test_score=1.0, vote=True)

    def accept_weights(self, weights: Weights) -> None:
        self.honest.accept_weights(weights)

    def current_weights(self) -> Weights:
        return self.honest.current_weights()


def test_driver_rejects_a_random_proposal() -> None:
    # Prepare
    learners = _trained_consortium("linear")
    before = learners[1].current_weights()
    learners[0] = RandomProposer(learners[0])
    # Execute
    result = run_one_epoch(5, learners)  # 5 % 5 == 0: the harmful learner proposes
    # Assert
    assert result.proposer == 0
    assert (result.approvals, result.accepted) == (1, False)
    _assert_same(learners[1].current_weights(), before)


def test_wrong_weights_raise_weights_mismatch() -> None:
    # Prepare
    learner = make_learner(learner_config(**SMALL), 0)
    weights = learner.current_weights()
    # Execute / Assert
    with pytest.raises(WeightsMismatch, match="coef"):
        learner.test_weights({**weights, "coef": weights["coef"][:, :3]})
    with pytest.raises(WeightsMismatch, match="missing"):
        learner.accept_weights({"coef": weights["coef"]})
    with pytest.raises(WeightsMismatch, match="float64"):
        learner.test_weights({**weights, "intercept": weights["intercept"].astype(np.float32)})


@pytest.mark.parametrize("model", [SoftmaxRegression(5, 3), MLP(5, 3, hidden=4)])
def test_gradients_match_finite_differences(model: Model) -> None:
    # Prepare
    rng = np.random.default_rng(0)
    w = {k: rng.normal(size=s) for k, s in model.shapes.items()}
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)

    def loss(weights: Weights) -> float:
        z = model.logits(weights, x)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(6), y]))

    z = model.logits(w, x)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(6), y] -= 1
    # Execute
    grads = model.backward(w, x, p / 6)
    # Assert
    for name in w:
        for idx in [(0,) * w[name].ndim, tuple(s - 1 for s in w[name].shape)]:
            bumped = {k: v.copy() for k, v in w.items()}
            bumped[name][idx] += 1e-6
            lowered = {k: v.copy() for k, v in w.items()}
            lowered[name][idx] -= 1e-6
            numeric = (loss(bumped) - loss(lowered)) / 2e-6
            assert grads[name][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_collective_beats_solo_on_label_skew() -> None:
    # Prepare
    config = learner_config(**{**SMALL, "n_learners": 5})
    # Execute
    results, final = collective(config, 10)
    alone = solo(config, 10)
    pooled = centralized(config, 3)
    # Assert
    assert final.mean > 0.85
    assert final.mean > alone.mean + 0.1
    assert pooled.mean > 0.85
    assert sum(r.accepted for r in results) >= 5


def test_config_defaults_and_unknown_settings() -> None:
    # Execute
    config = learner_config()
    # Assert
    assert config == NUMPY_DEFAULTS
    json.dumps(config)
    with pytest.raises(ValueError, match="learning_rat"):
        learner_config(learning_rat=0.1)
    with pytest.raises(ValueError, match="kind"):
        learner_config("torch")
    with pytest.raises(ValueError, match="index"):
        make_learner(config, 5)


def test_global_test_accuracy_refuses_learners_without_a_global_test_set() -> None:
    # Prepare
    toys = make_learners("toy", n_learners=2)
    # Execute / Assert
    with pytest.raises(TypeError):
        global_test_accuracy(toys)
