"""Deploy, propose, vote to acceptance, skip: the smoke test `make test` also runs on Ganache
(`--network ganache-cli`), whose newest fork is Shanghai, the compiler target of this project."""

from __future__ import annotations

from typing import Any

from brownie import chain

from conftest import PROPOSAL_TIMEOUT, current_model, digest_of


def test_deploy_vote_accept_and_skip(cl: Any, learners: list[Any], stranger: Any) -> None:
    # Execute: epoch 0 accepted by a full vote set; epoch 1 skipped after a silent proposer
    cl.propose(0, digest_of("smoke"), "QmSmoke", {"from": learners[0]})
    for voter in learners:
        tx = cl.vote(0, True, 10**18, {"from": voter})
    chain.sleep(PROPOSAL_TIMEOUT + 1)
    chain.mine()
    skipped = cl.close(1, {"from": stranger})
    # Assert
    assert tx.events["ProposalAccepted"]["approvals"] == len(learners)
    assert skipped.events["EpochSkipped"]["epoch"] == 1
    assert current_model(cl) == (digest_of("smoke"), "QmSmoke", 1)
    assert cl.currentEpoch() == 2
