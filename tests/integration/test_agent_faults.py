"""Agents facing faults: bad proposals, a crash and restart, a proposer that never proposes.

Real Anvil, a real Kubo node, agents as `colearn-chain agent` processes. A misbehaving learner is
driven from the test with ChainClient (it signs with its own key like any learner), and processes are
paused with SIGSTOP to make interleavings deterministic: a paused agent cannot vote, so an epoch stays
open while another agent is killed and restarted.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

from agent_harness import Consortium, same_weights
from colearn_chain.agent import INVALID_PROPOSAL_SCORE
from colearn_chain.chain.client import ChainClient, Phase
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.services.anvil import AnvilNode
from colearn_chain.services.kubo import KuboNode
from colearn_chain.store import WeightStore, from_url
from colearn_chain.store.unixfs import cid_v0

pytestmark = pytest.mark.slow

TOY: Dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
MAX_BLOB_BYTES = 4096


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _logs(consortium: Consortium) -> str:
    return "\n".join(f"== agent {a.index} ==\n{a.log_text()[-4000:]}" for a in consortium.agents)


# ───────────────────────────────────────────── (b) bad proposals get reject votes, never a crash

#: What a misbehaving proposer records, and the reason an honest voter must log.
BAD_PROPOSALS: List[Tuple[str, str]] = [
    ("tampered", "DigestMismatch"),
    ("missing", "CidNotFound"),
    ("oversized", "BlobTooLarge"),
    ("wrong-shape", "WeightsMismatch: tensor 'w': shape (5,), expected (4,)"),
    ("not-safetensors", "WeightsMismatch: not a safetensors blob"),
    ("non-finite", "NaN or infinite"),
]


def _bad_proposal(kind: str, store: WeightStore) -> Tuple[str, str]:
    """(digest, cid) of a bad proposal of ``kind``; the blob is in the store unless it is "missing"."""
    if kind == "tampered":  # the store holds other bytes than the digest names
        blob = encode_weights({"w": np.full(4, 0.5)})
        return digest_hex(blob + b"tampered"), store.put(blob)
    if kind == "missing":  # a well-formed CID of bytes nobody stored
        blob = encode_weights({"w": np.full(4, 7.25)}) + os.urandom(8)
        return digest_hex(blob), cid_v0(blob)
    blobs = {
        "oversized": encode_weights({"w": np.zeros(1024)}),  # 8 KiB > MAX_BLOB_BYTES
        "wrong-shape": encode_weights({"w": np.zeros(5)}),
        "not-safetensors": b"\x80\x04\x95 this is not a safetensors header",
        "non-finite": encode_weights({"w": np.array([np.nan, 0.0, np.inf, 0.0])}),
    }
    blob = blobs[kind]
    return digest_hex(blob), store.put(blob)


def _drive_misbehaving_learner(client: ChainClient, store: WeightStore, until_epoch: int, timeout: float) -> Dict[int, str]:
    """Act as learner 0: propose a bad blob in each of its epochs, reject it, approve the others' proposals."""
    proposed: Dict[int, str] = {}
    voted: set[int] = set()
    kinds = iter(BAD_PROPOSALS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.epoch_state()
        if state.epoch >= until_epoch:
            return proposed
        if state.proposer == client.sender and state.phase == Phase.Proposing and state.epoch not in proposed:
            kind, _ = next(kinds)
            client.propose(state.epoch, *_bad_proposal(kind, store))
            proposed[state.epoch] = kind
        elif state.phase == Phase.Voting and state.epoch not in voted:
            client.vote(state.epoch, state.proposer != client.sender, 0)
            voted.add(state.epoch)
        time.sleep(0.05)
    raise AssertionError(f"the run did not reach epoch {until_epoch} within {timeout} s")


def test_bad_proposals_get_reject_votes_with_reasons(kubo_node: KuboNode, tmp_path: Path) -> None:
    # Prepare: learner 0 is driven by the test; agents 1 and 2 are honest processes.
    until_epoch = 3 * len(BAD_PROPOSALS)
    with AnvilNode() as anvil:
        consortium = Consortium(anvil.url, tmp_path, kubo_node.url, TOY, 3, voting_timeout=15).setup()
        store = from_url(kubo_node.url)
        misbehaving = consortium.client(0)

        # Execute
        try:
            for i in (1, 2):
                consortium.start(i, until_epoch=until_epoch, extra=("--max-blob-bytes", str(MAX_BLOB_BYTES)))
            proposed = _drive_misbehaving_learner(misbehaving, store, until_epoch, timeout=120)
            codes = consortium.wait(timeout=30)
        finally:
            consortium.stop_all()

        # Assert
        assert codes == {1: 0, 2: 0}, _logs(consortium)
        assert sorted(proposed) == list(range(0, until_epoch, 3))
        decisions = dict(consortium.decisions())
        votes = consortium.vote_events()
        honest = {consortium.accounts[1].address, consortium.accounts[2].address}
        for (epoch, kind), (_, reason) in zip(sorted(proposed.items()), BAD_PROPOSALS):
            assert decisions[epoch] == "rejected", (epoch, kind)
            honest_votes = [v for v in votes if v.epoch == epoch and v.voter in honest]
            assert len(honest_votes) == 2, (epoch, kind)
            assert all(not v.approve and v.score == INVALID_PROPOSAL_SCORE for v in honest_votes), (epoch, kind)
            for i in (1, 2):
                rejections = [line for line in consortium.agents[i].log_text().splitlines()
                              if f"epoch {epoch}: rejecting proposal" in line]
                assert len(rejections) == 1 and reason in rejections[0], (i, kind, rejections)
        for i in (1, 2):
            assert "Traceback" not in consortium.agents[i].log_text()
        assert same_weights(consortium.final_weights(1), consortium.final_weights(2))


# ───────────────────────────────────────────── (c) killed mid-epoch, restarted: resumes, never votes twice


def _pause_when(consortium: Consortium, client: ChainClient, *, min_epoch: int, proposer: int,
                pause: List[int], ready: Callable[[int], bool], timeout: float = 60) -> int:
    """SIGSTOP the agents ``pause`` at the start of the first epoch >= ``min_epoch`` proposed by
    ``proposer`` in which none of them has voted yet; wait for ``ready(epoch)``; return the epoch."""
    addresses = [consortium.accounts[i].address for i in pause]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.epoch_state()
        if state.epoch < min_epoch or state.proposer != consortium.accounts[proposer].address:
            time.sleep(0.01)
            continue
        for i in pause:
            os.kill(consortium.agents[i].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        if client.current_epoch() == state.epoch and not any(client.has_voted(a) for a in addresses):
            _wait_for(lambda: ready(state.epoch), 15, f"epoch {state.epoch} to be ready")
            return state.epoch
        for i in pause:  # too late for this epoch: let them go and try the next one
            os.kill(consortium.agents[i].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        min_epoch = state.epoch + 1
    raise AssertionError("found no epoch to interrupt")


def _restart(consortium: Consortium, index: int, until_epoch: int) -> None:
    """SIGKILL agent ``index`` and start it again; return once it has resumed from the chain."""
    consortium.kill(index)
    runs_before = consortium.agents[index].log_text().count(" resumes at block ")
    consortium.start(index, until_epoch=until_epoch)
    _wait_for(lambda: consortium.agents[index].log_text().count(" resumes at block ") > runs_before, 30,
              f"agent {index} to resume")


def test_killed_agent_resumes_and_never_votes_twice(kubo_node: KuboNode, tmp_path: Path) -> None:
    # Prepare
    epochs = 9
    with AnvilNode() as anvil:
        consortium = Consortium(anvil.url, tmp_path, kubo_node.url, TOY, 3,
                                proposal_timeout=20, voting_timeout=20).setup()
        reference, learners = consortium.reference(epochs)
        client = consortium.client(0)
        me = consortium.accounts[1].address

        # Execute
        try:
            consortium.start_all(until_epoch=epochs)
            # 1. Agent 1 votes in an epoch that agent 2 (paused) keeps open; kill and restart agent 1.
            first = _pause_when(consortium, client, min_epoch=3, proposer=0, pause=[2],
                                ready=lambda e: client.has_voted(me))
            _restart(consortium, 1, epochs)
            os.kill(consortium.agents[2].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            # 2. Agent 1 as the proposer: kill it once its proposal is on chain (voted or not).
            second = _pause_when(consortium, client, min_epoch=first + 1, proposer=1, pause=[0, 2],
                                 ready=lambda e: client.epoch_state().phase == Phase.Voting)
            _restart(consortium, 1, epochs)
            for i in (0, 2):
                os.kill(consortium.agents[i].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            codes = consortium.wait(timeout=120)
        finally:
            for agent in consortium.agents:
                if agent.proc is not None and agent.proc.poll() is None:
                    os.kill(agent.proc.pid, signal.SIGCONT)
            consortium.stop_all()

        # Assert
        assert codes == {0: 0, 1: 0, 2: 0}, _logs(consortium)
        log1 = consortium.agents[1].log_text()
        assert re.search(rf"resumes at block \d+: epoch {first}, phase Voting, .* voted True", log1), log1
        assert re.search(rf"resumes at block \d+: epoch {second}, phase Voting", log1), log1
        pairs = [(v.epoch, v.voter) for v in consortium.vote_events()]
        assert len(pairs) == len(set(pairs)), "someone voted twice"
        assert "AlreadyVoted" not in log1
        assert consortium.decisions() == [(r.epoch, "accepted" if r.accepted else "rejected") for r in reference]
        for i in range(3):
            assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"


# ───────────────────────────────────────────── (d) a silent proposer: the epoch is skipped, the run goes on


def test_silent_proposer_epoch_is_skipped_and_the_run_goes_on(kubo_node: KuboNode, tmp_path: Path) -> None:
    # Prepare: learner 2's agent never starts, so epoch 2 has no proposal and no epoch has its vote.
    until_epoch = 4
    with AnvilNode() as anvil:
        consortium = Consortium(anvil.url, tmp_path, kubo_node.url, TOY, 3,
                                proposal_timeout=6, voting_timeout=3).setup()

        # Execute
        try:
            consortium.start_all(until_epoch=until_epoch, skip=[2])
            codes = consortium.wait(timeout=90)
        finally:
            consortium.stop_all()

        # Assert
        assert codes == {0: 0, 1: 0}, _logs(consortium)
        decisions = consortium.decisions()
        assert [epoch for epoch, _ in decisions] == [0, 1, 2, 3]
        assert decisions[2] == (2, "skipped")
        assert all(kind in ("accepted", "rejected") for epoch, kind in decisions if epoch != 2)
        votes = consortium.votes()
        assert all(set(votes[epoch]) == {0, 1} for epoch in (0, 1, 3))
        closes = sum(a.log_text().count("closed after its deadline") for a in consortium.agents[:2])
        assert closes == 4, _logs(consortium)  # each epoch closed once, by one of the keepers
        assert same_weights(consortium.final_weights(0), consortium.final_weights(1))
