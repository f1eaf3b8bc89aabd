"""ChainClient against a real Anvil: typed views, locally signed transactions, decoded reverts, nonces, retries."""

from __future__ import annotations

import threading
import time
from typing import Iterator, List

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from colearn_chain.chain.client import ChainClient, Phase
from colearn_chain.exceptions import ChainUnavailable, ContractRevert
from colearn_chain.services.anvil import AnvilNode, free_port, fund

DIGEST = "0x" + "ab" * 32
NEW_DIGEST = "0x" + "cd" * 32


@pytest.fixture()
def anvil() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


def _deploy(url: str, n: int = 3, *, timeout: int = 30) -> tuple[List[LocalAccount], List[ChainClient]]:
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
    assert (state.epoch, state.phase, state.proposer, state.proposed) == (1, Phase.Proposing, accounts[1].address, False)


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
    assert str(not_proposer.value) == f"NotProposer(epoch=0, caller={accounts[1].address}, proposer={accounts[0].address})"
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
        outcomes: List[object] = []

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
