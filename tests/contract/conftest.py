"""Fixtures for the contract tests (brownie, on a real Anvil that brownie starts)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from brownie import accounts as brownie_accounts
from brownie.exceptions import VirtualMachineError

from colearn_chain.services.anvil import free_port

PROPOSAL_TIMEOUT = 100
VOTING_TIMEOUT = 200
INITIAL_DIGEST = "0x" + hashlib.sha256(b"initial weights").hexdigest()
INITIAL_CID = "QmInitialModelCid000000000000000000000000000000"
SCORE_ONE = 10**18

# Phase enum values as the contract numbers them.
PROPOSING, VOTING, PROPOSAL_EXPIRED, VOTING_EXPIRED = range(4)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Launch this session's chain on a port of its own.

    brownie's presets put Anvil and Ganache on 127.0.0.1:8545, and brownie *attaches* to whatever
    already answers there. Two test sessions side by side (two clones, or a test run beside a demo)
    then share one chain: each one's evm_revert (the per-test isolation) drops the other's mined
    transactions ("Tx dropped without known replacement"), and hypothesis, replaying a stateful
    example whose transactions vanished, reports "Flaky: Inconsistent data generation". brownie
    connects right after this hook (its own hookwrapper), so a free port set here is the one it launches.
    """
    from brownie._config import CONFIG  # here, not at the top: brownie hashes top-level imports' sources

    del items
    for network in CONFIG.networks.values():
        if "cmd" in network and isinstance(network.get("cmd_settings"), dict):
            network["cmd_settings"]["port"] = free_port()


def digest_of(label: str) -> str:
    return "0x" + hashlib.sha256(label.encode()).hexdigest()


@pytest.fixture(autouse=True)
def isolation(fn_isolation: Any) -> None:
    """Every test starts from the same chain state (brownie snapshots and reverts)."""


@pytest.fixture(scope="module")
def many_accounts() -> list[Any]:
    """Brownie's 10 funded dev accounts plus extra local accounts, funded, for larger learner sets."""
    extra = [brownie_accounts.add() for _ in range(12)]
    for account in extra:
        brownie_accounts[0].transfer(account, "10 ether")
    return list(brownie_accounts)[1:] + extra


@pytest.fixture
def deploy(CollectiveLearning: Any, accounts: Any) -> Callable[..., Any]:
    """Deploy a CollectiveLearning with defaults overridable per test."""

    def _deploy(
        learners: list[Any],
        *,
        threshold_bps: int = 5000,
        proposal_timeout: int = PROPOSAL_TIMEOUT,
        voting_timeout: int = VOTING_TIMEOUT,
        proposer_votes: bool = True,
        digest: str = INITIAL_DIGEST,
        cid: str = INITIAL_CID,
    ) -> Any:
        return CollectiveLearning.deploy(
            learners, threshold_bps, proposal_timeout, voting_timeout, proposer_votes, digest, cid,
            {"from": accounts[0]},
        )

    return _deploy


@pytest.fixture
def learners(accounts: Any) -> list[Any]:
    return list(accounts[1:6])


@pytest.fixture
def stranger(accounts: Any) -> Any:
    return accounts[9]


@pytest.fixture
def cl(deploy: Callable[..., Any], learners: list[Any]) -> Any:
    """Five learners, the seed's rule, threshold one half."""
    return deploy(learners)


def revert_of(call: Callable[..., Any], *args: Any) -> tuple[str, list[str]]:
    """Run a call that must revert; return its custom error's name and arguments (as strings)."""
    with pytest.raises(VirtualMachineError) as info:
        call(*args)
    message = info.value.revert_msg or ""
    name, _, rest = message.partition(": ")
    return name, [part.lower() for part in rest.split(", ")] if rest else []


def expect_revert(call: Callable[..., Any], *args: Any, error: str, with_args: list[Any] | None = None) -> None:
    """Assert that the call reverts with custom error ``error`` (and these arguments, when given)."""
    name, got = revert_of(call, *args)
    assert name == error, f"expected {error}, reverted with {name}({', '.join(got)})"
    if with_args is not None:
        assert got == [str(a).lower() for a in with_args]


def propose(cl: Any, epoch: int, sender: Any, label: str = "w") -> Any:
    return cl.propose(epoch, digest_of(f"{label}{epoch}"), f"Qm{label}{epoch}", {"from": sender})


def current_model(cl: Any) -> tuple[str, str, int]:
    """currentModel() as plain Python values (brownie's return types refuse comparison with str)."""
    digest, cid, since = cl.currentModel()
    return (str(digest), str(cid), int(since))
