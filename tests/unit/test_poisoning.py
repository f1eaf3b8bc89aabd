"""Poisoning cannot stick: hostile finite weights are refused, or the consortium recovers from them.

Issue 8: at epoch 0 weights of 1e308 (finite, but every logit overflows) scored as badly as the
untrained model, were approved by every linear voter, and after their adoption every honest proposal
was non-finite, so the consortium never left the poisoned model.

The property test throws hostile finite tensors at a digits consortium of 5 (Dirichlet 0.5) at epoch
0 (the untrained model, where votes are weakest) and after 3 honest epochs. Learner 0 plays the
attacker: it votes for its proposal, the 4 others vote honestly, and the proposal is adopted as the
contract would adopt it (threshold 0.5 of 5 votes). An adopted proposal is forced on every learner,
then 5 honest epochs run through the reference driver. Their global accuracy must come within
``RECOVERY_GAP`` of the run without the attack after as many epochs.

Why 5 epochs and 5 points: a proposal is adopted only if honest voters find it no worse than the
current model (or, at epoch 0, better than guessing) and of a similar scale, so what gets in is
close to an honest model. The worst adopted attacks found are the current model rescaled by up to
2x (the largest change of scale a vote allows): an MLP's later learning slows and it stays 2 to 4
points behind the honest run after 5 epochs (measured on this split: 1.9x gives 0.903 vs 0.925).
Small random perturbations cost under 1 point. Two points, as first proposed, would fail only on
those rescalings; before this fix the gap was 80 points and never closed.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from colearn_chain.decision import is_accepted, threshold_to_bps
from colearn_chain.driver import run
from colearn_chain.learners import make_learners
from colearn_chain.learners.baselines import global_test_accuracy
from colearn_chain.learners.numpy_models import MAX_RMS, ClassifierLearner, refusal, rms
from colearn_chain.mli import MachineLearningInterface, ProposedWeights
from colearn_chain.typing import Weights

CONSORTIUM: dict[str, Any] = {"n_learners": 5, "dataset": "digits", "split": "dirichlet", "alpha": 0.5, "seed": 0}
RECOVERY_EPOCHS = 5
RECOVERY_GAP = 0.05
FLOAT_MAX = float(np.finfo(np.float64).max)


def _consortium(model: str, epochs: int) -> list[ClassifierLearner]:
    learners = make_learners(**CONSORTIUM, model=model)
    run(learners, epochs)
    out = [ln for ln in learners if isinstance(ln, ClassifierLearner)]
    assert len(out) == len(learners)
    return out


@functools.cache
def _no_attack_accuracy(model: str, attack_epoch: int) -> float:
    """Global accuracy of the honest run after the attack epoch and the recovery epochs."""
    return global_test_accuracy(_consortium(model, attack_epoch + 1 + RECOVERY_EPOCHS)).mean


def _copy(weights: Weights) -> Weights:
    return {k: v.copy() for k, v in weights.items()}


def _finite(weights: Weights) -> bool:
    return all(bool(np.all(np.isfinite(v))) for v in weights.values())


def _force_accept(learners: list[ClassifierLearner], weights: Weights) -> None:
    for learner in learners:
        learner.accept_weights(_copy(weights))


# ----------------------------------------------------------------------------- hostile tensors
KINDS = ("constant", "random", "mixed_huge", "scaled", "perturbed", "sign_flip")


def hostile(kind: str, magnitude: float, seed: int, current: Weights, local: Weights) -> Weights:
    """Finite weights of the right shapes, built the way an attacker would (``local``: an honest proposal)."""
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for name, now in current.items():
        if kind == "constant":
            out[name] = np.full(now.shape, magnitude)
        elif kind == "random":
            out[name] = rng.normal(size=now.shape) * magnitude
        elif kind == "mixed_huge":  # each entry tiny or huge, either sign
            exponents = rng.uniform(-308, 308, size=now.shape)
            out[name] = rng.choice([-1.0, 1.0], size=now.shape) * 10.0**exponents
        elif kind == "scaled":
            out[name] = now * magnitude
        elif kind == "perturbed":
            out[name] = now + rng.normal(size=now.shape) * magnitude
        else:  # the sign-flipped, amplified update of a model-replacement attack: global - m * (local - global)
            out[name] = now - abs(magnitude) * (local[name] - now)
    with np.errstate(over="ignore"):  # an overflow becomes the largest finite value below
        return {k: np.clip(v, -FLOAT_MAX, FLOAT_MAX) for k, v in out.items()}


# any finite magnitude, but often near the model's own scale, where votes cannot tell at a glance
MAGNITUDES = st.builds(
    lambda sign, exponent: sign * 10.0**exponent,
    st.sampled_from([-1.0, 1.0]),
    st.one_of(st.floats(-308, 308), st.floats(-2.0, 1.3)),
)


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("attack_epoch", [0, 3])
@settings(max_examples=50, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), magnitude=MAGNITUDES, seed=st.integers(0, 2**32 - 1))
# the issue's attack, global - 5 * (local - global), and attacks that honest voters do adopt after
# 3 epochs (scaled 1.9x: both models; perturbed by 0.03: the MLP), so the recovery branch always runs
@example(kind="constant", magnitude=1e308, seed=0)
@example(kind="sign_flip", magnitude=5.0, seed=0)
@example(kind="scaled", magnitude=1.9, seed=0)
@example(kind="perturbed", magnitude=0.03, seed=0)
def test_hostile_weights_are_refused_or_do_not_stick(
    model: str, attack_epoch: int, kind: str, magnitude: float, seed: int
) -> None:
    # Prepare
    learners = _consortium(model, attack_epoch)
    current = learners[0].current_weights()
    local = learners[attack_epoch % len(learners)].propose_weights()
    weights = hostile(kind, magnitude, seed, current, local)
    # Execute: learner 0 is the attacker and approves; the others vote honestly
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning escapes a vote
        verdicts = [ln.test_weights(_copy(weights)) for ln in learners[1:]]
    approvals = 1 + sum(v.vote for v in verdicts)
    adopted = is_accepted(approvals, len(learners), threshold_to_bps(0.5))
    event("adopted" if adopted else "refused")
    # Assert: every verdict is finite, and a refusal says why
    for verdict in verdicts:
        assert np.isfinite(verdict.vote_score) and np.isfinite(verdict.test_score)
        assert verdict.reason is None or not verdict.vote
    if not adopted:
        return
    _force_accept(learners, weights)
    run(learners, RECOVERY_EPOCHS, start_epoch=attack_epoch + 1)
    assert all(_finite(ln.current_weights()) for ln in learners)
    recovered = global_test_accuracy(learners).mean
    assert recovered >= _no_attack_accuracy(model, attack_epoch) - RECOVERY_GAP


# ----------------------------------------------------------------------------- the issue's attack
@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_weights_of_1e308_are_rejected_by_every_voter(model: str) -> None:
    # Prepare: the issue's attack, at epoch 0 (before the fix: 5/5 linear and 4/5 MLP voters approved)
    learners = _consortium(model, 0)
    huge = {k: np.full_like(v, 1e308) for k, v in learners[0].current_weights().items()}
    # Execute
    verdicts = [ln.test_weights(_copy(huge)) for ln in learners]
    # Assert
    assert not any(v.vote for v in verdicts)
    for verdict in verdicts:
        assert verdict.reason is not None and "RMS" in verdict.reason
        assert np.isfinite(verdict.vote_score)


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_rejected_with_a_reason(model: str, bad: float) -> None:
    # Prepare
    learners = _consortium(model, 2)
    weights = learners[0].current_weights()
    first = min(weights)
    weights[first].flat[0] = bad
    # Execute
    verdicts = [ln.test_weights(_copy(weights)) for ln in learners]
    # Assert
    assert not any(v.vote for v in verdicts)
    assert all(v.reason == f"tensor {first!r} holds NaN or infinite values" for v in verdicts)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_weights_with_non_finite_outputs_are_rejected(model: str) -> None:
    # Prepare: the current model is already huge (forced), so the scale bounds allow another huge one;
    # its logits overflow on the vote part
    learner = _consortium(model, 0)[1]
    huge = {k: np.full_like(v, 1e307) for k, v in learner.current_weights().items()}
    learner.accept_weights(huge)
    proposal = {k: np.full_like(v, 2e307) for k, v in huge.items()}
    # Execute
    reason = refusal(learner.model, proposal, learner.current_weights(), learner.data.vote)
    verdict = learner.test_weights(proposal)
    # Assert
    assert reason == "the weights give non-finite outputs on the vote part"
    assert (verdict.vote, verdict.reason) == (False, reason)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_tiny_weights_are_rejected_at_epoch_0(model: str) -> None:
    # Prepare: almost zero weights guess like the untrained model; a tiny MLP would never learn again
    learners = _consortium(model, 0)
    tiny = {k: np.full_like(v, 1e-300) for k, v in learners[0].current_weights().items()}
    # Execute
    verdicts = [ln.test_weights(_copy(tiny)) for ln in learners]
    # Assert
    assert not any(v.vote for v in verdicts)
    assert all(v.reason is not None for v in verdicts)


def _huge_models(shapes: Weights) -> dict[str, Weights]:
    rng = np.random.default_rng(0)
    return {
        "constant 1e308": {k: np.full_like(v, 1e308) for k, v in shapes.items()},
        "random signs 1e300": {k: rng.choice([-1e300, 1e300], size=v.shape) for k, v in shapes.items()},
        "largest float": {k: np.full_like(v, -FLOAT_MAX) for k, v in shapes.items()},
    }


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("which", ["constant 1e308", "random signs 1e300", "largest float"])
def test_honest_training_from_a_huge_accepted_model_stays_finite(model: str, which: str) -> None:
    # Prepare: a hostile majority forced a huge model on everyone
    learners = _consortium(model, 0)
    huge = _huge_models(learners[0].current_weights())[which]
    _force_accept(learners, huge)
    # Execute
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # training from it neither overflows nor divides by zero
        proposal = learners[1].propose_weights()
    results = run(learners, 3, start_epoch=1)
    # Assert: finite, back at the honest scale, and the consortium leaves the poisoned model
    assert _finite(proposal)
    assert all(rms(v) < 4 * MAX_RMS for v in proposal.values())
    assert results[0].accepted
    assert all(_finite(ln.current_weights()) for ln in learners)


def test_the_linear_consortium_recovers_from_the_issues_model() -> None:
    # Prepare: the model the issue's consortium was stuck with (all 1e308), forced at epoch 0
    learners = _consortium("linear", 0)
    _force_accept(learners, _huge_models(learners[0].current_weights())["constant 1e308"])
    # Execute
    run(learners, RECOVERY_EPOCHS, start_epoch=1)
    # Assert: equal rows are the zero model to a softmax, so it learns as from the start
    assert global_test_accuracy(learners).mean >= _no_attack_accuracy("linear", 0) - RECOVERY_GAP


def test_a_refusal_reaches_the_driver_result() -> None:
    # Prepare
    learners: list[MachineLearningInterface] = list(_consortium("linear", 1))
    huge = {k: np.full_like(v, 1e308) for k, v in learners[0].current_weights().items()}

    class Attacker(MachineLearningInterface):
        def propose_weights(self) -> Weights:
            return _copy(huge)

        def test_weights(self, weights: Weights) -> ProposedWeights:
            return learners[1].test_weights(weights)

        def accept_weights(self, weights: Weights) -> None:
            raise AssertionError("the hostile proposal must not be adopted")

        def current_weights(self) -> Weights:
            return learners[1].current_weights()

    learners[0] = Attacker()
    # Execute
    result = run(learners, 1, start_epoch=5)[0]
    # Assert
    assert not result.accepted
    assert all(v is not None and v.reason is not None and not v.vote for v in result.votes)
