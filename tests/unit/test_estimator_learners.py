"""The scikit-learn estimator learners: real estimators, pure proposals, exact rebuilds, guarded votes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.driver import run
from colearn_chain.exceptions import WeightsMismatch
from colearn_chain.learners import learner_config, make_learner
from colearn_chain.learners.estimators import (
    MLP_DEFAULTS,
    SGD_DEFAULTS,
    EstimatorLearner,
    mlp_learner,
    sgd_learner,
)
from colearn_chain.typing import Weights

SMALL: dict[str, Any] = {"n_learners": 3, "dataset": "digits", "split": "dirichlet", "alpha": 0.5, "seed": 0}
ROOT = Path(__file__).resolve().parents[2]


KINDS = {"sgd": "sklearn-sgd", "mlp": "sklearn-mlp"}


def _config(model: str, **settings: Any) -> dict[str, Any]:
    """The complete spec of the ``model`` kind, as deploy records it."""
    return learner_config(KINDS[model], **{**SMALL, **settings})


def _build(config: dict[str, Any], index: int) -> EstimatorLearner:
    learner = make_learner(config, index)
    assert isinstance(learner, EstimatorLearner)
    return learner


def _learners(model: str, **settings: Any) -> list[EstimatorLearner]:
    if model == "mlp":  # one small hidden layer keeps the tests quick
        settings = {"hidden": [32], **settings}
    config = _config(model, **settings)
    return [_build(config, i) for i in range(config["n_learners"])]


def _assert_same(a: Weights, b: Weights) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_weights_are_the_estimators_fitted_arrays() -> None:
    # Execute
    sgd = _learners("sgd")[0].current_weights()
    mlp = _learners("mlp", hidden=[16, 8])[0].current_weights()
    binary = _learners("sgd", dataset="breast_cancer")[0].current_weights()
    # Assert
    assert {k: v.shape for k, v in sgd.items()} == {"coef_": (10, 64), "intercept_": (10,)}
    assert {k: v.shape for k, v in mlp.items()} == {
        "coefs_.0": (64, 16), "intercepts_.0": (16,), "coefs_.1": (16, 8), "intercepts_.1": (8,),
        "coefs_.2": (8, 10), "intercepts_.2": (10,),
    }
    assert {k: v.shape for k, v in binary.items()} == {"coef_": (1, 30), "intercept_": (1,)}


def test_sgd_proposal_is_what_scikit_learn_fits_from_the_same_start() -> None:
    # Prepare: one SGDClassifier pass from the shared (zero) weights, same shuffling seed
    from sklearn.linear_model import SGDClassifier

    learner = _learners("sgd", local_epochs=1, class_weight=None, keep_absent_classes=False)[0]
    seed = int(np.random.default_rng([0, 0, 1, 0]).integers(2**31 - 1))
    estimator = SGDClassifier(loss="log_loss", alpha=1e-4, learning_rate="constant", eta0=0.01,
                              random_state=np.random.RandomState(seed))
    estimator.partial_fit(learner.data.train.x, learner.data.train.y, classes=np.arange(10))
    # Execute
    proposal = learner.propose_weights()
    # Assert
    np.testing.assert_array_equal(proposal["coef_"], estimator.coef_)
    np.testing.assert_array_equal(proposal["intercept_"], estimator.intercept_)


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_proposing_leaves_the_current_weights_and_differs_from_them(model: str) -> None:
    # Prepare
    learner = _learners(model)[1]
    before = learner.current_weights()
    # Execute
    proposal = learner.propose_weights()
    # Assert
    _assert_same(learner.current_weights(), before)
    assert any(not np.array_equal(proposal[k], before[k]) for k in before)


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_classes_missing_locally_keep_their_output_units(model: str) -> None:
    # Prepare: a strong skew, so some learner lacks a class
    learners = _learners(model, alpha=0.1)
    learner = next(ln for ln in learners if len(np.unique(ln.data.train.y)) < 10)
    absent = np.bincount(learner.data.train.y, minlength=10) == 0
    before = learner.current_weights()
    # Execute
    proposal = learner.propose_weights()
    # Assert
    last_w, last_b = ("coef_", "intercept_") if model == "sgd" else ("coefs_.1", "intercepts_.1")
    out_w = proposal[last_w] if model == "sgd" else proposal[last_w].T
    start_w = before[last_w] if model == "sgd" else before[last_w].T
    np.testing.assert_array_equal(out_w[absent], start_w[absent])
    np.testing.assert_array_equal(proposal[last_b][absent], before[last_b][absent])
    assert not np.array_equal(out_w[~absent], start_w[~absent])


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_a_json_rebuilt_learner_proposes_and_votes_the_same(model: str) -> None:
    # Prepare
    reference = _learners(model)
    config = json.loads(json.dumps(_config(model, **({"hidden": [32]} if model == "mlp" else {}))))
    probe = reference[0].propose_weights()
    # Execute
    rebuilt = _build(config, 2)
    # Assert
    _assert_same(rebuilt.propose_weights(), reference[2].propose_weights())
    ours, theirs = rebuilt.test_weights(probe), reference[2].test_weights(probe)
    assert (ours.vote_score, ours.test_score, ours.vote) == (theirs.vote_score, theirs.test_score, theirs.vote)


def test_factories_have_the_plug_in_signature() -> None:
    # Execute
    sgd = sgd_learner(1, 3, 0, {**SGD_DEFAULTS, "dataset": "wine", "split": "iid"})
    mlp = mlp_learner(1, 3, 0, {**MLP_DEFAULTS, "dataset": "wine", "split": "iid", "hidden": [8]})
    # Assert
    assert isinstance(sgd, EstimatorLearner) and sgd.model.n_features == 13
    assert isinstance(mlp, EstimatorLearner) and mlp.current_weights()["coefs_.0"].shape == (13, 8)
    with pytest.raises(ValueError, match="unknown options for 'sklearn-sgd' learners: no_such_option"):
        learner_config("sklearn-sgd", no_such_option=1)


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_the_driver_is_reproducible_and_the_collective_learns(model: str) -> None:
    # Prepare: the MLP's defaults are mnist1d's (15 passes); on digits' small parts 5 passes overfit less
    settings = {"local_epochs": 5} if model == "mlp" else {}
    first, second = _learners(model, **settings), _learners(model, **settings)
    start = first[0].evaluate()
    # Execute
    results_a, results_b = run(first, 6), run(second, 6)
    # Assert
    assert [r.vote_flags for r in results_a] == [r.vote_flags for r in results_b]
    _assert_same(first[0].current_weights(), second[0].current_weights())
    assert sum(r.accepted for r in results_a) >= 3
    assert first[0].evaluate() > start + 0.5


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_every_learner_refuses_random_and_huge_weights(model: str) -> None:
    # Prepare
    learners = _learners(model)
    shapes = {k: v.shape for k, v in learners[0].current_weights().items()}
    rng = np.random.default_rng(0)
    random_weights = {k: rng.normal(scale=1.0, size=s) for k, s in shapes.items()}
    huge = {k: np.full(s, 1e300) for k, s in shapes.items()}
    # Execute
    random_votes = [ln.test_weights({k: v.copy() for k, v in random_weights.items()}) for ln in learners]
    huge_votes = [ln.test_weights({k: v.copy() for k, v in huge.items()}) for ln in learners]
    # Assert
    assert not any(v.vote for v in random_votes + huge_votes)
    assert all(v.reason is not None for v in huge_votes)


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_training_from_a_poisoned_model_stays_finite(model: str) -> None:
    # Prepare
    learner = _learners(model)[0]
    learner.accept_weights({k: np.full(v.shape, 1e30) for k, v in learner.current_weights().items()})
    # Execute
    proposal = learner.propose_weights()
    # Assert
    assert all(np.all(np.isfinite(v)) for v in proposal.values())


def test_wrong_weights_raise_weights_mismatch() -> None:
    # Prepare
    learner = _learners("sgd")[0]
    weights = learner.current_weights()
    # Execute / Assert
    with pytest.raises(WeightsMismatch, match="coef_"):
        learner.test_weights({**weights, "coef_": weights["coef_"][:, :3]})
    with pytest.raises(WeightsMismatch, match="float64"):
        learner.accept_weights({**weights, "coef_": weights["coef_"].astype(np.float32)})


def test_spec_defaults_per_model() -> None:
    # Execute
    mlp, sgd = learner_config("sklearn-mlp"), learner_config("sklearn-sgd")
    # Assert: the MLP's are mnist1d's (the paper's shape), and settings override them
    assert {k: mlp[k] for k in MLP_DEFAULTS} == MLP_DEFAULTS and mlp["hidden"] == [256, 256]
    assert {k: sgd[k] for k in SGD_DEFAULTS} == SGD_DEFAULTS and "hidden" not in sgd
    assert learner_config("sklearn-mlp", learning_rate=0.5)["learning_rate"] == 0.5
    assert sgd["learning_rate"] != mlp["learning_rate"] or sgd["local_epochs"] != mlp["local_epochs"]


_PROPOSE_IN_ANOTHER_PROCESS = """
import json, sys
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.driver import run
from colearn_chain.learners import make_learner
config = json.loads(sys.argv[1])
learners = [make_learner(config, i) for i in range(config["n_learners"])]
run(learners, 4)
print(digest_hex(encode_weights(learners[0].current_weights())))
"""


@pytest.mark.parametrize("model", ["sgd", "mlp"])
def test_another_process_reaches_bitwise_the_same_weights(model: str) -> None:
    # Prepare
    config = _config(model)  # the defaults, as an agent gets them
    here = [_build(config, i) for i in range(3)]
    run(here, 4)
    # Execute
    out = subprocess.run(
        [sys.executable, "-c", _PROPOSE_IN_ANOTHER_PROCESS, json.dumps(config)],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    # Assert
    assert out.stdout.strip() == digest_hex(encode_weights(here[0].current_weights()))
