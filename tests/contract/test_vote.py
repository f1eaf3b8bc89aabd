"""vote(): each learner once per epoch, only while voting is open; the vote completing the set closes."""

from __future__ import annotations

from typing import Any

from brownie import chain

from conftest import PROPOSING, SCORE_ONE, VOTING, VOTING_TIMEOUT, current_model, digest_of, expect_revert, propose


def test_vote_is_recorded_with_score(cl: Any, learners: list[Any]) -> None:
    # Prepare
    propose(cl, 0, learners[0])
    # Execute
    tx = cl.vote(0, True, -SCORE_ONE // 4, {"from": learners[2]})
    # Assert
    assert tx.events["VoteCast"]["epoch"] == 0
    assert tx.events["VoteCast"]["voter"] == learners[2]
    assert tx.events["VoteCast"]["approve"] is True
    assert tx.events["VoteCast"]["score"] == -SCORE_ONE // 4
    state = cl.epochState()
    assert (state["approvals"], state["rejections"]) == (1, 0)
    assert cl.hasVoted(learners[2]) and not cl.hasVoted(learners[1])


def test_proposer_votes_under_the_seed_rule(cl: Any, learners: list[Any]) -> None:
    propose(cl, 0, learners[0])
    cl.vote(0, False, 0, {"from": learners[0]})
    assert cl.epochState()["rejections"] == 1


def test_second_vote_reverts(cl: Any, learners: list[Any]) -> None:
    propose(cl, 0, learners[0])
    cl.vote(0, True, 1, {"from": learners[1]})
    expect_revert(cl.vote, 0, False, 1, {"from": learners[1]}, error="AlreadyVoted", with_args=[0, learners[1]])


def test_stranger_cannot_vote(cl: Any, learners: list[Any], stranger: Any) -> None:
    propose(cl, 0, learners[0])
    expect_revert(cl.vote, 0, True, 1, {"from": stranger}, error="NotLearner", with_args=[stranger])


def test_vote_before_proposal_reverts(cl: Any, learners: list[Any]) -> None:
    expect_revert(cl.vote, 0, True, 1, {"from": learners[1]}, error="UnexpectedPhase", with_args=[0, PROPOSING, VOTING])


def test_vote_for_wrong_epoch_reverts(cl: Any, learners: list[Any]) -> None:
    propose(cl, 0, learners[0])
    expect_revert(cl.vote, 1, True, 1, {"from": learners[1]}, error="WrongEpoch", with_args=[1, 0])


def test_vote_after_voting_deadline_reverts(cl: Any, learners: list[Any]) -> None:
    # Prepare
    propose(cl, 0, learners[0])
    deadline = cl.epochState()["deadline"]
    chain.sleep(VOTING_TIMEOUT + 1)
    # Execute / Assert
    expect_revert(cl.vote, 0, True, 1, {"from": learners[1]}, error="VotingClosed", with_args=[0, deadline])


def test_completing_vote_accepts_and_starts_next_epoch(cl: Any, learners: list[Any]) -> None:
    # Prepare: 3 approvals of 5 meet the one-half threshold
    propose(cl, 0, learners[0], label="m")
    for voter, approve in zip(learners[:4], (True, False, True, False), strict=True):
        cl.vote(0, approve, 0, {"from": voter})
    # Execute
    tx = cl.vote(0, True, 0, {"from": learners[4]})
    # Assert
    accepted = tx.events["ProposalAccepted"]
    assert (accepted["epoch"], accepted["approvals"], accepted["rejections"]) == (0, 3, 2)
    assert (accepted["digest"], accepted["cid"]) == (digest_of("m0"), "Qmm0")
    assert tx.events["EpochStarted"]["epoch"] == 1 and tx.events["EpochStarted"]["proposer"] == learners[1]
    assert cl.currentEpoch() == 1
    assert current_model(cl) == (digest_of("m0"), "Qmm0", 1)
    assert not cl.hasVoted(learners[4])


def test_completing_vote_rejects_and_keeps_model(cl: Any, learners: list[Any]) -> None:
    # Prepare: 2 approvals of 5 miss the threshold
    before = current_model(cl)
    propose(cl, 0, learners[0])
    for voter, approve in zip(learners, (True, True, False, False, False), strict=True):
        tx = cl.vote(0, approve, 0, {"from": voter})
    # Assert
    assert "ProposalRejected" in tx.events and "ProposalAccepted" not in tx.events
    assert (tx.events["ProposalRejected"]["approvals"], tx.events["ProposalRejected"]["rejections"]) == (2, 3)
    assert current_model(cl) == before
    assert cl.currentEpoch() == 1


def test_learner_votes_again_in_the_next_epoch(cl: Any, learners: list[Any]) -> None:
    # Prepare: epoch 0 closes by a full vote set
    propose(cl, 0, learners[0])
    for voter in learners:
        cl.vote(0, True, 0, {"from": voter})
    propose(cl, 1, learners[1])
    # Execute
    tx = cl.vote(1, False, 5, {"from": learners[3]})
    # Assert
    assert tx.events["VoteCast"]["epoch"] == 1
    assert cl.hasVoted(learners[3])


def test_accepted_models_alternate_buffers_correctly(cl: Any, learners: list[Any]) -> None:
    # Three accepts in a row, with a reject between: the current model is always the last accepted one.
    outcomes = [True, False, True, True]
    last_accepted = current_model(cl)[:2]
    for epoch, accept in enumerate(outcomes):
        propose(cl, epoch, learners[epoch % 5], label="z")
        for voter in learners:
            cl.vote(epoch, accept, 0, {"from": voter})
        if accept:
            last_accepted = (digest_of(f"z{epoch}"), f"Qmz{epoch}")
        assert current_model(cl)[:2] == last_accepted
    assert current_model(cl)[2] == 4
