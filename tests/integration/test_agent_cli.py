"""`colearn-chain agent` start-up errors: a clear message and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from colearn_chain.chain.connection import ENV_RPC_URL
from colearn_chain.services.anvil import DEV_KEY, AnvilNode


def test_agent_pointed_at_an_address_without_the_contract_exits_2(tmp_path: Path, record_of_nothing: Path) -> None:
    # Prepare: a deployment record naming an address where nothing is deployed
    record = record_of_nothing
    env = {**os.environ, "COLEARN_PRIVATE_KEY": "0x" + "11" * 32}
    with AnvilNode() as node:
        # Execute
        result = subprocess.run(
            [sys.executable, "-m", "colearn_chain.cli", "agent", "--rpc", node.url, "--deployment", str(record),
             "--store", str(tmp_path / "store"), "--state-dir", str(tmp_path / "state")],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
    # Assert
    assert result.returncode == 2
    assert "cannot read the contract" in result.stderr and "check --rpc and --deployment" in result.stderr
    assert "Traceback" not in result.stderr
    assert "11" * 32 not in result.stderr + result.stdout  # the key never shows


def test_agent_with_an_unusable_store_or_state_dir_exits_2(tmp_path: Path) -> None:
    # Prepare: a real deployment whose one learner is this agent's key
    key = "0x" + "22" * 32
    learner = Account.from_key(key).address
    env = {**os.environ, "COLEARN_PRIVATE_KEY": key}
    with AnvilNode() as node:
        env[ENV_RPC_URL] = node.url
        deployed = subprocess.run(
            [sys.executable, "-m", "colearn_chain.cli", "deploy", "--rpc", node.url, "--learners", learner,
             "--proposal-timeout", "30", "--voting-timeout", "30", "--learner", "toy",
             "--store", f"local:{tmp_path / 'store'}", "--out", str(tmp_path / "deployment.json")],
            env={**env, "COLEARN_PRIVATE_KEY": DEV_KEY}, capture_output=True, text=True, timeout=120, check=False,
        )
        assert deployed.returncode == 0, deployed.stderr
        base = [sys.executable, "-m", "colearn_chain.cli", "agent", "--deployment", str(tmp_path / "deployment.json")]

        # Execute: a store of an unknown scheme, a store folder and a state folder that cannot be made
        runs = {
            what: subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
            for what, args in {
                "scheme": ["--store", "ftp://x", "--state-dir", str(tmp_path / "state")],
                "store folder": ["--store", "local:/proc/x", "--state-dir", str(tmp_path / "state")],
                "state folder": ["--store", f"local:{tmp_path / 'store'}", "--state-dir", "/proc/y"],
            }.items()
        }

    # Assert: each a message that names the option, exit 2
    for what, result in runs.items():
        assert result.returncode == 2, (what, result.stderr)
        assert "Traceback" not in result.stderr, what
    assert "--store: unknown weight store URL scheme in ftp://x:" in runs["scheme"].stderr
    assert "--store: " in runs["store folder"].stderr and "/proc/x" in runs["store folder"].stderr
    assert "cannot use the state directory /proc/y" in runs["state folder"].stderr
    assert not any(key[2:] in r.stderr + r.stdout for r in runs.values())  # the key never shows
