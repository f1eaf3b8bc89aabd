"""Agents facing faults: bad proposals, a crash and restart, a proposer that never proposes, blobs that cannot
be fetched (yet) or adopted, a node that rate-limits or drops events.

Real Anvil, a real Kubo node, agents as `colearn-chain agent` processes. A misbehaving learner is
driven from the test with ChainClient (it signs with its own key like any learner), and processes are
paused with SIGSTOP to make interleavings deterministic: a paused agent cannot vote, so an epoch stays
open while another agent is killed and restarted. Node misbehaviour comes from a JSON-RPC proxy
(rpc_proxy.py) between the agents and Anvil. Where an interleaving must be exact (a vote that runs out
of gas, a proposer past its deadline, a restart before a vote is deep enough), one agent is stepped in
this process instead, with Anvil's mining paused or its clock moved (section g).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from store_proxy import StallingStoreProxy

from agent_harness import Consortium, same_weights
from colearn_chain.agent import INVALID_PROPOSAL_SCORE, Agent, AgentSettings, StateDir
from colearn_chain.chain.client import ChainClient, Phase
from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.events import (
    ChainEvent,
    EpochSkipped,
    LogCursor,
    ProposalAccepted,
    VoteCast,
    WeightsProposed,
)
from colearn_chain.codec import digest_hex, encode_weights
from colearn_chain.exceptions import ContractRevert
from colearn_chain.learners import make_learner
from colearn_chain.learners.toy import ToyLearner
from colearn_chain.services.anvil import AnvilNode, fund
from colearn_chain.services.kubo import KuboNode
from colearn_chain.store import LocalStore, WeightStore, from_url
from colearn_chain.store.unixfs import cid_v0
from colearn_chain.typing import Weights
from rpc_proxy import TRANSIENT_REFUSALS, RpcProxy

pytestmark = pytest.mark.slow

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
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
BAD_PROPOSALS: list[tuple[str, str]] = [
    ("tampered", "DigestMismatch"),
    ("missing", "CidNotFound"),
    ("oversized", "BlobTooLarge"),
    ("wrong-shape", "WeightsMismatch: tensor 'w': shape (5,), expected (4,)"),
    ("not-safetensors", "WeightsMismatch: not a safetensors blob"),
    ("non-finite", "NaN or infinite"),
]


def _bad_proposal(kind: str, store: WeightStore) -> tuple[str, str]:
    """(digest, cid) of a bad proposal of ``kind``; the blob is in the store unless it is "missing"."""
    if kind == "tampered":  # the store holds other bytes than the digest names
        blob = encode_weights({"w": np.full(4, 0.5)})
        return digest_hex(blob + b"tampered"), store.put(blob)
    if kind == "missing":  # a well-formed CID of bytes nobody stored
        blob = encode_weights({"w": np.full(4, 7.25)}) + os.urandom(8)
        return digest_hex(blob), cid_v0(blob)
    blobs = {
        # 80 KB: > MAX_BLOB_BYTES, and > the 4-float model's own size + 64 KiB (the cap without --max-blob-bytes)
        "oversized": encode_weights({"w": np.zeros(10_000)}),
        "wrong-shape": encode_weights({"w": np.zeros(5)}),
        "not-safetensors": b"\x80\x04\x95 this is not a safetensors header",
        "non-finite": encode_weights({"w": np.array([np.nan, 0.0, np.inf, 0.0])}),
    }
    blob = blobs[kind]
    return digest_hex(blob), store.put(blob)


def _drive_misbehaving_learner(
    client: ChainClient, store: WeightStore, until_epoch: int, timeout: float
) -> dict[int, str]:
    """Act as learner 0: propose a bad blob in each of its epochs, reject it, approve the others' proposals."""
    proposed: dict[int, str] = {}
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
    # Prepare: learner 0 is driven by the test; agents 1 and 2 are honest processes. Agent 1 caps blobs with
    # --max-blob-bytes; agent 2 relies on the default cap, its own model's size plus a little. The missing
    # blob is asked for again until the last 5 s of the 8 s voting window.
    until_epoch = 3 * len(BAD_PROPOSALS)
    with AnvilNode() as anvil:
        consortium = Consortium(anvil.url, tmp_path, kubo_node.url, TOY, 3, voting_timeout=8).setup()
        store = from_url(kubo_node.url)
        misbehaving = consortium.client(0)

        # Execute
        try:
            consortium.start(1, until_epoch=until_epoch, extra=("--max-blob-bytes", str(MAX_BLOB_BYTES)))
            consortium.start(2, until_epoch=until_epoch)
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
        for (epoch, kind), (_, reason) in zip(sorted(proposed.items()), BAD_PROPOSALS, strict=True):
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
                pause: list[int], ready: Callable[[int], bool], timeout: float = 60) -> int:
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
            _wait_for(functools.partial(ready, state.epoch), 15, f"epoch {state.epoch} to be ready")
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
    # Prepare: learner 2's agent never starts, so epoch 2 has no proposal and no epoch has its vote: every
    # epoch ends by a keeper's close. With a block every second, keepers that all closed at the deadline
    # would share a block and all but one pay for a revert.
    until_epoch = 4
    with AnvilNode(block_time=1) as anvil:
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
        assert consortium.failed_transactions() == [], _logs(consortium)  # and no keeper paid for a lost race
        assert same_weights(consortium.final_weights(0), consortium.final_weights(1))


# ───────────────────────────────────────────── (e) blobs that cannot be fetched yet, or adopted at all


def _blob() -> Weights:
    """Toy weights no other test stored (the Kubo node is shared by the session)."""
    return {"w": np.random.default_rng(int.from_bytes(os.urandom(8), "big")).normal(size=4)}


def _wait_log(consortium: Consortium, index: int, text: str, timeout: float = 30) -> None:
    _wait_for(lambda: text in consortium.agents[index].log_text(), timeout, f"agent {index} to log {text!r}")


def _agent_vote(consortium: Consortium, index: int, epoch: int) -> VoteCast | None:
    voter = consortium.accounts[index].address
    return next((e for e in consortium.vote_events() if e.epoch == epoch and e.voter == voter), None)


def _start_epoch(client: ChainClient, epoch: int, timeout: float = 30) -> None:
    _wait_for(lambda: client.current_epoch() >= epoch, timeout, f"epoch {epoch}")


def test_a_proposal_not_fetchable_yet_is_asked_for_again_until_the_deadline_nears(
    kubo_node: KuboNode, tmp_path: Path
) -> None:
    # Prepare: learners 0 and 1 are played by the test, agent 2 runs. Voting lasts 10 s; an unfetchable
    # proposal is rejected only in its last 5 s.
    with AnvilNode() as anvil:
        consortium = Consortium(
            anvil.url, tmp_path, kubo_node.url, TOY, 3, proposal_timeout=30, voting_timeout=10
        ).setup()
        store = from_url(kubo_node.url)
        clients = [consortium.client(0), consortium.client(1)]
        late, never = encode_weights(_blob()), encode_weights(_blob())

        # Execute
        try:
            consortium.start(2, until_epoch=2)
            _wait_log(consortium, 2, " resumes at block ")
            # Epoch 0: the blob reaches the store only after the agent first failed to fetch it.
            clients[0].propose(0, digest_hex(late), cid_v0(late))
            for client in clients:
                client.vote(0, True, 1)
            _wait_log(consortium, 2, "epoch 0: cannot fetch proposal")
            store.put(late)
            _start_epoch(clients[0], 1)
            # Epoch 1: the blob never comes; the agent rejects it near the deadline, then adopts it once stored.
            clients[1].propose(1, digest_hex(never), cid_v0(never))
            voting_deadline = clients[0].epoch_state().deadline
            for client in clients:
                client.vote(1, True, 1)
            _start_epoch(clients[0], 2)
            store.put(never)
            codes = consortium.wait(timeout=30)
        finally:
            consortium.stop_all()

        # Assert
        assert codes == {2: 0}, _logs(consortium)
        tested, refused = _agent_vote(consortium, 2, 0), _agent_vote(consortium, 2, 1)
        assert tested is not None and tested.score != INVALID_PROPOSAL_SCORE  # tested, once the blob came
        assert refused is not None and not refused.approve and refused.score == INVALID_PROPOSAL_SCORE
        mined_at = int(clients[0].w3.eth.get_block(refused.meta.block_number)["timestamp"])
        assert voting_deadline - 5 <= mined_at < voting_deadline, (mined_at, voting_deadline)
        evaluations = StateDir(consortium.agents[2].state_dir).evaluations()
        assert evaluations[0]["reason"] is None and "CidNotFound" in evaluations[1]["reason"]
        assert consortium.decisions() == [(0, "accepted"), (1, "accepted")]
        saved = StateDir(consortium.agents[2].state_dir).current()
        assert saved is not None and saved.digest == digest_hex(never)
        assert "Traceback" not in consortium.agents[2].log_text()


def test_a_fetch_that_hangs_does_not_stop_the_agent_closing_epochs_or_voting_in_time(
    kubo_node: KuboNode, tmp_path: Path
) -> None:
    # Prepare: learners 0 and 1 are played by the test, agent 2 runs with its store behind a proxy that holds
    # every fetch of one CID for 25 s, as a Kubo node looking for a blob no reachable peer has. Voting lasts
    # 8 s (an unjudged proposal is rejected in its last 5 s); an epoch without a proposal may be closed after 4 s.
    hold = 25.0
    with AnvilNode() as anvil, StallingStoreProxy(kubo_node.url, hold=hold) as proxy:
        consortium = Consortium(anvil.url, tmp_path, proxy.url, TOY, 3, proposal_timeout=4, voting_timeout=8).setup()
        store = from_url(kubo_node.url)
        clients = [consortium.client(0), consortium.client(1)]
        unreachable = encode_weights(_blob())
        cid = cid_v0(unreachable)
        proxy.stalled.add(cid)

        # Execute
        try:
            consortium.start(2, until_epoch=3)
            _wait_log(consortium, 2, " resumes at block ")
            # Epoch 0: accepted by learners 0 and 1; the agent's fetch of the proposal hangs.
            clients[0].propose(0, digest_hex(unreachable), cid)
            voting_deadline = clients[0].epoch_state().deadline
            for client in clients:
                client.vote(0, True, 1)
            _wait_for(lambda: bool(proxy.held), 10, "the agent's fetch to be held")
            first_held = time.monotonic()
            # Epoch 1: learner 1 proposes nothing; only the agent, still waiting on the store, can close both.
            _start_epoch(clients[0], 2, timeout=hold - 5)
            closed_while_held = time.monotonic() - first_held < hold and cid in proxy.stalled
            store.put(unreachable)
            proxy.stalled.discard(cid)  # the network finds the blob: the held fetches complete
            # Epoch 2: the agent's own proposal, once it has adopted epoch 0's model.
            _wait_for(lambda: clients[0].epoch_state().phase == Phase.Voting, 30, "the agent's proposal")
            for client in clients:
                client.vote(2, True, 1)
            codes = consortium.wait(timeout=30)
        finally:
            consortium.stop_all()

        # Assert
        log2 = consortium.agents[2].log_text()
        assert codes == {2: 0}, log2[-4000:]
        assert closed_while_held, log2[-4000:]
        refused = _agent_vote(consortium, 2, 0)
        assert refused is not None and not refused.approve and refused.score == INVALID_PROPOSAL_SCORE
        mined_at = int(clients[0].w3.eth.get_block(refused.meta.block_number)["timestamp"])
        assert voting_deadline - 5 <= mined_at < voting_deadline, (mined_at, voting_deadline)
        reason = StateDir(consortium.agents[2].state_dir).evaluations()[0]["reason"]
        assert "not judged" in reason and "before the voting deadline" in reason, reason
        assert re.search(r"epoch 0: rejecting proposal .*not judged", log2), log2[-4000:]
        events = consortium.events()
        closers = {e.epoch: clients[0].w3.eth.get_transaction(e.meta.tx_hash)["from"]
                   for e in events if isinstance(e, (ProposalAccepted, EpochSkipped)) and e.epoch < 2}
        assert closers == {0: consortium.accounts[2].address, 1: consortium.accounts[2].address}
        assert consortium.decisions() == [(0, "accepted"), (1, "skipped"), (2, "accepted")]
        assert f"adopted {digest_hex(unreachable)}" in log2
        saved = StateDir(consortium.agents[2].state_dir).current()
        assert saved is not None and saved.since_epoch == 3
        assert "Traceback" not in log2


def test_an_accepted_model_is_adopted_once_fetchable_and_an_unadoptable_one_stops_the_agent(
    kubo_node: KuboNode, tmp_path: Path
) -> None:
    # Prepare: learners 0 and 1 are played by the test (learner 1 never proposes), agent 2 runs. Short
    # windows: an unfetchable proposal is rejected at once, an empty epoch can be closed after 4 s.
    with AnvilNode() as anvil:
        consortium = Consortium(
            anvil.url, tmp_path, kubo_node.url, TOY, 3, proposal_timeout=4, voting_timeout=4
        ).setup()
        store = from_url(kubo_node.url)
        clients = [consortium.client(0), consortium.client(1)]
        missing = encode_weights(_blob())
        tampered = encode_weights({"w": np.full(4, 0.25)})
        tampered_digest, tampered_cid = digest_hex(tampered + b"!"), store.put(tampered)

        # Execute
        try:
            consortium.start(2, until_epoch=None)
            _wait_log(consortium, 2, " resumes at block ")
            # Epoch 0: accepted by the majority while its blob is nowhere: the agent cannot adopt it yet.
            clients[0].propose(0, digest_hex(missing), cid_v0(missing))
            for client in clients:
                client.vote(0, True, 1)
            _start_epoch(clients[0], 1)
            # Epoch 1: nobody proposes; only the blocked agent can close it.
            _start_epoch(clients[0], 2, timeout=30)
            store.put(missing)
            # Epoch 2: the agent's own proposal; epoch 3: the majority accepts a blob that is not what it claims.
            _wait_for(lambda: clients[0].epoch_state().phase == Phase.Voting, 30, "the agent's proposal")
            for client in clients:
                client.vote(2, True, 1)
            _start_epoch(clients[0], 3)
            clients[0].propose(3, tampered_digest, tampered_cid)
            for client in clients:
                client.vote(3, True, 1)
            codes = consortium.wait(timeout=30)
        finally:
            consortium.stop_all()

        # Assert
        log2 = consortium.agents[2].log_text()
        events = consortium.events()
        skip = next(e for e in events if isinstance(e, EpochSkipped))
        assert skip.epoch == 1
        assert clients[0].w3.eth.get_transaction(skip.meta.tx_hash)["from"] == consortium.accounts[2].address
        accepted = [e.epoch for e in events if isinstance(e, ProposalAccepted)]
        assert accepted == [0, 2, 3]
        assert f"adopted {digest_hex(missing)}" in log2  # once it could be fetched
        assert codes == {2: 2}, log2[-4000:]
        error = next(line for line in log2.splitlines() if " ERROR " in line)
        assert "epoch 3" in error and tampered_digest in error and tampered_cid in error and "DigestMismatch" in error
        assert "What to do" in error
        assert "Traceback" not in log2


# ───────────────────────────────────────────── (f) a node that rate-limits, lags, errs, or drops events


def test_agents_ride_out_rate_limits_lagging_and_failing_rpc_calls(kubo_node: KuboNode, tmp_path: Path) -> None:
    # Prepare: every agent talks to Anvil through a proxy that refuses about one request in ten: rate
    # limits (HTTP 429, JSON-RPC -32005) and a load-balanced node behind its peers (retried in the call),
    # and, once the agents run, plain internal errors (the step fails, the next poll tries again).
    epochs = 4
    transient = list(TRANSIENT_REFUSALS)
    internal: dict[str, Any] = {"error": {"code": -32603, "message": "internal error"}}
    rng = random.Random(7)
    running = False
    injected: dict[str, int] = {"transient": 0, "internal": 0}

    def fault(request: dict[str, Any]) -> int | dict[str, Any] | None:
        if rng.random() >= 0.1:
            return None
        kind = "internal" if running and rng.random() < 0.3 else "transient"
        injected[kind] += 1
        return internal if kind == "internal" else rng.choice(transient)

    with AnvilNode() as anvil, RpcProxy(anvil.url) as proxy:
        consortium = Consortium(anvil.url, tmp_path, kubo_node.url, TOY, 3, agent_rpc_url=proxy.url).setup()
        reference, learners = consortium.reference(epochs)
        proxy.fault = fault

        # Execute
        try:
            consortium.start_all(until_epoch=epochs)
            for i in range(3):
                _wait_log(consortium, i, " resumes at block ")
            running = True
            codes = consortium.wait(timeout=90)
        finally:
            consortium.stop_all()

        # Assert
        assert codes == {0: 0, 1: 0, 2: 0}, _logs(consortium)
        assert injected["transient"] >= 10 and injected["internal"] >= 3, injected
        assert consortium.decisions() == [(r.epoch, "accepted" if r.accepted else "rejected") for r in reference]
        for i in range(3):
            assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"
            assert "Traceback" not in consortium.agents[i].log_text()


def test_events_a_node_failed_to_return_are_noticed_and_the_model_repaired(kubo_node: KuboNode, tmp_path: Path) -> None:
    # Prepare: agent 2 reads the chain through a node that answers every eth_getLogs with nothing.
    with AnvilNode() as anvil, RpcProxy(anvil.url) as proxy:
        consortium = Consortium(anvil.url, tmp_path, kubo_node.url, TOY, 3, proposal_timeout=60, voting_timeout=2,
                                agent_rpc_url=proxy.url).setup()
        store = from_url(kubo_node.url)
        clients = [consortium.client(0), consortium.client(1)]
        proxy.fault = lambda request: {"result": []} if request.get("method") == "eth_getLogs" else None
        weights = _blob()
        blob = encode_weights(weights)

        # Execute: epoch 0 is accepted without the agent hearing of it.
        try:
            consortium.start(2, until_epoch=None)
            _wait_log(consortium, 2, " resumes at block ")
            clients[0].propose(0, digest_hex(blob), store.put(blob))
            for client in clients:
                client.vote(0, True, 1)
            deadline = clients[0].epoch_state().deadline
            _wait_for(lambda: clients[0].current_epoch() > 0 or clients[0].pending_timestamp() >= deadline, 10,
                      "the voting deadline")
            if clients[0].current_epoch() == 0:
                try:
                    clients[0].close(0)
                except ContractRevert as error:  # the agent, noticing the proposal late, voted last
                    assert error.name == "WrongEpoch", error
            state = StateDir(consortium.agents[2].state_dir)
            _wait_for(lambda: getattr(state.current(), "digest", None) == digest_hex(blob), 20, "the model repaired")
        finally:
            consortium.stop_all()

        # Assert
        assert consortium.decisions() == [(0, "accepted")]
        assert same_weights(consortium.final_weights(2), weights)
        log2 = consortium.agents[2].log_text()
        assert "events were missed" in log2 and "Traceback" not in log2
        assert consortium.agents[2].proc is not None and consortium.agents[2].proc.returncode == 0


# ───────────────────────────────────────────── (g) one agent stepped in this process, for exact interleavings
#
# The other learners are played by the test with their own keys, and the chain is steered with Anvil's own
# controls (pause mining, mine a block, move the clock), so a vote that runs out of gas, a proposer that is
# too late, or a restart before a vote is deep enough happens every time, not by chance. The weight store
# is a local directory: what is tested here is the agent's reaction, not the store.

GWEI = 10**9


@dataclass
class Chain:
    url: str
    accounts: list[LocalAccount]
    clients: list[ChainClient]
    deployment: Deployment
    store: LocalStore

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.clients[0].w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response["result"]

    def pool_size(self) -> int:
        return int(self.rpc("txpool_status")["pending"], 16)

    def events(self) -> list[ChainEvent]:
        return LogCursor(self.clients[0].w3, self.deployment.address, start_block=self.deployment.block).poll()

    def propose(self, index: int, epoch: int) -> str:
        """Learner ``index`` proposes its toy learner's next weights (stored); return the digest."""
        blob = encode_weights(ToyLearner(index).propose_weights())
        self.clients[index].propose(epoch, digest_hex(blob), self.store.put(blob))
        return digest_hex(blob)

    def agent(self, index: int, tmp_path: Path, *, client: ChainClient | None = None, **settings: Any) -> Agent:
        client = client or ChainClient(self.url, self.accounts[index], self.deployment.address)
        learner = make_learner({**TOY, "n_learners": len(self.accounts)}, index)
        defaults: dict[str, Any] = {"poll_interval": 0.05, "start_block": self.deployment.block}
        return Agent(
            client, self.store, learner, StateDir(tmp_path / f"agent{index}"), AgentSettings(**{**defaults, **settings})
        )


@pytest.fixture()
def anvil() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


def _deploy_in_process(
    url: str, tmp_path: Path, *, n: int = 3, proposal_timeout: int = 30, voting_timeout: int = 30
) -> Chain:
    accounts = [Account.create() for _ in range(n)]
    fund(url, [a.address for a in accounts])
    store = LocalStore(tmp_path / "blobs")
    initial = encode_weights(ToyLearner(0).current_weights())
    deployment = ChainClient(url, accounts[0]).deploy(
        [a.address for a in accounts], 5000, proposal_timeout, voting_timeout, True,
        digest_hex(initial), store.put(initial),
    )
    return Chain(url, accounts, [ChainClient(url, a, deployment.address) for a in accounts], deployment, store)


def _step_until(agent: Agent, condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        agent.step()
        time.sleep(agent.settings.poll_interval)


def _votes_of(chain: Chain, index: int, epoch: int) -> list[VoteCast]:
    voter = chain.accounts[index].address
    return [e for e in chain.events() if isinstance(e, VoteCast) and e.voter == voter and e.epoch == epoch]


def test_a_vote_that_ran_out_of_gas_is_sent_again(anvil: AnvilNode, tmp_path: Path) -> None:
    # Prepare: learner 0 proposed and voted. Learner 2's agent signs with exact gas estimates (no margin).
    chain = _deploy_in_process(anvil.url, tmp_path)
    chain.propose(0, 0)
    chain.clients[0].vote(0, True, 1)
    exact = ChainClient(
        anvil.url, chain.accounts[2], chain.deployment.address, gas_margin=0, gas_extra=0, priority_fee=GWEI
    )
    agent = chain.agent(2, tmp_path, client=exact)
    agent.start()
    learner1 = ChainClient(anvil.url, chain.accounts[1], chain.deployment.address, priority_fee=2 * GWEI)
    chain.rpc("evm_setAutomine", False)
    before = chain.clients[0].block_number()

    # Execute: the agent's vote (estimated as the 2nd of 3) and learner 1's (tipping more, so mined first)
    # share a block: the agent's becomes the 3rd, pays for deciding the epoch, and runs out of gas. The
    # agent steps until its vote is mined (it judges the proposal beside the loop first).
    stepping = threading.Thread(
        target=lambda: _step_until(agent, lambda: chain.clients[0].block_number() > before, "the agent's vote")
    )
    stepping.start()
    _wait_for(lambda: chain.pool_size() == 1, 10, "the agent's vote in the pool")
    voting = threading.Thread(target=lambda: learner1.vote(0, True, 1))
    voting.start()
    _wait_for(lambda: chain.pool_size() == 2, 10, "learner 1's vote in the pool")
    chain.rpc("evm_mine")
    stepping.join(timeout=30)
    voting.join(timeout=30)
    chain.rpc("evm_setAutomine", True)
    failed_block = chain.clients[0].block_number()
    _step_until(agent, lambda: chain.clients[0].current_epoch() == 1, "the epoch to be decided")

    # Assert: the lost vote was sent again and decided the epoch, long before the voting deadline.
    votes = _votes_of(chain, 2, 0)
    assert len(votes) == 1 and votes[0].meta.block_number > failed_block
    accepted = [e for e in chain.events() if isinstance(e, ProposalAccepted)]
    assert [e.meta.tx_hash for e in accepted] == [votes[0].meta.tx_hash]


class _SlowLearner:
    """A toy learner whose training takes longer than the proposal window (the chain's clock jumps)."""

    def __init__(self, inner: Any, chain: Chain, seconds: int) -> None:
        self._inner, self._chain, self._seconds = inner, chain, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def propose_weights(self) -> Any:
        self._chain.rpc("evm_increaseTime", self._seconds)
        return self._inner.propose_weights()


def test_a_proposer_past_its_deadline_does_not_count_a_proposal(anvil: AnvilNode, tmp_path: Path) -> None:
    # Prepare: one learner, so it proposes in every epoch.
    chain = _deploy_in_process(anvil.url, tmp_path, n=1, proposal_timeout=20, voting_timeout=20)
    agent = chain.agent(0, tmp_path)
    toy = agent.learner.inner
    slow = _SlowLearner(agent.learner, chain, 60)
    chain.rpc("evm_increaseTime", 60)  # epoch 0's proposal deadline passes before the agent starts

    # Execute: epoch 0 is already too late; in epoch 1 training outlasts the deadline.
    agent.start()
    _step_until(agent, lambda: chain.clients[0].current_epoch() == 1, "epoch 0 to be skipped")
    agent.learner = slow  # type: ignore[assignment]
    _step_until(agent, lambda: chain.clients[0].current_epoch() == 2, "epoch 1 to be skipped")

    # Assert: no proposal reached the chain, so the learner counts none (a restart would count none).
    events = chain.events()
    assert [e.epoch for e in events if isinstance(e, EpochSkipped)] == [0, 1]
    assert not [e for e in events if isinstance(e, WeightsProposed)]
    assert isinstance(toy, ToyLearner) and toy.proposals_made == 0


def test_restart_with_confirmations_sees_a_vote_not_yet_deep_enough(
    anvil: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the agent acts on events 2 blocks deep; it votes, and is restarted before its vote is that deep.
    chain = _deploy_in_process(anvil.url, tmp_path)
    chain.propose(0, 0)
    chain.rpc("anvil_mine", 2)  # instant mining makes no blocks of its own
    first = chain.agent(1, tmp_path, confirmations=2)
    first.start()
    _step_until(first, lambda: bool(_votes_of(chain, 1, 0)), "the first vote")
    caplog.set_level(logging.INFO, logger="colearn_chain")
    caplog.clear()

    # Execute
    second = chain.agent(1, tmp_path, confirmations=2)
    second.start()
    chain.rpc("anvil_mine", 3)
    for _ in range(5):
        second.step()

    # Assert: it knew it had voted, so it did not even try again.
    assert any("voted True" in r.getMessage() for r in caplog.records), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "AlreadyVoted" not in caplog.text
    assert len(_votes_of(chain, 1, 0)) == 1


def test_a_vote_already_cast_elsewhere_is_routine(
    anvil: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the agent lags 2 blocks; the same key votes through another client (a vote sent before a crash).
    chain = _deploy_in_process(anvil.url, tmp_path)
    chain.propose(0, 0)
    chain.rpc("anvil_mine", 2)
    agent = chain.agent(2, tmp_path, confirmations=2)
    agent.start()
    chain.clients[2].vote(0, False, 0)
    caplog.set_level(logging.INFO, logger="colearn_chain")
    caplog.clear()

    # Execute: step until the agent has tried to vote (it judges the proposal beside the loop), then some more
    _step_until(agent, lambda: "AlreadyVoted" in caplog.text, "the agent's vote attempt")
    for _ in range(3):
        agent.step()

    # Assert: one attempt, logged as routine, not repeated.
    already = [r for r in caplog.records if "AlreadyVoted" in r.getMessage()]
    assert len(already) == 1 and already[0].levelno == logging.INFO, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert chain.clients[0].epoch_state().phase == Phase.Voting


def test_an_agent_waiting_for_its_node_to_reach_the_deployment_can_be_stopped(
    anvil: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the agent trusts only blocks 1000 deep, so the young chain never reaches the deployment for it
    chain = _deploy_in_process(anvil.url, tmp_path)
    agent = chain.agent(1, tmp_path, confirmations=1000)
    caplog.set_level(logging.INFO, logger="colearn_chain")
    returned: list[int] = []
    runner = threading.Thread(target=lambda: returned.append(agent.run()), daemon=True)
    runner.start()
    deadline = time.monotonic() + 10
    while "waiting for the node" not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.05)

    # Execute
    agent.stop()
    runner.join(timeout=10)

    # Assert: it said why it waited, and stopping it ended run() cleanly
    assert not runner.is_alive()
    assert returned == [0]
    waits = [r.getMessage() for r in caplog.records if "waiting for the node" in r.getMessage()]
    assert len(waits) == 1 and f"deployment's block {chain.deployment.block}" in waits[0]


def _hold_the_only_slot(agent: Agent) -> threading.Event:
    """Fill ``agent``'s one fetch slot with a job it gave up on (a peer's blob that trickles) until the event is set."""
    release = threading.Event()
    held = ("judge", "a fetch given up on")
    assert agent._jobs.submit(held, lambda cancelled: release.wait(60))
    agent._jobs.abandon(lambda key: key != held)
    return release


def test_a_proposal_whose_fetch_cannot_start_gets_a_reject_before_the_deadline(
    anvil: AnvilNode, tmp_path: Path
) -> None:
    # Prepare: learner 0 proposes; agent 2 has one fetch slot, held by a job it gave up on that will not end
    # soon (as a fetch from a store that trickles its answer). Voting lasts 10 s: the give-up time is 5 s before.
    chain = _deploy_in_process(anvil.url, tmp_path, voting_timeout=10)
    agent = chain.agent(2, tmp_path, max_fetches=1)
    agent.start()
    _step_until(agent, lambda: agent._jobs.busy() == 0, "the agent's pin of the initial model")
    release = _hold_the_only_slot(agent)
    chain.propose(0, 0)
    voting_deadline = chain.clients[0].epoch_state().deadline

    # Execute
    try:
        _step_until(agent, lambda: bool(_votes_of(chain, 2, 0)), "the agent's vote")
    finally:
        release.set()

    # Assert: a reject, cast in the give-up window before the deadline, saying why nothing was tested
    (refused,) = _votes_of(chain, 2, 0)
    assert not refused.approve and refused.score == INVALID_PROPOSAL_SCORE
    mined_at = int(chain.clients[0].w3.eth.get_block(refused.meta.block_number)["timestamp"])
    assert voting_deadline - 5 <= mined_at < voting_deadline, (mined_at, voting_deadline)
    reason = StateDir(tmp_path / "agent2").evaluations()[0]["reason"]
    assert "could not start fetching: 1 fetches still running" in reason, reason


def test_a_proposer_whose_fetch_slots_are_all_held_still_tests_its_own_proposal(
    anvil: AnvilNode, tmp_path: Path
) -> None:
    # Prepare: learner 0 proposes in epoch 0; its one fetch slot is held by a fetch it gave up on (a peer's
    # blob that trickles), so no fetch can start. Its own proposal's blob is at hand and needs none.
    chain = _deploy_in_process(anvil.url, tmp_path, voting_timeout=10)
    agent = chain.agent(0, tmp_path, max_fetches=1)
    release = _hold_the_only_slot(agent)
    agent.start()

    # Execute
    try:
        _step_until(agent, lambda: bool(_votes_of(chain, 0, 0)), "the proposer's vote on its own proposal")
        busy = agent._jobs.busy()
    finally:
        release.set()

    # Assert: tested, and judged as its learner judges it (the toy's first proposal happens to miss its own
    # target), not rejected for want of a slot
    own = make_learner({**TOY, "n_learners": 3}, 0)
    expected = own.test_weights(own.propose_weights())
    (vote,) = _votes_of(chain, 0, 0)
    assert vote.score != INVALID_PROPOSAL_SCORE and vote.approve == expected.vote, vote
    assert busy >= 1  # the slot was still held when the vote went out
    evaluation = StateDir(tmp_path / "agent0").evaluations()[0]
    assert evaluation["reason"] is None and evaluation["vote_score"] == expected.vote_score, evaluation
