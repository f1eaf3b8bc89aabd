"""propose(): only the epoch's proposer, only in the current epoch, only before the proposal deadline."""

from __future__ import annotations

from typing import Any

from brownie import chain

from conftest import (
    current_model,
    PROPOSAL_TIMEOUT, PROPOSING, VOTING, VOTING_TIMEOUT, digest_of, expect_revert, propose,
)


def test_proposer_records_digest_and_cid(cl: Any, learners: list[Any]) -> None:
    # Execute
    tx = cl.propose(0, digest_of("a"), "QmA", {"from": learners[0]})
    # Assert
    event = tx.events["WeightsProposed"]
    assert (event["epoch"], event["proposer"], event["digest"], event["cid"]) == (0, learners[0], digest_of("a"), "QmA")
    assert event["votingDeadline"] == chain[tx.block_number].timestamp + VOTING_TIMEOUT
    state = cl.epochState()
    assert state["currentPhase"] == VOTING
    assert (state["digest"], state["cid"], state["deadline"]) == (digest_of("a"), "QmA", event["votingDeadline"])


def test_proposal_does_not_change_current_model(cl: Any, learners: list[Any]) -> None:
    # Prepare
    before = current_model(cl)
    # Execute
    propose(cl, 0, learners[0])
    # Assert
    assert current_model(cl) == before


def test_only_the_proposer_may_propose(cl: Any, learners: list[Any], stranger: Any) -> None:
    for caller in (learners[1], stranger):
        expect_revert(
            cl.propose, 0, digest_of("x"), "QmX", {"from": caller},
            error="NotProposer", with_args=[0, caller, learners[0]],
        )


def test_wrong_epoch_reverts(cl: Any, learners: list[Any]) -> None:
    expect_revert(cl.propose, 1, digest_of("x"), "QmX", {"from": learners[0]}, error="WrongEpoch", with_args=[1, 0])


def test_second_proposal_reverts(cl: Any, learners: list[Any]) -> None:
    # Prepare
    propose(cl, 0, learners[0])
    # Execute / Assert
    expect_revert(
        cl.propose, 0, digest_of("y"), "QmY", {"from": learners[0]},
        error="UnexpectedPhase", with_args=[0, VOTING, PROPOSING],
    )


def test_empty_proposal_reverts(cl: Any, learners: list[Any]) -> None:
    expect_revert(cl.propose, 0, "0x" + "00" * 32, "QmX", {"from": learners[0]}, error="EmptyModel")
    expect_revert(cl.propose, 0, digest_of("x"), "", {"from": learners[0]}, error="EmptyModel")


def test_proposal_after_deadline_reverts(cl: Any, learners: list[Any]) -> None:
    # Prepare
    deadline = cl.epochState()["deadline"]
    chain.sleep(PROPOSAL_TIMEOUT + 1)
    # Execute / Assert
    expect_revert(
        cl.propose, 0, digest_of("x"), "QmX", {"from": learners[0]}, error="ProposalClosed", with_args=[0, deadline]
    )


def test_proposal_just_before_deadline_is_accepted(cl: Any, learners: list[Any]) -> None:
    # Prepare: the next block is mined at deadline - 1
    deadline = cl.epochState()["deadline"]
    chain.mine(timestamp=deadline - 2)
    # Execute
    tx = propose(cl, 0, learners[0])
    # Assert
    assert chain[tx.block_number].timestamp < deadline
    assert cl.epochState()["currentPhase"] == VOTING
