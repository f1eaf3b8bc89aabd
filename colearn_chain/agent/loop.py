"""One learner's agent: the event loop of PROTOCOL.md "The agents".

Shape of the loop (why it is safe to kill and restart at any point):

* **Knowledge comes from events, in chain order.** A :class:`LogCursor` yields the contract's events
  in ``(block, logIndex)`` order, each once, only once ``confirmations`` deep. Every event of a poll is
  applied before the agent acts, so an accept mined in the same block as the next ``EpochStarted`` is
  adopted before the new proposer trains, exactly as the reference driver does it.
* **Actions come from the resulting view of the current epoch**, not from individual events: propose if
  it is our turn and nothing is proposed, vote if a proposal is open and we have not voted, close if
  the chain's clock passed the deadline. Each action is done at most once per epoch; a revert because
  the world moved on (``WrongEpoch``, ``TooEarlyToClose``, ...) is logged, never fatal.
* **Restart = snapshot + follow.** :meth:`Agent.start` reads the epoch, the current model and
  ``hasVoted`` at one block, adopts the current model (from the state directory or the store),
  restores the learner's proposal counter from the chain's history, then follows events from the next
  block. Nothing depends on memory that a kill would lose, and ``hasVoted`` prevents a second vote.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Final, Optional

from web3 import Web3
from eth_utils import event_abi_to_log_topic

from ..chain.artifact import abi
from ..chain.client import ZERO_DIGEST, ChainClient, ContractParams, CurrentModel
from ..chain.events import (
    ChainEvent,
    EpochSkipped,
    EpochStarted,
    LogCursor,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
    decode_logs,
)
from ..codec import DEFAULT_MAX_BLOB_BYTES, decode_weights, digest_hex, encode_weights
from ..driver import copy_weights
from ..exceptions import ChainUnavailable, ColearnChainError, ContractRevert, StoreUnavailable, WeightStoreError, WeightsMismatch
from ..mli import MachineLearningInterface, check_weights
from ..store.base import WeightStore
from ..typing import Cid, HexDigest, Weights
from .state import StateDir
from .voter import Verdict, evaluate_proposal, fetch_weights

__all__ = ["Agent", "AgentError", "AgentSettings"]

log = logging.getLogger(__name__)

#: Reverts that mean another agent (or the clock) got there first: routine, logged at debug.
_LOST_RACE: Final[frozenset[str]] = frozenset({"WrongEpoch", "TooEarlyToClose"})
#: Seconds between repeats of the same warning (a store that stays down, an unfetchable accepted model).
_WARN_EVERY: Final[float] = 5.0


class AgentError(ColearnChainError):
    """Raised when the agent cannot take part at all (not a learner, no current model to start from)."""


@dataclass(frozen=True)
class AgentSettings:
    """How an agent follows the chain. Defaults suit a local chain."""

    #: seconds between polls of the chain
    poll_interval: float = 0.2
    #: act only on events at least this many blocks deep (0 on a local chain, a few on a testnet)
    confirmations: int = 0
    #: stop (returning 0) once the current epoch is >= this and every earlier accept is adopted
    until_epoch: Optional[int] = None
    #: largest blob a voter fetches and decodes
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    #: seconds between two close attempts for one epoch (the chain's clock may lag ours)
    close_retry: float = 1.0
    #: the deployment's block: where the chain's history (our past proposals) starts
    start_block: int = 0


@dataclass
class _Round:
    """The agent's view of the current epoch, built from the snapshot and then from events."""

    epoch: int
    proposer: str
    deadline: int  # proposal deadline, then voting deadline once proposed
    proposed: bool = False
    digest: HexDigest = ZERO_DIGEST
    cid: Cid = ""


@dataclass(frozen=True)
class _Decoded:
    """A proposal's blob and decoded weights, kept from proposing or voting to adopt it on accept."""

    digest: HexDigest
    weights: Weights = field(repr=False)
    blob: bytes = field(repr=False)


@dataclass
class _OwnProposal:
    """What we proposed in one epoch; kept so a failed send retries the same weights."""

    weights: Weights
    blob: bytes
    digest: HexDigest
    cid: Optional[Cid] = None


class Agent:
    """Runs one learner in the protocol until stopped (or until ``settings.until_epoch``)."""

    def __init__(
        self,
        client: ChainClient,
        store: WeightStore,
        learner: MachineLearningInterface,
        state_dir: StateDir,
        settings: AgentSettings = AgentSettings(),
    ) -> None:
        self.client = client
        self.store = store
        self.learner = learner
        self.state = state_dir
        self.settings = settings
        self.me = client.sender
        self.params: ContractParams | None = None
        self.index = -1
        self.round: _Round | None = None
        self.cursor: LogCursor | None = None
        self._backlog: list[ChainEvent] = []
        self._proposed: set[int] = set()
        self._voted: set[int] = set()
        self._own: dict[int, _OwnProposal] = {}
        self._verdicts: dict[tuple[int, HexDigest], Verdict] = {}
        self._decoded: dict[int, _Decoded] = {}
        self._last_close: dict[int, float] = {}
        self._clock_offset = 0.0  # chain time - wall time, refreshed whenever the chain's clock is read
        self._last_warning: dict[str, float] = {}
        self._stopping = False

    # ───────────────────────────────────────────────────────────── public

    def run(self) -> int:
        """Start (or resume) and follow the chain; return 0 when ``until_epoch`` is reached or on stop()."""
        self.start()
        while not self._stopping:
            try:
                if self.step():
                    log.info("epoch %d reached (until-epoch %s); stopping", self._epoch(), self.settings.until_epoch)
                    return 0
            except ChainUnavailable as error:
                self._warn("chain", "chain unavailable, will keep trying: %s", error)
            time.sleep(self.settings.poll_interval)
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current step (e.g. from a signal handler)."""
        self._stopping = True

    def start(self) -> None:
        """Read the chain at one block, adopt its current model, and set the cursor just after it."""
        self.params = self.client.params()
        if self.me not in self.params.learners:
            raise AgentError(f"{self.me} is not a learner of {self.client.address}")
        self.index = self.params.learners.index(self.me)
        snapshot = self._snapshot_block()
        state = self.client.epoch_state(block=snapshot)
        model = self.client.current_model(block=snapshot)
        voted = self.client.has_voted(self.me, block=snapshot)
        self._adopt_current(model)
        self._restore_proposal_count(snapshot)
        self.round = _Round(state.epoch, state.proposer, state.deadline, state.proposed, state.digest, state.cid)
        if voted:
            self._voted.add(state.epoch)
        if state.proposed and state.proposer == self.me:
            self._proposed.add(state.epoch)
        self._clock_offset = self.client.pending_timestamp() - time.time()
        self.cursor = LogCursor(
            self.client.w3, str(self.client.address), start_block=snapshot + 1, confirmations=self.settings.confirmations
        )
        log.info(
            "learner %d (%s) resumes at block %d: epoch %d, phase %s, proposer %s, voted %s, model since epoch %d (%s)",
            self.index, self.me, snapshot, state.epoch, state.phase.name, state.proposer, voted,
            model.since_epoch, model.digest,
        )

    def step(self) -> bool:
        """Apply new events in order, then act on the current epoch; return True when done."""
        assert self.cursor is not None and self.round is not None
        self._backlog.extend(self.client.retrying("eth_getLogs", self.cursor.poll))
        while self._backlog:
            if not self._apply(self._backlog[0]):
                return False  # an accepted model could not be adopted yet: act on nothing stale
            self._backlog.pop(0)
        if self._done():
            return True
        self._act()
        return False

    # ───────────────────────────────────────────────────────────── restart

    def _snapshot_block(self) -> int:
        """The newest block deep enough to trust, waiting until it is at or after the deployment."""
        while True:
            snapshot = self.client.block_number() - self.settings.confirmations
            if snapshot >= self.settings.start_block:
                return snapshot
            time.sleep(self.settings.poll_interval)

    def _adopt_current(self, model: CurrentModel) -> None:
        """Make the learner hold the chain's current model (unchanged if it already does) and save it."""
        own_blob = encode_weights(self.learner.current_weights())
        if digest_hex(own_blob) == model.digest.lower():
            blob = own_blob
            log.info("current model %s (since epoch %d) equals the learner's own weights", model.digest, model.since_epoch)
        else:
            blob = self.state.blob_for(model.digest) or self._fetch_blob(model.cid, model.digest)
            weights = decode_weights(blob, expected=self.learner.current_weights(), max_bytes=self.settings.max_blob_bytes)
            self.learner.accept_weights(copy_weights(weights))
            log.info("adopted current model %s (since epoch %d, cid %s)", model.digest, model.since_epoch, model.cid)
        self.state.save_model(model.since_epoch, model.digest, model.cid, blob)

    def _fetch_blob(self, cid: Cid, digest: HexDigest) -> bytes:
        try:
            _, blob = fetch_weights(self.store, cid, digest, self.learner.current_weights(), max_bytes=self.settings.max_blob_bytes)
        except (WeightStoreError, WeightsMismatch) as error:
            raise AgentError(f"cannot load the current model {digest} (cid {cid}): {error}") from error
        return blob

    def _restore_proposal_count(self, snapshot: int) -> None:
        """Tell the learner how many proposals it has made, as the chain records them.

        The project's learners draw their proposal randomness from this counter
        (``proposals_made``), so a restarted learner continues the sequence the reference driver
        would produce. Learners without the attribute are left alone.
        """
        if not hasattr(self.learner, "proposals_made"):
            return
        topic = event_abi_to_log_topic(next(e for e in abi() if e.get("type") == "event" and e["name"] == "WeightsProposed"))
        me_topic = "0x" + "00" * 12 + self.me[2:].lower()
        count, start = 0, self.settings.start_block
        while start <= snapshot:
            end = min(snapshot, start + 4_999)
            query: Any = {
                "address": self.client.address, "fromBlock": start, "toBlock": end,
                "topics": [Web3.to_hex(topic), None, me_topic],
            }
            logs = self.client.retrying("eth_getLogs", lambda: self.client.w3.eth.get_logs(query))
            count += sum(1 for event in decode_logs(logs) if isinstance(event, WeightsProposed))
            start = end + 1
        setattr(self.learner, "proposals_made", count)
        log.info("learner has made %d proposals so far", count)

    # ───────────────────────────────────────────────────────────── events

    def _apply(self, event: ChainEvent) -> bool:
        """Update the view with one event; False if it must be retried (an accept not adoptable yet)."""
        assert self.round is not None
        tx = event.meta.tx_hash
        if isinstance(event, EpochStarted):
            self.round = _Round(event.epoch, event.proposer, event.proposal_deadline)
            role = " (us)" if event.proposer == self.me else ""
            log.info("epoch %d started: proposer %s%s, proposal deadline %d (tx %s)",
                     event.epoch, event.proposer, role, event.proposal_deadline, tx)
        elif isinstance(event, WeightsProposed):
            if event.epoch == self.round.epoch:
                self.round.proposed = True
                self.round.deadline = event.voting_deadline
                self.round.digest = event.digest.lower()
                self.round.cid = event.cid
            log.info("epoch %d: %s proposed %s (cid %s), voting until %d (tx %s)",
                     event.epoch, event.proposer, event.digest, event.cid, event.voting_deadline, tx)
        elif isinstance(event, VoteCast):
            if event.voter == self.me:
                self._voted.add(event.epoch)
            log.debug("epoch %d: %s voted %s, score %d (tx %s)",
                      event.epoch, event.voter, "approve" if event.approve else "reject", event.score, tx)
        elif isinstance(event, ProposalAccepted):
            if not self._adopt_accepted(event):
                return False
        elif isinstance(event, ProposalRejected):
            log.info("epoch %d rejected: %d approve / %d reject, model unchanged (tx %s)",
                     event.epoch, event.approvals, event.rejections, tx)
            self._forget(event.epoch)
        elif isinstance(event, EpochSkipped):
            log.info("epoch %d skipped: %s proposed nothing in time (tx %s)", event.epoch, event.proposer, tx)
            self._forget(event.epoch)
        return True

    def _adopt_accepted(self, event: ProposalAccepted) -> bool:
        digest = event.digest.lower()
        decoded = self._decoded.get(event.epoch)
        if decoded is None or decoded.digest != digest:
            try:
                weights, blob = fetch_weights(
                    self.store, event.cid, digest, self.learner.current_weights(), max_bytes=self.settings.max_blob_bytes
                )
            except (WeightStoreError, WeightsMismatch) as error:
                self._warn(f"adopt-{event.epoch}", "epoch %d accepted %s but it cannot be adopted yet (retrying): %s",
                           event.epoch, digest, error, level=logging.ERROR)
                return False
            decoded = _Decoded(digest, weights, blob)
        self.learner.accept_weights(copy_weights(decoded.weights))
        self.state.save_model(event.epoch + 1, digest, event.cid, decoded.blob)
        log.info("epoch %d accepted: %d approve / %d reject; adopted %s (tx %s)",
                 event.epoch, event.approvals, event.rejections, digest, event.meta.tx_hash)
        self._forget(event.epoch)
        return True

    def _forget(self, epoch: int) -> None:
        """Drop what was kept for epochs up to ``epoch``: they are decided."""
        for cache in (self._own, self._decoded, self._last_close):
            for key in [k for k in cache if k <= epoch]:
                del cache[key]
        for key in [k for k in self._verdicts if k[0] <= epoch]:
            del self._verdicts[key]

    def _done(self) -> bool:
        until = self.settings.until_epoch
        return until is not None and self._epoch() >= until and not self._backlog

    def _epoch(self) -> int:
        return self.round.epoch if self.round is not None else -1

    # ───────────────────────────────────────────────────────────── actions

    def _act(self) -> None:
        assert self.round is not None and self.params is not None
        r = self.round
        if r.proposer == self.me and not r.proposed and r.epoch not in self._proposed:
            self._propose(r)
        elif (
            r.proposed
            and r.epoch not in self._voted
            and (self.params.proposer_votes or r.proposer != self.me)
        ):
            self._vote(r)
        self._keep(r)

    def _propose(self, r: _Round) -> None:
        own = self._own.get(r.epoch)
        if own is None:
            weights = check_weights(self.learner.propose_weights(), "propose_weights")
            blob = encode_weights(weights)
            own = self._own[r.epoch] = _OwnProposal(weights, blob, digest_hex(blob))
            # What the others will decode; kept to adopt our own proposal without a fetch.
            self._decoded[r.epoch] = _Decoded(own.digest, decode_weights(blob), blob)
        if own.cid is None:
            try:
                own.cid = self.store.put(own.blob)
            except WeightStoreError as error:
                self._warn("store-put", "epoch %d: cannot store our proposal yet (retrying): %s", r.epoch, error)
                return
        try:
            sent = self.client.propose(r.epoch, own.digest, own.cid)
        except ContractRevert as error:
            self._proposed.add(r.epoch)
            log.warning("epoch %d: proposal refused by the contract: %s", r.epoch, error)
            return
        except ChainUnavailable as error:
            self._warn("propose", "epoch %d: cannot send the proposal yet (retrying): %s", r.epoch, error)
            return
        self._proposed.add(r.epoch)
        log.info("epoch %d: proposed %s (cid %s, %d bytes) tx %s gas %d",
                 r.epoch, own.digest, own.cid, len(own.blob), sent.tx_hash, sent.gas_used)

    def _vote(self, r: _Round) -> None:
        key = (r.epoch, r.digest)
        verdict = self._verdicts.get(key)
        if verdict is None:
            try:
                verdict = evaluate_proposal(
                    self.learner, self.store, r.cid, r.digest, max_bytes=self.settings.max_blob_bytes
                )
            except StoreUnavailable as error:
                self._warn("store-get", "epoch %d: store unavailable, cannot judge the proposal yet: %s", r.epoch, error)
                return
            self._verdicts[key] = verdict
            self.state.record_evaluation(
                r.epoch, digest=r.digest, cid=r.cid, approve=verdict.approve, score=verdict.score,
                vote_score=verdict.vote_score, test_score=verdict.test_score, reason=verdict.reason,
            )
            if verdict.reason is not None:
                log.warning("epoch %d: rejecting proposal %s (cid %s): %s", r.epoch, r.digest, r.cid, verdict.reason)
            else:
                assert verdict.weights is not None and verdict.blob is not None
                self._decoded[r.epoch] = _Decoded(r.digest, verdict.weights, verdict.blob)
        try:
            sent = self.client.vote(r.epoch, verdict.approve, verdict.score)
        except ContractRevert as error:
            self._voted.add(r.epoch)
            level = logging.DEBUG if error.name in _LOST_RACE else logging.WARNING
            log.log(level, "epoch %d: vote refused by the contract: %s", r.epoch, error)
            return
        except ChainUnavailable as error:
            self._warn("vote", "epoch %d: cannot send the vote yet (retrying): %s", r.epoch, error)
            return
        self._voted.add(r.epoch)
        log.info("epoch %d: voted %s (vote score %s, test score %s, fixed %d) tx %s gas %d",
                 r.epoch, "approve" if verdict.approve else "reject", _fmt(verdict.vote_score),
                 _fmt(verdict.test_score), verdict.score, sent.tx_hash, sent.gas_used)

    def _keep(self, r: _Round) -> None:
        """Close the epoch once the chain's clock has passed its deadline (anyone may; first one wins)."""
        now = time.monotonic()
        if now - self._last_close.get(r.epoch, -math.inf) < self.settings.close_retry:
            return
        if time.time() + self._clock_offset < r.deadline - 1:
            return  # cheap local estimate: not yet, no need to ask the chain
        chain_now = self.client.pending_timestamp()
        self._clock_offset = chain_now - time.time()
        if chain_now < r.deadline:
            return
        self._last_close[r.epoch] = now
        try:
            sent = self.client.close(r.epoch)
        except ContractRevert as error:
            level = logging.DEBUG if error.name in _LOST_RACE else logging.WARNING
            log.log(level, "epoch %d: close refused (another agent was first?): %s", r.epoch, error)
            return
        log.info("epoch %d: closed after its deadline %d, tx %s gas %d", r.epoch, r.deadline, sent.tx_hash, sent.gas_used)

    # ───────────────────────────────────────────────────────────── helpers

    def _warn(self, key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
        """Log ``message`` at most every few seconds per ``key``: a loop retrying must not flood the log."""
        now = time.monotonic()
        if now - self._last_warning.get(key, -math.inf) >= _WARN_EVERY:
            self._last_warning[key] = now
            log.log(level, message, *args)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.6g}"
