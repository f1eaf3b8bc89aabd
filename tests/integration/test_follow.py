"""The per-process follower of the chain on a real Anvil: new heads pushed over its WebSocket (or polled
over HTTP), the contract's logs read once and decoded once for every cursor, and wake-ups only for blocks
whose bloom may hold an event the agents act on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from eth_account import Account
from hexbytes import HexBytes

from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.events import LogCursor, VoteCast, WeightsProposed
from colearn_chain.chain.follow import ChainFollower, websocket_url
from colearn_chain.protocol import SCORE_SCALE
from colearn_chain.services.anvil import AnvilNode, fund
from rpc_proxy import RpcProxy


@pytest.fixture()
def chain() -> Iterator[tuple[AnvilNode, Deployment, list[ChainClient]]]:
    with AnvilNode() as node:
        accounts = [Account.create() for _ in range(3)]
        fund(node.url, [a.address for a in accounts])
        deployment = ChainClient(node.url, accounts[0]).deploy(
            [a.address for a in accounts], 5000, 60, 60, True, "0x" + "ab" * 32, "QmInitial"
        )
        yield node, deployment, [ChainClient(node.url, a, deployment.address) for a in accounts]


def _wait(condition: threading.Event, what: str) -> None:
    assert condition.wait(10), f"timed out waiting for {what}"


@pytest.mark.parametrize(
    ("through_proxy", "explicit_ws", "mode"),
    [(False, False, "websocket"), (True, False, "http"), (True, True, "websocket")],
    ids=["websocket", "http-fallback", "websocket-given-apart"],
)
def test_the_follower_sees_new_blocks_and_serves_the_same_events_as_the_node(
    chain: tuple[AnvilNode, Deployment, list[ChainClient]], through_proxy: bool, explicit_ws: bool, mode: str
) -> None:
    # Prepare: the follower on Anvil itself (WebSocket on the same port), behind an HTTP-only proxy, or behind
    # the proxy with Anvil's WebSocket given apart (as geth serves it on a port of its own)
    node, deployment, clients = chain
    with RpcProxy(node.url) as proxy:
        url = proxy.url if through_proxy else node.url
        ws = websocket_url(node.url) if explicit_ws else True
        assert ws is not None
        with ChainFollower(url, deployment.address, start_block=deployment.block, poll_interval=0.05,
                           websocket=ws) as follower:
            woken = threading.Event()
            follower.on_new_head(woken.set)
            deadline = time.monotonic() + 10
            while follower.mode != mode or follower.head() < 0:
                assert time.monotonic() < deadline, f"follower mode {follower.mode}"
                time.sleep(0.05)
            # Execute: a proposal and three votes, then two cursors read through the follower
            clients[0].propose(0, "0x" + "cd" * 32, "QmFirst")
            _wait(woken, "a wake-up after the proposal")
            for i, client in enumerate(clients):
                client.vote(0, True, SCORE_SCALE // (i + 1))
            last = clients[0].block_number()
            while follower.head() < last:
                assert time.monotonic() < deadline, "the follower never saw the last block"
                time.sleep(0.05)
            cursors = [
                LogCursor(clients[0].w3, deployment.address, start_block=deployment.block, head=follower.head,
                          get_logs=follower.get_logs)
                for _ in range(2)
            ]
            served = [cursor.poll() for cursor in cursors]
            calls = dict(follower.provider.calls)

    # Assert: the events are the node's own, in order, and the node was asked for them once
    direct = LogCursor(clients[0].w3, deployment.address, start_block=deployment.block).poll()
    assert served[0] == served[1] == direct
    assert [type(e) for e in direct].count(VoteCast) == 3 and any(isinstance(e, WeightsProposed) for e in direct)
    assert calls.get("eth_getLogs") == 1


def test_only_blocks_with_events_the_agents_act_on_wake_them(
    chain: tuple[AnvilNode, Deployment, list[ChainClient]]
) -> None:
    # Prepare: a proposal, a vote that does not decide, and a plain transfer, each in its own block
    node, deployment, clients = chain
    follower = ChainFollower(node.url, deployment.address, start_block=deployment.block)
    proposal = clients[0].propose(0, "0x" + "cd" * 32, "QmFirst").block
    vote = clients[1].vote(0, True, 1).block
    fund(node.url, [clients[2].sender], 1.0)
    transfer = clients[0].block_number()

    # Execute
    def wakes(number: int) -> bool:
        bloom = int.from_bytes(bytes(HexBytes(clients[0].w3.eth.get_block(number)["logsBloom"])), "big")
        return follower._worth_waking(bloom)

    # Assert: the vote and the transfer let the agents sleep; the proposal and the deciding vote wake them
    assert wakes(proposal) is True
    assert wakes(vote) is False
    assert wakes(transfer) is False
    assert wakes(clients[2].vote(0, True, 1).block) is False
    assert wakes(clients[0].vote(0, True, 1).block) is True  # the last vote decides: ProposalAccepted
    assert follower._worth_waking(None) is True  # no bloom known: wake
