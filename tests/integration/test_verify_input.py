"""`colearn-chain verify-input` must write what reproduces the deployed bytecode byte for byte.

An Etherscan-style verifier recompiles the standard-JSON input with the named compiler and compares;
here the project's own solc (solcjs 0.8.28 behind tools/solc.js, same bytecode as native solc) plays
the verifier. Constructor arguments must decode back to the deployment record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_abi import decode as abi_decode

from colearn_chain.chain.artifact import load_artifact
from colearn_chain.chain.deployment import Deployment
from colearn_chain.cli import main
from colearn_chain.cli.verify import compile_standard_json

ROOT = Path(__file__).resolve().parents[2]
SOLC = ["node", str(ROOT / "tools" / "solc.js")]


def _deployment() -> Deployment:
    return Deployment(
        chain_id=11155111,
        address="0x" + "ab" * 20,
        block=123,
        tx_hash="0x" + "cd" * 32,
        learners=["0x" + f"{i:02x}" * 20 for i in range(1, 4)],
        vote_threshold_bps=5000,
        proposal_timeout=600,
        voting_timeout=300,
        proposer_votes=True,
        initial_digest="0x" + "11" * 32,
        initial_cid="QmQhzGBtkfHwBJFYGkkbZaPT4KSsJotdsGa4djuA9aA5Bc",
    )


def test_out_naming_a_file_is_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Prepare: --out names an existing file, not a folder
    taken = tmp_path / "verify"
    taken.write_text("not a folder")

    # Execute
    code = main(["verify-input", "--out", str(taken)])

    # Assert
    assert code == 2
    assert f"cannot write into --out {taken}" in caplog.text and "name a folder you can write" in caplog.text
    assert taken.read_text() == "not a folder"


def test_standard_json_input_reproduces_the_packaged_bytecode(tmp_path: Path) -> None:
    # Prepare
    record = _deployment().save(tmp_path / "deployment.json")

    # Execute
    result = subprocess.run(
        [sys.executable, "-m", "colearn_chain.cli", "verify-input",
         "--out", str(tmp_path / "verify"), "--deployment", str(record)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    # Assert
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "verify" / "CollectiveLearning.standard-input.json").read_text())
    info = json.loads((tmp_path / "verify" / "CollectiveLearning.verify.json").read_text())
    assert info["compiler_version"] == "v0.8.28+commit.7893614a"
    assert info["contract_name"] == "contracts/CollectiveLearning.sol:CollectiveLearning"
    assert info["optimizer"] == {"enabled": True, "runs": 200} == data["settings"]["optimizer"]
    assert info["evm_version"] == "shanghai" == data["settings"]["evmVersion"]
    assert info["license"] == "Apache-2.0"
    output = compile_standard_json(data, SOLC)
    compiled = output["contracts"]["contracts/CollectiveLearning.sol"]["CollectiveLearning"]
    artifact = load_artifact()
    assert compiled["evm"]["bytecode"]["object"] == artifact["bytecode"].removeprefix("0x")
    assert compiled["evm"]["deployedBytecode"]["object"] == artifact["deployedBytecode"].removeprefix("0x")
    assert json.loads(compiled["metadata"])["compiler"]["version"] == info["compiler_version"][1:]
    args = abi_decode(
        ["address[]", "uint256", "uint256", "uint256", "bool", "bytes32", "string"],
        bytes.fromhex(info["constructor_arguments"]),
    )
    deployment = _deployment()
    assert [a.lower() for a in args[0]] == deployment.learners
    assert args[1:5] == (5000, 600, 300, True)
    assert "0x" + args[5].hex() == deployment.initial_digest and args[6] == deployment.initial_cid
