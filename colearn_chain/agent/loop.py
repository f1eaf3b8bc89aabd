"""One learner's agent: the event loop of docs/protocol.md, "The agents".

Shape of the loop (why it is safe to kill and restart at any point):

* **Knowledge comes from events, in chain order.** A :class:`LogCursor` yields the contract's events
  in ``(block, logIndex)`` order, each once, only once ``confirmations`` deep. Every event of a poll is
  applied before the agent acts, so an accept mined in the same block as the next ``EpochStarted`` is
  adopted before the new proposer trains, exactly as the reference driver does it. Every
  ``model_check_every`` polls the agent compares its view with the chain's at the last block it read
  (one or two calls), so an event a node failed to return is noticed and repaired, not silently lost.
* **Actions come from the resulting view of the current epoch**, not from individual events: propose if
  it is our turn, nothing is proposed and the proposal deadline has not passed; vote if a proposal is
  open and we have not voted; close if the chain's clock passed the deadline (keepers staggered by their
  position after the proposer, so they do not all pay for the same close). Each action is done at most
  once per epoch; a revert because the world moved on (``WrongEpoch``, ``TooEarlyToClose``, ...) is
  logged, never fatal, and a transaction that failed for no rule (out of gas) is sent again.
* **Restart = snapshot + follow.** :meth:`Agent.start` reads the epoch, the current model and
  ``hasVoted`` at one block (and ``hasVoted`` at the latest block too, when that block lags), adopts the
  current model (from the state directory or the store), restores the learner's proposal counter from
  the chain's history, then follows events from the next block. Nothing depends on memory that a kill
  would lose, and ``hasVoted`` prevents a second vote.
* **Failures.** A step that fails on the chain or the store (node down, rate limited, store slow) is
  logged and tried again at the next poll. Only conditions that waiting cannot fix stop the agent with
  :class:`AgentError`: an accepted model this learner cannot adopt, a learner that breaks its contract.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Final, Optional

from web3.exceptions import Web3Exception

from ..chain.client import ZERO_DIGEST, ChainClient, ContractParams, CurrentModel
from ..chain.events import (
    ChainEvent,
    EpochSkipped,
    EpochStarted,
    EventDecodeError,
    LogCursor,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
    address_topic,
    event_topic,
)
from ..codec import DEFAULT_MAX_BLOB_BYTES, decode_weights, digest_hex, encode_weights
from ..driver import copy_weights
from ..exceptions import (
    BlobTooLarge,
    ChainUnavailable,
    ColearnChainError,
    ContractRevert,
    DigestMismatch,
    LearnerContractError,
    TransactionFailed,
    WeightsMismatch,
    WeightStoreError,
)
from ..mli import MachineLearningInterface, check_weights
from ..store.base import WeightStore
from ..typing import Cid, HexDigest, Weights
from .state import StateDir
from .voter import TRANSIENT_FETCH_ERRORS, Verdict, evaluate_proposal, fetch_limit, fetch_weights

__all__ = ["Agent", "AgentError", "AgentSettings"]

log = logging.getLogger(__name__)

#: Reverts of ``close`` that mean another agent (or the clock) got there first: routine, logged at debug.
_LOST_RACE: Final[frozenset[str]] = frozenset({"WrongEpoch", "TooEarlyToClose"})
#: Reverts of ``vote`` after which there is nothing left to vote on: the epoch counts as voted.
_VOTE_SETTLED: Final[frozenset[str]] = frozenset({"AlreadyVoted", "VotingClosed", "WrongEpoch", "UnexpectedPhase"})
#: Seconds between repeats of the same warning (a store that stays down, an unfetchable accepted model).
_WARN_EVERY: Final[float] = 5.0
#: The voting window's tail in which an unfetchable proposal is rejected: max(this, a fraction of it).
_FETCH_GIVE_UP_SECONDS: Final[float] = 5.0
_FETCH_GIVE_UP_FRACTION: Final[float] = 0.2


class AgentError(ColearnChainError):
    """Raised when the agent cannot take part at all: not a learner, no current model to start from, or
    an accepted model it cannot adopt. Waiting does not help; the message says what to do."""


@dataclass(frozen=True)
class AgentSettings:
    """How an agent follows the chain. Defaults suit a local chain."""

    #: seconds between polls of the chain
    poll_interval: float = 0.2
    #: act only on events at least this many blocks deep (0 on a local chain, a few on a testnet)
    confirmations: int = 0
    #: stop (returning 0) once the current epoch is >= this and every earlier accept is adopted
    until_epoch: Optional[int] = None
    #: largest blob a voter fetches and decodes (a proposal is also capped near the model's own size)
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    #: seconds between two close attempts for one epoch (the chain's clock may lag ours)
    close_retry: float = 1.0
    #: seconds each keeper waits per position after the epoch's proposer before closing it
    close_stagger: float = 1.0
    #: seconds between two fetches of a blob that could not be fetched (store down, CID not found)
    fetch_retry: float = 1.0
    #: compare the chain's current model and epoch with ours every this many polls (missed events)
    model_check_every: int = 20
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
    #: the learner's ``proposals_made`` before it trained this proposal (None if it has no counter)
    count_before: Optional[int] = None


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
        self._last_fetch: dict[tuple[int, HexDigest], float] = {}  # failed fetches, by (epoch, digest)
        self._clock_offset = 0.0  # chain time - wall time, refreshed whenever the chain's clock is read
        self._last_warning: dict[str, float] = {}
        self._fetch_cap = settings.max_blob_bytes
        self._polls = 0
        self._stopping = False

    # ───────────────────────────────────────────────────────────── public

    def run(self) -> int:
        """Start (or resume) and follow the chain; return 0 when ``until_epoch`` is reached or on stop().

        A step that fails on the chain or the store is logged and tried again at the next poll; only
        :class:`AgentError` (and a learner breaking its contract) stops the agent.
        """
        while not self._stopping:
            try:
                self.start()
                break
            except (AgentError, ChainUnavailable):
                raise  # not a learner, no model to start from, or no node at all: say so and stop
            except (ColearnChainError, Web3Exception) as error:
                self._warn("start", "cannot start yet, will try again: %s: %s", type(error).__name__, error)
            time.sleep(self.settings.poll_interval)
        while not self._stopping:
            try:
                if self.step():
                    log.info("epoch %d reached (until-epoch %s); stopping", self._epoch(), self.settings.until_epoch)
                    return 0
            except (AgentError, LearnerContractError, EventDecodeError):
                raise
            except ChainUnavailable as error:
                self._warn("chain", "chain unavailable, will keep trying: %s", error)
            except (ColearnChainError, Web3Exception) as error:
                self._warn(f"step-{type(error).__name__}", "step failed, will try again: %s: %s",
                           type(error).__name__, error)
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
        if not voted and self.settings.confirmations > 0:
            voted = self._voted_at_latest(state.epoch)
        self._fetch_cap = fetch_limit(self.learner.current_weights(), self.settings.max_blob_bytes)
        try:
            self._adopt_current(model)
        except TRANSIENT_FETCH_ERRORS as error:
            raise AgentError(
                f"cannot load the current model {model.digest} (cid {model.cid}, since epoch {model.since_epoch}): "
                f"{type(error).__name__}: {error}. Start the agent again once the weight store can serve it."
            ) from error
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
                # An accepted model cannot be fetched yet: act on nothing stale, but keep closing expired
                # epochs, or a consortium whose store is down would stop for good.
                self._keep(self._keeper_view())
                return False
            self._backlog.pop(0)
        self._polls += 1
        if self._polls % max(1, self.settings.model_check_every) == 0:
            self._check_view()
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

    def _voted_at_latest(self, epoch: int) -> bool:
        """Whether we voted in ``epoch`` by the latest block: a vote may be newer than the lagged snapshot."""
        latest = self.client.block_number()
        return self.client.current_epoch(block=latest) == epoch and self.client.has_voted(self.me, block=latest)

    def _adopt_current(self, model: CurrentModel) -> None:
        """Make the learner hold the chain's current model (unchanged if it already does) and save it.

        Raises the store's transient errors (StoreUnavailable, CidNotFound) as they are, and AgentError
        when the model cannot be adopted at all.
        """
        own_blob = encode_weights(self.learner.current_weights())
        if digest_hex(own_blob) == model.digest.lower():
            blob = own_blob
            log.info("current model %s (since epoch %d) equals the learner's own weights", model.digest, model.since_epoch)
        else:
            blob = self.state.blob_for(model.digest) or self._fetch_model(
                model.cid, model.digest, f"the current model (since epoch {model.since_epoch})"
            )[1]
            weights = decode_weights(blob, expected=self.learner.current_weights(), max_bytes=self.settings.max_blob_bytes)
            self.learner.accept_weights(copy_weights(weights))
            log.info("adopted current model %s (since epoch %d, cid %s)", model.digest, model.since_epoch, model.cid)
        self.state.save_model(model.since_epoch, model.digest, model.cid, blob)

    def _fetch_model(self, cid: Cid, digest: HexDigest, what: str) -> tuple[Weights, bytes]:
        """Fetch and check a model the chain made current; transient store errors are raised as they are."""
        try:
            return fetch_weights(self.store, cid, digest, self.learner.current_weights(), max_bytes=self._fetch_cap)
        except TRANSIENT_FETCH_ERRORS:
            raise
        except (WeightStoreError, WeightsMismatch) as error:
            raise AgentError(self._cannot_adopt(what, digest, cid, error)) from error

    def _cannot_adopt(self, what: str, digest: HexDigest, cid: Cid, error: Exception) -> str:
        if isinstance(error, BlobTooLarge):
            advice = (f"if the model really is that large, restart the agent with a larger --max-blob-bytes "
                      f"(now {self.settings.max_blob_bytes}; this learner's own model encodes to about "
                      f"{self._fetch_cap} bytes at most)")
        elif isinstance(error, DigestMismatch):
            advice = ("the store serves other bytes under that CID than the digest on chain names: put the blob "
                      f"whose sha256 is {digest} into the weight store (another learner's state directory keeps "
                      "every model it adopted), then restart the agent")
        else:
            advice = ("the blob does not fit this learner's model: check that --learner-config matches the "
                      "deployment's; if it does, the consortium accepted weights this model cannot use, and this "
                      "learner cannot follow it")
        return (f"{what} is {digest} (cid {cid}), but this learner cannot adopt it: {type(error).__name__}: {error}. "
                f"What to do: {advice}. A restarted agent resumes from the chain's current model.")

    def _restore_proposal_count(self, snapshot: int) -> None:
        """Tell the learner how many proposals it has made, as the chain records them.

        The project's learners draw their proposal randomness from this counter
        (``proposals_made``), so a restarted learner continues the sequence the reference driver
        would produce. Learners without the attribute are left alone.
        """
        if not hasattr(self.learner, "proposals_made"):
            return
        cursor = LogCursor(
            self.client.w3, str(self.client.address), start_block=self.settings.start_block,
            topics=[event_topic("WeightsProposed"), None, address_topic(self.me)],
        )
        count = 0
        while cursor.next_block <= snapshot:
            events = self.client.retrying("eth_getLogs", lambda: cursor.poll(to_block=snapshot))
            count += sum(1 for event in events if isinstance(event, WeightsProposed))
        setattr(self.learner, "proposals_made", count)
        log.info("learner has made %d proposals so far", count)

    def _check_view(self) -> None:
        """Compare the chain at the last block read with our view; repair what missed events left stale."""
        assert self.cursor is not None and self.round is not None
        self._chain_now()  # and re-read the chain's clock, in case it jumped (a dev chain's time travel)
        block = self.cursor.next_block - 1
        model = self.client.current_model(block=block)
        saved = self.state.current()
        if saved is None or (saved.digest, saved.since_epoch) != (model.digest.lower(), model.since_epoch):
            self._warn("model-check", "at block %d the chain's current model is %s (since epoch %d) but the state "
                       "directory holds %s: events were missed; adopting the chain's model", block, model.digest,
                       model.since_epoch, f"{saved.digest} (since epoch {saved.since_epoch})" if saved else "none")
            try:
                self._adopt_current(model)
            except TRANSIENT_FETCH_ERRORS as error:
                self._warn("model-check-fetch", "cannot fetch the current model %s (cid %s) yet; will try again: %s",
                           model.digest, model.cid, error)
        state = self.client.epoch_state(block=block)
        r = self.round
        if (state.epoch, state.proposed, state.deadline) != (r.epoch, r.proposed, r.deadline):
            log.warning("at block %d the chain is in epoch %d (phase %s, deadline %d) but we thought epoch %d "
                        "(deadline %d): events were missed; following the chain", block, state.epoch,
                        state.phase.name, state.deadline, r.epoch, r.deadline)
            self.round = _Round(state.epoch, state.proposer, state.deadline, state.proposed, state.digest.lower(), state.cid)
            if self.client.has_voted(self.me, block=block):
                self._voted.add(state.epoch)

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
        """Adopt an accepted model; False while it cannot be fetched yet, AgentError if it never can be."""
        digest = event.digest.lower()
        decoded = self._decoded.get(event.epoch)
        if decoded is None or decoded.digest != digest:
            key = (event.epoch, digest)
            if time.monotonic() - self._last_fetch.get(key, -math.inf) < self.settings.fetch_retry:
                return False
            try:
                weights, blob = self._fetch_model(event.cid, digest, f"the model accepted in epoch {event.epoch}")
            except TRANSIENT_FETCH_ERRORS as error:
                self._last_fetch[key] = time.monotonic()
                self._warn(f"adopt-{event.epoch}", "epoch %d accepted %s (cid %s) but it cannot be fetched yet; "
                           "retrying, and still closing expired epochs meanwhile: %s", event.epoch, digest, event.cid, error)
                return False
            decoded = _Decoded(digest, weights, blob)
        self.learner.accept_weights(copy_weights(decoded.weights))
        self.state.save_model(event.epoch + 1, digest, event.cid, decoded.blob)
        log.info("epoch %d accepted: %d approve / %d reject; adopted %s (tx %s)",
                 event.epoch, event.approvals, event.rejections, digest, event.meta.tx_hash)
        self._forget(event.epoch)
        return True

    def _keeper_view(self) -> _Round:
        """The current epoch as the events not applied yet tell it (only what closing it needs)."""
        assert self.round is not None
        view = dataclasses.replace(self.round)
        for event in self._backlog[1:]:
            if isinstance(event, EpochStarted):
                view = _Round(event.epoch, event.proposer, event.proposal_deadline)
            elif isinstance(event, WeightsProposed) and event.epoch == view.epoch:
                view.proposed, view.deadline = True, event.voting_deadline
        return view

    def _forget(self, epoch: int) -> None:
        """Drop what was kept for epochs up to ``epoch``: they are decided."""
        for cache in (self._own, self._decoded, self._last_close):
            for key in [k for k in cache if k <= epoch]:
                del cache[key]
        for pairs in (self._verdicts, self._last_fetch):
            for pair in [k for k in pairs if k[0] <= epoch]:
                del pairs[pair]

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
            # Train only if the proposal can still be recorded: a proposal the chain never records would put
            # the learner's proposal counter ahead of the chain's count, which a restart goes by.
            chain_now = self._chain_now()
            if chain_now >= r.deadline:
                self._proposed.add(r.epoch)
                log.warning("epoch %d: our proposal deadline %d has passed (chain time %d); not training, the epoch "
                            "will be skipped", r.epoch, r.deadline, chain_now)
                return
            count_before = getattr(self.learner, "proposals_made", None)
            weights = check_weights(self.learner.propose_weights(), "propose_weights")
            blob = encode_weights(weights)
            own = self._own[r.epoch] = _OwnProposal(weights, blob, digest_hex(blob), count_before=count_before)
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
            if error.name == "ProposalClosed":
                self._chain_now()  # our estimate of the chain's clock was behind: refresh it for the keeper
                if own.count_before is not None:
                    # Not recorded, so not counted on chain: keep the learner's counter in step with the chain's.
                    setattr(self.learner, "proposals_made", own.count_before)
            log.warning("epoch %d: proposal refused by the contract: %s", r.epoch, error)
            return
        except TransactionFailed as error:
            self._warn("propose", "epoch %d: the proposal failed on chain; sending it again: %s", r.epoch, error)
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
            if time.monotonic() - self._last_fetch.get(key, -math.inf) < self.settings.fetch_retry:
                return
            verdict = evaluate_proposal(self.learner, self.store, r.cid, r.digest, max_bytes=self._fetch_cap)
            if verdict.retryable and not self._voting_nearly_over(r):
                self._last_fetch[key] = time.monotonic()
                self._warn(f"fetch-{r.epoch}", "epoch %d: cannot fetch proposal %s (cid %s) yet; retrying until %.0f s "
                           "before the voting deadline %d: %s", r.epoch, r.digest, r.cid, self._give_up_window(),
                           r.deadline, verdict.reason)
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
            if error.name not in _VOTE_SETTLED:
                self._warn(f"vote-{r.epoch}", "epoch %d: vote refused by the contract (will try again): %s", r.epoch, error)
                return
            self._voted.add(r.epoch)
            if error.name == "AlreadyVoted":
                log.info("epoch %d: already voted (a vote sent before a restart?): %s", r.epoch, error)
            else:
                log.debug("epoch %d: too late to vote: %s", r.epoch, error)
            return
        except TransactionFailed as error:
            self._warn("vote", "epoch %d: the vote failed on chain; sending it again with a fresh gas estimate: %s",
                       r.epoch, error)
            return
        except ChainUnavailable as error:
            self._warn("vote", "epoch %d: cannot send the vote yet (retrying): %s", r.epoch, error)
            return
        self._voted.add(r.epoch)
        log.info("epoch %d: voted %s (vote score %s, test score %s, fixed %d) tx %s gas %d",
                 r.epoch, "approve" if verdict.approve else "reject", _fmt(verdict.vote_score),
                 _fmt(verdict.test_score), verdict.score, sent.tx_hash, sent.gas_used)

    def _give_up_window(self) -> float:
        """Seconds before the voting deadline from which an unfetchable proposal is rejected."""
        assert self.params is not None
        return max(_FETCH_GIVE_UP_SECONDS, _FETCH_GIVE_UP_FRACTION * self.params.voting_timeout)

    def _voting_nearly_over(self, r: _Round) -> bool:
        """Whether the chain's clock is within the give-up window of ``r``'s voting deadline."""
        give_up_at = r.deadline - self._give_up_window()
        if time.time() + self._clock_offset < give_up_at - 1:
            return False  # cheap local estimate: not yet, no need to ask the chain
        return self._chain_now() >= give_up_at

    def _keep(self, r: _Round) -> None:
        """Close the epoch once the chain's clock has passed its deadline (anyone may; first one wins).

        Keepers are staggered by their position after the epoch's proposer (``close_stagger`` seconds
        each), and a later one first checks that the epoch is still open, so that with blocks mined at
        intervals the n agents do not all send the same close and n - 1 of them pay for a revert.
        """
        assert self.params is not None
        now = time.monotonic()
        if now - self._last_close.get(r.epoch, -math.inf) < self.settings.close_retry:
            return
        learners = self.params.learners
        position = (self.index - learners.index(r.proposer)) % len(learners) if r.proposer in learners else 0
        due = r.deadline + position * self.settings.close_stagger
        if time.time() + self._clock_offset < due - 1:
            return  # cheap local estimate: not yet, no need to ask the chain
        chain_now = self._chain_now()
        if chain_now < due:
            return
        self._last_close[r.epoch] = now
        if position > 0 and self.client.current_epoch() != r.epoch:
            log.debug("epoch %d: already closed by another keeper", r.epoch)
            return
        try:
            sent = self.client.close(r.epoch)
        except ContractRevert as error:
            level = logging.DEBUG if error.name in _LOST_RACE else logging.WARNING
            log.log(level, "epoch %d: close refused (another agent was first?): %s", r.epoch, error)
            return
        except TransactionFailed as error:
            self._warn("close", "epoch %d: the close failed on chain; will try again: %s", r.epoch, error)
            return
        log.info("epoch %d: closed after its deadline %d, tx %s gas %d", r.epoch, r.deadline, sent.tx_hash, sent.gas_used)

    # ───────────────────────────────────────────────────────────── helpers

    def _chain_now(self) -> int:
        """The chain's clock (the pending block's timestamp), refreshing our estimate of its offset."""
        chain_now = self.client.pending_timestamp()
        self._clock_offset = chain_now - time.time()
        return chain_now

    def _warn(self, key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
        """Log ``message`` at most every few seconds per ``key``: a loop retrying must not flood the log."""
        now = time.monotonic()
        if now - self._last_warning.get(key, -math.inf) >= _WARN_EVERY:
            self._last_warning[key] = now
            log.log(level, message, *args)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.6g}"
