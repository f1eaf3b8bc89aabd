"""`colearn-chain deploy` on a real Anvil: nothing is deployed that cannot be recorded, and every refusal
is a clear message (exit 2), never a traceback.

Why it matters: a deployment costs gas and its address is what every participant needs; a record lost
after the transaction, or a raw RPC error for an unfunded key, leaves the user guessing.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from eth_account import Account
from web3 import Web3

from colearn_chain.chain.connection import ENV_RPC_URL
from colearn_chain.services.anvil import DEV_KEY, AnvilNode

ROOT = Path(__file__).resolve().parents[2]
LEARNER = Account.from_key("0x" + "22" * 32).address


def _deploy(env: dict[str, str], *args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # in the child: every file it writes may hold at most this many bytes
        assert file_size_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "colearn_chain.cli", "deploy", "--learners", LEARNER, "--proposal-timeout", "30",
         "--voting-timeout", "30", "--learner", "toy", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=None if file_size_limit is None else limit,
    )


def _nonce(url: str, key: str) -> int:
    return int(Web3(Web3.HTTPProvider(url)).eth.get_transaction_count(Account.from_key(key).address))


def test_an_unfunded_deployer_is_named_with_its_balance(tmp_path: Path) -> None:
    # Prepare: a key Anvil never funded; the endpoint only in the environment
    key = "0x" + "33" * 32
    deployer = Account.from_key(key).address
    with AnvilNode() as node:
        # Execute
        result = _deploy({"COLEARN_PRIVATE_KEY": key, ENV_RPC_URL: node.url},
                         "--store", f"local:{tmp_path / 'store'}", "--out", str(tmp_path / "deployment.json"))

    # Assert
    assert result.returncode == 2, result.stderr
    assert f"the deployer {deployer} has 0 ETH (0 wei)" in result.stderr
    assert "fund that address or sign with another key" in result.stderr
    assert "Traceback" not in result.stderr
    assert "33" * 32 not in result.stderr + result.stdout  # the key never shows
    assert not (tmp_path / "deployment.json").exists()


def test_an_unwritable_out_stops_deploy_before_any_transaction(tmp_path: Path) -> None:
    # Prepare: --out names a folder
    out = tmp_path / "records"
    out.mkdir()
    with AnvilNode() as node:
        # Execute
        result = _deploy({"COLEARN_PRIVATE_KEY": DEV_KEY}, "--rpc", node.url, "--store", f"local:{tmp_path / 's'}",
                         "--out", str(out))
        sent = _nonce(node.url, DEV_KEY)

    # Assert: refused, and the deployer sent nothing (no gas spent)
    assert result.returncode == 2
    assert f"--out {out} is a directory: name a file to write" in result.stderr
    assert "Traceback" not in result.stderr
    assert sent == 0


def test_a_record_that_cannot_be_saved_after_deploying_is_printed_instead(tmp_path: Path) -> None:
    # Prepare: the process may write files of at most 300 bytes, so the initial model (96 bytes) and the
    # probe of --out go through but the record (about 1 kB) fails with EFBIG, after the deployment
    out = tmp_path / "deployment.json"
    with AnvilNode() as node:
        # Execute
        result = _deploy({"COLEARN_PRIVATE_KEY": DEV_KEY}, "--rpc", node.url, "--store", f"local:{tmp_path / 's'}",
                         "--out", str(out), file_size_limit=300)
        w3 = Web3(Web3.HTTPProvider(node.url))
        receipt = w3.eth.get_transaction_receipt(w3.eth.get_block(1, full_transactions=True)["transactions"][0]["hash"])

    # Assert: the error gives what the record would have held, and that is the real deployment
    assert result.returncode == 2, result.stderr
    address, block = receipt["contractAddress"], receipt["blockNumber"]
    assert f"the contract IS deployed at {address} (block {block}, tx" in result.stderr
    assert f"could not be written to {out}" in result.stderr and "do not deploy again" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    printed = json.loads(result.stdout)
    tx_hash = receipt["transactionHash"].to_0x_hex()
    assert (printed["address"], printed["block"], printed["tx_hash"]) == (address, block, tx_hash)


def test_deploy_reads_the_endpoint_from_the_environment_and_writes_the_record(tmp_path: Path) -> None:
    # Prepare: no --rpc, the URL only in $COLEARN_RPC_URL
    out = tmp_path / "deployment.json"
    with AnvilNode() as node:
        # Execute
        result = _deploy({"COLEARN_PRIVATE_KEY": DEV_KEY, ENV_RPC_URL: node.url},
                         "--store", f"local:{tmp_path / 's'}", "--out", str(out))
        code = Web3(Web3.HTTPProvider(node.url)).eth.get_code(Web3.to_checksum_address(result.stdout.strip()))

    # Assert
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["address"] == result.stdout.strip() and len(code) > 0
    assert record["extra"]["store"] == f"local:{tmp_path / 's'}"  # as the deployer's log names it
