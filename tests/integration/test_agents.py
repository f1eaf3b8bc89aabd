"""The property that ties the project together: agents on a real chain decide what the reference driver decides.

Real Anvil, a real (private, offline) Kubo node as the weight store, one `colearn-chain agent` process
per learner with its own key. With every agent live, the accept/reject sequence and each vote (from the
chain's events) and every learner's final weights (from its state directory) must equal
`driver.run` on identically built learners, under the seed's rule and the colearn variant, with
instant mining and with a block every second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_harness import Consortium, same_weights
from colearn_chain.cli.calls import RPC_CALLS_FILE
from colearn_chain.driver import EpochResult
from colearn_chain.services.anvil import AnvilNode
from colearn_chain.services.geth import GethNode
from colearn_chain.services.kubo import KuboNode
from rpc_proxy import RpcProxy

pytestmark = pytest.mark.slow

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
EPOCHS = 8


def _expected_decisions(reference: list[EpochResult]) -> list[tuple[int, str]]:
    return [(r.epoch, "accepted" if r.accepted else "rejected") for r in reference]


def _expected_votes(reference: list[EpochResult]) -> dict[int, dict[int, bool]]:
    return {r.epoch: {j: v for j, v in enumerate(r.vote_flags) if v is not None} for r in reference}


def _logs(consortium: Consortium) -> str:
    return "\n".join(f"== agent {a.index} ==\n{a.log_text()[-4000:]}" for a in consortium.agents)


def _run_and_compare(
    rpc_url: str, workdir: Path, store_url: str, *, n: int, proposer_votes: bool, epochs: int = EPOCHS,
    extra: tuple[str, ...] = (), timeout: float = 150, per_process: int = 1, agent_rpc_url: str | None = None,
) -> Consortium:
    # Prepare
    consortium = Consortium(
        rpc_url, workdir, store_url, TOY, n, proposer_votes=proposer_votes, agent_rpc_url=agent_rpc_url,
        proposal_timeout=30, voting_timeout=30,  # no epoch here should time out, even on a loaded machine
    ).setup()
    reference, learners = consortium.reference(epochs)
    assert {r.accepted for r in reference} == {True, False}, "the run must include accepts and rejects"

    # Execute
    try:
        if per_process == 1:
            for i in range(n):
                consortium.start(i, until_epoch=epochs, extra=extra)
        else:
            for first in range(0, n, per_process):
                consortium.start_group(list(range(first, min(n, first + per_process))), until_epoch=epochs,
                                       extra=extra)
        codes = consortium.wait(timeout=timeout)
    finally:
        consortium.stop_all()

    # Assert
    assert codes == {i: 0 for i in range(n)}, _logs(consortium)
    assert consortium.decisions() == _expected_decisions(reference), _logs(consortium)
    assert consortium.votes() == _expected_votes(reference)
    for i in range(n):
        assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"
    for agent in consortium.agents:
        text = agent.log_text()
        assert "Traceback" not in text and " ERROR " not in text, text[-4000:]
    return consortium


def _rpc_record(consortium: Consortium, index: int) -> dict[str, Any]:
    return dict(json.loads((consortium.agents[index].state_dir / RPC_CALLS_FILE).read_text()))


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "http-fallback"])
def test_agents_sharing_processes_decide_as_the_reference_driver(
    kubo_node: KuboNode, tmp_path: Path, websocket: bool
) -> None:
    """4 learners, 2 agents per `colearn-chain agents` process; new heads pushed over Anvil's WebSocket, or
    polled over HTTP when the endpoint (an HTTP-only proxy in front of Anvil) serves no WebSocket."""
    with AnvilNode() as anvil, RpcProxy(anvil.url) as proxy:
        consortium = _run_and_compare(
            anvil.url, tmp_path, kubo_node.url, n=4, proposer_votes=True, epochs=6, per_process=2,
            agent_rpc_url=None if websocket else proxy.url,
        )

    # Assert: each agent kept its own state directory and log, and followed the chain the expected way
    assert len({a.proc for a in consortium.agents}) == 2
    for agent in consortium.agents:
        text = agent.log_text()
        assert f"learner {agent.index} ({agent.account.address}) resumes" in text
        others = [a.account.address for a in consortium.agents if a.index != agent.index]
        assert not any(f"({address}) resumes" in text for address in others)
        record = _rpc_record(consortium, agent.index)
        assert record["follow_mode"] == ("websocket" if websocket else "http")
        assert record["agents_in_process"] == 2
        assert 0 < record["own"]["eth_sendRawTransaction"] <= 12  # its own transactions: 6 votes, 1-2 proposals
        assert record["own"].get("eth_chainId", 0) <= 2  # asked once per client, not before every call


def test_agents_sharing_processes_decide_as_the_reference_driver_on_geth(kubo_node: KuboNode, tmp_path: Path) -> None:
    """4 learners, 2 agents per process, on geth's dev mode (a block a second; RPC on loopback, no peers): the
    shared follower gets new heads pushed over geth's own WebSocket port and serves its agents one log cache."""
    with GethNode(block_time=1) as geth:
        consortium = _run_and_compare(
            geth.url, tmp_path, kubo_node.url, n=4, proposer_votes=True, epochs=6, per_process=2,
            extra=("--ws", geth.ws_url), timeout=240,
        )

    # Assert: the agents shared two followers, each subscribed over WebSocket
    assert len({a.proc for a in consortium.agents}) == 2
    for agent in consortium.agents:
        record = _rpc_record(consortium, agent.index)
        assert record["follow_mode"] == "websocket"
        assert record["agents_in_process"] == 2


@pytest.mark.parametrize(
    ("n", "proposer_votes"), [(3, True), (5, False)], ids=["seed-rule-3-learners", "colearn-variant-5-learners"]
)
def test_agents_decide_as_the_reference_driver(
    kubo_node: KuboNode, tmp_path: Path, n: int, proposer_votes: bool
) -> None:
    with AnvilNode() as anvil:
        _run_and_compare(anvil.url, tmp_path, kubo_node.url, n=n, proposer_votes=proposer_votes)


@pytest.mark.parametrize("confirmations", [0, 2], ids=["confirmations-0", "confirmations-2"])
def test_agents_decide_as_the_reference_driver_with_interval_mining(
    kubo_node: KuboNode, tmp_path: Path, confirmations: int
) -> None:
    # 4 epochs (each learner proposes, 2 rejects then 2 accepts): a block a second makes every step slow.
    with AnvilNode(block_time=1) as anvil:
        _run_and_compare(
            anvil.url, tmp_path, kubo_node.url, n=3, proposer_votes=True, epochs=4,
            extra=("--confirmations", str(confirmations)), timeout=240,
        )


@pytest.mark.parametrize(
    ("n", "proposer_votes", "epochs", "confirmations"),
    [(3, True, EPOCHS, 0), (5, False, EPOCHS, 2)],
    ids=["seed-rule-3-learners", "colearn-variant-5-learners-confirmations-2"],
)
def test_agents_decide_as_the_reference_driver_on_geth(
    kubo_node: KuboNode, tmp_path: Path, n: int, proposer_votes: bool, epochs: int, confirmations: int
) -> None:
    with GethNode(block_time=1) as geth:
        _run_and_compare(
            geth.url, tmp_path, kubo_node.url, n=n, proposer_votes=proposer_votes, epochs=epochs,
            extra=("--confirmations", str(confirmations)), timeout=240,
        )


def test_keystores_and_the_embedded_store_end_to_end(tmp_path: Path) -> None:
    """`wallet new`, `deploy --keystore` and `agent --keystore`, with the local directory store."""
    # Prepare
    epochs = 4
    with AnvilNode() as anvil:
        consortium = Consortium(
            anvil.url, tmp_path, f"local:{tmp_path / 'blobs'}", TOY, 3, keystore_password="correct horse",
            proposal_timeout=30, voting_timeout=30,
        ).setup()
        reference, learners = consortium.reference(epochs)

        # Execute
        try:
            consortium.start_all(until_epoch=epochs)
            codes = consortium.wait(timeout=90)
        finally:
            consortium.stop_all()

        # Assert
        assert codes == {0: 0, 1: 0, 2: 0}, _logs(consortium)
        assert consortium.decisions() == _expected_decisions(reference)
        for i in range(3):
            assert same_weights(consortium.final_weights(i), learners[i].current_weights())
            assert "correct horse" not in consortium.agents[i].log_text()
            assert bytes(consortium.accounts[i].key).hex() not in consortium.agents[i].log_text()
