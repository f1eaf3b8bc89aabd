"""One learner's agent: the edges around the protocol view (:mod:`.view`) — the chain, the store, the learner.

Shape of the loop (why it is safe to kill and restart at any point):

* **Knowledge comes from events, in chain order.** A :class:`ReorgAwareCursor` yields the contract's events
  in ``(block, logIndex)`` order, each once, only once ``confirmations`` deep, and a :class:`~.view.Removed`
  for each event a reorganisation dropped (the view undoes it: a vanished proposal or vote is sent again).
  Each poll feeds all of them to the pure reducer before the agent acts, so an accept mined in the same
  block as the next ``EpochStarted`` is adopted before the new proposer trains, exactly as the reference
  driver does it. Every ``model_check_every`` poll intervals (and whenever the view is stale: a gap, an unknown
  event) the agent reads the chain's state at the last block it read and feeds it back, so a missed event
  is repaired.
* **Actions come from** :func:`.view.actions_due`: adopt, propose, evaluate and vote, close. Each is sent
  through :func:`.send.send`, whose one table says whether a failure is a lost race, settled, worth a retry
  or fatal; the outcome goes back into the view.
* **The loop never waits on a peer.** Fetching and testing a proposal, and fetching an accepted model, run
  on background threads (:mod:`.background`); the loop keeps following events and closing epochs, and a
  proposal not judged by the give-up time gets a reject vote before the voting deadline.
* **Restart = snapshot + follow.** :meth:`Agent.start` reads the epoch, the current model and ``hasVoted``
  at one block (and ``hasVoted`` at the latest block too, when that block lags), adopts the current model
  (from the state directory or the store), restores the learner's proposal count from the chain's history,
  then follows events from the next block. ``hasVoted`` prevents a second vote.
* **Keeping the current model.** Every model the agent adopts (the initial one too) is put into its own
  store as well (a Kubo store pins it), beside the loop and retried while the store is down, so the
  current model stays available from every member's node after its proposer leaves.
* **Failures.** A step that fails on the chain or the store is logged and tried again at the next poll.
  Only conditions that waiting cannot fix stop the agent with :class:`AgentError`: an accepted model this
  learner cannot adopt, a learner whose ``current_weights`` or ``accept_weights`` breaks the learner
  interface (:mod:`colearn_chain.learners.checked`). A test that breaks it is a reject vote with the
  reason, a proposal that breaks it is not sent (the epoch is skipped): the agent goes on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from web3.exceptions import Web3Exception

from ..chain.client import (
    ZERO_DIGEST,
    ChainClient,
    ContractParams,
    CurrentModel,
    EpochState,
    SentTx,
)
from ..chain.events import (
    EventDecodeError,
    LogCursor,
    WeightsProposed,
    address_topic,
    event_topic,
)
from ..chain.follow import ChainFollower
from ..chain.reorg import ReorgAwareCursor
from ..codec import DEFAULT_MAX_BLOB_BYTES, decode_weights, digest_hex, encode_weights
from ..exceptions import (
    ChainUnavailable,
    ColearnChainError,
    LearnerContractError,
    WeightsMismatch,
    WeightStoreError,
)
from ..learners.checked import checked
from ..mli import MachineLearningInterface, copy_weights
from ..store.base import WeightStore
from ..typing import Cid, HexDigest, Weights
from . import view as v
from .background import Background, Cancelled
from .narrate import cannot_adopt, log_event, what
from .pace import ChainClock, Throttled
from .send import Kind, Outcome, Sent, send
from .state import StateDir
from .voter import (
    TRANSIENT_FETCH_ERRORS,
    Verdict,
    evaluate_proposal,
    fetch_limit,
    fetch_weights,
)

__all__ = ["Agent", "AgentError", "AgentSettings"]

log = logging.getLogger(__name__)

#: Reads of a snapshot before giving up until the next poll (see Agent._read_snapshot).
_SNAPSHOT_ATTEMPTS: Final[int] = 3
#: Decoded blobs kept to adopt without a fetch: our proposal and the one we judged (with room for one more).
_BLOB_CACHE: Final[int] = 3


class _Stopped(Exception):
    """stop() was called while start() waited for the chain."""


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
    until_epoch: int | None = None
    #: largest blob a voter fetches and decodes (a proposal is also capped near the model's own size)
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    #: seconds between two close attempts for one epoch (the chain's clock may lag ours)
    close_retry: float = 1.0
    #: seconds each keeper waits per position after the epoch's proposer before closing it
    close_stagger: float = 1.0
    #: seconds between two fetches of a blob that could not be fetched (store down, CID not found)
    fetch_retry: float = 1.0
    #: compare the chain's current model and epoch with ours every this many poll intervals (missed events)
    model_check_every: int = 20
    #: the deployment's block: where the chain's history (our past proposals) starts
    start_block: int = 0
    #: at most this many fetches running beside the loop (one given up on counts until it ends: a Kubo fetch
    #: ends by the store's timeout; a proposal whose fetch cannot start gets a reject at the give-up time)
    max_fetches: int = 4


@dataclass(frozen=True)
class _Decoded:
    """A blob and its decoded weights, kept from proposing or judging to adopt it without a fetch."""

    weights: Weights = field(repr=False)
    blob: bytes = field(repr=False)


@dataclass
class _OwnProposal:
    """What we trained in one epoch; kept so that a failed store or send retries the same weights."""

    epoch: int
    blob: bytes
    digest: HexDigest
    #: how many of our proposals the chain had recorded before this one (restored if it is not recorded)
    count_before: int
    cid: Cid | None = None


class Agent:
    """Runs one learner in the protocol until stopped (or until ``settings.until_epoch``)."""

    def __init__(
        self,
        client: ChainClient,
        store: WeightStore,
        learner: MachineLearningInterface,
        state_dir: StateDir,
        settings: AgentSettings = AgentSettings(),
        follower: ChainFollower | None = None,
    ) -> None:
        self.client = client
        #: where new heads and the contract's logs come from, shared by the agents of a process (None: ask
        #: the node on each poll); a new head wakes the loop at once
        self.follower = follower
        self.store = store
        #: the learner, behind the interface's checks (its own object is ``learner.inner``)
        self.learner = checked(learner)
        self.state = state_dir
        self.settings = settings
        self.me = client.sender
        self.params: ContractParams | None = None
        self.index = -1
        self.view: v.View | None = None
        self.cursor: ReorgAwareCursor | None = None
        self.clock = ChainClock(client.pending_timestamp)
        self._warn = Throttled(log)
        self._jobs = Background(settings.max_fetches)
        #: one lock for every call into the learner: the loop and a background test never overlap
        self._learner_lock = threading.Lock()
        self._blobs: OrderedDict[HexDigest, _Decoded] = OrderedDict()
        self._own: _OwnProposal | None = None
        #: the proposal being judged beside the loop, and whether its blob is fetched (then it is waited for)
        self._judging: tuple[int, HexDigest, threading.Event] | None = None
        self._retry_at: dict[Hashable, float] = {}  # job key -> monotonic time it may run again
        #: the adopted model still to be put (pinned) in our own store: digest, CID on chain, blob
        self._unpinned: tuple[HexDigest, Cid, bytes] | None = None
        self._pin_at = 0.0  # monotonic time the next pin attempt may start
        self._template: Weights = {}
        self._fetch_cap = settings.max_blob_bytes
        self._next_check = math.inf  # monotonic time of the next comparison with the chain's state
        self._stopping = False
        if follower is not None:
            follower.on_new_head(self._jobs.wake)

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
            except _Stopped:
                return 0
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
            self._jobs.wait(self.settings.poll_interval)  # a finished fetch or test wakes the loop at once
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
        snapshot_block = self._snapshot_block()
        snapshot, state = self._read_snapshot(snapshot_block)
        if not snapshot.voted and self.settings.confirmations > 0 and self._voted_at_latest(snapshot.epoch):
            snapshot = v.Snapshot(snapshot.epoch, snapshot.proposer, snapshot.deadline, snapshot.model, True,
                                  snapshot.proposal)
        with self._learner_lock:
            self._template = self.learner.current_weights()
        self._fetch_cap = fetch_limit(self._template, self.settings.max_blob_bytes)
        try:
            self._adopt_at_start(snapshot.model)
        except TRANSIENT_FETCH_ERRORS as error:
            m = snapshot.model
            raise AgentError(
                f"cannot load the current model {m.digest} (cid {m.cid}, since epoch {m.since_epoch}): "
                f"{type(error).__name__}: {error}. Start the agent again once the weight store can serve it."
            ) from error
        count = self._count_my_proposals(snapshot_block)
        with self._learner_lock:
            self.learner.restore_proposal_count(count)
        rules = v.Rules(
            me=self.me, learners=self.params.learners, proposer_votes=self.params.proposer_votes,
            voting_timeout=self.params.voting_timeout, close_stagger=self.settings.close_stagger,
            close_retry=self.settings.close_retry,
        )
        self.view = v.initial_view(rules, snapshot, my_proposals=count)
        self.clock.read()
        follower = self.follower
        self.cursor = ReorgAwareCursor(
            self.client.w3, str(self.client.address), start_block=snapshot_block + 1,
            confirmations=self.settings.confirmations,
            head=follower.head if follower is not None else None,
            get_logs=follower.get_logs if follower is not None else None,
        )
        self._next_check = time.monotonic() + self._check_period()
        log.info(
            "learner %d (%s) resumes at block %d: epoch %d, phase %s, proposer %s, voted %s, model since epoch %d "
            "(%s); %d proposals recorded",
            self.index, self.me, snapshot_block, state.epoch, state.phase.name, state.proposer, snapshot.voted,
            snapshot.model.since_epoch, snapshot.model.digest, count,
        )

    def step(self) -> bool:
        """Apply new events in order, collect finished background work, act; return True when done."""
        assert self.cursor is not None and self.view is not None
        for event in self.client.retrying("eth_getLogs", self.cursor.poll):
            log_event(event, self.me)
            if isinstance(event, v.Removed):
                self.client.transactions.forget_nonce()  # one of ours may have vanished with the block
            self._feed(event)
        self._feed(v.ReadTo(self.cursor.next_block - 1))
        self._collect()
        if time.monotonic() >= self._next_check:
            # By the clock, not by steps: a new block wakes the loop, and blocks come with the learners.
            self._next_check = time.monotonic() + self._check_period()
            self._resync()
        if self._done():
            return True
        self._act()
        return False

    # ───────────────────────────────────────────────────────────── the view

    def _feed(self, event: object) -> None:
        assert self.view is not None
        self.view = v.reduce(self.view, event)
        epoch = self.view.epoch
        # Work for an epoch that is over is thrown away; so is what was kept for it.
        self._jobs.abandon(lambda key: not isinstance(key, tuple) or key[0] != "judge" or key[1] == epoch)
        if self._own is not None and self._own.epoch < epoch:
            self._own = None
        if self._judging is not None and self._judging[0] != epoch:
            self._judging = None
        wanted = {("fetch", self.view.adopt.digest)} if self.view.adopt is not None else set()
        for key in [k for k in self._retry_at if k not in wanted and not (isinstance(k, tuple) and k[1] == epoch)]:
            del self._retry_at[key]

    def _check_period(self) -> float:
        return max(1, self.settings.model_check_every) * self.settings.poll_interval

    def _epoch(self) -> int:
        return self.view.epoch if self.view is not None else -1

    def _done(self) -> bool:
        until = self.settings.until_epoch
        return (until is not None and self.view is not None and self.view.epoch >= until and self.view.adopt is None
                and not self._pinning())

    def _act(self) -> None:
        """Do what is due, feeding each outcome back, until nothing new is due (an adoption may free a proposal)."""
        self._pin()  # a pin that failed, once its retry time came
        tried: set[tuple[type, int]] = set()
        for _ in range(4):
            assert self.view is not None
            actions = v.actions_due(self.view, self.clock.estimate())
            if any(v.needs_chain_clock(a) for a in actions):
                actions = v.actions_due(self.view, self.clock.read())
            until = self.settings.until_epoch
            if until is not None and self.view.epoch >= until:
                actions = [a for a in actions if isinstance(a, v.Adopt)]  # finish adopting, start nothing new
            fresh = [a for a in actions if (type(a), _epoch_of(a)) not in tried]
            if not fresh:
                return
            for action in fresh:
                tried.add((type(action), _epoch_of(action)))
                self._do(action)

    def _do(self, action: v.Action) -> None:
        if isinstance(action, v.Resync):
            self._resync()
        elif isinstance(action, v.Adopt):
            self._adopt(action)
        elif isinstance(action, v.Propose):
            self._propose(action)
        elif isinstance(action, v.Evaluate):
            self._evaluate(action)
        elif isinstance(action, v.Vote):
            self._vote(action)
        else:
            self._close(action)

    # ───────────────────────────────────────────────────────────── reading the chain

    def _snapshot_block(self) -> int:
        """The newest block deep enough to trust, waiting (stoppable) until it is at or after the deployment."""
        told = False
        while True:
            snapshot = self.client.block_number() - self.settings.confirmations
            if snapshot >= self.settings.start_block:
                return snapshot
            if self._stopping:
                raise _Stopped
            if not told:
                log.info("waiting for the node: block %d (its head less %d confirmation(s)) is before the "
                         "deployment's block %d; is it still syncing?", snapshot, self.settings.confirmations,
                         self.settings.start_block)
                told = True
            time.sleep(self.settings.poll_interval)

    def _read_snapshot(self, block: int) -> tuple[v.Snapshot, EpochState]:
        """The chain's epoch, model and our vote at ``block``, read as one consistent state in one request
        (which also reads the chain's clock).

        A read of mixed states (see :attr:`~colearn_chain.chain.views.Snapshot.consistent`: an epoch with
        the vote flag of the one before would leave the agent believing it had voted) is read again.
        """
        for _ in range(_SNAPSHOT_ATTEMPTS):
            read = self.client.views.snapshot(self.me, block=block)
            self.clock.set(read.pending_timestamp)
            if read.consistent:
                return _snapshot_of(read.state, read.model, read.voted, self.params), read.state
        raise ColearnChainError(f"the node's state at block {block} kept changing while it was read")

    def _voted_at_latest(self, epoch: int) -> bool:
        """Whether we voted in ``epoch`` by the latest block: a vote may be newer than the lagged snapshot."""
        latest = self.client.block_number()
        return self.client.current_epoch(block=latest) == epoch and self.client.has_voted(self.me, block=latest)

    def _count_my_proposals(self, snapshot: int) -> int:
        """How many proposals of ours the chain recorded up to ``snapshot`` (the learner continues from there)."""
        cursor = LogCursor(
            self.client.w3, str(self.client.address), start_block=self.settings.start_block,
            topics=[event_topic("WeightsProposed"), None, address_topic(self.me)],
        )
        count = 0
        while cursor.next_block <= snapshot:
            events = self.client.retrying("eth_getLogs", lambda: cursor.poll(to_block=snapshot))
            count += sum(1 for event in events if isinstance(event, WeightsProposed))
        return count

    def _resync(self) -> None:
        """Compare the chain at the last block read with the view; follow the chain where they differ."""
        assert self.cursor is not None and self.view is not None
        # The snapshot re-reads the chain's clock too, in case it jumped (a dev chain's time travel).
        block = self.cursor.next_block - 1
        snapshot, state = self._read_snapshot(block)
        for difference in v.differences(self.view, snapshot):
            log.warning("at block %d the chain shows %s (phase %s): events were missed; following the chain",
                        block, difference, state.phase.name)
        self._feed(snapshot)

    # ───────────────────────────────────────────────────────────── background work

    @contextmanager
    def _learner_turn(self, cancelled: threading.Event, fetched: threading.Event) -> Iterator[None]:
        """Hold the learner for a background test (the blob is fetched), unless it was given up on meanwhile."""
        fetched.set()
        with self._learner_lock:
            if cancelled.is_set():
                raise Cancelled()
            yield

    def _collect(self) -> None:
        """Turn finished background work into view inputs (or a stop, for what waiting cannot fix)."""
        if self._judging is not None and self._judging[2].is_set() and self.view is not None:
            self._feed(v.Fetched(self._judging[0], self._judging[1]))
            self._judging = None
        for key, future in self._jobs.finished():
            assert isinstance(key, tuple)
            if key[0] == "judge":
                self._judged_job(key[1], key[2], future)
            elif key[0] == "pin":
                self._pinned_job(key[1], future)
            else:
                self._fetched_job(key[1], future)

    def _judged_job(self, epoch: int, digest: HexDigest, future: Future[Any]) -> None:
        assert self.view is not None
        try:
            verdict: Verdict = future.result()
        except Cancelled:
            return
        except LearnerContractError:
            raise
        except ColearnChainError as error:
            verdict = Verdict(approve=False, score=0, reason=f"{type(error).__name__}: {error}", retryable=True)
        proposal = self.view.proposal
        if epoch != self.view.epoch or proposal is None or proposal.digest != digest or self.view.judgement is not None:
            return  # the epoch moved on, or the give-up time came first
        if verdict.retryable:
            self._retry_at[("judge", epoch, digest)] = time.monotonic() + self.settings.fetch_retry
            self._warn("fetch-proposal", "epoch %d: cannot fetch proposal %s (cid %s) yet; retrying until %.0f s "
                       "before the voting deadline %d: %s", epoch, digest, proposal.cid,
                       v.give_up_window(self.view.rules.voting_timeout), proposal.voting_deadline, verdict.reason)
            self._feed(v.FetchFailed(epoch, digest, str(verdict.reason)))
            return
        if verdict.weights is not None and verdict.blob is not None:
            self._keep_blob(digest, verdict.weights, verdict.blob)
        self._judged(epoch, proposal.cid, v.Judgement(digest, verdict.approve, verdict.score, verdict.reason), verdict)

    def _judged(self, epoch: int, cid: Cid, judgement: v.Judgement, verdict: Verdict | None) -> None:
        """Record a judgement once: in the state directory, the log and the view."""
        self.state.record_evaluation(
            epoch, digest=judgement.digest, cid=cid, approve=judgement.approve, score=judgement.score,
            vote_score=verdict.vote_score if verdict else None, test_score=verdict.test_score if verdict else None,
            reason=judgement.reason,
        )
        if judgement.reason is not None:
            log.warning("epoch %d: rejecting proposal %s (cid %s): %s", epoch, judgement.digest, cid, judgement.reason)
        self._feed(v.Judged(epoch, judgement))

    def _fetched_job(self, digest: HexDigest, future: Future[Any]) -> None:
        assert self.view is not None
        adopt = self.view.adopt
        try:
            weights, blob = future.result()
        except TRANSIENT_FETCH_ERRORS as error:
            self._retry_at[("fetch", digest)] = time.monotonic() + self.settings.fetch_retry
            if adopt is not None and adopt.digest == digest:
                self._warn("fetch-model", "%s, %s (cid %s), cannot be fetched yet; retrying, and still closing expired "
                           "epochs meanwhile: %s", what(adopt), digest, adopt.cid, error)
            return
        except (WeightStoreError, WeightsMismatch) as error:
            if adopt is None or adopt.digest != digest:
                return  # no longer wanted
            advice = cannot_adopt(what(adopt), digest, adopt.cid, error, self.settings.max_blob_bytes, self._fetch_cap)
            raise AgentError(advice) from error
        self._retry_at.pop(("fetch", digest), None)
        self._keep_blob(digest, weights, blob)

    def _may_run(self, key: Hashable) -> bool:
        return not self._jobs.has(key) and time.monotonic() >= self._retry_at.get(key, -math.inf)

    def _keep_blob(self, digest: HexDigest, weights: Weights, blob: bytes) -> None:
        self._blobs[digest] = _Decoded(weights, blob)
        self._blobs.move_to_end(digest)
        while len(self._blobs) > _BLOB_CACHE:
            self._blobs.popitem(last=False)

    def _keep_pinned(self, digest: HexDigest, cid: Cid, blob: bytes) -> None:
        """Put the model we adopted into our own store (pinning it), starting now."""
        self._unpinned, self._pin_at = (digest, cid, blob), 0.0
        self._pin()

    def _pin(self) -> None:
        """Start putting the adopted model into our store, unless done, running, or waiting to retry."""
        if self._unpinned is None or time.monotonic() < self._pin_at:
            return
        digest, _, blob = self._unpinned
        store = self.store
        self._jobs.submit(("pin", digest), lambda _: store.put(blob))

    def _pinning(self) -> bool:
        return self._unpinned is not None and self._jobs.has(("pin", self._unpinned[0]))

    def _pinned_job(self, digest: HexDigest, future: Future[Any]) -> None:
        if self._unpinned is None or self._unpinned[0] != digest:
            return  # a newer model was adopted meanwhile: that one is the one to keep
        cid = self._unpinned[1]
        try:
            stored: Cid = future.result()
        except (WeightStoreError, OSError) as error:
            self._pin_at = time.monotonic() + self.settings.fetch_retry
            self._warn("pin", "cannot keep the current model %s (cid %s) in %s yet (retrying): %s",
                       digest, cid, self.store.describe(), error)
            return
        self._unpinned = None
        if stored != cid:
            log.warning("the current model %s is kept in %s as %s; the chain names it %s", digest,
                        self.store.describe(), stored, cid)
        else:
            log.info("keeping the current model %s (cid %s) in %s", digest, cid, self.store.describe())

    # ───────────────────────────────────────────────────────────── actions

    def _evaluate(self, action: v.Evaluate) -> None:
        """Start (or keep waiting for) the proposal's fetch and test beside the loop."""
        key = ("judge", action.epoch, action.digest)
        if not self._may_run(key):
            return
        cached = self._blobs.get(action.digest)
        learner, store, template, cap = self.learner, self.store, self._template, self._fetch_cap
        fetched = threading.Event()

        def job(cancelled: threading.Event) -> Verdict:
            return evaluate_proposal(learner, store, action.cid, action.digest, max_bytes=cap, expected=template,
                                     cached=cached.blob if cached else None,
                                     guard=self._learner_turn(cancelled, fetched))

        if self._jobs.submit(key, job, local=cached is not None):  # a blob at hand needs no peer
            self._judging = (action.epoch, action.digest, fetched)
            self._feed(v.FetchStarted(action.epoch, action.digest, self.clock.estimate()))
            return
        # Every slot is held (fetches given up on count until they end): the view rejects at the give-up time.
        reason = f"could not start fetching: {self._jobs.busy()} fetches still running"
        self._warn("fetch-slots", "epoch %d: %s (proposal %s, cid %s); trying again, and voting reject from chain "
                   "time %.0f if none starts", action.epoch, reason, action.digest, action.cid, action.give_up_at)
        self._feed(v.FetchRefused(action.epoch, action.digest, self.clock.estimate(), reason))

    def _vote(self, action: v.Vote) -> None:
        assert self.view is not None
        judgement = action.judgement
        if self.view.judgement != judgement:  # the give-up time came first: this reject is the judgement
            self._judged(action.epoch, action.cid, judgement, None)
        sent = self._send(
            "vote", action.epoch, lambda: self.client.vote(action.epoch, judgement.approve, judgement.score)
        )
        if sent.outcome is Outcome.SENT:
            assert sent.tx is not None
            log.info("epoch %d: voted %s (fixed score %d) tx %s gas %d", action.epoch,
                     "approve" if judgement.approve else "reject", judgement.score, sent.tx.tx_hash, sent.tx.gas_used)
        if sent.outcome.done:
            self._feed(v.VoteSettled(action.epoch, sent.tx.block if sent.tx is not None else None))

    def _propose(self, action: v.Propose) -> None:
        assert self.view is not None
        own = self._own if self._own is not None and self._own.epoch == action.epoch else None
        if own is None:
            # Train only if the proposal can still be recorded: a proposal the chain never records would put
            # the learner's proposal count ahead of the chain's, which a restart goes by.
            chain_now = self.clock.read()
            if chain_now >= action.deadline:
                log.warning("epoch %d: our proposal deadline %d has passed (chain time %d); not training, the epoch "
                            "will be skipped", action.epoch, action.deadline, chain_now)
                self._feed(v.ProposalSettled(action.epoch))
                return
            try:
                with self._learner_lock:
                    # The learner counts the proposals the chain recorded: one a reorganisation took back is not.
                    self.learner.restore_proposal_count(self.view.my_proposals)
                    weights = self.learner.propose_weights()
            except LearnerContractError as error:
                log.error("epoch %d: not proposing, our learner broke the learner interface: %s", action.epoch, error)
                with self._learner_lock:  # nothing reaches the chain: keep the learner's count in step with it
                    self.learner.restore_proposal_count(self.view.my_proposals)
                self._feed(v.ProposalSettled(action.epoch))
                return
            blob = encode_weights(weights)
            own = self._own = _OwnProposal(action.epoch, blob, digest_hex(blob), self.view.my_proposals)
            self._keep_blob(own.digest, decode_weights(blob), blob)  # what the others decode; adopted if accepted
        if own.cid is None:
            try:
                own.cid = self.store.put(own.blob)
            except WeightStoreError as error:
                self._warn("store-put", "epoch %d: cannot store our proposal yet (retrying): %s", action.epoch, error)
                return
        cid = own.cid
        sent = self._send("propose", action.epoch, lambda: self.client.propose(action.epoch, own.digest, cid))
        if sent.outcome is Outcome.SENT:
            assert sent.tx is not None
            log.info("epoch %d: proposed %s (cid %s, %d bytes) tx %s gas %d",
                     action.epoch, own.digest, cid, len(own.blob), sent.tx.tx_hash, sent.tx.gas_used)
        elif sent.revert == "ProposalClosed":
            self.clock.read()  # our estimate of the chain's clock was behind: refresh it for the keeper
            with self._learner_lock:  # not recorded, so not counted on chain: keep the learner in step
                self.learner.restore_proposal_count(own.count_before)
        if sent.outcome.done:
            self._feed(v.ProposalSettled(action.epoch, sent.tx.block if sent.tx is not None else None))

    def _close(self, action: v.Close) -> None:
        """Close the epoch (anyone may; first one wins). A keeper after the first checks it is still open."""
        self._feed(v.CloseTried(action.epoch, self.clock.estimate()))
        if action.position > 0 and self.client.current_epoch() != action.epoch:
            log.debug("epoch %d: already closed by another keeper", action.epoch)
            return
        sent = self._send("close", action.epoch, lambda: self.client.close(action.epoch))
        if sent.outcome is Outcome.SENT:
            assert sent.tx is not None
            log.info("epoch %d: closed after its deadline %d, tx %s gas %d",
                     action.epoch, action.deadline, sent.tx.tx_hash, sent.tx.gas_used)
        elif sent.revert == "TooEarlyToClose":
            self.clock.read()

    def _send(self, kind: Kind, epoch: int, call: Callable[[], SentTx]) -> Sent:
        """Send through the one failure table and log what came of it (routine at debug, retries throttled)."""
        sent = send(kind, call)
        if sent.outcome is Outcome.SENT:
            return sent
        what = (f"epoch {epoch}: {kind} refused or failed ({sent.outcome.value}): "
                f"{type(sent.error).__name__}: {sent.error}")
        if sent.outcome is Outcome.FATAL:
            raise AgentError(what) from sent.error
        if sent.outcome is Outcome.RETRY:
            self._warn(f"send-{kind}", "%s; will try again", what)
        else:
            log.log(sent.level, "%s", what)
        return sent

    # ───────────────────────────────────────────────────────────── adopting models

    def _adopt(self, action: v.Adopt) -> None:
        """Make the learner hold the model; fetch it beside the loop if it is nowhere at hand."""
        model = action.model
        decoded = self._blobs.get(model.digest)
        if decoded is None:
            blob = self.state.blob_for(model.digest)
            if blob is not None:
                weights = decode_weights(blob, expected=self._template, max_bytes=self.settings.max_blob_bytes)
                decoded = _Decoded(weights, blob)
        if decoded is None:
            key = ("fetch", model.digest)
            if self._may_run(key):
                store, template, cap = self.store, self._template, self._fetch_cap

                def job(_: threading.Event) -> tuple[Weights, bytes]:
                    return fetch_weights(store, model.cid, model.digest, template, max_bytes=cap)

                if not self._jobs.submit(key, job):
                    self._warn("fetch-slots-model", "cannot start fetching %s (cid %s) yet: %d fetches still "
                               "running; trying again", what(model), model.cid, self._jobs.busy())
            return
        with self._learner_lock:
            self.learner.accept_weights(copy_weights(decoded.weights))
        self.state.save_model(model.since_epoch, model.digest, model.cid, decoded.blob)
        self._keep_pinned(model.digest, model.cid, decoded.blob)
        log.info("adopted %s (cid %s): %s", model.digest, model.cid, what(model))
        self._feed(v.Adopted(model))

    def _adopt_at_start(self, model: v.ModelRef) -> None:
        """Make the learner hold the chain's current model (unchanged if it already does) and save it.

        Raises the store's transient errors (StoreUnavailable, CidNotFound) as they are, and AgentError
        when the model cannot be adopted at all.
        """
        own_blob = encode_weights(self._template)
        if digest_hex(own_blob) == model.digest:
            blob = own_blob
            log.info("current model %s (since epoch %d) equals the learner's own weights",
                     model.digest, model.since_epoch)
        else:
            blob = self.state.blob_for(model.digest) or self._fetch_current(model)
            weights = decode_weights(blob, expected=self._template, max_bytes=self.settings.max_blob_bytes)
            with self._learner_lock:
                self.learner.accept_weights(copy_weights(weights))
            log.info("adopted current model %s (since epoch %d, cid %s)", model.digest, model.since_epoch, model.cid)
        self.state.save_model(model.since_epoch, model.digest, model.cid, blob)
        self._keep_pinned(model.digest, model.cid, blob)

    def _fetch_current(self, model: v.ModelRef) -> bytes:
        try:
            return fetch_weights(self.store, model.cid, model.digest, self._template, max_bytes=self._fetch_cap)[1]
        except TRANSIENT_FETCH_ERRORS:
            raise
        except (WeightStoreError, WeightsMismatch) as error:
            advice = cannot_adopt(
                what(model), model.digest, model.cid, error, self.settings.max_blob_bytes, self._fetch_cap
            )
            raise AgentError(advice) from error


# ───────────────────────────────────────────────────────────── helpers


def _snapshot_of(state: EpochState, model: CurrentModel, voted: bool, params: ContractParams | None) -> v.Snapshot:
    """The view's snapshot of what the chain's views returned at one block."""
    assert params is not None
    proposal = None
    if state.digest != ZERO_DIGEST:
        proposal = v.Proposal(state.proposer, state.digest.lower(), state.cid, state.deadline)
    return v.Snapshot(
        epoch=state.epoch, proposer=state.proposer, deadline=state.deadline,
        model=v.ModelRef(model.since_epoch, model.digest.lower(), model.cid), voted=voted, proposal=proposal,
    )


def _epoch_of(action: v.Action) -> int:
    if isinstance(action, v.Resync):
        return -1
    if isinstance(action, v.Adopt):
        return action.model.since_epoch
    return action.epoch
