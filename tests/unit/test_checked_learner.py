"""Every way a learner can break the interface gives a LearnerContractError naming the method and the fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from colearn_chain.exceptions import LearnerContractError, WeightsMismatch
from colearn_chain.learners.checked import CheckedLearner, checked
from colearn_chain.mli import MachineLearningInterface, ProposedWeights
from colearn_chain.typing import Weights


class Honest(MachineLearningInterface):
    """A tiny well-behaved learner; each test breaks one method of a subclass."""

    def __init__(self) -> None:
        self.w = np.zeros(3)
        self.restored: list[int] = []

    def propose_weights(self) -> Weights:
        return {"w": self.w + 1.0}

    def test_weights(self, weights: Weights) -> ProposedWeights:
        score = -float(np.abs(weights["w"] - 1.0).sum())
        return ProposedWeights(weights=weights, vote_score=score, test_score=score, vote=True)

    def accept_weights(self, weights: Weights) -> None:
        self.w = weights["w"].copy()

    def current_weights(self) -> Weights:
        return {"w": self.w.copy()}

    def restore_proposal_count(self, count: int) -> None:
        self.restored.append(count)


def _proposing(value: Any) -> Honest:
    class Bad(Honest):
        def propose_weights(self) -> Weights:
            return value  # type: ignore[no-any-return]
    return Bad()


def _voting(make: Callable[[Weights], Any]) -> Honest:
    class Bad(Honest):
        def test_weights(self, weights: Weights) -> ProposedWeights:
            return make(weights)  # type: ignore[no-any-return]
    return Bad()


def _verdict(**fields: Any) -> Callable[[Weights], ProposedWeights]:
    return lambda w: ProposedWeights(**{"weights": w, "vote_score": 0.5, "test_score": 0.5, "vote": True, **fields})


PROPOSALS = [
    ([np.zeros(3)], "propose_weights must return a non-empty dict of name -> numpy array, got list"),
    ({}, "propose_weights must return a non-empty dict of name -> numpy array, got an empty dict"),
    ({"w": [0.0, 0.0, 0.0]}, "propose_weights returned entry 'w' as list, not a numpy array"),
    ({0: np.zeros(3)}, "propose_weights returned a tensor named 0: names must be strings"),
    ({"w": np.array(["a", "b", "c"])}, "propose_weights returned tensor 'w' of dtype <U1"),
    ({"w": np.zeros(4)}, "propose_weights returned weights of another layout than before: tensor 'w' was float64 "
                         "(3,), now float64 (4,)"),
    ({"w": np.zeros(3, np.float32)}, "tensor 'w' was float64 (3,), now float32 (3,)"),
    ({"w": np.zeros(3), "b": np.zeros(1)}, "tensors missing [], unexpected ['b']"),
]


@pytest.mark.parametrize(("proposal", "message"), PROPOSALS)
def test_a_malformed_proposal_is_named(proposal: Any, message: str) -> None:
    # Prepare
    learner = CheckedLearner(_proposing(proposal))
    # Execute / Assert
    with pytest.raises(LearnerContractError, match=r"^learner Bad: ") as error:
        learner.propose_weights()
    assert message in str(error.value)
    assert error.value.method == "propose_weights"


VERDICTS = [
    (lambda w: True, "test_weights must return colearn_chain.mli.ProposedWeights, got bool"),
    (lambda w: (w, 0.5, 0.5, True), "test_weights must return colearn_chain.mli.ProposedWeights, got tuple"),
    (_verdict(vote="yes"), "test_weights returned vote='yes' (str): it must be a bool"),
    (_verdict(vote_score="0.5"), "test_weights returned vote_score='0.5' (str): it must be a real number"),
    (_verdict(test_score=None), "test_weights returned test_score=None (NoneType): it must be a real number"),
    (_verdict(reason=3), "test_weights returned reason=3: it must be None or a string"),
    (_verdict(weights=[1]), "test_weights returned ProposedWeights whose weights are list, not weights"),
]


@pytest.mark.parametrize(("make", "message"), VERDICTS)
def test_a_malformed_verdict_is_named(make: Callable[[Weights], Any], message: str) -> None:
    # Prepare
    learner = CheckedLearner(_voting(make))
    # Execute / Assert
    with pytest.raises(LearnerContractError) as error:
        learner.test_weights({"w": np.ones(3)})
    assert message in str(error.value)
    assert error.value.method == "test_weights"


def test_numpy_scalars_and_bools_are_fine() -> None:
    # Prepare
    learner = CheckedLearner(_voting(_verdict(vote=np.bool_(True), vote_score=np.float32(0.5), test_score=1)))
    # Execute
    result = learner.test_weights({"w": np.ones(3)})
    # Assert
    assert result.vote and result.vote_score == 0.5


class ProposerThatTrainsInPlace(Honest):
    def propose_weights(self) -> Weights:
        self.w += 1.0  # the current weights change: forbidden
        return {"w": self.w.copy()}


class VoterThatAdopts(Honest):
    def test_weights(self, weights: Weights) -> ProposedWeights:
        self.w = weights["w"].copy()  # the current weights change: forbidden
        return super().test_weights(weights)


@pytest.mark.parametrize(("inner", "call", "method"), [
    (ProposerThatTrainsInPlace(), lambda ln: ln.propose_weights(), "propose_weights"),
    (VoterThatAdopts(), lambda ln: ln.test_weights({"w": np.full(3, 5.0)}), "test_weights"),
])
def test_changing_the_current_weights_is_named_and_undone(inner: Honest, call: Any, method: str) -> None:
    # Prepare
    learner = CheckedLearner(inner)
    # Execute / Assert
    with pytest.raises(LearnerContractError, match=f"{method} changed the current weights \\(tensor 'w'\\)"):
        call(learner)
    assert np.array_equal(inner.w, np.zeros(3)), "the current weights were put back"


def test_current_weights_that_change_layout_are_named() -> None:
    # Prepare: a learner whose current weights grow after an accept
    class Growing(Honest):
        def accept_weights(self, weights: Weights) -> None:
            self.w = np.zeros(5)
    learner = CheckedLearner(Growing())
    learner.current_weights()
    learner.accept_weights({"w": np.ones(3)})
    # Execute / Assert
    with pytest.raises(LearnerContractError, match="current_weights returned weights of another layout than before"):
        learner.current_weights()


def test_an_exception_from_the_learner_is_named_and_the_packages_own_pass() -> None:
    # Prepare
    class Crashing(Honest):
        def propose_weights(self) -> Weights:
            raise KeyError("layer0")

        def test_weights(self, weights: Weights) -> ProposedWeights:
            raise WeightsMismatch("not my shapes")
    learner = CheckedLearner(Crashing())
    # Execute / Assert
    with pytest.raises(LearnerContractError, match="propose_weights raised KeyError: 'layer0'") as error:
        learner.propose_weights()
    assert isinstance(error.value.__cause__, KeyError)
    with pytest.raises(WeightsMismatch, match="not my shapes"):
        learner.test_weights({"w": np.ones(3)})


def test_an_honest_learner_passes_unchanged() -> None:
    # Prepare
    inner = Honest()
    learner = checked(inner)
    # Execute
    proposal = learner.propose_weights()
    verdict = learner.test_weights(proposal)
    learner.accept_weights(proposal)
    learner.restore_proposal_count(4)
    # Assert
    assert verdict.vote and np.array_equal(learner.current_weights()["w"], np.ones(3))
    assert inner.restored == [4]
    assert checked(learner) is learner and learner.inner is inner
