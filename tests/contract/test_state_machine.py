"""Random sequences of propose / vote / close / time jumps from learners and strangers (hypothesis
stateful testing), checked against a shadow model of docs/protocol.md.

brownie's own `state_machine` wrapper fails in 1.22 (its compiled build rejects the subclass it makes:
"_BrownieStateMachine object expected"), so this drives hypothesis's RuleBasedStateMachine directly and
deploys a fresh contract per example instead of brownie's snapshot/revert.

Every block's timestamp is set explicitly (evm_setNextBlockTimestamp), so deadlines are exact and the
shadow predicts each call's outcome, down to the custom error. Transactions go through web3 and wait for
their receipt only: brownie's transaction objects declare a transaction "dropped without known
replacement" when the sender's nonce has moved before the node shows the receipt, a window that a loaded
machine (a second test run beside this one) opens often enough to fail one run in two; hypothesis,
replaying the example, then reported "Flaky: Inconsistent data generation". A failed transaction's
custom error is read from the node's trace of it, so it is the verdict of that very block.
Invariants: one vote per learner per epoch, approvals + rejections <= voters, the epoch advances by
exactly one per close, the current model changes only on accept, and only a CID of 1..MAX_CID_LENGTH
bytes in [0-9A-Za-z] is ever recorded (hostile CIDs are sent as raw bytes, so invalid UTF-8 reaches the
contract too).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from brownie import chain, web3
from eth_abi import encode
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from web3.logs import DISCARD

from colearn_chain.chain.revert import decode_revert
from conftest import (
    INITIAL_CID,
    INITIAL_DIGEST,
    PROPOSAL_TIMEOUT,
    VOTING_TIMEOUT,
    current_model,
    digest_of,
)

N_LEARNERS = 4
MAX_CID_LENGTH = 100
ALPHANUMERIC = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


actors = st.integers(min_value=0, max_value=N_LEARNERS)  # N_LEARNERS stands for the stranger
epoch_shifts = st.integers(min_value=-1, max_value=1)
scores = st.integers(min_value=-(10**18), max_value=10**18)
# Well-formed CIDs, and hostile ones: any bytes (mostly not alphanumeric, often not UTF-8, some empty),
# one byte too many, or a well-formed CID with one bad byte (escape, newline, NUL, punctuation, non-ASCII)
# spliced in.
good_cids = st.binary(min_size=1, max_size=MAX_CID_LENGTH).map(lambda b: bytes(ALPHANUMERIC[v % 62] for v in b))
bad_bytes = st.sampled_from(b"\x1b\n\x00 /.-_+\x7f\x80\xc3\xff")


def _splice(cid: bytes, bad: int, at: int) -> bytes:
    at %= len(cid) + 1
    return cid[:at] + bytes([bad]) + cid[at:]


hostile_cids = st.one_of(
    st.binary(min_size=0, max_size=MAX_CID_LENGTH),
    st.binary(min_size=MAX_CID_LENGTH + 1, max_size=MAX_CID_LENGTH + 1),
    st.builds(_splice, good_cids, bad_bytes, st.integers(min_value=0, max_value=MAX_CID_LENGTH)),
)
cids = st.one_of(good_cids, hostile_cids)


def cid_error(cid: bytes) -> tuple[str, list[str]] | None:
    """The contract's verdict on a CID: None, or its error and arguments as decode_revert renders them."""
    if not cid:
        return "EmptyModel", []
    if len(cid) > MAX_CID_LENGTH:
        return "CidTooLong", [str(len(cid)), str(MAX_CID_LENGTH)]
    for position, value in enumerate(cid):
        if value not in ALPHANUMERIC:
            return "InvalidCidCharacter", [str(position), "0x" + bytes([value]).hex()]
    return None


class Mined:
    """A successful transaction's receipt and its decoded events, by name (the first of each)."""

    def __init__(self, events: Any, receipt: Any) -> None:
        self.receipt = receipt
        self.events: dict[str, Any] = {}
        for name in ("ProposalAccepted", "ProposalRejected", "EpochSkipped", "EpochStarted", "VoteCast"):
            decoded = getattr(events, name)().process_receipt(receipt, errors=DISCARD)
            if decoded:
                self.events[name] = decoded[0]["args"]


class ProtocolMachine(RuleBasedStateMachine):
    # Set by the test before running: fixtures are not available to hypothesis's constructor.
    deploy: Any
    learners: list[Any]
    stranger: Any
    proposer_votes: bool

    def __init__(self) -> None:
        super().__init__()
        self.cl = self.deploy(self.learners, threshold_bps=5000, proposer_votes=self.proposer_votes)
        self.events = web3.eth.contract(address=self.cl.address, abi=self.cl.abi).events
        self.now = chain[-1].timestamp
        self.epoch = 0
        self.proposed = False
        self.deadline = self.now + PROPOSAL_TIMEOUT
        self.voted: set[str] = set()
        self.approvals = self.rejections = 0
        self.pending: tuple[str, str] | None = None
        self.model = (INITIAL_DIGEST, INITIAL_CID, 0)
        self.voters = N_LEARNERS if self.proposer_votes else N_LEARNERS - 1
        self.revert_args: list[str] = []

    # ── helpers
    def _actor(self, index: int) -> Any:
        return self.stranger if index == N_LEARNERS else self.learners[index]

    def _send(self, sender: Any, data: str) -> tuple[Mined | None, str | None]:
        """Mine ``data`` from ``sender`` in the next second exactly; return (tx, None) or (None, error name)."""
        self.now += 1
        web3.provider.make_request("evm_setNextBlockTimestamp", [self.now])
        tx_hash = web3.eth.send_transaction(
            {"from": sender.address, "to": self.cl.address, "data": data, "gas": 1_000_000}
        )
        receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.01)
        assert web3.eth.get_block(receipt["blockNumber"])["timestamp"] == self.now
        if receipt["status"] == 1:
            return Mined(self.events, receipt), None
        trace = web3.provider.make_request(
            "debug_traceTransaction",
            [web3.to_hex(tx_hash), {"disableStorage": True, "disableMemory": True, "disableStack": True}],
        )["result"]
        revert = decode_revert(trace["returnValue"])
        self.revert_args = [str(arg) for arg in revert.args_]
        return None, revert.name

    def _phase_error(self, want_proposed: bool) -> str | None:
        expired = self.now >= self.deadline
        if self.proposed != want_proposed:
            return "UnexpectedPhase"
        if expired:
            return "VotingClosed" if want_proposed else "ProposalClosed"
        return None

    def _start_next(self) -> None:
        self.epoch += 1
        self.proposed = False
        self.deadline = self.now + PROPOSAL_TIMEOUT
        self.voted = set()
        self.approvals = self.rejections = 0
        self.pending = None

    def _decide(self, tx: Any) -> None:
        accepted = self.approvals * 10_000 >= self.voters * 5000
        assert accepted == (self.approvals >= self.voters * Fraction(1, 2))
        name = "ProposalAccepted" if accepted else "ProposalRejected"
        assert name in tx.events and tx.events[name]["approvals"] == self.approvals
        event("accepted" if accepted else "rejected")
        if accepted:
            assert self.pending is not None
            self.model = (*self.pending, self.epoch + 1)
        self._start_next()

    # ── rules
    @rule(st_actor=actors, st_epoch_shift=epoch_shifts, st_cid=cids)
    def propose(self, st_actor: int, st_epoch_shift: int, st_cid: bytes | None = None) -> None:
        actor, epoch = self._actor(st_actor), max(self.epoch + st_epoch_shift, 0)
        digest = digest_of(f"p{self.epoch}-{st_actor}")
        cid = f"Qm{self.epoch}x{st_actor}".encode() if st_cid is None else st_cid
        # Raw calldata (a string is ABI-encoded exactly as bytes), so bytes that are not UTF-8 reach the contract.
        args = encode(["uint256", "bytes32", "bytes"], [epoch, bytes.fromhex(digest[2:]), cid])
        data = str(self.cl.propose.signature) + args.hex()
        tx, error = self._send(actor, data)
        proposer = self.learners[self.epoch % N_LEARNERS]
        verdict = cid_error(cid)
        expected = (
            "WrongEpoch" if epoch != self.epoch
            else self._phase_error(want_proposed=False)
            or ("NotProposer" if actor != proposer else None)
            or (verdict[0] if verdict else None)
        )
        assert error == expected
        if verdict is not None and error == verdict[0]:
            assert [arg.lower() for arg in self.revert_args] == [arg.lower() for arg in verdict[1]]
            event(f"refused: {error}")
        if tx is not None:
            self.proposed, self.pending = True, (digest, cid.decode("ascii"))
            self.deadline = self.now + VOTING_TIMEOUT

    @rule(st_actor=actors, st_epoch_shift=epoch_shifts, st_approve=st.booleans(), st_score=scores)
    def vote(self, st_actor: int, st_epoch_shift: int, st_approve: bool, st_score: int) -> None:
        actor, epoch = self._actor(st_actor), max(self.epoch + st_epoch_shift, 0)
        epoch_before = self.epoch
        tx, error = self._send(actor, self.cl.vote.encode_input(epoch, st_approve, st_score))
        proposer = self.learners[self.epoch % N_LEARNERS]
        expected = (
            "WrongEpoch" if epoch != self.epoch
            else self._phase_error(want_proposed=True)
            or ("NotLearner" if actor == self.stranger else None)
            or ("AlreadyVoted" if actor.address in self.voted else None)
            or ("ProposerCannotVote" if not self.proposer_votes and actor == proposer else None)
        )
        assert error == expected
        if tx is None:
            return
        self.voted.add(actor.address)
        if st_approve:
            self.approvals += 1
        else:
            self.rejections += 1
        if self.approvals + self.rejections == self.voters:
            self._decide(tx)
            assert self.epoch == epoch_before + 1

    @rule(st_actor=actors, st_epoch_shift=epoch_shifts)
    def close(self, st_actor: int, st_epoch_shift: int) -> None:
        epoch = max(self.epoch + st_epoch_shift, 0)
        epoch_before = self.epoch
        tx, error = self._send(self._actor(st_actor), self.cl.close.encode_input(epoch))
        expired = self.now >= self.deadline
        expected = "WrongEpoch" if epoch != self.epoch else (None if expired else "TooEarlyToClose")
        assert error == expected
        if tx is None:
            return
        if self.proposed:
            self._decide(tx)
        else:
            assert "EpochSkipped" in tx.events
            event("skipped")
            self._start_next()
        assert self.epoch == epoch_before + 1

    # Honest participants, so that full vote sets, accepts and rejects are common, not rare accidents
    # of the random rules above (which mostly exercise the reverts).
    @rule()
    def proposer_proposes(self) -> None:
        self.propose(self.epoch % N_LEARNERS, 0)

    # A hostile proposer: the right sender and epoch, so the CID itself is what the contract judges.
    @rule(st_cid=cids)
    def proposer_proposes_cid(self, st_cid: bytes) -> None:
        self.propose(self.epoch % N_LEARNERS, 0, st_cid)

    @rule(st_learner=st.integers(min_value=0, max_value=N_LEARNERS - 1), st_approve=st.booleans(), st_score=scores)
    def learner_votes(self, st_learner: int, st_approve: bool, st_score: int) -> None:
        self.vote(st_learner, 0, st_approve, st_score)

    @rule(st_approvals=st.lists(st.booleans(), min_size=N_LEARNERS, max_size=N_LEARNERS))
    def everyone_due_votes(self, st_approvals: list[bool]) -> None:
        self._votes_due(st_approvals)

    @rule(st_approvals=st.lists(st.booleans(), min_size=N_LEARNERS, max_size=N_LEARNERS))
    def honest_epoch(self, st_approvals: list[bool]) -> None:
        if not self.proposed:
            self.proposer_proposes()
        self._votes_due(st_approvals)

    def _votes_due(self, st_approvals: list[bool]) -> None:
        proposer = self.epoch % N_LEARNERS
        for index, approve in enumerate(st_approvals):
            due = self.learners[index].address not in self.voted
            if due and self.proposed and (self.proposer_votes or index != proposer):
                self.vote(index, 0, approve, 10**18)

    # Mostly short waits (deadlines stay open), sometimes long ones (deadlines pass).
    @rule(st_seconds=st.one_of(st.integers(min_value=0, max_value=20),
                               st.integers(min_value=0, max_value=2 * VOTING_TIMEOUT)))
    def wait(self, st_seconds: int) -> None:
        self.now += st_seconds

    # ── invariants
    @invariant()
    def matches_shadow(self) -> None:
        state = self.cl.epochState()
        assert state["epoch"] == self.epoch
        assert (state["approvals"], state["rejections"]) == (self.approvals, self.rejections)
        assert state["approvals"] + state["rejections"] <= self.voters
        assert current_model(self.cl) == self.model
        assert {a.address for a in self.learners if self.cl.hasVoted(a)} == self.voted


@pytest.mark.parametrize("proposer_votes", [True, False], ids=["seed-rule", "colearn-variant"])
def test_protocol_state_machine(deploy: Any, accounts: Any, proposer_votes: bool) -> None:
    ProtocolMachine.deploy = staticmethod(deploy)
    ProtocolMachine.learners = list(accounts[1 : 1 + N_LEARNERS])
    ProtocolMachine.stranger = accounts[9]
    ProtocolMachine.proposer_votes = proposer_votes
    run = ProtocolMachine.TestCase
    # The health checks below judge the example generator, not the contract: 25 steps of up to four
    # drawn arguments can overrun hypothesis's buffer, and every step is a real transaction.
    run.settings = settings(
        max_examples=20, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow],
    )
    run().runTest()
