"""The toy learner: deterministic, restartable, and giving both accepts and rejects."""

from __future__ import annotations

import numpy as np
import pytest

from colearn_chain.driver import run
from colearn_chain.exceptions import WeightsMismatch
from colearn_chain.learners import make_learner, make_learners
from colearn_chain.learners.toy import ToyLearner


@pytest.mark.parametrize("proposer_votes", [True, False])
@pytest.mark.parametrize("n_learners, epochs", [(5, 8), (3, 8)])
@pytest.mark.parametrize("seed", range(10))
def test_both_outcomes_occur(seed: int, n_learners: int, epochs: int, proposer_votes: bool) -> None:
    # Prepare
    learners = [ToyLearner(i, seed=seed) for i in range(n_learners)]
    # Execute
    decisions = {r.accepted for r in run(learners, epochs, proposer_votes=proposer_votes)}
    # Assert
    assert decisions == {True, False}


def test_learners_start_equal_and_proposing_changes_nothing() -> None:
    # Prepare
    learners = [ToyLearner(i, seed=1) for i in range(3)]
    before = learners[0].current_weights()
    # Execute
    proposal = learners[0].propose_weights()
    # Assert
    for learner in learners:
        np.testing.assert_array_equal(learner.current_weights()["w"], np.zeros(4))
    np.testing.assert_array_equal(before["w"], learners[0].current_weights()["w"])
    assert not np.array_equal(proposal["w"], before["w"])


def test_restored_proposal_count_resumes_the_same_sequence() -> None:
    # Prepare
    original = ToyLearner(2, seed=5)
    proposals = [original.propose_weights() for _ in range(3)]
    restarted = ToyLearner(2, seed=5)
    # Execute
    restarted.proposals_made = 2
    again = restarted.propose_weights()
    # Assert
    np.testing.assert_array_equal(again["w"], proposals[2]["w"])
    assert not np.array_equal(proposals[1]["w"], proposals[2]["w"])


def test_vote_approves_only_moves_toward_the_own_target() -> None:
    # Prepare
    learner = ToyLearner(0, seed=0)
    closer = {"w": learner.target * 0.5}
    farther = {"w": -learner.target}
    # Execute
    yes, no, tie = learner.test_weights(closer), learner.test_weights(farther), learner.test_weights({"w": np.zeros(4)})
    # Assert
    assert (yes.vote, no.vote, tie.vote) == (True, False, True)
    assert yes.vote_score > no.vote_score


def test_wrong_shapes_raise_weights_mismatch() -> None:
    # Prepare
    learner = ToyLearner(0)
    # Execute / Assert
    with pytest.raises(WeightsMismatch):
        learner.test_weights({"w": np.zeros(3)})
    with pytest.raises(WeightsMismatch):
        learner.accept_weights({"v": np.zeros(4)})


def test_factory_builds_the_same_toy_learners() -> None:
    # Prepare
    config = {"kind": "toy", "n_learners": 3, "seed": 4}
    # Execute
    built = make_learners("toy", n_learners=3, seed=4)
    alone = make_learner(config, 2)
    # Assert
    np.testing.assert_array_equal(built[2].propose_weights()["w"], alone.propose_weights()["w"])
