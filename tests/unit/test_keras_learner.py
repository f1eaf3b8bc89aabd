"""The Keras learner: variables as named float32 weights through the codec, pure proposals, exact rebuilds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colearn_chain.codec import decode_weights, digest_hex, encode_weights
from colearn_chain.driver import run
from colearn_chain.exceptions import WeightsMismatch
from colearn_chain.learners import learner_config, make_learner
from colearn_chain.learners.keras import (
    KerasLearner,
    KerasSettings,
    cnn,
    cnn_learner,
    keras_learner,
)
from colearn_chain.learners.vote_rule import VoteRule
from colearn_chain.typing import Weights

# digits keeps these tests quick; the CNN takes any feature count.
SMALL: dict[str, Any] = {"n_learners": 3, "dataset": "digits", "split": "iid", "seed": 0, "local_epochs": 2}
ROOT = Path(__file__).resolve().parents[2]
CNN_SHAPES = {
    "cnn/conv0/kernel": (5, 1, 25), "cnn/conv0/bias": (25,),
    "cnn/conv1/kernel": (3, 25, 25), "cnn/conv1/bias": (25,),
    "cnn/conv2/kernel": (3, 25, 25), "cnn/conv2/bias": (25,),
    "cnn/logits/kernel": (25 * 8, 10), "cnn/logits/bias": (10,),
}


def _build(config: dict[str, Any], index: int) -> KerasLearner:
    learner = make_learner(config, index)
    assert isinstance(learner, KerasLearner)
    return learner


@pytest.fixture(scope="module")
def learners() -> list[KerasLearner]:
    config = learner_config("keras-cnn", **SMALL)
    return [_build(config, i) for i in range(3)]


def _assert_same(a: Weights, b: Weights) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype
        np.testing.assert_array_equal(a[name], b[name])


def test_keras_weights_round_trip_through_the_codec(learners: list[KerasLearner]) -> None:
    # Prepare
    weights = learners[0].propose_weights()
    # Execute
    decoded = decode_weights(encode_weights(weights), expected=learners[1].current_weights())
    # Assert
    assert {k: v.shape for k, v in weights.items()} == CNN_SHAPES
    assert {v.dtype for v in weights.values()} == {np.dtype(np.float32)}
    _assert_same(decoded, weights)
    learners[1].accept_weights(decoded)
    _assert_same(learners[1].current_weights(), weights)
    learners[1].accept_weights(learners[0].current_weights())


def test_proposing_leaves_the_current_weights(learners: list[KerasLearner]) -> None:
    # Prepare
    before = learners[2].current_weights()
    # Execute
    proposal = learners[2].propose_weights()
    # Assert
    _assert_same(learners[2].current_weights(), before)
    assert all(not np.array_equal(proposal[k], before[k]) for k in before)


def test_every_learner_starts_from_the_same_seeded_weights(learners: list[KerasLearner]) -> None:
    # Execute
    options = {k: v for k, v in learner_config("keras-cnn", **SMALL).items() if k not in ("kind", "n_learners", "seed")}
    other_seed = cnn_learner(0, 3, 1, options)
    # Assert
    _assert_same(learners[0].current_weights(), learners[2].current_weights())
    assert not np.array_equal(other_seed.current_weights()["cnn/conv0/kernel"],
                              learners[0].current_weights()["cnn/conv0/kernel"])


def test_the_driver_is_reproducible_and_the_collective_learns() -> None:
    # Prepare
    config = learner_config("keras-cnn", **SMALL)
    first, second = [_build(config, i) for i in range(3)], [_build(config, i) for i in range(3)]
    start = first[0].evaluate()
    # Execute
    results_a, results_b = run(first, 3), run(second, 3)
    # Assert
    assert [r.vote_flags for r in results_a] == [r.vote_flags for r in results_b]
    _assert_same(first[0].current_weights(), second[0].current_weights())
    assert first[0].evaluate() > start + 0.5


_RUN_IN_ANOTHER_PROCESS = """
import json, sys
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.driver import run
from colearn_chain.learners import make_learner
config = json.loads(sys.argv[1])
learners = [make_learner(config, i) for i in range(config["n_learners"])]
run(learners, 3)
print(digest_hex(encode_weights(learners[0].current_weights())))
"""


@pytest.mark.parametrize("overrides", [{}, {"split": "dirichlet", "channels": 4}])  # skewed: distilled proposals
def test_another_process_reaches_bitwise_the_same_weights(overrides: dict[str, Any]) -> None:
    # Prepare: as an agent does, from the JSON config a deployment carries
    config = json.loads(json.dumps(learner_config("keras-cnn", **{**SMALL, **overrides})))
    here = [make_learner(config, i) for i in range(3)]
    run(here, 3)
    # Execute
    out = subprocess.run(
        [sys.executable, "-c", _RUN_IN_ANOTHER_PROCESS, json.dumps(config)],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    # Assert
    assert out.stdout.strip().splitlines()[-1] == digest_hex(encode_weights(here[0].current_weights()))


def test_votes_refuse_random_huge_and_mistyped_weights(learners: list[KerasLearner]) -> None:
    # Prepare
    rng = np.random.default_rng(0)
    current = learners[0].current_weights()
    noise = {k: rng.normal(scale=1.0, size=v.shape).astype(np.float32) for k, v in current.items()}
    huge = {k: np.full(v.shape, 3e38, dtype=np.float32) for k, v in current.items()}
    # Execute
    votes = [ln.test_weights(w) for ln in learners for w in (noise, huge)]
    # Assert
    assert not any(v.vote for v in votes)
    assert all(v.reason is not None for v in votes[1::2])
    with pytest.raises(WeightsMismatch, match="float32"):
        learners[0].test_weights({k: v.astype(np.float64) for k, v in current.items()})


def test_training_from_a_poisoned_model_stays_finite(learners: list[KerasLearner]) -> None:
    # Prepare
    learner = learners[0]
    kept = learner.current_weights()
    learner.accept_weights({k: np.full(v.shape, 1e30, dtype=np.float32) for k, v in kept.items()})
    # Execute
    proposal = learner.propose_weights()
    # Assert
    assert all(np.all(np.isfinite(v)) for v in proposal.values())
    learner.accept_weights(kept)


def test_any_compiled_keras_model_plugs_in(learners: list[KerasLearner]) -> None:
    # Prepare: a softmax-output model, wrapped as it is
    from colearn_chain.learners.keras import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    network = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(16, activation="relu", name="hidden"),
         keras.layers.Dense(10, activation="softmax", name="out")], name="small",
    )
    network.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    data = learners[0].data
    # Execute
    learner = keras_learner(network, data, index=0, settings=KerasSettings(outputs="probabilities"),
                            vote_rule=VoteRule(tolerance=0.0))
    verdict = learner.test_weights(learner.propose_weights())
    # Assert
    assert set(learner.current_weights()) == {"small/hidden/kernel", "small/hidden/bias", "small/out/kernel",
                                              "small/out/bias"}
    assert verdict.vote and verdict.vote_score > 0.5
    with pytest.raises(ValueError, match="compiled"):
        keras_learner(cnn(64, 10).__class__.from_config(cnn(64, 10).get_config()), data, index=0)


def test_the_proximal_term_pulls_the_proposal_toward_the_start() -> None:
    # Prepare: the same learner without and with FedProx's term, tiny (4 channels, 1 pass)
    def moved(prox: float, optimizer: str = "adam") -> float:
        settings = {**SMALL, "local_epochs": 1, "channels": 4, "prox": prox, "optimizer": optimizer}
        learner = _build(learner_config("keras-cnn", **settings), 0)
        start, proposal = learner.current_weights(), learner.propose_weights()
        return float(np.sqrt(sum(np.sum((proposal[k] - start[k]) ** 2) for k in start)))

    # Execute
    plain, pulled, held = moved(0.0), moved(1.0), moved(100.0)
    plain_sgd, pulled_sgd = moved(0.0, "sgd"), moved(1.0, "sgd")
    # Assert
    assert plain > pulled > held > 0.0
    assert plain_sgd > pulled_sgd > 0.0
    with pytest.raises(ValueError, match="prox must be >= 0"):
        cnn(64, 10, prox=-0.1)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of adam, sgd"):
        cnn(64, 10, optimizer="rmsprop")


def test_logit_adjustment_changes_the_training_and_needs_logits() -> None:
    # Prepare: tiny CNNs on a Dirichlet split, without and with the adjustment
    def proposal(adjustment: float) -> Weights:
        settings = {**SMALL, "split": "dirichlet", "local_epochs": 1, "channels": 4, "logit_adjustment": adjustment}
        return _build(learner_config("keras-cnn", **settings), 1).propose_weights()

    # Execute
    plain, adjusted, again = proposal(0.0), proposal(1.0), proposal(1.0)
    # Assert: a different proposal, as exactly reproducible as any
    assert any(not np.array_equal(plain[k], adjusted[k]) for k in plain)
    _assert_same(adjusted, again)
    with pytest.raises(ValueError, match="logit_adjustment must be >= 0, and needs a model of logits"):
        KerasSettings(logit_adjustment=-1.0)
    with pytest.raises(ValueError, match="logit_adjustment must be >= 0, and needs a model of logits"):
        KerasSettings(logit_adjustment=1.0, outputs="probabilities")


def test_a_partial_step_scales_the_update_and_averaged_passes_differ() -> None:
    # Prepare: tiny CNNs proposing from the same start, the full update, half of it, and averaged passes
    def proposal(**options: Any) -> tuple[Weights, Weights]:
        settings = {**SMALL, "local_epochs": 2, "channels": 4, **options}
        learner = _build(learner_config("keras-cnn", **settings), 1)
        return learner.current_weights(), learner.propose_weights()

    # Execute
    start, full = proposal()
    _, half = proposal(step=0.5)
    _, averaged = proposal(average_passes=True)
    _, averaged_again = proposal(average_passes=True)
    # Assert: half of the same update (the same seeded training), averaging changes it reproducibly
    for name in start:
        np.testing.assert_allclose(half[name] - start[name], 0.5 * (full[name] - start[name]), atol=1e-6)
    assert any(not np.array_equal(full[k], averaged[k]) for k in full)
    _assert_same(averaged, averaged_again)
    with pytest.raises(ValueError, match=r"step must be in \(0, 1\], got 0.0"):
        KerasSettings(step=0.0)
    with pytest.raises(ValueError, match=r"step must be in \(0, 1\], got 1.5"):
        KerasSettings(step=1.5)


def test_not_true_distillation_changes_the_training_and_needs_logits() -> None:
    # Prepare: tiny CNNs on a Dirichlet split (classes absent locally), without and with distillation
    def proposal(distill: float) -> Weights:
        settings = {**SMALL, "split": "dirichlet", "local_epochs": 1, "channels": 4, "distill": distill}
        return _build(learner_config("keras-cnn", **settings), 1).propose_weights()

    # Execute
    plain, distilled, again = proposal(0.0), proposal(3.0), proposal(3.0)
    # Assert: a different, finite proposal, as exactly reproducible as any
    assert any(not np.array_equal(plain[k], distilled[k]) for k in plain)
    assert all(np.isfinite(v).all() for v in distilled.values())
    _assert_same(distilled, again)
    with pytest.raises(ValueError, match="distill must be >= 0, and needs a model of logits"):
        KerasSettings(distill=-1.0)
    with pytest.raises(ValueError, match="distill must be >= 0, and needs a model of logits"):
        KerasSettings(distill=1.0, outputs="probabilities")


def test_distillation_by_skew_leaves_balanced_data_alone() -> None:
    # Prepare: tiny CNNs, distilled by their labels' skew, on an iid and on a Dirichlet split
    def proposal(split: str, distill: float) -> Weights:
        settings = {**SMALL, "split": split, "local_epochs": 1, "channels": 4, "distill": distill,
                    "distill_skew": True}
        return _build(learner_config("keras-cnn", **settings), 1).propose_weights()

    # Execute
    balanced, balanced_plain = proposal("iid", 3.0), proposal("iid", 0.0)
    skewed, skewed_plain = proposal("dirichlet", 3.0), proposal("dirichlet", 0.0)
    # Assert: no distillation on balanced labels (the very same proposal), some on skewed ones
    _assert_same(balanced, balanced_plain)
    assert any(not np.array_equal(skewed[k], skewed_plain[k]) for k in skewed)
