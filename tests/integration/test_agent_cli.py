"""`colearn-chain agent` start-up errors: a clear message and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from colearn_chain.chain.deployment import Deployment
from colearn_chain.services.anvil import AnvilNode


def test_agent_pointed_at_an_address_without_the_contract_exits_2(tmp_path: Path) -> None:
    # Prepare: a deployment record naming an address where nothing is deployed
    record = Deployment(
        chain_id=31337, address="0x" + "12" * 20, block=0, tx_hash="0x" + "00" * 32, learners=[],
        vote_threshold_bps=5000, proposal_timeout=10, voting_timeout=10, proposer_votes=True,
        initial_digest="0x" + "11" * 32, initial_cid="QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
        extra={"learner_config": {"kind": "toy"}},
    ).save(tmp_path / "deployment.json")
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
