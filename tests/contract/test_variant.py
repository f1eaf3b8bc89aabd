"""The colearn 0.2.8 variant: the proposer does not vote, the threshold is over n - 1 voters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import expect_revert, propose


@pytest.fixture
def variant(deploy: Callable[..., Any], learners: list[Any]) -> Any:
    return deploy(learners, proposer_votes=False)


def test_variant_counts_n_minus_one_voters(variant: Any) -> None:
    assert variant.proposerVotes() is False
    assert variant.voterCount() == 4
    assert variant.approvalsNeeded() == 2


def test_proposer_cannot_vote(variant: Any, learners: list[Any]) -> None:
    propose(variant, 0, learners[0])
    expect_revert(
        variant.vote, 0, True, 0, {"from": learners[0]}, error="ProposerCannotVote", with_args=[0, learners[0]]
    )


def test_the_fourth_vote_completes_the_set(variant: Any, learners: list[Any]) -> None:
    # Prepare: 2 of 4 approve: 2 >= 4 * 0.5
    propose(variant, 0, learners[0])
    for voter, approve in zip(learners[1:4], (True, False, False), strict=True):
        variant.vote(0, approve, 0, {"from": voter})
    # Execute
    tx = variant.vote(0, True, 0, {"from": learners[4]})
    # Assert
    assert tx.events["ProposalAccepted"]["approvals"] == 2
    assert tx.events["ProposalAccepted"]["rejections"] == 2
    assert variant.currentEpoch() == 1


def test_next_proposer_votes_as_a_voter(variant: Any, learners: list[Any]) -> None:
    # learners[0] proposed epoch 0, so it votes in epoch 1 (learners[1] proposes).
    propose(variant, 0, learners[0])
    for voter in learners[1:]:
        variant.vote(0, False, 0, {"from": voter})
    propose(variant, 1, learners[1])
    tx = variant.vote(1, True, 0, {"from": learners[0]})
    assert tx.events["VoteCast"]["voter"] == learners[0]
    expect_revert(variant.vote, 1, True, 0, {"from": learners[1]}, error="ProposerCannotVote")
