"""`colearn-chain run --ipfs-topology per-agent`: a Kubo node per learner, weights moving between them by
bitswap, and the run deciding exactly as the reference driver."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from test_run import assert_results_match_chain, chain_record

from colearn_chain.experiment import ExperimentError, ExperimentSettings, run_experiment
from colearn_chain.services.anvil import AnvilNode

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
_BITSWAP = re.compile(r"^ipfs node (\d+): bitswap blocks received (\d+) .*; connected to (.*)$", re.MULTILINE)


def _kubo_children() -> set[int]:
    """The pids of the Kubo daemons under this test process."""
    return {p.pid for p in psutil.Process().children(recursive=True) if p.name() == "ipfs"}


def test_per_agent_nodes_move_the_weights_by_bitswap_and_match_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    out = tmp_path / "out"
    before = _kubo_children()  # a session's shared Kubo node, if one is up, is not this run's
    with AnvilNode() as node:
        settings = ExperimentSettings(learners=3, epochs=4, kind="toy", out=out, rpc=node.url,
                                      ipfs_topology="per-agent")
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    printed = capsys.readouterr().out
    # Assert: the decisions and weights are the reference driver's
    assert_results_match_chain(results, chain, 4)
    assert results["config"]["ipfs_topology"] == "per-agent"
    # each learner's agent used its own node, and each node received blocks from the others
    stores = {
        re.search(r"store (kubo:\S+)", (out / "agents" / f"learner-{i}" / "agent.log").read_text()).group(1)  # type: ignore[union-attr]
        for i in range(3)
    }
    assert len(stores) == 3
    lines = _BITSWAP.findall(printed)
    print(printed)
    assert [int(i) for i, _, _ in lines] == [0, 1, 2]
    assert all(int(received) > 0 for _, received, _ in lines)
    for _, _, peers in lines:
        assert len(peers.split(", ")) == 2 and all(p.startswith("/ip4/127.0.0.1/tcp/") for p in peers.split(", "))
    assert not (out / "store").exists()
    # every node this run started was stopped with it
    assert _kubo_children() - before == set()


def test_per_agent_topology_refuses_a_shared_node_url(tmp_path: Path) -> None:
    settings = ExperimentSettings(learners=2, epochs=1, kind="toy", out=tmp_path, ipfs="http://127.0.0.1:5001",
                                  ipfs_topology="per-agent")
    with pytest.raises(ExperimentError, match="per-agent"):
        run_experiment(settings)


def test_run_on_geth_with_a_kubo_node_per_agent_matches_the_reference(tmp_path: Path) -> None:
    """The issue's headline command, `colearn-chain run --chain geth --ipfs-topology per-agent --learners 3`,
    kept small: toy learners, 3 epochs, geth sealing a block a second."""
    # Prepare
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "colearn_chain.cli", "run", "--chain", "geth", "--ipfs-topology", "per-agent",
        "--learners", "3", "--epochs", "3", "--learner", "toy", "--block-time", "1", "--out", str(out),
    ]

    # Execute
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)

    # Assert: it completed, and its results say the chain decided as the reference driver, with its weights
    printed = done.stdout
    assert done.returncode == 0, printed + done.stderr[-4000:]
    print(printed)
    assert "decisions match the chain: True, final weights match: True" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["chain"] == "geth" and results["config"]["ipfs_topology"] == "per-agent"
    assert results["chain"]["chain_id"] == 1337 and results["chain"]["started_by_run"]
    reference = results["baselines"]["reference"]
    assert reference["decisions_match"] and reference["weights_match"]
    assert [e["epoch"] for e in results["epochs"]] == [0, 1, 2]
    assert reference["decisions"] == [e["outcome"] == "accepted" for e in results["epochs"]]
    # the weights moved between the three nodes by bitswap: each node received blocks (bytes) from a peer
    moved = re.findall(r"^ipfs node (\d+): bitswap blocks received (\d+) \((\d+) bytes\)", printed, re.MULTILINE)
    assert [int(i) for i, _, _ in moved] == [0, 1, 2], printed
    assert all(int(blocks) > 0 and int(size) > 0 for _, blocks, size in moved), printed
    # each agent used its own node and had geth's new heads pushed over its WebSocket port
    stores = set()
    for i in range(3):
        state = out / "agents" / f"learner-{i}"
        stores.add(re.search(r"store (kubo:\S+)", (state / "agent.log").read_text()).group(1))  # type: ignore[union-attr]
        assert json.loads((state / "rpc_calls.json").read_text())["follow_mode"] == "websocket"
    assert len(stores) == 3
