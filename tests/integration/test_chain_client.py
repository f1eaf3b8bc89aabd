"""ChainClient against a real Anvil: typed views, locally signed transactions, decoded reverts, nonces, retries,
out-of-gas failures told apart from reverts, stuck transactions replaced, rate limits ridden out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from colearn_chain.chain.client import ChainClient, Phase, SentTx
from colearn_chain.exceptions import ChainUnavailable, ContractRevert, TransactionFailed
from colearn_chain.services.anvil import AnvilNode, free_port, fund
from rpc_proxy import TRANSIENT_REFUSALS, Refusal, RpcProxy

DIGEST = "0x" + "ab" * 32
NEW_DIGEST = "0x" + "cd" * 32


@pytest.fixture()
def anvil() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


def _deploy(url: str, n: int = 3, *, timeout: int = 30) -> tuple[list[LocalAccount], list[ChainClient]]:
    accounts = [Account.create() for _ in range(n)]
    fund(url, [a.address for a in accounts])
    deployer = ChainClient(url, accounts[0])
    deployment = deployer.deploy([a.address for a in accounts], 5000, timeout, timeout, True, DIGEST, "QmInitial")
    return accounts, [ChainClient(url, a, deployment.address) for a in accounts]


def test_deploy_views_and_one_epoch(anvil: AnvilNode) -> None:
    # Prepare
    accounts, clients = _deploy(anvil.url)

    # Execute
    proposed = clients[0].propose(0, NEW_DIGEST, "QmNew")
    votes = [c.vote(0, True, 10**18) for c in clients]

    # Assert
    params = clients[1].params()
    assert params.learners == tuple(a.address for a in accounts)
    assert (params.vote_threshold_bps, params.voter_count, params.approvals_needed) == (5000, 3, 2)
    assert proposed.gas_used > 0 and proposed.tx_hash.startswith("0x")
    assert all(v.block > proposed.block for v in votes)
    model = clients[2].current_model()
    assert (model.digest, model.cid, model.since_epoch) == (NEW_DIGEST, "QmNew", 1)
    state = clients[2].epoch_state()
    assert (state.epoch, state.phase, state.proposer, state.proposed) == (
        1, Phase.Proposing, accounts[1].address, False
    )


def test_reverts_carry_the_custom_error(anvil: AnvilNode) -> None:
    # Prepare
    accounts, clients = _deploy(anvil.url)

    # Execute
    with pytest.raises(ContractRevert) as not_proposer:
        clients[1].propose(0, NEW_DIGEST, "QmNew")
    with pytest.raises(ContractRevert) as too_early:
        clients[1].close(0)
    with pytest.raises(ContractRevert) as not_learner:
        clients[0].learner_index(Account.create().address)

    # Assert
    assert not_proposer.value.name == "NotProposer"
    assert not_proposer.value.args_ == (0, accounts[1].address, accounts[0].address)
    assert str(not_proposer.value) == (
        f"NotProposer(epoch=0, caller={accounts[1].address}, proposer={accounts[0].address})"
    )
    assert too_early.value.name == "TooEarlyToClose"
    assert not_learner.value.name == "NotLearner"


def test_nonce_used_elsewhere_is_resynchronised(anvil: AnvilNode) -> None:
    # Prepare: the same key sends a transaction behind the client's back.
    accounts, clients = _deploy(anvil.url)
    clients[0].propose(0, NEW_DIGEST, "QmNew")  # the client now tracks the next nonce locally
    w3 = clients[0].w3
    nonce = w3.eth.get_transaction_count(accounts[0].address, "pending")
    stray = accounts[0].sign_transaction({
        "to": accounts[1].address, "value": 1, "nonce": nonce, "gas": 21_000, "chainId": w3.eth.chain_id,
        "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
    })
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(stray.raw_transaction))

    # Execute
    sent = clients[0].vote(0, True, 1)

    # Assert
    assert w3.eth.get_transaction(sent.tx_hash)["nonce"] == nonce + 1
    assert clients[0].has_voted()


def test_the_close_that_loses_a_race_in_one_block_reports_wrong_epoch() -> None:
    # Prepare: with a block every second, both closes join the same block; the second one reverts on chain.
    with AnvilNode(block_time=1) as node:
        _, clients = _deploy(node.url, timeout=1)
        time.sleep(2.5)
        outcomes: list[object] = []

        def close(client: ChainClient) -> None:
            try:
                outcomes.append(client.close(0))
            except ContractRevert as error:
                outcomes.append(error)

        # Execute
        threads = [threading.Thread(target=close, args=(c,)) for c in clients[:2]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # Assert
    reverts = [o for o in outcomes if isinstance(o, ContractRevert)]
    assert len(outcomes) == 2 and len(reverts) == 1
    assert reverts[0].name == "WrongEpoch"


def test_unreachable_node_raises_chain_unavailable_after_retries() -> None:
    # Prepare
    client = ChainClient(f"http://127.0.0.1:{free_port()}", Account.create(), retries=2, backoff=0.01, timeout=1)

    # Execute
    started = time.monotonic()
    with pytest.raises(ChainUnavailable, match="after 3 attempts"):
        client.block_number()

    # Assert
    assert time.monotonic() - started < 5


def _rpc(client: ChainClient, method: str, *params: Any) -> Any:
    response = client.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _in_thread(call: Callable[[], Any], out: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        try:
            out[key] = call()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            out[key] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_vote_that_runs_out_of_gas_is_a_failed_transaction_not_a_revert(anvil: AnvilNode) -> None:
    # Prepare: 1 of 3 votes in. With mining paused, learner 2 votes first on an estimate made while its vote
    # was not the last; learner 1's vote, estimated after it and tipping more, is mined first in the block,
    # so learner 2's vote becomes the one that decides the epoch, and exact gas (no margin) is too little.
    accounts, clients = _deploy(anvil.url)
    clients[0].propose(0, NEW_DIGEST, "QmNew")
    clients[0].vote(0, True, 1)

    def exact(account: LocalAccount, tip: int) -> ChainClient:
        return ChainClient(anvil.url, account, clients[0].address, gas_margin=0, gas_extra=0, priority_fee=tip)

    late, early = exact(accounts[2], 10**9), exact(accounts[1], 2 * 10**9)
    pending = lambda: int(_rpc(clients[0], "txpool_status")["pending"], 16)  # noqa: E731
    _rpc(clients[0], "evm_setAutomine", False)
    outcomes: dict[str, Any] = {}

    # Execute
    threads = [_in_thread(lambda: late.vote(0, True, 1), outcomes, "late")]
    _wait(lambda: pending() == 1, "the first vote in the pool")
    threads.append(_in_thread(lambda: early.vote(0, True, 1), outcomes, "early"))
    _wait(lambda: pending() == 2, "the second vote in the pool")
    _rpc(clients[0], "evm_mine")
    for thread in threads:
        thread.join(timeout=30)
    _rpc(clients[0], "evm_setAutomine", True)
    again = late.vote(0, True, 1)  # a fresh estimate counts the decision

    # Assert
    failed = outcomes["late"]
    assert isinstance(failed, TransactionFailed), failed
    assert "ran out of gas" in str(failed) and failed.gas_used == failed.gas_limit
    assert isinstance(outcomes["early"], SentTx)
    assert again.gas_used > failed.gas_limit
    assert clients[0].current_model().digest == NEW_DIGEST  # the resent vote decided the epoch


def test_a_stuck_transaction_is_replaced_with_the_same_nonce_and_higher_fees(anvil: AnvilNode) -> None:
    # Prepare: mining paused, so the proposal sits in the pool past the client's receipt timeout.
    accounts, clients = _deploy(anvil.url)
    client = ChainClient(anvil.url, accounts[0], clients[0].address, receipt_timeout=0.5)
    nonce = client.w3.eth.get_transaction_count(accounts[0].address, "pending")
    first_tip = client.priority_fee
    assert first_tip is not None

    def pooled_tip() -> int | None:
        pool = _rpc(client, "txpool_content")["pending"].get(accounts[0].address.lower(), {})
        return int(pool[str(nonce)]["maxPriorityFeePerGas"], 16) if str(nonce) in pool else None

    _rpc(client, "evm_setAutomine", False)
    outcome: dict[str, Any] = {}

    # Execute
    thread = _in_thread(lambda: client.propose(0, NEW_DIGEST, "QmNew"), outcome, "propose")
    _wait(lambda: (pooled_tip() or 0) > first_tip, "a replacement with a higher tip")
    _rpc(client, "evm_mine")
    thread.join(timeout=30)
    _rpc(client, "evm_setAutomine", True)
    vote = client.vote(0, True, 1)

    # Assert
    sent = outcome["propose"]
    assert isinstance(sent, SentTx), sent
    mined = client.w3.eth.get_transaction(sent.tx_hash)
    assert mined["nonce"] == nonce
    assert mined["maxPriorityFeePerGas"] * 8 >= first_tip * 9  # raised by at least 12.5%
    assert client.w3.eth.get_transaction(vote.tx_hash)["nonce"] == nonce + 1  # next in line, not behind a ghost
    assert int(_rpc(client, "txpool_status")["pending"], 16) == 0
    assert client.epoch_state().phase == Phase.Voting


def test_rate_limits_and_a_lagging_node_are_ridden_out(anvil: AnvilNode) -> None:
    # Prepare: a gateway in front of the node refuses the first few requests of each kind.
    accounts, clients = _deploy(anvil.url)
    refusals: list[Refusal] = [*TRANSIENT_REFUSALS, {"error": {"code": 429, "message": "Too Many Requests"}}]
    with RpcProxy(anvil.url) as proxy:
        plan: dict[str, list[int | dict[str, Any]]] = {
            "eth_blockNumber": list(refusals), "eth_call": list(refusals), "eth_estimateGas": list(refusals[:2]),
        }
        proxy.fault = lambda request: (
            plan.get(request.get("method"), []).pop(0) if plan.get(request.get("method")) else None
        )
        client = ChainClient(proxy.url, accounts[1], clients[0].address, backoff=0.01)

        # Execute
        head = client.block_number()
        state = client.epoch_state()
        with pytest.raises(ContractRevert) as refused:  # a real revert is still not retried
            client.propose(0, NEW_DIGEST, "QmNew")

    # Assert
    assert head == clients[0].block_number()
    assert state.epoch == 0 and state.phase == Phase.Proposing
    assert refused.value.name == "NotProposer"
    assert proxy.counts == {"eth_blockNumber": 4, "eth_call": 4, "eth_estimateGas": 2}
