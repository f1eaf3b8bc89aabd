"""Deployment: parameters are validated, views report them, epoch 0 starts at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brownie import ZERO_ADDRESS, chain

from conftest import INITIAL_CID, INITIAL_DIGEST, PROPOSAL_TIMEOUT, PROPOSING, current_model, expect_revert


def test_views_report_parameters_and_epoch_zero(cl: Any, learners: list[Any]) -> None:
    # Execute
    state = cl.epochState()
    # Assert
    assert cl.learners() == learners
    assert cl.learnerCount() == 5
    assert [cl.learnerIndex(a) for a in learners] == list(range(5))
    assert cl.voteThresholdBps() == 5000
    assert cl.proposerVotes() is True
    assert cl.voterCount() == 5
    assert cl.approvalsNeeded() == 3
    assert cl.currentEpoch() == 0
    assert state["epoch"] == 0 and state["currentPhase"] == PROPOSING and state["proposer"] == learners[0]
    assert state["digest"] == "0x" + "00" * 32 and state["cid"] == ""
    assert current_model(cl) == (INITIAL_DIGEST, INITIAL_CID, 0)


def test_deploy_emits_initial_model_and_first_epoch(cl: Any, learners: list[Any]) -> None:
    # Prepare
    tx = cl.tx
    # Assert
    formed = tx.events["ConsortiumFormed"]
    assert list(formed["learners"]) == learners
    assert (formed["voteThresholdBps"], formed["proposalTimeout"], formed["proposerVotes"]) == (
        5000, PROPOSAL_TIMEOUT, True
    )
    assert tx.events["ModelInitialized"]["digest"] == INITIAL_DIGEST
    assert tx.events["ModelInitialized"]["cid"] == INITIAL_CID
    started = tx.events["EpochStarted"]
    assert started["epoch"] == 0 and started["proposer"] == learners[0]
    assert started["proposalDeadline"] == chain[tx.block_number].timestamp + PROPOSAL_TIMEOUT


def test_rejects_empty_learner_list(deploy: Callable[..., Any]) -> None:
    expect_revert(deploy, [], error="InvalidLearnerCount", with_args=[0, 1])


def test_colearn_variant_needs_two_learners(deploy: Callable[..., Any], learners: list[Any]) -> None:
    expect_revert(lambda: deploy(learners[:1], proposer_votes=False), error="InvalidLearnerCount", with_args=[1, 2])


def test_rejects_zero_and_duplicate_learners(deploy: Callable[..., Any], learners: list[Any]) -> None:
    expect_revert(deploy, [learners[0], ZERO_ADDRESS], error="ZeroLearner", with_args=[1])
    expect_revert(deploy, [learners[0], learners[1], learners[0]], error="DuplicateLearner", with_args=[learners[0]])


def test_rejects_threshold_out_of_range(deploy: Callable[..., Any], learners: list[Any]) -> None:
    expect_revert(lambda: deploy(learners, threshold_bps=0), error="InvalidThreshold", with_args=[0])
    expect_revert(lambda: deploy(learners, threshold_bps=10001), error="InvalidThreshold", with_args=[10001])


def test_rejects_zero_timeouts(deploy: Callable[..., Any], learners: list[Any]) -> None:
    expect_revert(lambda: deploy(learners, proposal_timeout=0), error="InvalidTimeout", with_args=[0])
    expect_revert(lambda: deploy(learners, voting_timeout=0), error="InvalidTimeout", with_args=[0])


def test_rejects_empty_initial_model(deploy: Callable[..., Any], learners: list[Any]) -> None:
    expect_revert(lambda: deploy(learners, digest="0x" + "00" * 32), error="EmptyModel")
    expect_revert(lambda: deploy(learners, cid=""), error="EmptyModel")
    expect_revert(lambda: deploy(learners, cid="Q" * 101), error="CidTooLong", with_args=[101, 100])


def test_learner_index_of_stranger_reverts(cl: Any, stranger: Any) -> None:
    assert cl.isLearner(stranger) is False
    expect_revert(cl.learnerIndex, stranger, error="NotLearner", with_args=[stranger])


def test_proposer_rotates_over_learners(cl: Any, learners: list[Any]) -> None:
    assert [cl.proposerOf(e) for e in range(12)] == [learners[e % 5] for e in range(12)]
