"""The whole history of one CollectiveLearning contract, read from its events and kept as an incremental index.

Why one module for it: `status`, the explorer page and `run`'s results.json all show the same facts
(who proposed what, who voted how with which score, what was decided, at what gas), and they must
agree. The contract stores only the current epoch, so the history *is* the event log; this module
reads it once from the deployment block with :class:`~colearn_chain.chain.events.LogCursor`, then
only the new blocks on each :meth:`History.update`, so a page over 1,000 epochs x 10 learners is
served from memory instead of re-reading 11k logs.

Gas comes from transaction receipts, one per transaction: fetched in JSON-RPC batches, cached
forever (a mined receipt never changes), and optional (``gas=False``) so that a slow public RPC can
show the votes first and the gas later (:meth:`History.fill_gas` in bounded steps).

Everything public is a frozen dataclass with ``to_json()``; the index is thread-safe for one updater
and any number of readers (the explorer serves pages while its poller updates).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from web3 import Web3

from ._files import atomic_write
from .chain.connection import connect
from .chain.deployment import Deployment
from .chain.events import (
    ChainEvent,
    EpochSkipped,
    EpochStarted,
    LogCursor,
    ModelInitialized,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
)
from .chain.records import ContractParams
from .chain.views import ContractViews
from .exceptions import ChainUnavailable, ColearnChainError
from .protocol import ModelRecord, from_fixed_point, proposer_of

__all__ = [
    "ContractNotFound",
    "ContractSummary",
    "EpochRecord",
    "History",
    "Outcome",
    "Proposal",
    "TxRef",
    "Vote",
    "connect",
    "event_to_json",
    "find_deploy_block",
    "load_history",
]

log = logging.getLogger(__name__)

FORMAT = "colearn-chain/history@1"
#: Receipts per JSON-RPC batch: large enough to load 11k receipts in seconds, small enough for public RPCs.
RECEIPT_BATCH = 250

Outcome = Literal["accepted", "rejected", "skipped", "open"]
Source = Deployment | str


class ContractNotFound(ColearnChainError):
    """Raised when the address holds no contract, or one that does not answer CollectiveLearning's views."""


# ─────────────────────────────────────────────────────────────── records


@dataclass(frozen=True)
class TxRef:
    """One transaction: hash, block, and the gas it used (None until its receipt is fetched)."""

    hash: str
    block: int
    gas_used: int | None = None
    sender: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "block": self.block, "gas_used": self.gas_used, "from": self.sender}


@dataclass(frozen=True)
class Proposal:
    """What the proposer recorded: the digest and CID of its weights, and the voting deadline it opened."""

    digest: str
    cid: str
    voting_deadline: int
    tx: TxRef

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "cid": self.cid, "voting_deadline": self.voting_deadline, "tx": self.tx.to_json()
        }


@dataclass(frozen=True)
class Vote:
    """One learner's vote. ``score`` is the float the learner reported; ``score_fixed`` the exact on-chain integer."""

    voter: str
    learner_index: int
    approve: bool
    score: float
    score_fixed: int
    tx: TxRef

    def to_json(self) -> dict[str, Any]:
        return {
            "voter": self.voter,
            "learner_index": self.learner_index,
            "approve": self.approve,
            "score": self.score,
            # A string: JSON readers in JavaScript lose integers beyond 2**53.
            "score_fixed": str(self.score_fixed),
            "tx": self.tx.to_json(),
        }


@dataclass(frozen=True)
class EpochRecord:
    """One epoch as the events tell it. ``votes`` are in chain order; ``close`` is the tx that decided it.

    When the last vote completes the set, that vote's transaction is also the close transaction.
    """

    epoch: int
    proposer: str
    proposer_index: int
    proposal_deadline: int
    started_block: int
    proposal: Proposal | None
    votes: tuple[Vote, ...]
    outcome: Outcome
    approvals: int
    rejections: int
    close: TxRef | None

    def vote_of(self, learner: str) -> Vote | None:
        """The vote of ``learner`` in this epoch, or None when it did not vote."""
        wanted = learner.lower()
        return next((v for v in self.votes if v.voter.lower() == wanted), None)

    @property
    def transactions(self) -> tuple[TxRef, ...]:
        """Every transaction of the epoch once: proposal, votes, close (unless a vote closed it)."""
        seen: dict[str, TxRef] = {}
        refs = [
            *([self.proposal.tx] if self.proposal else []),
            *(v.tx for v in self.votes),
            *([self.close] if self.close else []),
        ]
        for ref in refs:
            seen.setdefault(ref.hash, ref)
        return tuple(seen.values())

    @property
    def gas_used(self) -> int | None:
        """Total gas of the epoch's transactions, or None while any receipt is unknown."""
        total = 0
        for ref in self.transactions:
            if ref.gas_used is None:
                return None
            total += ref.gas_used
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "proposer": self.proposer,
            "proposer_index": self.proposer_index,
            "proposal_deadline": self.proposal_deadline,
            "started_block": self.started_block,
            "proposal": self.proposal.to_json() if self.proposal else None,
            "votes": [v.to_json() for v in self.votes],
            "outcome": self.outcome,
            "approvals": self.approvals,
            "rejections": self.rejections,
            "close": self.close.to_json() if self.close else None,
            "gas_used": self.gas_used,
        }


@dataclass(frozen=True)
class ContractSummary:
    """The contract's parameters and its state as of ``synced_block`` (the last block the index has read)."""

    chain_id: int
    address: str
    deploy_block: int
    learners: tuple[str, ...]
    vote_threshold_bps: int
    voter_count: int
    approvals_needed: int
    proposal_timeout: int
    voting_timeout: int
    proposer_votes: bool
    current_epoch: int
    phase: str
    deadline: int
    current_model: ModelRecord
    initial_model: ModelRecord | None
    synced_block: int

    @property
    def variant(self) -> str:
        """``seed`` (every learner votes, threshold over n) or ``colearn-0.2.8`` (the proposer does not vote)."""
        return "seed" if self.proposer_votes else "colearn-0.2.8"

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "address": self.address,
            "deploy_block": self.deploy_block,
            "learners": list(self.learners),
            "vote_threshold_bps": self.vote_threshold_bps,
            "voter_count": self.voter_count,
            "approvals_needed": self.approvals_needed,
            "proposal_timeout": self.proposal_timeout,
            "voting_timeout": self.voting_timeout,
            "proposer_votes": self.proposer_votes,
            "variant": self.variant,
            "current_epoch": self.current_epoch,
            "phase": self.phase,
            "deadline": self.deadline,
            "current_model": self.current_model.to_json(),
            "initial_model": self.initial_model.to_json() if self.initial_model else None,
            "synced_block": self.synced_block,
        }


def event_to_json(event: ChainEvent) -> dict[str, Any]:
    """One decoded event as a flat JSON object (for live feeds): its type, its fields, where it sits."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for name, value in vars(event).items():
        if name != "meta":
            out[name] = str(value) if name == "score" else value
    out.update(block=event.meta.block_number, log_index=event.meta.log_index, tx=event.meta.tx_hash)
    return out


# ─────────────────────────────────────────────────────────────── finding the contract


def _has_code(w3: Web3, address: str, block: Any = "latest") -> bool:
    return len(bytes(w3.eth.get_code(Web3.to_checksum_address(address), block_identifier=block))) > 0


def find_deploy_block(w3: Web3, address: str) -> int:
    """The first block where ``address`` has code, by binary search over historical state.

    Why: without a deployment record, reading logs from block 0 on a public chain means thousands of
    ``eth_getLogs`` ranges; ~25 ``eth_getCode`` calls find the start instead. A node that keeps no
    historical state makes this fail, and then we start from block 0 (with a warning).
    """
    head = int(w3.eth.block_number)
    low, high = 0, head
    try:
        while low < high:
            mid = (low + high) // 2
            if _has_code(w3, address, mid):
                high = mid
            else:
                low = mid + 1
    except Exception as exc:  # noqa: BLE001 - a node without historical state: fall back, say so
        log.warning("cannot search the deployment block (%s); reading events from block 0", exc)
        return 0
    return low


# ─────────────────────────────────────────────────────────────── the index


@dataclass
class _Epoch:
    """Mutable facts of one epoch while events arrive; frozen into an EpochRecord on demand."""

    epoch: int
    proposer: str
    proposal_deadline: int
    started_block: int
    proposal: tuple[str, str, int, str, int] | None = None  # digest, cid, voting deadline, tx, block
    votes: list[tuple[str, bool, int, str, int]] | None = None  # voter, approve, score, tx, block
    outcome: Outcome = "open"
    approvals: int | None = None
    rejections: int | None = None
    close: tuple[str, int] | None = None  # tx, block
    seq: int = 0
    record: EpochRecord | None = None
    json: dict[str, Any] | None = None


class History:
    """An in-memory index of every epoch of one contract, updated incrementally from its events.

    Build it with :meth:`load` (validates the address, reads everything), then call :meth:`update`
    whenever you want the new blocks. ``seq`` counts changes, so readers can ask what changed since
    they last looked (:meth:`changed_since`).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        start_block: int,
        confirmations: int = 0,
        gas: bool = True,
        receipt_batch: int = RECEIPT_BATCH,
    ) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.start_block = start_block
        self.gas = gas
        self.receipt_batch = receipt_batch
        self._views = ContractViews(w3, self.address)
        self._cursor = LogCursor(w3, self.address, start_block=start_block, confirmations=confirmations)
        self._lock = threading.RLock()  # guards the index below; held only while applying, never over RPC
        self._update_lock = threading.Lock()  # one updater at a time
        self._epochs: list[_Epoch] = []
        self._first_epoch: int | None = None
        self._receipts: dict[str, tuple[int, str]] = {}
        self._tx_epochs: dict[str, set[int]] = {}
        self._gas_pending: dict[str, None] = {}  # an ordered set
        self._batch_ok = True
        self._initial_model: ModelRecord | None = None
        self._params: ContractParams | None = None
        self._index: dict[str, int] = {}
        self._summary: ContractSummary | None = None
        self._chain_id = int(w3.eth.chain_id)
        self.seq = 0
        self.recent_events: list[tuple[int, dict[str, Any]]] = []  # (seq, event json), bounded

    # ───────────────────────────── building

    @classmethod
    def load(
        cls,
        w3: Web3,
        source: Source,
        start_block: int | None = None,
        *,
        confirmations: int = 0,
        gas: bool = True,
    ) -> History:
        """Validate ``source`` (a Deployment or an address) on ``w3`` and read its whole history.

        ``start_block`` defaults to the deployment's block, or is searched for an address alone.
        Raises ContractNotFound for an address without the contract, ChainUnavailable for a dead RPC,
        ValueError for a deployment record of another chain.
        """
        history = cls.open(w3, source, start_block, confirmations=confirmations, gas=gas)
        history.update()
        return history

    @classmethod
    def open(
        cls,
        w3: Web3,
        source: Source,
        start_block: int | None = None,
        *,
        confirmations: int = 0,
        gas: bool = True,
    ) -> History:
        """Like :meth:`load` but reads no events yet (call :meth:`update`).

        So a caller can choose when to pay for reading them.
        """
        try:
            chain_id = int(w3.eth.chain_id)
        except Exception as exc:
            raise ChainUnavailable(f"cannot reach the JSON-RPC endpoint: {exc}") from exc
        if isinstance(source, Deployment):
            if source.chain_id != chain_id:
                raise ValueError(
                    f"the deployment record is for chain id {source.chain_id}, but the RPC serves chain id {chain_id}"
                )
            address = source.address
            if start_block is None:
                start_block = source.block
        else:
            address = source
        if not Web3.is_address(address):
            raise ContractNotFound(f"{address!r} is not an address")
        address = Web3.to_checksum_address(address)
        try:
            has_code = _has_code(w3, address)
        except Exception as exc:
            raise ChainUnavailable(f"cannot read the code at {address}: {exc}") from exc
        if not has_code:
            raise ContractNotFound(f"no contract at {address} on chain id {chain_id} (wrong address, or wrong chain?)")
        if start_block is None:
            start_block = find_deploy_block(w3, address)
            log.info("contract %s deployed at block %d", address, start_block)
        history = cls(w3, address, start_block=start_block, confirmations=confirmations, gas=gas)
        history._read_params()
        return history

    def _read_params(self) -> None:
        """Read the parameters fixed at deployment, once; proves the address is a CollectiveLearning."""
        try:
            params = self._views.params()
        except Exception as exc:
            raise ContractNotFound(
                f"the contract at {self.address} does not answer CollectiveLearning's views "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        self._params = params
        self._index = {a.lower(): i for i, a in enumerate(params.learners)}

    # ───────────────────────────── updating

    def update(self, *, gas: bool | None = None) -> list[ChainEvent]:
        """Read the blocks not read yet, apply their events, refresh the state views; return the new events.

        ``gas`` (default: the constructor's) also fetches the receipts of the new transactions.
        """
        with self._update_lock:
            events = self._cursor.poll()
            synced = self._cursor.next_block - 1
            with self._lock:
                for event in events:
                    self._apply(event)
            stale = self._summary is None or synced != self._summary.synced_block
            if stale and synced >= self.start_block:  # before that block the contract has no state to read
                summary = self._read_summary(synced)
                with self._lock:
                    old, self._summary = self._summary, summary
                    if not events and (old is None or replace(summary, synced_block=old.synced_block) != old):
                        # Block time moved the phase with no event: readers should refresh. A new block
                        # alone is no change worth waking every page for (one per block on a live chain).
                        self.seq += 1
            if events:
                log.debug("applied %d events up to block %d", len(events), synced)
        if self.gas if gas is None else gas:
            self.fill_gas()
        return events

    def _read_summary(self, block: int) -> ContractSummary:
        assert self._params is not None
        state = self._views.epoch_state(block=block)
        return ContractSummary(
            chain_id=self._chain_id,
            address=self.address,
            deploy_block=self.start_block,
            current_epoch=state.epoch,
            phase=state.phase.name,
            deadline=state.deadline,
            current_model=self._views.current_model(block=block),
            initial_model=self._initial_model,
            synced_block=block,
            **asdict(self._params),
        )

    def _epoch_slot(self, epoch: int, block: int) -> _Epoch:
        """The builder of ``epoch``; creates it (and any gap) when the history starts mid-way."""
        if self._first_epoch is None:
            self._first_epoch = epoch
        index = epoch - self._first_epoch
        if index < 0:
            raise ColearnChainError(f"event for epoch {epoch} before the first epoch read ({self._first_epoch})")
        learners = self._learners()
        while len(self._epochs) <= index:
            number = self._first_epoch + len(self._epochs)
            self._epochs.append(_Epoch(number, proposer_of(number, learners), 0, block))
        return self._epochs[index]

    def _learners(self) -> tuple[str, ...]:
        assert self._params is not None
        return self._params.learners

    def _touch(self, slot: _Epoch) -> None:
        slot.seq = self.seq
        slot.record = None
        slot.json = None

    def _track_tx(self, tx: str, epoch: int) -> None:
        self._tx_epochs.setdefault(tx, set()).add(epoch)
        if tx not in self._receipts:
            self._gas_pending[tx] = None

    def _apply(self, event: ChainEvent) -> None:
        self.seq += 1
        meta = event.meta
        self.recent_events.append((self.seq, event_to_json(event)))
        if len(self.recent_events) > 500:
            del self.recent_events[:100]
        if isinstance(event, ModelInitialized):
            self._initial_model = ModelRecord(event.digest, event.cid, 0)
            return
        epoch = getattr(event, "epoch", None)
        if epoch is None:  # deployment facts (e.g. the consortium's rules): the views already gave them
            return
        slot = self._epoch_slot(epoch, meta.block_number)
        if isinstance(event, EpochStarted):
            slot.proposer = event.proposer
            slot.proposal_deadline = event.proposal_deadline
            slot.started_block = meta.block_number
        elif isinstance(event, WeightsProposed):
            slot.proposal = (event.digest, event.cid, event.voting_deadline, meta.tx_hash, meta.block_number)
            self._track_tx(meta.tx_hash, event.epoch)
        elif isinstance(event, VoteCast):
            if slot.votes is None:
                slot.votes = []
            slot.votes.append((event.voter, event.approve, event.score, meta.tx_hash, meta.block_number))
            self._track_tx(meta.tx_hash, event.epoch)
        elif isinstance(event, (ProposalAccepted, ProposalRejected)):
            slot.outcome = "accepted" if isinstance(event, ProposalAccepted) else "rejected"
            slot.approvals, slot.rejections = event.approvals, event.rejections
            slot.close = (meta.tx_hash, meta.block_number)
            self._track_tx(meta.tx_hash, event.epoch)
        elif isinstance(event, EpochSkipped):
            slot.outcome = "skipped"
            slot.approvals, slot.rejections = 0, 0
            slot.close = (meta.tx_hash, meta.block_number)
            self._track_tx(meta.tx_hash, event.epoch)
        self._touch(slot)

    # ───────────────────────────── gas

    @property
    def gas_pending(self) -> int:
        """Transactions whose receipt has not been fetched yet."""
        return len(self._gas_pending)

    def fill_gas(self, limit: int | None = None) -> int:
        """Fetch up to ``limit`` missing receipts (all by default), in batches; return how many were fetched."""
        with self._update_lock:
            with self._lock:
                wanted = list(self._gas_pending)[: limit if limit is not None else None]
            done = 0
            for start in range(0, len(wanted), self.receipt_batch):
                chunk = wanted[start : start + self.receipt_batch]
                receipts = self._fetch_receipts(chunk)
                with self._lock:
                    self.seq += 1
                    for tx, value in receipts.items():
                        self._receipts[tx] = value
                        self._gas_pending.pop(tx, None)
                        for epoch in self._tx_epochs.get(tx, ()):
                            self._touch(self._epochs[epoch - (self._first_epoch or 0)])
                done += len(receipts)
            return done

    def _fetch_receipts(self, hashes: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Receipts as (gasUsed, from): one raw JSON-RPC batch when the endpoint takes batches, else one by one.

        Raw, because web3's result formatters cost more than the round trip for thousands of receipts.
        """
        out: dict[str, tuple[int, str]] = {}
        if self._batch_ok and len(hashes) > 1:
            try:
                replies = self.w3.provider.make_batch_request(  # type: ignore[attr-defined]
                    [("eth_getTransactionReceipt", [tx]) for tx in hashes]
                )
                if not isinstance(replies, list) or len(replies) != len(hashes):
                    raise ValueError(f"unexpected batch reply {str(replies)[:200]}")
                if all("id" in r for r in replies):
                    replies = sorted(replies, key=lambda r: int(r.get("id", 0)))
                for tx, reply in zip(hashes, replies, strict=True):
                    receipt = reply.get("result")
                    if not receipt:
                        raise ValueError(f"no receipt for {tx}: {reply.get('error')}")
                    out[tx] = (int(receipt["gasUsed"], 16), Web3.to_checksum_address(receipt["from"]))
                return out
            except Exception as exc:  # noqa: BLE001 - any failure of the batch: fall back to single requests
                log.info("this endpoint refused a JSON-RPC batch (%s); fetching receipts one by one", exc)
                self._batch_ok = False
                out.clear()
        for tx in hashes:
            receipt = self.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
            out[tx] = (int(receipt["gasUsed"]), Web3.to_checksum_address(receipt["from"]))
        return out

    # ───────────────────────────── reading

    @property
    def summary(self) -> ContractSummary:
        """The contract's parameters and state as of the last update."""
        if self._summary is None:
            raise ColearnChainError("the history has not been read yet: call update() first")
        return self._summary

    def _ref(self, tx: str, block: int) -> TxRef:
        gas, sender = self._receipts.get(tx, (None, None))
        return TxRef(tx, block, gas, sender)

    def _record(self, slot: _Epoch) -> EpochRecord:
        if slot.record is not None:
            return slot.record
        index = self._index
        votes = tuple(
            Vote(voter, index.get(voter.lower(), -1), approve, from_fixed_point(score), score, self._ref(tx, block))
            for voter, approve, score, tx, block in (slot.votes or ())
        )
        approvals = slot.approvals if slot.approvals is not None else sum(v.approve for v in votes)
        rejections = slot.rejections if slot.rejections is not None else sum(not v.approve for v in votes)
        proposal = None
        if slot.proposal:
            digest, cid, deadline, tx, block = slot.proposal
            proposal = Proposal(digest, cid, deadline, self._ref(tx, block))
        slot.record = EpochRecord(
            epoch=slot.epoch,
            proposer=slot.proposer,
            proposer_index=index.get(slot.proposer.lower(), -1),
            proposal_deadline=slot.proposal_deadline,
            started_block=slot.started_block,
            proposal=proposal,
            votes=votes,
            outcome=slot.outcome,
            approvals=approvals,
            rejections=rejections,
            close=self._ref(*slot.close) if slot.close else None,
        )
        return slot.record

    def __len__(self) -> int:
        return len(self._epochs)

    @property
    def first_epoch(self) -> int:
        """The first epoch read (0 unless the history starts after the deployment block)."""
        return self._first_epoch or 0

    @property
    def epochs(self) -> list[EpochRecord]:
        """Every epoch read so far, oldest first."""
        with self._lock:
            return [self._record(slot) for slot in self._epochs]

    def epoch(self, number: int) -> EpochRecord:
        """The record of epoch ``number``; KeyError when it has not been read."""
        with self._lock:
            index = number - (self._first_epoch or 0)
            if not 0 <= index < len(self._epochs):
                raise KeyError(number)
            return self._record(self._epochs[index])

    def epoch_json(self, number: int) -> dict[str, Any]:
        """``epoch(number).to_json()``, cached until the epoch changes (the explorer's hot path)."""
        with self._lock:
            index = number - (self._first_epoch or 0)
            if not 0 <= index < len(self._epochs):
                raise KeyError(number)
            return self._slot_json(self._epochs[index])

    def _slot_json(self, slot: _Epoch) -> dict[str, Any]:
        if slot.json is None:
            slot.json = self._record(slot).to_json()
        return slot.json

    def epochs_json(self, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """JSON of the epochs at positions ``offset`` .. ``offset + limit`` (oldest first)."""
        with self._lock:
            end = len(self._epochs) if limit is None else offset + limit
            return [self._slot_json(slot) for slot in self._epochs[max(offset, 0) : end]]

    def changed_since(self, seq: int) -> list[int]:
        """Epoch numbers whose record changed after change number ``seq``."""
        with self._lock:
            return [slot.epoch for slot in self._epochs if slot.seq > seq]

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        """The recent decoded events after change number ``seq`` (the last few hundred at most)."""
        with self._lock:
            return [event for s, event in self.recent_events if s > seq]

    def counts(self) -> dict[str, int]:
        """Epochs per outcome."""
        with self._lock:
            out = {"accepted": 0, "rejected": 0, "skipped": 0, "open": 0}
            for slot in self._epochs:
                out[slot.outcome] += 1
            return out

    def scores_json(self) -> dict[str, Any]:
        """Every vote score as per-learner columns over epochs: the explorer's chart data, compact."""
        with self._lock:
            learners = self._learners()
            n = len(self._epochs)
            scores: list[list[float | None]] = [[None] * n for _ in learners]
            approve: list[list[int | None]] = [[None] * n for _ in learners]
            for i, slot in enumerate(self._epochs):
                for voter, ok, score, _tx, _block in slot.votes or ():
                    j = self._index.get(voter.lower())
                    if j is not None:
                        scores[j][i] = from_fixed_point(score)
                        approve[j][i] = int(ok)
            return {
                "first_epoch": self._first_epoch or 0,
                "learners": list(learners),
                "scores": scores,
                "approve": approve,
                "outcomes": [slot.outcome for slot in self._epochs],
                "seq": self.seq,
            }

    def summary_json(self) -> dict[str, Any]:
        """The summary plus the index's own numbers (epochs read, outcome counts, receipts pending)."""
        with self._lock:
            out = self.summary.to_json()
            out.update(
                epoch_count=len(self._epochs),
                first_epoch=self._first_epoch or 0,
                counts=self.counts(),
                gas_pending=len(self._gas_pending),
                seq=self.seq,
            )
            return out

    def to_json(self, *, last: int | None = None) -> dict[str, Any]:
        """Everything, JSON-able: ``{"format", "summary", "epochs"}``; ``last`` keeps only the newest epochs."""
        with self._lock:
            offset = max(len(self._epochs) - last, 0) if last is not None else 0
            return {"format": FORMAT, "summary": self.summary_json(), "epochs": self.epochs_json(offset)}

    def save(self, path: Path | str) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (results.json)."""
        path = Path(path)
        atomic_write(path, (json.dumps(self.to_json(), indent=1) + "\n").encode(), mode=0o644)
        return path


def load_history(rpc_url: str, source: Source, start_block: int | None = None, *, gas: bool = True) -> History:
    """Connect to ``rpc_url`` and load the whole history of ``source`` (the CLI's one-liner)."""
    return History.load(connect(rpc_url), source, start_block, gas=gas)
