"""`colearn-chain status --json` must say exactly what the chain's events and receipts say.

Real Anvil (and Ganache, the other local chain users run), a contract driven through every outcome the
protocol has: accepted, rejected, closed after the voting deadline with a vote missing, skipped, and an
epoch still open. The expected history is rebuilt here independently of colearn_chain.history, from
web3's own event decoding and the receipts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from colearn_chain.chain.artifact import abi
from colearn_chain.chain.connection import ENV_RPC_URL
from colearn_chain.chain.deployment import Deployment
from colearn_chain.services.anvil import AnvilNode, GanacheNode, free_port, fund
from history_driver import Driver, learner_keys

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # proposal and voting timeouts (s); the driver moves block time past them


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "colearn_chain.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _drive_all_outcomes(driver: Driver) -> Deployment:
    """Epochs 0..4: accepted, rejected, closed with a missing vote, skipped, open with one vote."""
    deployment = driver.deploy(proposal_timeout=TIMEOUT, voting_timeout=TIMEOUT)
    driver.epoch(0, [(True, 0.91), (True, 0.875), (False, -0.25)])
    driver.epoch(1, [(False, 0.125), (False, 0.5), (True, 1.0)])
    driver.epoch(2, [(True, 0.75), None, (False, 0.0)], voting_timeout=TIMEOUT)
    driver.skip(3, TIMEOUT)
    driver.propose(4)
    driver.vote(4, 2, True, 123.456)
    return deployment


# ─────────────────────────────────────────────────────────────── the chain's own account


def _tx(w3: Web3, tx_hash: Any, block: int) -> dict[str, Any]:
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    return {"hash": Web3.to_hex(tx_hash), "block": block, "gas_used": receipt["gasUsed"], "from": receipt["from"]}


def _expected(w3: Web3, deployment: Deployment) -> dict[str, Any]:
    """The history as web3's decoder and the receipts tell it, in status --json's shape."""
    contract = w3.eth.contract(address=Web3.to_checksum_address(deployment.address), abi=abi())
    names = [
        "EpochStarted", "WeightsProposed", "VoteCast", "ProposalAccepted", "ProposalRejected", "EpochSkipped",
        "ModelInitialized",
    ]
    logs = []
    for name in names:
        logs += getattr(contract.events, name)().get_logs(from_block=deployment.block)
    logs.sort(key=lambda log: (log["blockNumber"], log["logIndex"]))
    learners = deployment.learners
    epochs: dict[int, dict[str, Any]] = {}
    for log in logs:
        args, block = log["args"], log["blockNumber"]
        if log["event"] == "ModelInitialized":
            continue
        e = epochs.setdefault(args["epoch"], {"epoch": args["epoch"], "votes": [], "proposal": None, "close": None})
        if log["event"] == "EpochStarted":
            e.update(proposer=args["proposer"], proposer_index=learners.index(args["proposer"]),
                     proposal_deadline=args["proposalDeadline"], started_block=block, outcome="open")
        elif log["event"] == "WeightsProposed":
            e["proposal"] = {"digest": Web3.to_hex(args["digest"]), "cid": args["cid"],
                             "voting_deadline": args["votingDeadline"], "tx": _tx(w3, log["transactionHash"], block)}
        elif log["event"] == "VoteCast":
            e["votes"].append({"voter": args["voter"], "learner_index": learners.index(args["voter"]),
                               "approve": args["approve"], "score": args["score"] / 10**18,
                               "score_fixed": str(args["score"]), "tx": _tx(w3, log["transactionHash"], block)})
        else:
            outcomes = {"ProposalAccepted": "accepted", "ProposalRejected": "rejected", "EpochSkipped": "skipped"}
            e["outcome"] = outcomes[log["event"]]
            e["approvals"] = args.get("approvals", 0)
            e["rejections"] = args.get("rejections", 0)
            e["close"] = _tx(w3, log["transactionHash"], block)
    out = []
    for number in sorted(epochs):
        e = epochs[number]
        e.setdefault("approvals", sum(v["approve"] for v in e["votes"]))
        e.setdefault("rejections", sum(not v["approve"] for v in e["votes"]))
        txs = {t["hash"]: t["gas_used"] for t in
               ([e["proposal"]["tx"]] if e["proposal"] else []) + [v["tx"] for v in e["votes"]]
               + ([e["close"]] if e["close"] else [])}
        e["gas_used"] = sum(txs.values())
        out.append(e)
    accepted = [log for log in logs if log["event"] == "ProposalAccepted"]
    current = (
        {"digest": Web3.to_hex(accepted[-1]["args"]["digest"]), "cid": accepted[-1]["args"]["cid"],
         "since_epoch": accepted[-1]["args"]["epoch"] + 1}
        if accepted else {"digest": deployment.initial_digest, "cid": deployment.initial_cid, "since_epoch": 0}
    )
    return {"epochs": out, "current_model": current, "current_epoch": max(epochs)}


def _assert_status_matches_chain(rpc_url: str, deployment: Deployment, tmp_path: Path) -> dict[str, Any]:
    # Prepare
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    record = deployment.save(tmp_path / "deployment.json")
    expected = _expected(w3, deployment)

    # Execute
    result = _cli("status", "--rpc", rpc_url, "--deployment", str(record), "--json")

    # Assert
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["epochs"] == expected["epochs"]
    summary = status["summary"]
    assert summary["current_model"] == expected["current_model"]
    assert summary["current_epoch"] == expected["current_epoch"] == len(status["epochs"]) - 1
    assert summary["learners"] == deployment.learners
    assert (summary["vote_threshold_bps"], summary["proposal_timeout"], summary["voting_timeout"]) == (
        5000, TIMEOUT, TIMEOUT
    )
    assert summary["initial_model"] == {
        "digest": deployment.initial_digest, "cid": deployment.initial_cid, "since_epoch": 0
    }
    assert summary["counts"] == {"accepted": 1, "rejected": 2, "skipped": 1, "open": 1}
    assert summary["phase"] == "Voting" and summary["chain_id"] == w3.eth.chain_id
    return status


# ─────────────────────────────────────────────────────────────── anvil


@pytest.fixture()
def anvil_run() -> Iterator[tuple[str, Deployment]]:
    with AnvilNode() as node:
        keys = learner_keys(3)
        fund(node.url, [Account.from_key(k).address for k in keys])
        yield node.url, _drive_all_outcomes(Driver.create(node.url, keys))


def test_status_json_equals_the_chain_events_on_anvil(anvil_run: tuple[str, Deployment], tmp_path: Path) -> None:
    rpc_url, deployment = anvil_run
    status = _assert_status_matches_chain(rpc_url, deployment, tmp_path)

    # The same from the bare address (deployment block found by search), and --last.
    by_address = _cli("status", "--rpc", rpc_url, "--contract", deployment.address, "--json", "--last", "2")
    assert by_address.returncode == 0, by_address.stderr
    assert json.loads(by_address.stdout)["epochs"] == status["epochs"][-2:]


def test_status_table_shows_every_vote_transaction_and_the_current_model(anvil_run: tuple[str, Deployment]) -> None:
    rpc_url, deployment = anvil_run
    status = json.loads(_cli("status", "--rpc", rpc_url, "--contract", deployment.address, "--json").stdout)

    result = _cli("status", "--rpc", rpc_url, "--contract", deployment.address)

    assert result.returncode == 0, result.stderr
    table = result.stdout
    for epoch in status["epochs"]:
        others = (epoch["proposal"] and epoch["proposal"]["tx"], epoch["close"])
        for tx in [v["tx"] for v in epoch["votes"]] + [t for t in others if t]:
            assert tx["hash"] in table and f"{tx['gas_used']:,}" in table
        if epoch["proposal"]:
            assert epoch["proposal"]["cid"] in table
    assert status["summary"]["current_model"]["cid"] in table
    assert "yes 0.91" in table and "no -0.25" in table and "yes 123.5" in table
    rows = [line.split() for line in table.splitlines() if line[:5].strip().isdigit()]
    assert [row[0] for row in rows] == ["0", "1", "2", "3", "4"]
    assert next(r for r in rows if r[0] == "2")[-3:] == ["rejected", "1/1", f"{status['epochs'][2]['gas_used']:,}"]


def test_status_names_a_dead_rpc_and_a_missing_contract(anvil_run: tuple[str, Deployment]) -> None:
    rpc_url, deployment = anvil_run
    dead = f"http://127.0.0.1:{free_port()}"

    started = time.monotonic()
    no_chain = _cli("status", "--rpc", dead, "--contract", deployment.address)
    elapsed = time.monotonic() - started
    empty_address = "0x" + "12" * 20
    no_contract = _cli("status", "--rpc", rpc_url, "--contract", empty_address)
    not_an_address = _cli("status", "--rpc", rpc_url, "--contract", "0x1234")

    assert no_chain.returncode == 2 and f"cannot reach a JSON-RPC endpoint at {dead}" in no_chain.stderr
    assert elapsed < 15, f"a dead RPC took {elapsed:.1f} s to report"
    assert no_contract.returncode == 2
    assert f"no contract at {Web3.to_checksum_address(empty_address)}" in no_contract.stderr
    assert not_an_address.returncode == 2 and "is not an address" in not_an_address.stderr
    assert "Traceback" not in no_chain.stderr + no_contract.stderr + not_an_address.stderr


def test_status_and_explorer_name_a_from_block_past_the_head_and_read_the_rpc_url_from_the_environment(
    tmp_path: Path,
) -> None:
    # Prepare: a bare deployment; the endpoint only in $COLEARN_RPC_URL, no --rpc
    with AnvilNode() as node:
        keys = learner_keys(1)
        fund(node.url, [Account.from_key(k).address for k in keys])
        deployment = Driver.create(node.url, keys).deploy()
        head = Web3(Web3.HTTPProvider(node.url)).eth.block_number
        env = {**os.environ, ENV_RPC_URL: node.url}
        source = ["--contract", deployment.address]

        # Execute
        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "colearn_chain.cli", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120, check=False)

        past = {command: cli(command, *source, "--from-block", "99999999") for command in ("status", "explorer")}
        from_env = cli("status", *source, "--json", "--from-block", str(deployment.block))

    # Assert
    for command, result in past.items():
        assert result.returncode == 2, (command, result.stderr)
        assert f"--from-block 99999999 is past the chain's head {head}" in result.stderr, command
        assert "update()" not in result.stderr and "Traceback" not in result.stderr, command
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["summary"]["address"] == deployment.address


# ─────────────────────────────────────────────────────────────── ganache


@pytest.fixture()
def ganache_url(tmp_path: Path) -> Iterator[str]:
    """Ganache 7 on loopback (Shanghai, its newest fork) with the test learners funded."""
    with GanacheNode(log_path=tmp_path / "ganache.log") as node:
        fund(node.url, [Account.from_key(key).address for key in learner_keys(3)], 1000.0)
        yield node.url


def test_status_json_equals_the_chain_events_on_ganache(ganache_url: str, tmp_path: Path) -> None:
    deployment = _drive_all_outcomes(Driver.create(ganache_url, learner_keys(3)))
    _assert_status_matches_chain(ganache_url, deployment, tmp_path)
