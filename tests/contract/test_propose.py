"""propose(): only the epoch's proposer, only in the current epoch, only before the proposal deadline."""

from __future__ import annotations

from typing import Any

from brownie import chain, web3

from conftest import (
    PROPOSAL_TIMEOUT,
    PROPOSING,
    VOTING,
    VOTING_TIMEOUT,
    current_model,
    digest_of,
    expect_revert,
    propose,
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


def test_proposal_in_the_last_second_is_accepted(cl: Any, learners: list[Any]) -> None:
    # Prepare: the proposal is mined one second before the deadline
    deadline = cl.epochState()["deadline"]
    web3.provider.make_request("evm_setNextBlockTimestamp", [deadline - 1])
    # Execute
    tx = propose(cl, 0, learners[0])
    # Assert
    assert chain[tx.block_number].timestamp == deadline - 1
    assert cl.epochState()["currentPhase"] == VOTING


def test_proposal_at_the_deadline_reverts(cl: Any, learners: list[Any]) -> None:
    deadline = cl.epochState()["deadline"]
    web3.provider.make_request("evm_setNextBlockTimestamp", [deadline])
    expect_revert(
        cl.propose, 0, digest_of("x"), "QmX", {"from": learners[0]}, error="ProposalClosed", with_args=[0, deadline]
    )


def test_cid_of_maximum_length_is_accepted(cl: Any, learners: list[Any]) -> None:
    # A CIDv0 is 46 bytes, a base32 CIDv1 59; the contract bounds what closing an epoch re-reads.
    longest = "b" * cl.MAX_CID_LENGTH()
    cl.propose(0, digest_of("x"), longest, {"from": learners[0]})
    assert cl.epochState()["cid"] == longest


def test_cid_one_byte_too_long_reverts(cl: Any, learners: list[Any]) -> None:
    expect_revert(
        cl.propose, 0, digest_of("x"), "b" * 101, {"from": learners[0]}, error="CidTooLong", with_args=[101, 100]
    )
