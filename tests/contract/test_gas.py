"""No call loops over the learners: each call costs the same gas with 3 or 15 learners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brownie import chain

from conftest import PROPOSAL_TIMEOUT, VOTING_TIMEOUT, propose


def gas_profile(cl: Any, learners: list[Any], stranger: Any) -> dict[str, int]:
    """Gas of each call in a steady-state epoch (epoch 0 warms storage up)."""
    propose(cl, 0, learners[0])
    for voter in learners:
        cl.vote(0, True, 7, {"from": voter})
    n = len(learners)
    profile = {"propose": propose(cl, 1, learners[1 % n]).gas_used}
    votes = [cl.vote(1, True, 7, {"from": voter}).gas_used for voter in learners]
    profile["vote"], profile["closing_vote"] = votes[1], votes[-1]
    propose(cl, 2, learners[2 % n])
    cl.vote(2, False, 7, {"from": learners[0]})
    chain.sleep(VOTING_TIMEOUT + 1)
    profile["close"] = cl.close(2, {"from": stranger}).gas_used
    chain.sleep(PROPOSAL_TIMEOUT + 1)
    profile["skip"] = cl.close(3, {"from": stranger}).gas_used
    return profile


def test_call_gas_does_not_grow_with_learners(
    deploy: Callable[..., Any], many_accounts: list[Any], stranger: Any
) -> None:
    # Prepare
    small, large = many_accounts[:3], many_accounts[:15]
    # Execute
    gas_small = gas_profile(deploy(small), small, stranger)
    gas_large = gas_profile(deploy(large), large, stranger)
    # Assert: same code path, same storage slots, so exactly the same gas
    assert gas_small == gas_large
    assert gas_small["vote"] <= 45_000 and gas_small["propose"] <= 90_000
