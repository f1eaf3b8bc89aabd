"""The chain layer's connection against a real Anvil behind a misbehaving gateway: a reader made by
``connect()`` rides out rate limits and lag with the same policy as ChainClient, a revert is never
retried, a dead endpoint is named at once, and an endpoint that never recovers ends in ChainUnavailable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_account import Account

from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.connection import RetryPolicy, connect
from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.views import ContractViews
from colearn_chain.exceptions import ChainUnavailable, ContractRevert
from colearn_chain.history import History
from colearn_chain.protocol import SCORE_SCALE
from colearn_chain.services.anvil import AnvilNode, free_port, fund
from rpc_proxy import TRANSIENT_REFUSALS, Refusal, RpcProxy

REFUSALS: list[Refusal] = list(TRANSIENT_REFUSALS)


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[AnvilNode, Deployment]]:
    """A contract with one accepted epoch and a proposal open in the next."""
    with AnvilNode() as node:
        accounts = [Account.create() for _ in range(3)]
        fund(node.url, [a.address for a in accounts])
        deployment = ChainClient(node.url, accounts[0]).deploy(
            [a.address for a in accounts], 5000, 60, 60, True, "0x" + "ab" * 32, "QmInitial"
        )
        clients = [ChainClient(node.url, a, deployment.address) for a in accounts]
        clients[0].propose(0, "0x" + "cd" * 32, "QmFirst")
        for i, client in enumerate(clients):
            client.vote(0, True, SCORE_SCALE // (i + 1))
        clients[1].propose(1, "0x" + "ef" * 32, "QmSecond")
        yield node, deployment


def _plan(proxy: RpcProxy, plan: dict[str, list[Refusal]], seen: dict[str, int]) -> None:
    def fault(request: dict[str, Any]) -> Refusal | None:
        method = str(request.get("method"))
        seen[method] = seen.get(method, 0) + 1
        return plan[method].pop(0) if plan.get(method) else None

    proxy.fault = fault


def test_a_reader_rides_out_rate_limits_with_the_clients_policy(chain: tuple[AnvilNode, Deployment]) -> None:
    # Prepare: the same history read directly, and through a gateway refusing the first requests of each kind.
    node, deployment = chain
    direct = History.load(connect(node.url), deployment).to_json()
    seen: dict[str, int] = {}
    with RpcProxy(node.url) as proxy:
        _plan(proxy, {m: list(REFUSALS) for m in ("eth_getLogs", "eth_call", "eth_getCode", "eth_blockNumber")}, seen)
        w3 = connect(proxy.url, policy=RetryPolicy(backoff=0.01))

        # Execute
        through_gateway = History.load(w3, deployment).to_json()

    # Assert: the same facts, and every refused request was asked again.
    assert through_gateway == direct
    assert [e["outcome"] for e in direct["epochs"]] == ["accepted", "open"]
    assert proxy.counts == {m: len(REFUSALS) for m in ("eth_getLogs", "eth_call", "eth_getCode", "eth_blockNumber")}
    assert all(seen[m] > len(REFUSALS) for m in proxy.counts)


def test_a_revert_through_a_retrying_reader_is_raised_at_once(chain: tuple[AnvilNode, Deployment]) -> None:
    # Prepare
    node, deployment = chain
    seen: dict[str, int] = {}
    with RpcProxy(node.url) as proxy:
        _plan(proxy, {}, seen)
        views = ContractViews(connect(proxy.url, policy=RetryPolicy(backoff=0.01)), deployment.address)
        stranger = Account.create().address

        # Execute
        with pytest.raises(ContractRevert) as refused:
            views.learner_index(stranger)
        state = views.epoch_state()

    # Assert
    assert refused.value.name == "NotLearner"
    assert seen["eth_call"] == 2  # the refused view once, the epoch state once
    assert (state.epoch, state.proposer, state.cid) == (1, deployment.learners[1], "QmSecond")


def test_a_dead_endpoint_is_named_at_once_and_a_gateway_that_never_recovers_gives_up(
    chain: tuple[AnvilNode, Deployment],
) -> None:
    # Prepare
    node, _ = chain
    dead = f"http://127.0.0.1:{free_port()}"
    seen: dict[str, int] = {}

    # Execute
    started = time.monotonic()
    with pytest.raises(ChainUnavailable) as no_chain:
        connect(dead)
    elapsed = time.monotonic() - started
    with RpcProxy(node.url) as proxy:
        _plan(proxy, {"eth_blockNumber": [429] * 100}, seen)
        w3 = connect(proxy.url, policy=RetryPolicy(retries=3, backoff=0.01))
        with pytest.raises(ChainUnavailable) as gave_up:
            w3.eth.block_number  # noqa: B018 - the request is the point

    # Assert
    assert f"cannot reach a JSON-RPC endpoint at {dead}" in str(no_chain.value)
    assert elapsed < 5, f"a dead endpoint took {elapsed:.1f} s to report"
    assert seen["eth_blockNumber"] == 4
    assert f"eth_blockNumber: {proxy.url} unreachable after 4 attempts" in str(gave_up.value)


def test_a_reader_never_repeats_a_send(chain: tuple[AnvilNode, Deployment]) -> None:
    # Prepare: a gateway that answers every send with HTTP 429, though the send may have gone through.
    node, _ = chain
    seen: dict[str, int] = {}
    payer = Account.create()
    fund(node.url, [payer.address])
    w3 = connect(node.url)
    signed = payer.sign_transaction({
        "to": payer.address, "value": 1, "nonce": 0, "chainId": w3.eth.chain_id, "gas": 21_000,
        "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
    })
    with RpcProxy(node.url) as proxy:
        _plan(proxy, {"eth_sendRawTransaction": [429] * 10}, seen)
        reader = connect(proxy.url, policy=RetryPolicy(retries=3, backoff=0.01))

        # Execute
        with pytest.raises(requests.HTTPError) as refused:
            reader.eth.send_raw_transaction(signed.raw_transaction)

    # Assert: asked once, and the failure is the gateway's answer, not a give-up after retries.
    assert seen["eth_sendRawTransaction"] == 1
    assert "429" in str(refused.value)
