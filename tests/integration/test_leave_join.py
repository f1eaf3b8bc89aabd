"""Members leaving and joining when each has its own Kubo node (`--ipfs-topology per-agent`).

Real Anvil, one real Kubo node per learner peered with the others (loopback ports), agents as processes.
- The proposer's node goes away right after its proposal is accepted: the model stays available, because
  every member pinned it, and the proposer, rejoining from scratch (a new node, an empty state directory),
  loads the current model from a peer and goes on deciding exactly as the reference driver.
- A member whose node is down for a whole epoch votes reject on the proposal it cannot fetch, and once its
  node is back it catches up: it adopts what was accepted and votes and proposes as the reference does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent_harness import Consortium, same_weights
from colearn_chain.agent import StateDir
from colearn_chain.driver import EpochResult
from colearn_chain.services.anvil import AnvilNode
from colearn_chain.services.kubo_swarm import KuboSwarm, bitswap_stat

pytestmark = pytest.mark.slow

N = 3


def _toy(seed: int) -> dict[str, Any]:
    return {"kind": "toy", "seed": seed, "dim": 4}


def _logs(consortium: Consortium) -> str:
    return "\n".join(f"== agent {a.index} ==\n{a.log_text()[-3000:]}" for a in consortium.agents)


def _decisions(reference: list[EpochResult]) -> list[tuple[int, str]]:
    return [(r.epoch, "accepted" if r.accepted else "rejected") for r in reference]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _pinned(swarm: KuboSwarm, index: int) -> set[str]:
    answer = swarm.nodes[index].json_command("pin", "ls", "--type=recursive")
    return set(answer.get("Keys") or {})


def test_the_proposer_leaves_after_its_accept_and_rejoins_from_a_peer(tmp_path: Path) -> None:
    # Prepare: seed 1 accepts epoch 0 (learner 0's proposal)
    epochs = 4
    with contextlib.ExitStack() as stack:
        anvil = stack.enter_context(AnvilNode())
        swarm = stack.enter_context(KuboSwarm(tmp_path / "ipfs", N))
        consortium = Consortium(
            anvil.url, tmp_path / "work", swarm.nodes[0].url, _toy(1), N,
            store_urls=[node.url for node in swarm.nodes], proposal_timeout=30, voting_timeout=30,
        ).setup()
        stack.callback(consortium.stop_all)
        reference, learners = consortium.reference(epochs)
        assert reference[0].accepted

        # Execute: the proposer's node stops as soon as the chain accepts its proposal
        consortium.start_all(until_epoch=1)
        _wait_for(lambda: (0, "accepted") in consortium.decisions(), 60, "epoch 0's accept")
        swarm.stop_node(0)
        first = consortium.wait(timeout=60)
        model = consortium.client().current_model()
        pins = {i: _pinned(swarm, i) for i in (1, 2)}
        # the proposer comes back from scratch: a new node (new identity, empty repo) and an empty state directory
        fresh = swarm.replace_node(0, tmp_path / "ipfs" / "node-0-again")
        assert consortium.store_urls is not None
        consortium.store_urls[0] = fresh.url
        consortium.agents[0].state_dir = tmp_path / "work" / "agent0-again"
        consortium.start(0, until_epoch=1)
        rejoined = consortium.wait(timeout=60, indices=[0])
        received = bitswap_stat(fresh)
        loaded = StateDir(consortium.agents[0].state_dir).blob_for(model.digest)
        # and the consortium goes on
        consortium.start_all(until_epoch=epochs)
        codes = consortium.wait(timeout=120)
        decisions = consortium.decisions()

    # Assert
    assert first == {0: 0, 1: 0, 2: 0}, _logs(consortium)
    assert model.since_epoch == 1  # accepted in epoch 0: the model of epoch 1 on
    assert all(model.cid in pinned for pinned in pins.values()), pins
    assert rejoined == {0: 0}, _logs(consortium)
    assert loaded is not None, "the rejoining proposer did not load the current model"
    print(f"rejoined node's bitswap: {received}")
    assert received["BlocksReceived"] > 0
    assert codes == {0: 0, 1: 0, 2: 0}, _logs(consortium)
    assert decisions == _decisions(reference), _logs(consortium)
    for i in range(N):
        assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"


def test_a_member_whose_node_is_down_for_an_epoch_rejects_and_catches_up(tmp_path: Path) -> None:
    # Prepare: seed 0, where learner 2 approves epoch 0's proposal when it can fetch it (the epoch is rejected
    # either way, so the decisions stay the reference's)
    epochs = 4
    with contextlib.ExitStack() as stack:
        anvil = stack.enter_context(AnvilNode())
        swarm = stack.enter_context(KuboSwarm(tmp_path / "ipfs", N))
        consortium = Consortium(
            anvil.url, tmp_path / "work", swarm.nodes[0].url, _toy(0), N,
            store_urls=[node.url for node in swarm.nodes], proposal_timeout=30, voting_timeout=15,
        ).setup()
        stack.callback(consortium.stop_all)
        reference, learners = consortium.reference(epochs)
        assert reference[0].vote_flags[2] is True and not reference[0].accepted

        # Execute: learner 2's node is down for the whole of epoch 0, and back once it closed
        swarm.stop_node(2)
        consortium.start_all(until_epoch=epochs)
        _wait_for(lambda: any(epoch == 0 for epoch, _ in consortium.decisions()), 90, "epoch 0 to close")
        swarm.start_node(2)
        codes = consortium.wait(timeout=150)
        received = bitswap_stat(swarm.nodes[2])
        votes = consortium.votes()
        decisions = consortium.decisions()
        evaluation = StateDir(consortium.agents[2].state_dir).evaluations()[0]

    # Assert: a reject on what it could not fetch, with the reason recorded
    assert codes == {0: 0, 1: 0, 2: 0}, _logs(consortium)
    assert votes[0][2] is False
    assert "StoreUnavailable" in str(evaluation["reason"]), evaluation
    # then it caught up: it votes as the reference from epoch 1 on and ends on the same weights
    expected_votes = {r.epoch: {j: v for j, v in enumerate(r.vote_flags) if v is not None} for r in reference}
    assert {e: v for e, v in votes.items() if e > 0} == {e: v for e, v in expected_votes.items() if e > 0}
    assert decisions == _decisions(reference), _logs(consortium)
    for i in range(N):
        assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"
    print(f"node 2 bitswap after it came back: {received}")
    assert received["BlocksReceived"] > 0
    log = consortium.agents[2].log_text()
    assert "cannot fetch proposal" in log
    # it could not keep the current model while its node was down, and kept it once the node was back
    assert log.index("cannot keep the current model") < log.rindex("keeping the current model")
