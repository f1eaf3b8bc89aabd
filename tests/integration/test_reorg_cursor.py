"""The reorg-aware cursor on a real Anvil: blocks replaced by `anvil_reorg` or dropped by `anvil_rollback`
give back their events as Removed (newest first), and the new blocks' events follow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.events import EpochStarted, ProposalAccepted, VoteCast, WeightsProposed
from colearn_chain.chain.reorg import Removed, ReorgAwareCursor
from colearn_chain.services.anvil import AnvilNode, fund

DIGEST = "0x" + "ab" * 32
NEW_DIGEST = "0x" + "cd" * 32


@pytest.fixture()
def anvil() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


def _consortium(url: str) -> tuple[list[LocalAccount], list[ChainClient], int]:
    accounts = [Account.create() for _ in range(3)]
    fund(url, [a.address for a in accounts])
    deployment = ChainClient(url, accounts[0]).deploy(
        [a.address for a in accounts], 5000, 60, 60, True, DIGEST, "QmInitial"
    )
    return accounts, [ChainClient(url, a, deployment.address) for a in accounts], deployment.block


def _names(items: list[Any]) -> list[str]:
    return [f"-{type(i.event).__name__}" if isinstance(i, Removed) else type(i).__name__ for i in items]


def test_a_reorg_gives_back_the_dropped_blocks_events_and_reads_the_new_ones(anvil: AnvilNode) -> None:
    # Prepare: a proposal and three votes, each in its own block; the cursor has read them all
    accounts, clients, deployed = _consortium(anvil.url)
    w3 = clients[0].w3
    cursor = ReorgAwareCursor(w3, str(clients[0].address), start_block=deployed + 1)
    clients[0].propose(0, NEW_DIGEST, "QmNew")
    for client in clients:
        client.vote(0, True, 10**18)
    read = cursor.poll()
    assert _names(read) == ["WeightsProposed", "VoteCast", "VoteCast", "VoteCast", "ProposalAccepted", "EpochStarted"]
    last_vote = read[3]
    assert isinstance(last_vote, VoteCast)
    raw_vote = w3.eth.get_raw_transaction(last_vote.meta.tx_hash)  # type: ignore[arg-type]

    # Execute: depth 1 drops the deciding vote's block; depth 3 then drops the other two votes' blocks too
    w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
    after_depth_1 = cursor.poll()
    w3.provider.make_request("anvil_reorg", [3, []])  # type: ignore[arg-type]
    after_depth_3 = cursor.poll()
    quiet = cursor.poll()

    # Assert: newest first, exactly the events of the dropped blocks, and the proposal kept
    assert _names(after_depth_1) == ["-EpochStarted", "-ProposalAccepted", "-VoteCast"]
    assert [r.event for r in after_depth_1 if isinstance(r, Removed)] == list(reversed(read[3:]))
    assert _names(after_depth_3) == ["-VoteCast", "-VoteCast"]
    assert quiet == []
    assert clients[0].epoch_state().proposed and not clients[0].has_voted(accounts[0].address)
    assert cursor.next_block == w3.eth.block_number + 1

    # Execute: a reorg whose new block holds the deciding vote again (replayed), then a rollback of it
    for client in clients[:2]:
        client.transactions.forget_nonce()  # its vote vanished: the node's count went back (as an agent does)
        client.vote(0, True, 10**18)
    assert _names(cursor.poll()) == ["VoteCast", "VoteCast"]
    w3.provider.make_request("anvil_reorg", [1, [[w3.to_hex(raw_vote), 0]]])  # type: ignore[arg-type]
    replayed = cursor.poll()
    clients[1].transactions.forget_nonce()
    clients[1].vote(0, True, 10**18)
    deciding = cursor.poll()
    w3.provider.make_request("anvil_rollback", [1])  # type: ignore[arg-type]
    rolled_back = cursor.poll()

    # Assert: the reorg dropped learner 1's vote and brought learner 2's back; learner 1's new vote decides
    assert _names(replayed) == ["-VoteCast", "VoteCast"]
    removed, replay = replayed
    assert isinstance(removed, Removed) and isinstance(removed.event, VoteCast)
    assert removed.event.voter == accounts[1].address
    assert isinstance(replay, VoteCast) and replay.voter == accounts[2].address
    assert _names(deciding) == ["VoteCast", "ProposalAccepted", "EpochStarted"]
    accepted = deciding[1]
    assert isinstance(accepted, ProposalAccepted) and accepted.digest == NEW_DIGEST
    assert _names(rolled_back) == ["-EpochStarted", "-ProposalAccepted", "-VoteCast"]
    assert isinstance(rolled_back[0], Removed) and isinstance(rolled_back[0].event, EpochStarted)


def test_blocks_before_the_fork_are_not_given_back(anvil: AnvilNode) -> None:
    # Prepare
    _, clients, deployed = _consortium(anvil.url)
    w3 = clients[0].w3
    cursor = ReorgAwareCursor(w3, str(clients[0].address), start_block=deployed + 1)
    clients[0].propose(0, NEW_DIGEST, "QmNew")
    proposal = cursor.poll()
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert cursor.poll() == []

    # Execute: the two empty blocks after the proposal are replaced
    w3.provider.make_request("anvil_reorg", [2, []])  # type: ignore[arg-type]
    after = cursor.poll()

    # Assert
    assert len(proposal) == 1 and isinstance(proposal[0], WeightsProposed)
    assert after == []
    assert cursor.next_block == w3.eth.block_number + 1
