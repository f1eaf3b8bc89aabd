"""Reorganisations with real agents on a real Anvil (a block a second; `anvil_reorg` replaces the newest blocks
with empty ones and drops their transactions, as a chain that does not replay them would).

The test follows the chain itself and, the moment the target event (a proposal, a vote, an accept, or the
outcome of a keeper's close) is mined, replaces the newest 1 or 3 blocks. Then:

* agents with 0 confirmations notice (their logs say what was taken back), send a removed proposal or
  vote again, and end with exactly the reference driver's decisions, votes and weights;
* agents with confirmations deeper than the reorganisation never read the vanished event at all (no log
  line names its transaction), send their own vanished transaction again, and end the same way;
* the keeper that closed an epoch whose close vanished closes it again, and no close is ever paid twice:
  the chain holds one successful close per epoch and no failed one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound

from agent_harness import Consortium, same_weights
from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.events import (
    ChainEvent,
    EpochSkipped,
    LogCursor,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
)
from colearn_chain.chain.follow import ChainFollower
from colearn_chain.chain.reorg import Removed, ReorgAwareCursor
from colearn_chain.services.anvil import AnvilNode, fund

pytestmark = pytest.mark.slow

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
EPOCHS = 4
#: Confirmations deeper than the deepest reorganisation here.
DEEP = 4
KINDS: dict[str, type] = {"proposal": WeightsProposed, "vote": VoteCast, "accept": ProposalAccepted}


def _logs(consortium: Consortium) -> str:
    return "\n".join(f"== agent {a.index} ==\n{a.log_text()[-5000:]}" for a in consortium.agents)


def _reorg_at(
    consortium: Consortium, target: Callable[[ChainEvent], bool], depth: int, *, settle: float = 0.0,
    timeout: float = 120,
) -> ChainEvent:
    """Wait for the first event ``target`` accepts, ``settle`` seconds more (agents with 0 confirmations read it
    meanwhile: they poll every 0.1 s, and the next block comes a second later), then replace the newest
    ``depth`` blocks (its own included)."""
    assert consortium.deployment is not None
    w3 = consortium.client().w3
    cursor = LogCursor(w3, consortium.deployment.address, start_block=consortium.deployment.block)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in cursor.poll():
            if target(event):
                time.sleep(settle)
                head = w3.eth.block_number
                assert head - event.meta.block_number < depth, "the target sank too deep before the reorganisation"
                w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[arg-type]
                replaced = w3.eth.get_block(event.meta.block_number)
                assert Web3.to_hex(replaced["hash"]) != event.meta.block_hash  # type: ignore[arg-type]
                return event
        time.sleep(0.02)
    raise AssertionError(f"no target event within {timeout} s:\n{_logs(consortium)}")


def _canonical(w3: Web3, tx_hash: str) -> bool:
    try:
        w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    return True


def _finish(consortium: Consortium) -> dict[int, int | None]:
    """Wait for the agents to reach their last epoch; stop whatever still runs."""
    try:
        return consortium.wait(timeout=240)
    finally:
        consortium.stop_all()


#: The first four bytes of a close(uint256) call.
CLOSE_SELECTOR = Web3.keccak(text="close(uint256)")[:4]


# Confirmations deeper than the reorganisation are tried at its deepest only: a block a second makes each such
# case last about 48 s, and a shallower one adds nothing the deeper one does not cover.
@pytest.mark.parametrize(("depth", "confirmations"), [(1, 0), (3, 0), (3, DEEP)],
                         ids=["depth-1-confirmations-0", "depth-3-confirmations-0", f"depth-3-confirmations-{DEEP}"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_removed_event_is_noticed_and_the_agents_still_decide_as_the_reference(
    tmp_path: Path, kind: str, depth: int, confirmations: int
) -> None:
    _removed_event_case(tmp_path, kind, depth, confirmations, per_process=1)


@pytest.mark.parametrize(("kind", "depth"), [("proposal", 1), ("accept", 3)],
                         ids=["proposal-depth-1", "accept-depth-3"])
def test_agents_sharing_one_follower_take_back_a_removed_event_and_decide_as_the_reference(
    tmp_path: Path, kind: str, depth: int
) -> None:
    """All four agents in one `colearn-chain agents` process: they read the chain through one follower's log
    cache, which must not serve them the dropped block's logs again."""
    _removed_event_case(tmp_path, kind, depth, 0, per_process=4)


def _removed_event_case(tmp_path: Path, kind: str, depth: int, confirmations: int, *, per_process: int) -> None:
    # Prepare: 4 learners under the colearn variant (the proposer does not vote), a block a second
    with AnvilNode(block_time=1) as anvil:
        # Deadlines long enough that a proposal or vote sent again (after retraining) lands before them.
        consortium = Consortium(anvil.url, tmp_path, f"local:{tmp_path / 'blobs'}", TOY, 4, proposer_votes=False,
                                proposal_timeout=30, voting_timeout=30)
        consortium.setup()
        reference, learners = consortium.reference(EPOCHS)
        accepted = [r.epoch for r in reference if r.accepted and r.epoch >= 1]
        assert accepted, "the run must accept a proposal after epoch 0"
        epoch = accepted[0] if kind == "accept" else 1
        extra = ("--confirmations", str(confirmations))
        if per_process > 1:
            consortium.start_group(range(consortium.n), until_epoch=EPOCHS, extra=extra)
        else:
            for i in range(consortium.n):
                consortium.start(i, until_epoch=EPOCHS, extra=extra)

        # Execute
        try:
            vanished = _reorg_at(
                consortium, lambda e: isinstance(e, KINDS[kind]) and e.epoch == epoch,  # type: ignore[attr-defined]
                depth, settle=0.5 if confirmations == 0 else 0.0,
            )
        finally:
            codes = _finish(consortium)
        assert all(code == 0 for code in codes.values()), _logs(consortium)

        # Assert: the event is gone from the chain, and the run still is the reference's run
        w3 = consortium.client().w3
        assert not _canonical(w3, vanished.meta.tx_hash)
        assert consortium.decisions() == [
            (r.epoch, "accepted" if r.accepted else "rejected") for r in reference
        ], _logs(consortium)
        assert consortium.votes() == {
            r.epoch: {j: f for j, f in enumerate(r.vote_flags) if f is not None} for r in reference
        }
        for i in range(consortium.n):
            assert same_weights(consortium.final_weights(i), learners[i].current_weights()), f"agent {i}"
        again = [e for e in consortium.events() if type(e) is type(vanished) and e.epoch == epoch  # type: ignore[attr-defined]
                 and getattr(e, "voter", None) == getattr(vanished, "voter", None)]
        assert len(again) == 1 and again[0].meta.tx_hash != vanished.meta.tx_hash  # sent again, in a new transaction
        seen = f"(tx {vanished.meta.tx_hash})"
        texts = [a.log_text() for a in consortium.agents]
        if confirmations == 0:
            # Every agent read the event, and every agent took it back.
            assert all(f"a reorganisation removed {type(vanished).__name__}" in t for t in texts), _logs(consortium)
            if kind != "vote":  # (votes are logged at debug level only)
                # ... and never read it again (a log cache keyed by block number served it once more).
                said = {"proposal": " proposed ", "accept": " accepted: "}[kind]
                assert all(sum(seen in line and said in line for line in t.splitlines()) == 1 for t in texts), \
                    _logs(consortium)
        else:
            # No agent ever read it, so none acted on it (and none had anything to take back).
            assert not any(seen in t for t in texts), _logs(consortium)
            assert not any("a reorganisation removed" in t for t in texts)
        for text in texts:
            assert "Traceback" not in text and " ERROR " not in text, text[-4000:]


@pytest.mark.parametrize("depth", [1, 3], ids=["depth-1", "depth-3"])
def test_a_keeper_whose_close_vanished_closes_again_and_never_pays_twice(tmp_path: Path, depth: int) -> None:
    # Prepare: learner 2 never runs, so every epoch ends by a keeper's close (skipped or decided at the deadline)
    with AnvilNode(block_time=1) as anvil:
        consortium = Consortium(anvil.url, tmp_path, f"local:{tmp_path / 'blobs'}", TOY, 3,
                                proposal_timeout=5, voting_timeout=5)
        consortium.setup()
        until = 3
        for i in (0, 1):
            consortium.start(i, until_epoch=until)
        w3 = consortium.client().w3

        def closed_by_keeper(event: ChainEvent) -> bool:
            if not isinstance(event, (ProposalAccepted, ProposalRejected, EpochSkipped)):
                return False
            return bytes(w3.eth.get_transaction(event.meta.tx_hash)["input"])[:4] == CLOSE_SELECTOR  # type: ignore[arg-type]

        # Execute
        try:
            vanished = _reorg_at(consortium, closed_by_keeper, depth, settle=0.5)
        finally:
            codes = _finish(consortium)

        # Assert: the vanished close is not on the chain; each epoch was closed by exactly one successful close
        assert codes == {0: 0, 1: 0}, _logs(consortium)
        assert not _canonical(w3, vanished.meta.tx_hash)
        outcomes = [e for e in consortium.events() if isinstance(e, (ProposalAccepted, ProposalRejected, EpochSkipped))]
        assert [e.epoch for e in outcomes] == list(range(until)), _logs(consortium)
        closes: list[tuple[str, int]] = []
        assert consortium.deployment is not None
        for number in range(consortium.deployment.block, w3.eth.block_number + 1):
            for tx_hash in w3.eth.get_block(number)["transactions"]:
                tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
                if tx["to"] == consortium.deployment.address and bytes(tx["input"])[:4] == CLOSE_SELECTOR:
                    closes.append((Web3.to_hex(tx_hash), w3.eth.get_transaction_receipt(tx_hash)["status"]))  # type: ignore[arg-type]
        assert [status for _, status in closes] == [1] * until, closes
        assert {tx for tx, _ in closes} == {e.meta.tx_hash for e in outcomes}


# ───────────────────────────────────────────── the shared follower's log cache (what `agents` processes read)


def _until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def _names(items: list[Any]) -> list[str]:
    return [f"-{type(i.event).__name__}" if isinstance(i, Removed) else type(i).__name__ for i in items]


def test_cursors_sharing_a_follower_never_read_a_dropped_blocks_logs_from_its_cache() -> None:
    # Prepare: three learners, one proposal and three votes (a block each); two cursors read through one
    # follower, as the agents of one `colearn-chain agents` process do; A has read everything, B nothing yet
    with AnvilNode() as anvil:
        accounts = [Account.create() for _ in range(3)]
        fund(anvil.url, [a.address for a in accounts])
        deployment = ChainClient(anvil.url, accounts[0]).deploy(
            [a.address for a in accounts], 5000, 60, 60, True, "0x" + "ab" * 32, "QmInitial")
        clients = [ChainClient(anvil.url, a, deployment.address) for a in accounts]
        w3 = clients[0].w3
        with ChainFollower(anvil.url, deployment.address, start_block=deployment.block, poll_interval=0.02,
                           websocket=False) as follower:

            def cursor() -> ReorgAwareCursor:
                return ReorgAwareCursor(w3, deployment.address, start_block=deployment.block + 1,
                                        head=follower.head, get_logs=follower.get_logs)

            def synced() -> None:
                _until(lambda: follower.head() == w3.eth.block_number, "the follower sees the node's head")

            a = cursor()
            clients[0].propose(0, "0x" + "cd" * 32, "QmNew")
            for client in clients:
                client.vote(0, True, 10**18)
            synced()
            read = a.poll()
            raw_vote = w3.eth.get_raw_transaction(read[3].meta.tx_hash)  # type: ignore[union-attr, arg-type]

            # Execute: the deciding vote's block is replaced by an empty one
            w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
            synced()
            a_dropped, b_dropped = a.poll(), cursor().poll()
            # ... then by one holding that vote again (a new block hash), then rolled back
            w3.provider.make_request("anvil_reorg", [1, [[w3.to_hex(raw_vote), 0]]])  # type: ignore[arg-type]
            synced()
            a_replayed, b_replayed = a.poll(), cursor().poll()
            replayed_hash = Web3.to_hex(w3.eth.get_block("latest")["hash"])
            w3.provider.make_request("anvil_rollback", [1])  # type: ignore[arg-type]
            synced()
            a_rolled_back, b_rolled_back = a.poll(), cursor().poll()
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            synced()
            a_quiet = a.poll()

        # Assert: A takes back exactly the dropped block's events and reads the new block's; B, which never saw
        # the old block, reads the chain as it is now; neither is served a log of a block the chain dropped
        assert _names(read) == ["WeightsProposed", "VoteCast", "VoteCast", "VoteCast", "ProposalAccepted",
                                "EpochStarted"]
        assert _names(a_dropped) == ["-EpochStarted", "-ProposalAccepted", "-VoteCast"]
        assert _names(b_dropped) == ["WeightsProposed", "VoteCast", "VoteCast"]
        assert _names(a_replayed) == ["VoteCast", "ProposalAccepted", "EpochStarted"]
        assert {e.meta.block_hash for e in a_replayed if not isinstance(e, Removed)} == {replayed_hash}
        assert _names(b_replayed) == _names(read)
        assert [e.meta.block_hash for e in b_replayed if not isinstance(e, Removed)][3:] == [replayed_hash] * 3
        assert _names(a_rolled_back) == ["-EpochStarted", "-ProposalAccepted", "-VoteCast"]
        assert _names(b_rolled_back) == ["WeightsProposed", "VoteCast", "VoteCast"]
        assert a_quiet == []
        assert a.next_block == w3.eth.block_number + 1
