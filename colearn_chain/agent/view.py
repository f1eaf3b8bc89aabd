"""The agent's view of the protocol as a pure reducer: what it knows, and what it should do next.

Why pure: every rule of "The agents" (who proposes, who votes, when to give up on a proposal that cannot
be fetched, which keeper closes an epoch and when, what to adopt) lives here as a function of plain
values, so it can be tested event order by event order without a chain. The loop (:mod:`.loop`) does
all the input and output: it feeds chain events, chain snapshots and the outcomes of its own actions
to :func:`reduce`, asks :func:`actions_due` what to do at the chain's time ``now``, and does it.

The view holds the current epoch only, plus the model the learner holds and at most one model to
adopt: its size does not grow with the number of epochs. An input it does not know (a new event type,
an event that could not be decoded) marks it stale, and a stale view asks for a :class:`Resync` from
the chain before anything else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from ..chain.events import (
    ConsortiumFormed,
    EpochSkipped,
    EpochStarted,
    ModelInitialized,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
)
from ..chain.reorg import Removed
from ..typing import Cid, HexDigest
from .voter import INVALID_PROPOSAL_SCORE

__all__ = [
    "Action",
    "Adopt",
    "Adopted",
    "Close",
    "CloseTried",
    "Evaluate",
    "FetchFailed",
    "FetchRefused",
    "FetchStarted",
    "Fetched",
    "Judged",
    "Judgement",
    "ModelRef",
    "Proposal",
    "ProposalSettled",
    "Propose",
    "ReadTo",
    "Removed",
    "Resync",
    "Rules",
    "Snapshot",
    "View",
    "Vote",
    "VoteSettled",
    "actions_due",
    "differences",
    "give_up_window",
    "initial_view",
    "needs_chain_clock",
    "reduce",
]

#: The voting window's tail in which a proposal not judged yet is rejected: max(this, a fraction of it).
GIVE_UP_SECONDS: Final[float] = 5.0
GIVE_UP_FRACTION: Final[float] = 0.2


# ───────────────────────────────────────────────────────────── values


@dataclass(frozen=True)
class Rules:
    """What the view needs of the deployment (fixed) and of the agent's timing policy."""

    me: str
    learners: tuple[str, ...]
    proposer_votes: bool
    voting_timeout: int
    #: seconds each keeper waits per position after the epoch's proposer before closing it
    close_stagger: float = 1.0
    #: seconds between two close attempts for one epoch
    close_retry: float = 1.0

    def position(self, proposer: str) -> int:
        """Our place after ``proposer`` in the learner order (0 for the proposer itself)."""
        if proposer not in self.learners or self.me not in self.learners:
            return 0
        return (self.learners.index(self.me) - self.learners.index(proposer)) % len(self.learners)


def give_up_window(voting_timeout: int) -> float:
    """Seconds before the voting deadline from which a proposal not fetched yet gets a reject vote.

    At most half the voting window, so that a first fetch always gets a fair chance.
    """
    return min(max(GIVE_UP_SECONDS, GIVE_UP_FRACTION * voting_timeout), voting_timeout / 2)


@dataclass(frozen=True)
class ModelRef:
    """A model the chain made current in epoch ``since_epoch`` (0: the initial model)."""

    since_epoch: int
    digest: HexDigest
    cid: Cid


@dataclass(frozen=True)
class Proposal:
    """The current epoch's proposal as recorded on chain."""

    proposer: str
    digest: HexDigest
    cid: Cid
    voting_deadline: int


@dataclass(frozen=True)
class Judgement:
    """This agent's verdict on a proposal: what it votes, and why it refused it untested (if it did)."""

    digest: HexDigest
    approve: bool
    score: int
    reason: str | None = None


@dataclass(frozen=True)
class View:
    """The current epoch as this agent knows it, and what it has done in it."""

    rules: Rules
    epoch: int
    proposer: str
    #: None only when the view came from a snapshot taken after the proposal (then ``proposal`` is set)
    proposal_deadline: int | None
    #: the model the learner holds
    model: ModelRef
    proposal: Proposal | None = None
    #: "accepted" / "rejected" / "skipped" once the epoch's outcome is seen (its next epoch not yet)
    outcome: str | None = None
    #: our proposal for this epoch is settled: recorded, refused, or given up
    proposed: bool = False
    #: our vote for this epoch is recorded (or the chain refused it for good)
    voted: bool = False
    #: the block our proposal / vote transaction was mined in, until its event is read (None: nothing awaited).
    #: A block read without that event lost it to a reorganisation: the action is due again.
    proposal_block: int | None = None
    vote_block: int | None = None
    judgement: Judgement | None = None
    #: why the last fetch of the proposal failed (it is asked for again until the give-up time)
    fetch_error: str | None = None
    #: the chain time we first tried to fetch the proposal: a fetch started, or could not start (every slot
    #: busy); the give-up rule counts its patience from there (a reject waits for a first try)
    fetch_tried_at: float | None = None
    #: why our last try could not start a fetch (cleared when one starts): a reject is due at the give-up time
    fetch_refused: str | None = None
    #: the proposal is fetched and being tested: local work, waited for whatever the time
    fetched: bool = False
    #: the chain time of our last close attempt in this epoch
    close_tried_at: float | None = None
    #: a model the chain made current that the learner does not hold yet, and whether an accept says so
    adopt: ModelRef | None = None
    adopt_accepted: bool = False
    #: how many of our proposals the chain recorded (restores the learner's count when one is not)
    my_proposals: int = 0
    #: something was missed or undone: ask the chain before acting
    stale: bool = False

    @property
    def deadline(self) -> int | None:
        """The deadline that closes the epoch: the voting deadline once proposed, else the proposal deadline."""
        return self.proposal.voting_deadline if self.proposal is not None else self.proposal_deadline


# ───────────────────────────────────────────────────────────── inputs besides chain events


@dataclass(frozen=True)
class Snapshot:
    """The chain's state at one block (epochState, currentModel, hasVoted): at start and on a resync."""

    epoch: int
    proposer: str
    #: the proposal deadline while proposing, the voting deadline once proposed
    deadline: int
    model: ModelRef
    voted: bool
    proposal: Proposal | None = None


@dataclass(frozen=True)
class ProposalSettled:
    """Our proposal for ``epoch`` was sent (mined in ``block``), refused for good, or given up: do not propose
    again, unless ``block`` is read without it."""

    epoch: int
    block: int | None = None


@dataclass(frozen=True)
class VoteSettled:
    """Our vote for ``epoch`` was sent (mined in ``block``) or refused for good: do not vote again, unless
    ``block`` is read without it."""

    epoch: int
    block: int | None = None


@dataclass(frozen=True)
class ReadTo:
    """Every block up to ``block`` has been read (at the agent's confirmation depth) and its events fed."""

    block: int


@dataclass(frozen=True)
class CloseTried:
    """We tried to close ``epoch`` at chain time ``at``."""

    epoch: int
    at: float


@dataclass(frozen=True)
class Judged:
    """The proposal of ``epoch`` was judged (tested, or refused for a reason that asking again cannot fix)."""

    epoch: int
    judgement: Judgement


@dataclass(frozen=True)
class FetchFailed:
    """The proposal ``digest`` of ``epoch`` could not be fetched yet (store down, CID not found)."""

    epoch: int
    digest: HexDigest
    reason: str


@dataclass(frozen=True)
class FetchStarted:
    """A fetch of the proposal ``digest`` of ``epoch`` started at chain time ``at``."""

    epoch: int
    digest: HexDigest
    at: float


@dataclass(frozen=True)
class FetchRefused:
    """No fetch of the proposal ``digest`` of ``epoch`` could start at chain time ``at`` (``reason``: every
    slot is held by fetches still running); the loop tries again at its next step."""

    epoch: int
    digest: HexDigest
    at: float
    reason: str


@dataclass(frozen=True)
class Fetched:
    """The proposal ``digest`` of ``epoch`` is fetched and checked; the learner is testing it."""

    epoch: int
    digest: HexDigest


@dataclass(frozen=True)
class Adopted:
    """The learner now holds ``model`` (and the state directory keeps it)."""

    model: ModelRef


# ───────────────────────────────────────────────────────────── actions


@dataclass(frozen=True)
class Resync:
    """Read the chain's state and feed it back as a :class:`Snapshot`."""


@dataclass(frozen=True)
class Adopt:
    """Make the learner hold ``model``; ``accepted``: an accept event made it current (else a repair)."""

    model: ModelRef
    accepted: bool


@dataclass(frozen=True)
class Propose:
    """Train, store and propose, if the chain's clock is still before ``deadline``."""

    epoch: int
    deadline: int


@dataclass(frozen=True)
class Evaluate:
    """Fetch and test the proposal (beside the loop); a reject is cast at ``give_up_at`` without a verdict."""

    epoch: int
    digest: HexDigest
    cid: Cid
    give_up_at: float


@dataclass(frozen=True)
class Vote:
    """Send ``judgement`` as our vote on ``epoch``'s proposal."""

    epoch: int
    cid: Cid
    judgement: Judgement
    #: the give-up time came without a verdict: the judgement is a reject made here
    timed_out: bool = False


@dataclass(frozen=True)
class Close:
    """Close ``epoch``, whose ``deadline`` passed; ``position`` > 0: check first that no one did."""

    epoch: int
    deadline: int
    position: int


Action = Resync | Adopt | Propose | Evaluate | Vote | Close


# ───────────────────────────────────────────────────────────── the reducer


def initial_view(rules: Rules, snapshot: Snapshot, *, my_proposals: int) -> View:
    """The view of an agent that has just adopted ``snapshot.model`` and counted its past proposals."""
    return _from_snapshot(rules, snapshot, model=snapshot.model, my_proposals=my_proposals)


def _from_snapshot(rules: Rules, s: Snapshot, *, model: ModelRef, my_proposals: int) -> View:
    return View(
        rules=rules,
        epoch=s.epoch,
        proposer=s.proposer,
        proposal_deadline=None if s.proposal is not None else s.deadline,
        model=model,
        proposal=s.proposal,
        proposed=s.proposal is not None and s.proposal.proposer == rules.me,
        voted=s.voted,
        my_proposals=my_proposals,
    )


def _newest_known(view: View) -> int:
    """The latest epoch from which a model is known to be current (held or to adopt)."""
    return max(view.model.since_epoch, view.adopt.since_epoch if view.adopt is not None else -1)


def reduce(view: View, event: object) -> View:
    """The view after ``event``: a chain event, a :class:`Removed` one, a snapshot or an action's outcome.

    Idempotent for repeated events; an event of an older epoch changes nothing; a gap (an epoch, a
    proposal or an outcome of an epoch we never saw start) or an input of unknown type marks the view stale.
    """
    me = view.rules.me
    if isinstance(event, EpochStarted):
        if event.epoch <= view.epoch:
            return view
        gap = event.epoch > view.epoch + 1 or view.outcome is None
        return dataclasses.replace(
            _next_epoch(view, event.epoch, event.proposer, event.proposal_deadline), stale=view.stale or gap
        )
    if isinstance(event, WeightsProposed):
        if event.epoch > view.epoch:
            return dataclasses.replace(view, stale=True)
        if event.epoch < view.epoch or view.outcome is not None:
            return view
        if view.proposal is not None:
            return view if view.proposal.digest == event.digest.lower() else dataclasses.replace(view, stale=True)
        mine = event.proposer == me
        return dataclasses.replace(
            view,
            proposal=Proposal(event.proposer, event.digest.lower(), event.cid, event.voting_deadline),
            proposed=view.proposed or mine,
            proposal_block=None,
            my_proposals=view.my_proposals + (1 if mine else 0),
        )
    if isinstance(event, VoteCast):
        if event.voter == me and event.epoch == view.epoch:
            return dataclasses.replace(view, voted=True, vote_block=None)
        return view
    if isinstance(event, (ProposalAccepted, ProposalRejected, EpochSkipped)):
        if isinstance(event, ProposalAccepted) and event.epoch + 1 > _newest_known(view):
            view = dataclasses.replace(
                view, adopt=ModelRef(event.epoch + 1, event.digest.lower(), event.cid), adopt_accepted=True
            )
        if event.epoch > view.epoch:
            return dataclasses.replace(view, stale=True)
        if event.epoch < view.epoch:
            return view
        kind = {ProposalAccepted: "accepted", ProposalRejected: "rejected", EpochSkipped: "skipped"}[type(event)]
        return dataclasses.replace(view, outcome=kind)
    if isinstance(event, (ConsortiumFormed, ModelInitialized)):
        return view
    if isinstance(event, Removed):
        return _removed(view, event.event)
    if isinstance(event, Snapshot):
        return _snapshot(view, event)
    if isinstance(event, ProposalSettled):
        if event.epoch != view.epoch:
            return view
        awaited = event.block if view.proposal is None else None
        return dataclasses.replace(view, proposed=True, proposal_block=awaited)
    if isinstance(event, VoteSettled):
        return dataclasses.replace(view, voted=True, vote_block=event.block) if event.epoch == view.epoch else view
    if isinstance(event, ReadTo):
        return _vanished(view, event.block)
    if isinstance(event, CloseTried):
        return dataclasses.replace(view, close_tried_at=event.at) if event.epoch == view.epoch else view
    if isinstance(event, Judged):
        if event.epoch == view.epoch and view.proposal is not None and view.proposal.digest == event.judgement.digest:
            return dataclasses.replace(view, judgement=event.judgement)
        return view
    if isinstance(event, FetchFailed):
        if event.epoch == view.epoch and view.proposal is not None and view.proposal.digest == event.digest:
            return dataclasses.replace(view, fetch_error=event.reason)
        return view
    if isinstance(event, (FetchStarted, FetchRefused)):
        if event.epoch == view.epoch and view.proposal is not None and view.proposal.digest == event.digest:
            tried_at = view.fetch_tried_at if view.fetch_tried_at is not None else event.at  # the first try counts
            refused = event.reason if isinstance(event, FetchRefused) else None
            return dataclasses.replace(view, fetch_tried_at=tried_at, fetch_refused=refused)
        return view
    if isinstance(event, Fetched):
        if event.epoch == view.epoch and view.proposal is not None and view.proposal.digest == event.digest:
            return dataclasses.replace(view, fetched=True)
        return view
    if isinstance(event, Adopted):
        done = view.adopt is not None and view.adopt.since_epoch <= event.model.since_epoch
        return dataclasses.replace(
            view,
            model=event.model,
            adopt=None if done else view.adopt,
            adopt_accepted=False if done else view.adopt_accepted,
        )
    return dataclasses.replace(view, stale=True)  # unknown: the chain will tell


def _next_epoch(view: View, epoch: int, proposer: str, proposal_deadline: int) -> View:
    """A fresh epoch: only the model, the model to adopt and our proposal count carry over."""
    return View(
        rules=view.rules,
        epoch=epoch,
        proposer=proposer,
        proposal_deadline=proposal_deadline,
        model=view.model,
        adopt=view.adopt,
        adopt_accepted=view.adopt_accepted,
        my_proposals=view.my_proposals,
    )


def _vanished(view: View, read_to: int) -> View:
    """Our proposal or vote whose block was read without its event was dropped by a reorganisation: due again."""
    if view.outcome is not None:
        return view
    if view.proposal_block is not None and read_to >= view.proposal_block and view.proposal is None:
        view = dataclasses.replace(view, proposed=False, proposal_block=None)
    if view.vote_block is not None and read_to >= view.vote_block:
        view = dataclasses.replace(view, voted=False, vote_block=None)
    return view


def _removed(view: View, event: object) -> View:
    """Undo ``event``: what it recorded is not recorded any more (a reorganisation dropped it)."""
    me = view.rules.me
    if isinstance(event, VoteCast):
        if event.voter == me and event.epoch == view.epoch:
            return dataclasses.replace(view, voted=False, vote_block=None)
        return view
    if isinstance(event, WeightsProposed):
        mine = event.proposer == me
        if event.epoch != view.epoch or view.proposal is None or view.proposal.digest != event.digest.lower():
            # An older epoch's proposal of ours (taken back with the epochs after it): the chain counts one less.
            return dataclasses.replace(view, my_proposals=view.my_proposals - 1) if mine else view
        if view.proposal_deadline is None:  # from a snapshot: the proposal deadline is not known here
            return dataclasses.replace(view, stale=True, my_proposals=view.my_proposals - (1 if mine else 0))
        return dataclasses.replace(
            view,
            proposal=None,
            proposed=False if mine else view.proposed,
            proposal_block=None,
            voted=False,
            vote_block=None,
            judgement=None,
            fetch_error=None,
            fetched=False,
            fetch_tried_at=None,
            fetch_refused=None,
            my_proposals=view.my_proposals - (1 if mine else 0),
        )
    if isinstance(event, (ProposalAccepted, ProposalRejected, EpochSkipped)):
        if isinstance(event, ProposalAccepted) and view.adopt is not None and view.adopt.since_epoch == event.epoch + 1:
            view = dataclasses.replace(view, adopt=None, adopt_accepted=False)
        if event.epoch == view.epoch:
            view = dataclasses.replace(view, outcome=None)
        # An accept already adopted, or an outcome of an older epoch: only the chain knows what holds now.
        stale = view.stale or isinstance(event, ProposalAccepted) or event.epoch < view.epoch
        return dataclasses.replace(view, stale=stale)
    if isinstance(event, EpochStarted):
        return dataclasses.replace(view, stale=True) if event.epoch >= view.epoch else view
    return view


def _snapshot(view: View, s: Snapshot) -> View:
    """Follow the chain's state; keep what we did in the epoch if it is still the same epoch and proposal."""
    if s.model == view.model:
        adopt, accepted = None, False
    elif view.adopt == s.model:
        adopt, accepted = view.adopt, view.adopt_accepted
    else:
        adopt, accepted = s.model, False
    same_epoch = s.epoch == view.epoch and view.outcome is None
    same_proposal = (s.proposal is None and view.proposal is None) or (
        s.proposal is not None and view.proposal is not None and s.proposal.digest == view.proposal.digest
    )
    if same_epoch and same_proposal:
        return dataclasses.replace(view, voted=view.voted or s.voted, adopt=adopt, adopt_accepted=accepted, stale=False)
    fresh = _from_snapshot(view.rules, s, model=view.model, my_proposals=view.my_proposals)
    if same_epoch and view.proposal_deadline is not None:
        fresh = dataclasses.replace(fresh, proposal_deadline=view.proposal_deadline)
    return dataclasses.replace(fresh, adopt=adopt, adopt_accepted=accepted)


def differences(view: View, s: Snapshot) -> list[str]:
    """What in ``view`` disagrees with the chain's ``s`` (for the log when a resync repairs something)."""
    found: list[str] = []
    if s.model != view.model and s.model != view.adopt:
        found.append(f"current model {s.model.digest} (since epoch {s.model.since_epoch}), "
                     f"we hold {view.model.digest} (since epoch {view.model.since_epoch})")
    chain_digest = s.proposal.digest if s.proposal is not None else None
    view_digest = view.proposal.digest if view.proposal is not None else None
    if (s.epoch, chain_digest) != (view.epoch, view_digest) or (view.outcome is not None and s.epoch == view.epoch):
        found.append(f"epoch {s.epoch} (proposal {chain_digest}, deadline {s.deadline}), "
                     f"we thought epoch {view.epoch} (proposal {view_digest}, deadline {view.deadline})")
    return found


# ───────────────────────────────────────────────────────────── what to do


def actions_due(view: View, now: float) -> list[Action]:
    """What this agent should do at chain time ``now``, in order.

    A stale view asks only for a resync. A model to adopt comes first, and until it is adopted the agent
    neither proposes nor votes (the learner would act on stale weights) but still closes expired epochs.
    The proposer (whose proposal is not settled) proposes; every voter (not the proposer under the colearn
    variant) evaluates the proposal and votes its verdict, or a reject once ``now`` reaches the give-up time
    with the proposal still not fetched (a proposal being tested is waited for: that is local work); a keeper
    closes the epoch once ``now`` passes its deadline plus its stagger.
    """
    if view.stale:
        return [Resync()]
    rules = view.rules
    actions: list[Action] = []
    if view.adopt is not None:
        actions.append(Adopt(view.adopt, view.adopt_accepted))
    if view.outcome is not None:
        return actions
    if view.adopt is None:
        if view.proposal is None:
            if view.proposer == rules.me and not view.proposed and view.proposal_deadline is not None:
                actions.append(Propose(view.epoch, view.proposal_deadline))
        elif not view.voted and (rules.proposer_votes or view.proposal.proposer != rules.me):
            actions.append(_vote_or_evaluate(view, view.proposal, now))
    deadline = view.deadline
    if deadline is not None:
        position = rules.position(view.proposer)
        due = deadline + position * rules.close_stagger
        retry_ok = view.close_tried_at is None or now >= view.close_tried_at + rules.close_retry
        if now >= due and retry_ok:
            actions.append(Close(view.epoch, deadline, position))
    return actions


def _vote_or_evaluate(view: View, proposal: Proposal, now: float) -> Action:
    if view.judgement is not None:
        return Vote(view.epoch, proposal.cid, view.judgement)
    window = give_up_window(view.rules.voting_timeout)
    give_up_at = proposal.voting_deadline - window
    tried = view.fetch_tried_at
    # A first try that came late (the agent was down, or slow to start) still gets half the window; a try
    # that failed, or could not even start a fetch, ends the patience.
    failed = view.fetch_error is not None or view.fetch_refused is not None
    patience_over = tried is not None and (failed or now >= tried + window / 2)
    if now < give_up_at or view.fetched or not patience_over:
        return Evaluate(view.epoch, proposal.digest, proposal.cid, give_up_at)
    why = view.fetch_refused or view.fetch_error or "the fetch had not finished"
    reason = f"not judged {window:.0f} s before the voting deadline {proposal.voting_deadline}: {why}"
    judgement = Judgement(proposal.digest, False, INVALID_PROPOSAL_SCORE, reason)
    return Vote(view.epoch, proposal.cid, judgement, timed_out=True)


def needs_chain_clock(action: Action) -> bool:
    """Whether ``action`` became due by the clock (so the loop confirms it against the chain's own clock)."""
    return isinstance(action, Close) or (isinstance(action, Vote) and action.timed_out)
