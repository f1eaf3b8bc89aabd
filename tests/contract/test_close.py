"""close(): anyone, after the deadline; skip without a proposal, decide on the votes present with one."""

from __future__ import annotations

from typing import Any

from brownie import chain

from conftest import (
    PROPOSAL_EXPIRED,
    PROPOSAL_TIMEOUT,
    VOTING_EXPIRED,
    VOTING_TIMEOUT,
    current_model,
    expect_revert,
    propose,
)


def test_silent_proposer_is_skipped_by_anyone(cl: Any, learners: list[Any], stranger: Any) -> None:
    # Prepare
    model = current_model(cl)
    chain.sleep(PROPOSAL_TIMEOUT)
    chain.mine()
    assert cl.phase() == PROPOSAL_EXPIRED
    # Execute
    tx = cl.close(0, {"from": stranger})
    # Assert
    assert tx.events["EpochSkipped"]["epoch"] == 0 and tx.events["EpochSkipped"]["proposer"] == learners[0]
    assert tx.events["EpochStarted"]["epoch"] == 1 and tx.events["EpochStarted"]["proposer"] == learners[1]
    assert cl.currentEpoch() == 1
    assert current_model(cl) == model


def test_close_before_proposal_deadline_reverts(cl: Any, stranger: Any) -> None:
    deadline = cl.epochState()["deadline"]
    expect_revert(cl.close, 0, {"from": stranger}, error="TooEarlyToClose", with_args=[0, deadline])


def test_close_during_voting_reverts(cl: Any, learners: list[Any], stranger: Any) -> None:
    propose(cl, 0, learners[0])
    deadline = cl.epochState()["deadline"]
    expect_revert(cl.close, 0, {"from": stranger}, error="TooEarlyToClose", with_args=[0, deadline])


def test_close_of_wrong_epoch_reverts(cl: Any, stranger: Any) -> None:
    chain.sleep(PROPOSAL_TIMEOUT + 1)
    cl.close(0, {"from": stranger})
    # A keeper that lost the race closes the epoch that is already closed.
    expect_revert(cl.close, 0, {"from": stranger}, error="WrongEpoch", with_args=[0, 1])


def test_close_after_voting_deadline_counts_missing_votes_as_not_approving(
    cl: Any, learners: list[Any], stranger: Any
) -> None:
    # Prepare: 2 approvals, 3 missing: 2 < 5 * 0.5
    propose(cl, 0, learners[0])
    cl.vote(0, True, 0, {"from": learners[1]})
    cl.vote(0, True, 0, {"from": learners[2]})
    chain.sleep(VOTING_TIMEOUT)
    chain.mine()
    assert cl.phase() == VOTING_EXPIRED
    # Execute
    tx = cl.close(0, {"from": stranger})
    # Assert
    rejected = tx.events["ProposalRejected"]
    assert (rejected["approvals"], rejected["rejections"]) == (2, 0)
    assert cl.currentEpoch() == 1


def test_close_after_voting_deadline_accepts_with_enough_approvals(
    cl: Any, learners: list[Any], stranger: Any
) -> None:
    # Prepare: 3 approvals, 2 missing: 3 >= 2.5
    propose(cl, 0, learners[0], label="k")
    for voter in learners[1:4]:
        cl.vote(0, True, 0, {"from": voter})
    chain.sleep(VOTING_TIMEOUT + 1)
    # Execute
    tx = cl.close(0, {"from": stranger})
    # Assert
    assert tx.events["ProposalAccepted"]["approvals"] == 3
    assert current_model(cl)[1] == "Qmk0"


def test_deadlines_follow_chain_time(cl: Any, learners: list[Any]) -> None:
    # The next epoch's proposal deadline is measured from the moment the previous one closed.
    chain.sleep(PROPOSAL_TIMEOUT + 50)
    tx = cl.close(0, {"from": learners[3]})
    assert cl.epochState()["deadline"] == chain[tx.block_number].timestamp + PROPOSAL_TIMEOUT
