"""`colearn-chain run --ipfs-topology per-agent`: a Kubo node per learner, weights moving between them by
bitswap, and the run deciding exactly as the reference driver."""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest
from test_run import assert_results_match_chain, chain_record

from colearn_chain.experiment import ExperimentError, ExperimentSettings, run_experiment
from colearn_chain.services.anvil import AnvilNode

pytestmark = pytest.mark.slow

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
