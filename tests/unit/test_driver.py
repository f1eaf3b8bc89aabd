"""The reference driver follows the seed's run_one_epoch exactly (and the colearn 0.2.8 variant)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from colearn_chain.driver import EpochResult, proposer_index, run, run_one_epoch
from colearn_chain.exceptions import LearnerContractError
from colearn_chain.learners.toy import ToyLearner
from colearn_chain.mli import MachineLearningInterface, ProposedWeights
from colearn_chain.typing import Weights


class StubLearner(MachineLearningInterface):
    """Votes a fixed way and records every call, so the driver's calls can be checked one by one."""

    def __init__(self, index: int, vote: bool) -> None:
        self.index = index
        self.vote = vote
        self.weights: Weights = {"w": np.zeros(2)}
        self.proposed = 0
        self.tested: list[Weights] = []
        self.accepted: list[Weights] = []

    def propose_weights(self) -> Weights:
        self.proposed += 1
        return {"w": np.full(2, float(self.index + 1))}

    def test_weights(self, weights: Weights) -> ProposedWeights:
        self.tested.append(weights)
        return ProposedWeights(weights=weights, vote_score=float(self.index), test_score=0.5, vote=self.vote)

    def accept_weights(self, weights: Weights) -> None:
        self.accepted.append(weights)
        self.weights = weights

    def current_weights(self) -> Weights:
        return {k: v.copy() for k, v in self.weights.items()}


def stubs(votes: Sequence[bool]) -> list[StubLearner]:
    return [StubLearner(i, v) for i, v in enumerate(votes)]


def seed_run_one_epoch(epoch_index: int, learners: Sequence[MachineLearningInterface], vote_threshold: float = 0.5):
    """The seed's code verbatim (accepting ``.weights``, since our accept_weights takes Weights)."""
    proposer = epoch_index % len(learners)
    new_weights = learners[proposer].propose_weights()
    prop_weights_list = [ln.test_weights(new_weights) for ln in learners]
    approves = sum(1 if v.vote else 0 for v in prop_weights_list)
    vote = False
    if approves >= len(learners) * vote_threshold:
        vote = True
        for j, learner in enumerate(learners):
            learner.accept_weights(prop_weights_list[j].weights)
    return prop_weights_list, vote


def test_proposer_rotates_in_the_given_order() -> None:
    # Prepare
    learners = stubs([True, True, True])
    # Execute
    results = run(learners, 7)
    # Assert
    assert [r.proposer for r in results] == [0, 1, 2, 0, 1, 2, 0]
    assert [r.epoch for r in results] == list(range(7))
    assert [ln.proposed for ln in learners] == [3, 2, 2]


def test_run_starts_at_the_given_epoch() -> None:
    # Prepare
    learners = stubs([True, True, True])
    # Execute
    results = run(learners, 2, start_epoch=4)
    # Assert
    assert [(r.epoch, r.proposer) for r in results] == [(4, 1), (5, 2)]


@pytest.mark.parametrize(
    "n, threshold, approvals, accepted",
    [
        (4, 0.5, 2, True),  # exactly n * threshold accepts
        (4, 0.5, 1, False),
        (5, 0.5, 3, True),
        (5, 0.5, 2, False),  # 2 < 2.5
        (4, 0.75, 3, True),  # exactly 3.0
        (4, 0.75, 2, False),
        (3, 1.0, 3, True),
        (3, 1.0, 2, False),
        (10, 0.3, 3, True),  # exactly 3 (0.3 is not exact in binary; basis points are)
        (10, 0.3, 2, False),
        (5, 0.0001, 1, True),
        (5, 0.0001, 0, False),
    ],
)
def test_threshold_edges(n: int, threshold: float, approvals: int, accepted: bool) -> None:
    # Prepare
    learners = stubs([i < approvals for i in range(n)])
    # Execute
    result = run_one_epoch(0, learners, vote_threshold=threshold)
    # Assert
    assert (result.approvals, result.rejections, result.accepted) == (approvals, n - approvals, accepted)


@pytest.mark.parametrize("threshold", [0.1, 0.25, 1 / 3, 0.5, 0.6, 2 / 3, 0.75, 0.9, 1.0])
def test_decision_equals_the_seed_formula_for_every_tally(threshold: float) -> None:
    # Prepare
    n = 6
    outcomes = []
    # Execute
    for approvals in range(n + 1):
        epoch = run_one_epoch(0, stubs([i < approvals for i in range(n)]), vote_threshold=round(threshold, 4))
        outcomes.append(epoch.accepted)
    # Assert
    assert outcomes == [a >= n * round(threshold, 4) for a in range(n + 1)]


def test_accept_gives_every_learner_its_own_copy_of_the_proposal() -> None:
    # Prepare
    learners = stubs([True, True, False])
    # Execute
    result = run_one_epoch(1, learners)
    # Assert
    assert result.accepted
    accepted = [ln.accepted[0] for ln in learners]
    for weights in accepted:
        np.testing.assert_array_equal(weights["w"], [2.0, 2.0])
    assert len({id(w["w"]) for w in accepted}) == 3
    np.testing.assert_array_equal(result.proposal["w"], [2.0, 2.0])


def test_reject_changes_nobody() -> None:
    # Prepare
    learners = stubs([True, False, False])
    # Execute
    result = run_one_epoch(0, learners)
    # Assert
    assert not result.accepted
    assert all(ln.accepted == [] for ln in learners)
    assert [len(ln.tested) for ln in learners] == [1, 1, 1]


def test_votes_are_each_learners_verdict_in_order() -> None:
    # Prepare
    learners = stubs([False, True, True, False])
    # Execute
    result = run_one_epoch(2, learners)
    # Assert
    assert result.vote_flags == (False, True, True, False)
    assert [v.vote_score for v in result.votes if v is not None] == [0.0, 1.0, 2.0, 3.0]


def test_variant_proposer_does_not_vote_and_threshold_is_over_the_others() -> None:
    # Prepare: proposer 0 would approve, the others split 1-1; 1 of 2 voters meets 0.5
    learners = stubs([True, True, False])
    # Execute
    result = run_one_epoch(0, learners, proposer_votes=False)
    # Assert
    assert learners[0].tested == []
    assert result.votes[0] is None
    assert (result.approvals, result.rejections, result.accepted) == (1, 1, True)


def test_variant_ignores_the_proposers_own_approval() -> None:
    # Prepare: only the proposer would approve
    learners = stubs([False, True, False, False])
    # Execute
    seed_rule = run_one_epoch(1, stubs([False, True, False, False]), proposer_votes=True)
    variant = run_one_epoch(1, learners, proposer_votes=False)
    # Assert
    assert (seed_rule.approvals, seed_rule.accepted) == (1, False)
    assert (variant.approvals, variant.rejections, variant.accepted) == (0, 3, False)
    assert variant.vote_flags == (False, None, False, False)


def test_driver_matches_the_seed_code_on_toy_learners() -> None:
    # Prepare
    ours = [ToyLearner(i, seed=3) for i in range(5)]
    theirs = [ToyLearner(i, seed=3) for i in range(5)]
    # Execute
    results = run(ours, 10)
    seed_decisions = [seed_run_one_epoch(e, theirs)[1] for e in range(10)]
    # Assert
    assert [r.accepted for r in results] == seed_decisions
    assert len(set(seed_decisions)) == 2
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.current_weights()["w"], b.current_weights()["w"])


def test_driver_is_deterministic() -> None:
    # Prepare
    first = [ToyLearner(i, seed=7) for i in range(4)]
    second = [ToyLearner(i, seed=7) for i in range(4)]
    # Execute
    a = run(first, 8, proposer_votes=False)
    b = run(second, 8, proposer_votes=False)
    # Assert
    assert [(r.accepted, r.vote_flags, [v.vote_score for v in r.votes if v]) for r in a] == [
        (r.accepted, r.vote_flags, [v.vote_score for v in r.votes if v]) for r in b
    ]


class BadProposer(StubLearner):
    def propose_weights(self) -> Weights:
        return [np.zeros(2)]  # type: ignore[return-value]


class BadVoter(StubLearner):
    def test_weights(self, weights: Weights) -> ProposedWeights:
        return True  # type: ignore[return-value]


def test_a_learner_breaking_the_interface_raises_a_clear_error() -> None:
    # Prepare
    bad_proposer = [BadProposer(0, True), StubLearner(1, True)]
    bad_voter = [StubLearner(0, True), BadVoter(1, True)]
    # Execute / Assert
    with pytest.raises(LearnerContractError, match="propose_weights"):
        run_one_epoch(0, bad_proposer)
    with pytest.raises(LearnerContractError, match="test_weights"):
        run_one_epoch(0, bad_voter)


def test_invalid_arguments_are_refused() -> None:
    # Prepare
    learners = stubs([True])
    # Execute / Assert
    with pytest.raises(ValueError):
        run_one_epoch(0, [])
    with pytest.raises(ValueError):
        run_one_epoch(0, learners, vote_threshold=0.0)
    with pytest.raises(ValueError):
        run_one_epoch(-1, learners)


def test_epoch_result_is_frozen() -> None:
    # Prepare
    result = run_one_epoch(0, stubs([True]))
    # Execute / Assert
    with pytest.raises(AttributeError):
        result.accepted = False  # type: ignore[misc]
    assert isinstance(result, EpochResult)
    assert proposer_index(7, 3) == 1
