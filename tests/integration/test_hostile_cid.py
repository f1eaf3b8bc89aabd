"""A learner proposes a CID that is not text, or text that drives a terminal: no reader may crash or be fooled.

Today's contract refuses such CIDs (tests/contract/test_cid.py); a deployment of the contract as it was
before that check (tests/fixtures/CollectiveLearning-unchecked-cid.json) records whatever bytes of up to
100 a proposer sends, and the readers must survive those deployments too. On a real Anvil with that contract,
a learner key signs a proposal whose CID is invalid UTF-8, then one whose CID is valid UTF-8 carrying
ANSI escape sequences and a forged log line. The event cursor, the contract views, the history index,
`colearn-chain status` and the voter must all read them, show them escaped, and the voter must reject.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3

from agent_harness import Consortium
from colearn_chain.agent import INVALID_PROPOSAL_SCORE, evaluate_proposal
from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.events import LogCursor, ProposalRejected, WeightsProposed
from colearn_chain.cli.status import render
from colearn_chain.explorer.server import serve_in_background
from colearn_chain.history import History
from colearn_chain.learners.toy import ToyLearner
from colearn_chain.services.anvil import AnvilNode, fund
from colearn_chain.store import LocalStore
from history_driver import Driver, learner_keys

#: The contract as deployed before the CID check: records any bytes as a CID.
LEGACY = json.loads((Path(__file__).parents[1] / "fixtures" / "CollectiveLearning-unchecked-cid.json").read_text())
NOT_UTF8 = b"Qm\xff\xfe\x80 not text"
#: Valid UTF-8: clears the screen, ends the line and forges a status/log line, then a bidi override.
ESCAPES = "Qm\x1b[2J\x1b[H\r\nepoch 0 accepted: 3 approve / 0 reject\x1b[0m\u202e"


def _propose_raw(driver: Driver, epoch: int, cid: bytes) -> None:
    """Send propose(epoch, digest, cid) with ``cid`` as raw bytes (same ABI encoding as a string)."""
    digest = hashlib.sha256(cid).digest()
    data = function_signature_to_4byte_selector("propose(uint256,bytes32,string)") + abi_encode(
        ["uint256", "bytes32", "bytes"], [epoch, digest, cid]
    )
    driver._send(driver.accounts[epoch % len(driver.accounts)], {"to": driver.address, "data": Web3.to_hex(data)})


def _redeploy_legacy(consortium: Consortium) -> None:
    """Replace the consortium's deployment with the pre-check contract, same learners, rules and initial model."""
    assert consortium.deployment is not None
    record = consortium.deployment
    w3 = consortium.client().w3
    deployer = consortium.accounts[0]
    data = w3.eth.contract(abi=LEGACY["abi"], bytecode=LEGACY["bytecode"]).constructor(
        record.learners, record.vote_threshold_bps, record.proposal_timeout, record.voting_timeout,
        record.proposer_votes, record.initial_digest, record.initial_cid,
    ).build_transaction({"from": deployer.address, "gas": 5_000_000})
    data["nonce"] = w3.eth.get_transaction_count(deployer.address)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(deployer.sign_transaction(data).raw_transaction), timeout=30
    )
    assert receipt["status"] == 1
    legacy = dataclasses.replace(
        record,
        address=receipt["contractAddress"],
        block=receipt["blockNumber"],
        tx_hash=receipt["transactionHash"].to_0x_hex(),
    )
    legacy.save(consortium.deployment_path)
    consortium.deployment = legacy


@pytest.fixture()
def hostile_chain(tmp_path: Path) -> Iterator[tuple[str, Driver, Deployment]]:
    with AnvilNode() as node:
        keys = learner_keys(3, salt="hostile-cid")
        fund(node.url, [Account.from_key(k).address for k in keys])
        driver = Driver.create(node.url, keys)
        deployment = driver.deploy(artifact=LEGACY)
        yield node.url, driver, deployment


def test_invalid_utf8_and_escape_cids_are_read_escaped_and_rejected(
    hostile_chain: tuple[str, Driver, Deployment], tmp_path: Path
) -> None:
    rpc_url, driver, deployment = hostile_chain
    client = ChainClient(rpc_url, driver.accounts[1], deployment.address)
    store = LocalStore(tmp_path / "blobs")
    voter = ToyLearner(1)
    verdicts = []
    states = []

    for epoch, cid in enumerate([NOT_UTF8, ESCAPES.encode()]):
        _propose_raw(driver, epoch, cid)
        state = client.epoch_state()  # the restarted agent's first read (died with UnicodeDecodeError)
        states.append(state)
        verdicts.append(evaluate_proposal(voter, store, state.cid, state.digest, max_bytes=1 << 20))
        for learner in range(3):
            driver.vote(epoch, learner, False, -1.0)

    events = LogCursor(driver.w3, deployment.address, start_block=deployment.block).poll()
    proposed = [e for e in events if isinstance(e, WeightsProposed)]
    rejected = [e for e in events if isinstance(e, ProposalRejected)]
    history = History.load(Web3(Web3.HTTPProvider(rpc_url)), deployment)
    table = render(history)
    cli = subprocess.run(
        [sys.executable, "-m", "colearn_chain.cli", "status", "--rpc", rpc_url, "--contract", deployment.address],
        capture_output=True, text=True, timeout=120, check=False,
    )
    server, url = serve_in_background(rpc_url, deployment, 0, poll_interval=0.1)
    try:
        with urllib.request.urlopen(url + "api/epochs?offset=0&limit=10", timeout=30) as response:
            body = response.read()
    finally:
        server.stop()

    assert [s.cid_invalid for s in states] == [
        "CID is not valid UTF-8", "CID holds characters other than ASCII letters and digits"
    ]
    assert states[0].cid == "Qm\\xff\\xfe\\x80 not text"
    assert all(v.approve is False and v.score == INVALID_PROPOSAL_SCORE and not v.retryable for v in verdicts)
    assert all(v.reason is not None and v.reason.startswith("unreadable proposal") for v in verdicts)
    assert [e.cid for e in proposed] == [s.cid for s in states] == [e.cid for e in rejected]
    assert [e.cid_invalid for e in proposed] == [s.cid_invalid for s in states]
    assert client.current_model().cid_invalid is None and client.epoch_state().epoch == 2
    assert [r.outcome for r in history.epochs] == ["rejected", "rejected", "open"]
    assert cli.returncode == 0, cli.stderr
    page = json.loads(body)
    assert [e["proposal"]["cid"] for e in page["epochs"][:2]] == [s.cid for s in states]
    assert b"\x1b" not in body and "\u202e".encode() not in body and b"\r" not in body
    for output in (table, cli.stdout):
        assert "\x1b" not in output and "\u202e" not in output and "\r" not in output
        assert not any(line.startswith("epoch 0 accepted") for line in output.splitlines())
        assert "Qm\\x1b[2J\\x1b[H\\r\\nepoch 0 accepted" in output


@pytest.mark.parametrize("cid", [NOT_UTF8, ESCAPES.encode()], ids=["not-utf8", "escapes"])
def test_agents_vote_reject_on_an_unreadable_proposal_log_it_escaped_and_go_on(tmp_path: Path, cid: bytes) -> None:
    # Prepare: learner 0 (this test, with its own key) proposes the hostile CID before the agents start,
    # so they meet it first in epochState() (the restart path) and then in the WeightsProposed event.
    with AnvilNode() as node:
        consortium = Consortium(node.url, tmp_path, f"local:{tmp_path / 'store'}", {"kind": "toy", "seed": 0, "dim": 4},
                                3, proposal_timeout=60, voting_timeout=60).setup()
        _redeploy_legacy(consortium)
        assert consortium.deployment is not None
        attacker = consortium.client(0)
        data = function_signature_to_4byte_selector("propose(uint256,bytes32,string)") + abi_encode(
            ["uint256", "bytes32", "bytes"], [0, hashlib.sha256(cid).digest(), cid]
        )
        attacker.transactions.transact("propose", Web3.to_hex(data), to=consortium.deployment.address)

        # Execute
        try:
            for i in (1, 2):
                consortium.start(i, until_epoch=1)
            deadline = time.monotonic() + 60
            while len(consortium.votes().get(0, {})) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            attacker.vote(0, False, -1)
            codes = consortium.wait(timeout=90, indices=[1, 2])
        finally:
            consortium.stop_all()
        votes = {e.voter: e for e in consortium.vote_events() if e.epoch == 0}
        logs = {i: consortium.agents[i].log_text() for i in (1, 2)}

    # Assert
    assert codes == {1: 0, 2: 0}, logs
    for i in (1, 2):
        vote = votes[consortium.accounts[i].address]
        assert vote.approve is False and vote.score == INVALID_PROPOSAL_SCORE
        text = logs[i]
        assert "unreadable proposal" in text and "Traceback" not in text
        assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
        assert not any(line.startswith("epoch 0 accepted") for line in text.splitlines())
