"""`colearn-chain run` end to end: agents as processes on a real chain, results checked against the
chain's own events (read here independently of the run's code) and the in-memory reference driver."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from web3 import Web3

from colearn_chain.chain.events import LogCursor, ProposalAccepted, ProposalRejected, VoteCast, WeightsProposed
from colearn_chain.experiment import ExperimentSettings, run_experiment
from colearn_chain.services.anvil import AnvilNode, GanacheNode
from colearn_chain.services.geth import GethNode
from colearn_chain.services.kubo import KuboNode
from colearn_chain.store import KuboStore

pytestmark = pytest.mark.slow


def chain_record(rpc_url: str, results: dict[str, Any]) -> dict[str, Any]:
    """What the chain says: votes per epoch and learner, decisions, proposal CIDs."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    events = LogCursor(w3, results["chain"]["contract"], start_block=results["chain"]["deploy_block"]).poll()
    learners = results["learners"]
    votes: dict[tuple[int, int], tuple[bool, float]] = {}
    decisions: dict[int, bool] = {}
    cids: dict[int, str] = {}
    for event in events:
        if isinstance(event, VoteCast):
            votes[(event.epoch, learners.index(event.voter))] = (event.approve, event.score / 10**18)
        elif isinstance(event, (ProposalAccepted, ProposalRejected)):
            decisions[event.epoch] = isinstance(event, ProposalAccepted)
        elif isinstance(event, WeightsProposed):
            cids[event.epoch] = event.cid
    return {"votes": votes, "decisions": decisions, "cids": cids}


def assert_results_match_chain(results: dict[str, Any], chain: dict[str, Any], epochs: int) -> None:
    assert [e["epoch"] for e in results["epochs"]] == list(range(epochs))
    file_votes = {
        (e["epoch"], v["learner"]): (v["approve"], v["vote_score"])
        for e in results["epochs"] for v in e["votes"] if v["approve"] is not None
    }
    assert file_votes.keys() == chain["votes"].keys()
    for key, (approve, score) in chain["votes"].items():
        assert file_votes[key][0] == approve
        assert file_votes[key][1] == pytest.approx(score, abs=1e-15)
    assert {e["epoch"]: e["outcome"] == "accepted" for e in results["epochs"]} == chain["decisions"]
    assert {e["epoch"]: e["cid"] for e in results["epochs"]} == chain["cids"]
    reference = results["baselines"]["reference"]
    assert reference["decisions"] == [chain["decisions"][e] for e in range(epochs)]
    assert reference["decisions_match"] and reference["weights_match"]
    for epoch in results["epochs"]:
        assert all(tx["gas"] and tx["gas"] > 21_000 for tx in epoch["transactions"])


def test_short_run_on_anvil_matches_chain_and_reference(tmp_path: Path) -> None:
    # Prepare: digits, 3 learners, 4 epochs; the chain is given (--rpc) so the test can read it afterwards
    with AnvilNode() as node:
        settings = ExperimentSettings(learners=3, epochs=4, out=tmp_path / "out", rpc=node.url)
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    # Assert
    assert_results_match_chain(results, chain, 4)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["epochs"] == json.loads(json.dumps(results["epochs"]))
    assert 0.0 < on_disk["final"]["test_accuracy_mean"] <= 1.0
    assert 0.0 < on_disk["baselines"]["centralized"] <= 1.0 and 0.0 < on_disk["baselines"]["solo_mean"] <= 1.0
    assert on_disk["final"]["same_weights_everywhere"] is True
    for name in ("plot.png", "summary.md", "deployment.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert all(v["test_score"] is not None for e in on_disk["epochs"] for v in e["votes"])


def test_run_on_ganache(tmp_path: Path) -> None:
    # Prepare
    with GanacheNode() as node:
        settings = ExperimentSettings(learners=3, epochs=4, kind="toy", out=tmp_path / "out", rpc=node.url)
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    # Assert
    assert results["chain"]["chain_id"] == 1337
    assert_results_match_chain(results, chain, 4)


def test_run_on_geth(tmp_path: Path) -> None:
    # Prepare: geth's dev mode sealing a block every second, as a real chain does (no mining per transaction)
    with GethNode(block_time=1) as node:
        settings = ExperimentSettings(learners=3, epochs=4, kind="toy", out=tmp_path / "out", rpc=node.url)
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    # Assert
    assert results["chain"]["chain_id"] == 1337
    assert_results_match_chain(results, chain, 4)


def test_run_with_existing_chain_and_kubo(tmp_path: Path, kubo_node: KuboNode) -> None:
    # Prepare
    with AnvilNode() as node:
        settings = ExperimentSettings(
            learners=3, epochs=4, kind="toy", out=tmp_path / "out", rpc=node.url, ipfs=kubo_node.url,
        )
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    # Assert: the proposals live in that Kubo node, and nothing went to the embedded store
    assert_results_match_chain(results, chain, 4)
    store = KuboStore(kubo_node.url)
    for cid in chain["cids"].values():
        assert len(store.get(cid, max_bytes=1 << 20)) > 0
    assert not (tmp_path / "out" / "store").exists()


def test_cli_run_help_names_every_option() -> None:
    # Execute
    out = subprocess.run(
        [sys.executable, "-m", "colearn_chain.cli", "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    # Assert
    for option in ("--learners", "--epochs", "--learner", "--learner-option",
                   "--dataset", "--model", "--split", "--alpha", "--threshold",
                   "--colearn-variant", "--seed", "--rpc", "--chain", "--ipfs", "--ipfs-topology",
                   "--agents-per-process", "--out", "--explorer"):
        assert option in out


@pytest.mark.parametrize("chain", ["anvil", "geth"])
def test_run_starts_and_stops_its_own_chain(tmp_path: Path, chain: str) -> None:
    # Execute: no --rpc, no --ipfs: the run starts the chain (--chain) and uses the embedded store
    results = run_experiment(ExperimentSettings(learners=2, epochs=2, kind="toy", out=tmp_path / "out", chain=chain))
    # Assert
    assert results["chain"]["started_by_run"] is True
    assert (tmp_path / "out" / f"{chain}.log").exists()
    assert results["baselines"]["reference"]["decisions_match"]
    assert any((tmp_path / "out" / "store").iterdir())
    assert not Web3(Web3.HTTPProvider(results["chain"]["rpc"], request_kwargs={"timeout": 2})).is_connected(), (
        f"the run left its {chain} running"
    )


def test_ctrl_c_stops_everything_the_run_started(tmp_path: Path) -> None:
    # Prepare: a long run, interrupted once its agents are going. SIGINT is reset to its default in
    # the child: a shell that runs this suite as a background job passes SIGINT on as ignored, and
    # Python keeps an ignored SIGINT (as a backgrounded `colearn-chain run` should).
    out = tmp_path / "out"
    console = tmp_path / "console.txt"
    with open(console, "w") as sink:
        run = subprocess.Popen(
            [sys.executable, "-m", "colearn_chain.cli", "run", "--learner-kind", "toy", "--learners", "3",
             "--epochs", "500", "--out", str(out)],
            stdout=sink, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    deadline = time.monotonic() + 120
    while "epoch " not in console.read_text() and time.monotonic() < deadline:
        assert run.poll() is None, console.read_text()
        time.sleep(0.2)
    children = psutil.Process(run.pid).children(recursive=True)
    assert len(children) >= 4  # anvil (and its node launcher) plus three agents
    # Execute
    run.send_signal(signal.SIGINT)
    code = run.wait(timeout=60)
    # Assert
    assert code == 130, console.read_text()[-2000:]
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"


def test_run_with_agents_sharing_processes(tmp_path: Path) -> None:
    # Prepare: 4 toy learners, 2 agents per process, on a given Anvil (so the test can read the chain)
    with AnvilNode() as node:
        settings = ExperimentSettings(
            learners=4, epochs=5, kind="toy", out=tmp_path / "out", rpc=node.url, agents_per_process=2,
        )
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    # Assert: the run matches the chain and the reference driver; two processes ran, each agent kept its own log
    assert_results_match_chain(results, chain, 5)
    agents = tmp_path / "out" / "agents"
    assert sorted(p.name for p in agents.glob("process-*.log")) == ["process-0.log", "process-1.log"]
    for i, address in enumerate(results["learners"]):
        text = (agents / f"learner-{i}" / "agent.log").read_text()
        assert f"learner {i} ({address}) resumes" in text and "Traceback" not in text
