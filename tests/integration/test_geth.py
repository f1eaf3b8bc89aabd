"""geth's dev mode as a chain: loopback only, funded like Anvil, and the contract's calls and reverts work on it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from eth_account import Account

from colearn_chain.chain.client import ChainClient, Phase
from colearn_chain.chain.connection import http_web3
from colearn_chain.exceptions import ContractRevert
from colearn_chain.services.anvil import DEV_KEY, ServiceError, fund, fund_from_unlocked
from colearn_chain.services.chains import chain_node
from colearn_chain.services.geth import GethNode

DIGEST = "0x" + "ab" * 32
NEW_DIGEST = "0x" + "cd" * 32


@pytest.fixture()
def geth() -> Iterator[GethNode]:
    with GethNode(block_time=1) as node:
        yield node


def test_geth_listens_on_loopback_only_and_seals_blocks_on_its_period(geth: GethNode) -> None:
    # Prepare
    assert geth._proc is not None
    process = psutil.Process(geth._proc.pid)
    w3 = http_web3(geth.url)
    first = w3.eth.block_number

    # Execute
    time.sleep(3.5)
    later = w3.eth.block_number

    # Assert: HTTP and WebSocket on 127.0.0.1, nothing else listening, no UDP (no discovery) at all
    listening = {(c.laddr.ip, c.laddr.port) for c in process.connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", geth.port), ("127.0.0.1", geth.ws_port)}
    assert process.connections("udp") == []
    assert w3.eth.chain_id == 1337
    assert 2 <= later - first <= 5, f"a 1 s period sealed {later - first} blocks in 3.5 s"


def test_geth_funds_from_the_shared_dev_key_and_its_unlocked_account(geth: GethNode) -> None:
    # Prepare
    w3 = http_web3(geth.url)
    signed, unlocked = Account.create(), Account.create()

    # Execute
    fund(geth.url, [signed.address], 3.0)
    fund_from_unlocked(geth.url, [unlocked.address], 4.0)

    # Assert: the dev account is Anvil's well-known one, so both ways of funding work unchanged
    assert w3.eth.accounts == [Account.from_key(DEV_KEY).address]
    assert w3.eth.get_balance(signed.address) == w3.to_wei(3, "ether")
    assert w3.eth.get_balance(unlocked.address) == w3.to_wei(4, "ether")


def test_the_contract_runs_an_epoch_and_reverts_with_its_custom_errors_on_geth(geth: GethNode) -> None:
    # Prepare
    accounts = [Account.create() for _ in range(3)]
    fund(geth.url, [a.address for a in accounts])
    deployment = ChainClient(geth.url, accounts[0]).deploy(
        [a.address for a in accounts], 5000, 30, 30, True, DIGEST, "QmInitial"
    )
    clients = [ChainClient(geth.url, a, deployment.address) for a in accounts]

    # Execute
    with pytest.raises(ContractRevert) as not_proposer:
        clients[1].propose(0, NEW_DIGEST, "QmNew")
    proposed = clients[0].propose(0, NEW_DIGEST, "QmNew")
    votes = [c.vote(0, True, 10**18) for c in clients]

    # Assert
    assert not_proposer.value.name == "NotProposer"
    assert not_proposer.value.args_ == (0, accounts[1].address, accounts[0].address)
    assert proposed.gas_used > 0 and all(v.block > proposed.block for v in votes)
    model = clients[2].current_model()
    assert (model.digest, model.cid, model.since_epoch) == (NEW_DIGEST, "QmNew", 1)
    state = clients[2].epoch_state()
    assert (state.epoch, state.phase, state.proposer) == (1, Phase.Proposing, accounts[1].address)


def test_geth_stops_and_leaves_no_data_behind() -> None:
    # Prepare
    node = GethNode(block_time=1).start()
    datadir = node.datadir
    assert datadir is not None and (datadir / "keystore").is_dir()
    url = node.url

    # Execute
    node.stop()

    # Assert
    assert not Path(datadir).exists()
    assert not http_web3(url, timeout=2).is_connected()


def test_chain_names_and_geth_periods() -> None:
    # Assert: the names `run --chain` takes; geth's default period; a period geth cannot take is refused
    assert chain_node("geth").block_time == 2
    assert chain_node("geth", block_time=1).block_time == 1
    assert chain_node("anvil").block_time is None
    assert chain_node("ganache").name == "ganache"
    with pytest.raises(ValueError, match="unknown chain"):
        chain_node("hardhat")
    with pytest.raises(ServiceError, match="whole number"):
        GethNode(block_time=0.5)
