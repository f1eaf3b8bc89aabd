"""The agent's protocol view as a pure reducer, driven through the event orders that matter (no chain)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from colearn_chain.agent import view as v
from colearn_chain.agent.voter import INVALID_PROPOSAL_SCORE
from colearn_chain.chain.events import (
    EpochSkipped,
    EpochStarted,
    LogMeta,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
    WeightsProposed,
)

LEARNERS = ("0xA0", "0xA1", "0xA2")
VOTING = 10
WINDOW = v.give_up_window(VOTING)
_position = iter(range(1, 1_000_000))


def _meta() -> LogMeta:
    n = next(_position)
    return LogMeta(block_number=n, log_index=0, tx_hash=f"0x{n:064x}", block_hash=f"0x{n:064x}")


def _digest(epoch: int) -> str:
    return f"0x{epoch + 1:064x}"


def started(epoch: int, deadline: int = 100) -> EpochStarted:
    return EpochStarted(epoch, LEARNERS[epoch % 3], deadline, _meta())


def proposed(epoch: int, voting_deadline: int = 200) -> WeightsProposed:
    return WeightsProposed(epoch, LEARNERS[epoch % 3], _digest(epoch), f"Qm{epoch}", voting_deadline, _meta())


def vote(epoch: int, voter: str) -> VoteCast:
    return VoteCast(epoch, voter, True, 1, _meta())


def accepted(epoch: int) -> ProposalAccepted:
    return ProposalAccepted(epoch, _digest(epoch), f"Qm{epoch}", 2, 1, _meta())


def rejected(epoch: int) -> ProposalRejected:
    return ProposalRejected(epoch, _digest(epoch), f"Qm{epoch}", 1, 2, _meta())


INITIAL = v.ModelRef(0, "0x" + "ee" * 32, "QmInit")


def view_of(me: int, epoch: int = 0, *, proposer_votes: bool = True, deadline: int = 100) -> v.View:
    rules = v.Rules(me=LEARNERS[me], learners=LEARNERS, proposer_votes=proposer_votes, voting_timeout=VOTING)
    snapshot = v.Snapshot(epoch, LEARNERS[epoch % 3], deadline, INITIAL, voted=False)
    return v.initial_view(rules, snapshot, my_proposals=0)


def feed(view: v.View, *events: object) -> v.View:
    for event in events:
        view = v.reduce(view, event)
    return view


def kinds(actions: list[v.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def judgement(epoch: int, approve: bool = True) -> v.Judgement:
    return v.Judgement(_digest(epoch), approve, 7)


# ───────────────────────────────────────────── roles


def test_the_proposer_proposes_once_and_others_wait() -> None:
    proposer, other = view_of(0), view_of(1)
    assert v.actions_due(proposer, 50) == [v.Propose(0, 100)]
    assert v.actions_due(other, 50) == []
    # settled (sent, refused or given up): not proposed again, even before the event arrives
    assert v.actions_due(v.reduce(proposer, v.ProposalSettled(0)), 50) == []


def test_a_voter_evaluates_then_votes_its_judgement_once() -> None:
    view = feed(view_of(1), proposed(0))
    assert v.actions_due(view, 150) == [v.Evaluate(0, _digest(0), "Qm0", 200 - WINDOW)]
    view = v.reduce(view, v.Judged(0, judgement(0)))
    assert v.actions_due(view, 150) == [v.Vote(0, "Qm0", judgement(0))]
    assert v.actions_due(v.reduce(view, v.VoteSettled(0)), 150) == []
    assert v.actions_due(v.reduce(view, vote(0, LEARNERS[1])), 150) == []  # our VoteCast says the same


@pytest.mark.parametrize(("proposer_votes", "expected"), [(True, ["Evaluate"]), (False, [])])
def test_the_proposer_votes_only_under_the_seed_rule(proposer_votes: bool, expected: list[str]) -> None:
    view = feed(view_of(0, proposer_votes=proposer_votes), proposed(0))
    assert view.proposed and view.my_proposals == 1
    assert kinds(v.actions_due(view, 150)) == expected


def test_an_unjudged_proposal_gets_a_reject_before_the_deadline_with_the_last_fetch_error() -> None:
    view = feed(view_of(2), proposed(0), v.FetchStarted(0, _digest(0), at=150.0),
                v.FetchFailed(0, _digest(0), "CidNotFound: gone"))
    assert kinds(v.actions_due(view, 200 - WINDOW - 0.5)) == ["Evaluate"]
    (action,) = v.actions_due(view, 200 - WINDOW)
    assert isinstance(action, v.Vote) and action.timed_out and v.needs_chain_clock(action)
    assert not action.judgement.approve and action.judgement.score == INVALID_PROPOSAL_SCORE
    assert action.judgement.reason is not None and "CidNotFound: gone" in action.judgement.reason
    # fed back as the epoch's judgement, it stays the same vote (sent again if the send must be retried)
    view = v.reduce(view, v.Judged(0, action.judgement))
    assert v.actions_due(view, 200 - WINDOW) == [dataclasses.replace(action, timed_out=False)]


def test_a_fetch_failure_or_verdict_for_another_proposal_is_ignored() -> None:
    view = feed(view_of(1), proposed(0))
    assert v.reduce(view, v.FetchFailed(0, _digest(5), "x")) == view
    assert v.reduce(view, v.Judged(1, judgement(0))) == view
    assert v.reduce(view, v.Judged(0, judgement(5))) == view


# ───────────────────────────────────────────── keepers


@pytest.mark.parametrize(("me", "position"), [(0, 0), (1, 1), (2, 2)])
def test_keepers_are_staggered_by_their_position_after_the_proposer(me: int, position: int) -> None:
    view = view_of(me)  # epoch 0, proposer learner 0, nothing proposed, proposal deadline 100
    due = 100 + position * 1.0
    assert not [a for a in v.actions_due(view, due - 0.01) if isinstance(a, v.Close)]
    assert v.Close(0, 100, position) in v.actions_due(view, due)


def test_a_close_is_retried_only_after_close_retry() -> None:
    view = feed(view_of(1), proposed(0))
    view = v.reduce(view, v.CloseTried(0, at=201.0))
    assert not [a for a in v.actions_due(view, 201.5) if isinstance(a, v.Close)]
    assert v.Close(0, 200, 1) in v.actions_due(view, 202.0)
    assert v.reduce(view, v.CloseTried(7, at=500.0)) == view  # another epoch's attempt changes nothing


def test_the_voting_deadline_replaces_the_proposal_deadline() -> None:
    view = feed(view_of(1), v.Judged(0, judgement(0)), proposed(0, voting_deadline=300), v.VoteSettled(0))
    assert v.actions_due(view, 150) == []  # past the proposal deadline, before the voting deadline
    assert v.actions_due(view, 301) == [v.Close(0, 300, 1)]


# ───────────────────────────────────────────── event orders


def test_duplicate_events_change_nothing() -> None:
    once = feed(view_of(1), rejected(0), started(1), proposed(1), vote(1, LEARNERS[1]))
    dup_start = started(1, deadline=999)
    assert feed(once, dup_start, proposed(1), vote(1, LEARNERS[1])) == once
    assert not feed(once, dup_start).stale


def test_an_event_of_an_older_epoch_changes_nothing() -> None:
    view = feed(view_of(1), started(1))
    assert feed(view, proposed(0), vote(0, LEARNERS[1]), rejected(0), started(0)) == view


def test_a_gap_follows_the_newer_epoch_and_asks_for_a_resync() -> None:
    view = feed(view_of(1), started(2))  # epoch 0 -> 2: the outcomes of 0 and 1 were missed
    assert view.epoch == 2 and view.proposer == LEARNERS[2] and view.stale
    assert v.actions_due(view, 0) == [v.Resync()]
    # a proposal of an epoch we never saw start, or an outcome of one, is a gap too
    assert feed(view_of(1), proposed(1)).stale
    assert feed(view_of(1), rejected(3)).stale


def test_an_accept_and_the_next_start_in_one_block_adopt_before_the_next_proposer_trains() -> None:
    # learner 1 proposes epoch 1; epoch 0 is accepted in the block that starts epoch 1
    view = feed(view_of(1), proposed(0), v.Judged(0, judgement(0)), v.VoteSettled(0), accepted(0), started(1))
    target = v.ModelRef(1, _digest(0), "Qm0")
    assert not view.stale and view.epoch == 1
    assert v.actions_due(view, 50) == [v.Adopt(target, accepted=True)]
    view = v.reduce(view, v.Adopted(target))
    assert view.model == target and view.adopt is None
    assert v.actions_due(view, 50) == [v.Propose(1, 100)]


def test_while_a_model_waits_to_be_adopted_expired_epochs_are_still_closed() -> None:
    view = feed(view_of(2), proposed(0), accepted(0), started(1, deadline=100))
    assert kinds(v.actions_due(view, 50)) == ["Adopt"]
    assert kinds(v.actions_due(feed(view, proposed(1)), 150)) == ["Adopt"]  # no evaluation on a stale model
    assert kinds(v.actions_due(view, 101)) == ["Adopt", "Close"]


def test_a_newer_accept_replaces_an_older_one_not_adopted_yet() -> None:
    view = feed(view_of(2), proposed(0), accepted(0), started(1), proposed(1), accepted(1), started(2))
    assert view.adopt == v.ModelRef(2, _digest(1), "Qm1")
    assert feed(view, accepted(0)).adopt == view.adopt  # a replayed older accept does not go back


def test_an_outcome_ends_the_epoch_until_the_next_starts() -> None:
    view = feed(view_of(1), proposed(0), rejected(0))
    assert view.outcome == "rejected" and v.actions_due(view, 10_000) == []
    view = feed(view_of(0), EpochSkipped(0, LEARNERS[0], _meta()))
    assert v.actions_due(view, 10_000) == []


# ───────────────────────────────────────────── removed logs (reorganisations)


def test_a_removed_vote_is_voted_again_with_the_same_judgement() -> None:
    cast = vote(0, LEARNERS[1])
    view = feed(view_of(1), proposed(0), v.Judged(0, judgement(0)), cast)
    assert v.actions_due(view, 150) == []
    view = v.reduce(view, v.Removed(cast))
    assert v.actions_due(view, 150) == [v.Vote(0, "Qm0", judgement(0))]
    assert v.reduce(view, v.Removed(vote(0, LEARNERS[2]))) == view  # another learner's vote: nothing to undo


def test_a_removed_proposal_is_proposed_again_and_its_votes_forgotten() -> None:
    mine = proposed(0)
    before = view_of(0)
    view = feed(before, mine, v.Judged(0, judgement(0)), v.VoteSettled(0))
    assert view.my_proposals == 1 and v.actions_due(view, 50) == []
    view = v.reduce(view, v.Removed(mine))
    assert view.proposal is None and view.judgement is None and not view.voted and view.my_proposals == 0
    assert v.actions_due(view, 50) == [v.Propose(0, 100)]


def test_a_removed_proposal_of_ours_from_an_earlier_epoch_is_no_longer_counted() -> None:
    # Prepare: our proposal in epoch 0, accepted, epoch 1 started; a reorganisation takes all of it back
    mine, accept, start = proposed(0), accepted(0), started(1)
    view = feed(view_of(0), mine, accept, start)
    assert view.my_proposals == 1
    # Execute: newest first, as the cursor hands them over
    view = feed(view, v.Removed(start), v.Removed(accept), v.Removed(mine))
    # Assert: the learner's next proposal must continue from the chain's count, which no longer has it
    assert view.my_proposals == 0 and view.stale


def test_a_removed_accept_cancels_the_adoption_and_asks_the_chain() -> None:
    accept = accepted(0)
    view = feed(view_of(2), proposed(0), accept)
    assert view.adopt is not None
    view = v.reduce(view, v.Removed(accept))
    assert view.adopt is None and view.outcome is None and view.stale


def test_a_removed_epoch_start_asks_the_chain() -> None:
    start = started(1)
    view = feed(view_of(1), proposed(0), rejected(0), start)
    assert v.reduce(view, v.Removed(start)).stale
    assert not v.reduce(view, v.Removed(started(0))).stale


def test_our_proposal_whose_block_is_read_without_it_vanished_and_is_proposed_again() -> None:
    # Prepare: our proposal mined in block 7; a confirming agent has not read that deep yet
    view = feed(view_of(0), v.ProposalSettled(0, block=7), v.ReadTo(6))
    assert view.proposed and v.actions_due(view, 50) == []
    # Execute: block 7 read, and no WeightsProposed of ours in it (a reorganisation dropped it)
    vanished = v.reduce(view, v.ReadTo(7))
    # Assert
    assert v.actions_due(vanished, 50) == [v.Propose(0, 100)]
    seen = feed(view, proposed(0), v.ReadTo(7))  # the event came: nothing is due again
    assert seen.proposed and seen.proposal_block is None and v.actions_due(seen, 50) != [v.Propose(0, 100)]
    refused = feed(view_of(0), v.ProposalSettled(0), v.ReadTo(1_000))  # settled without a transaction
    assert refused.proposed


def test_our_vote_whose_block_is_read_without_it_vanished_and_is_voted_again() -> None:
    # Prepare
    view = feed(view_of(1), proposed(0), v.Judged(0, judgement(0)), v.VoteSettled(0, block=9), v.ReadTo(8))
    assert v.actions_due(view, 150) == []
    # Execute
    vanished = v.reduce(view, v.ReadTo(9))
    seen = feed(view, vote(0, LEARNERS[1]), v.ReadTo(9))
    # Assert
    assert v.actions_due(vanished, 150) == [v.Vote(0, "Qm0", judgement(0))]
    assert seen.voted and v.actions_due(seen, 150) == []
    assert feed(view, rejected(0), v.ReadTo(9)).voted  # the epoch is over: nothing to send again


# ───────────────────────────────────────────── snapshots (restart, repair)


def test_a_restart_snapshot_after_our_vote_does_not_vote_again() -> None:
    rules = view_of(1).rules
    proposal = v.Proposal(LEARNERS[0], _digest(0), "Qm0", 200)
    snapshot = v.Snapshot(0, LEARNERS[0], 200, INITIAL, voted=True, proposal=proposal)
    view = v.initial_view(rules, snapshot, my_proposals=3)
    assert view.proposal_deadline is None and view.deadline == 200 and view.my_proposals == 3
    assert v.actions_due(view, 150) == []
    assert v.actions_due(view, 201) == [v.Close(0, 200, 1)]


def test_a_restart_snapshot_of_our_own_recorded_proposal_does_not_propose_again() -> None:
    rules = view_of(0).rules
    proposal = v.Proposal(LEARNERS[0], _digest(0), "Qm0", 200)
    snapshot = v.Snapshot(0, LEARNERS[0], 200, INITIAL, voted=False, proposal=proposal)
    view = v.initial_view(rules, snapshot, my_proposals=1)
    assert kinds(v.actions_due(view, 150)) == ["Evaluate"]


def test_a_snapshot_of_the_same_epoch_keeps_what_we_did() -> None:
    view = feed(view_of(1), proposed(0), v.Judged(0, judgement(0)), v.VoteSettled(0))
    proposal = view.proposal
    same = v.Snapshot(0, LEARNERS[0], 200, INITIAL, voted=False, proposal=proposal)
    assert v.reduce(view, same) == view
    assert v.differences(view, same) == []


def test_a_snapshot_that_differs_repairs_the_view_and_the_model() -> None:
    view = feed(view_of(1), proposed(0), v.VoteSettled(0))
    newer = v.ModelRef(3, _digest(2), "Qm2")
    snap = v.Snapshot(3, LEARNERS[0], 400, newer, voted=False)
    assert len(v.differences(view, snap)) == 2
    repaired = v.reduce(dataclasses.replace(view, stale=True), snap)
    assert (repaired.epoch, repaired.proposal, repaired.voted, repaired.stale) == (3, None, False, False)
    assert repaired.adopt == newer and not repaired.adopt_accepted
    assert v.actions_due(repaired, 0) == [v.Adopt(newer, accepted=False)]


def test_an_input_of_unknown_type_asks_the_chain() -> None:
    view = v.reduce(view_of(1), object())
    assert view.stale and v.actions_due(view, 0) == [v.Resync()]


# ───────────────────────────────────────────── memory


def _entries(value: Any) -> int:
    """Every value reachable from ``value`` through dataclass fields and containers, counted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 1 + sum(_entries(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (tuple, list, set, frozenset)):
        return 1 + sum(_entries(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(_entries(k) + _entries(item) for k, item in value.items())
    return 1


def _run(view: v.View, epochs: range) -> v.View:
    for epoch in epochs:
        view = feed(view, proposed(epoch), v.Judged(epoch, judgement(epoch)), v.VoteSettled(epoch),
                    v.CloseTried(epoch, 1.0), vote(epoch, LEARNERS[1]))
        last = accepted(epoch) if epoch % 2 else rejected(epoch)
        view = feed(view, last, started(epoch + 1))
        if view.adopt is not None:
            view = v.reduce(view, v.Adopted(view.adopt))
    return view


def test_the_view_holds_the_same_number_of_entries_after_ten_or_a_thousand_epochs() -> None:
    after_10 = _run(view_of(1), range(10))
    after_1000 = _run(after_10, range(10, 1000))
    assert after_1000.epoch == 1000 and after_1000.model.since_epoch == 1000
    assert _entries(after_1000) == _entries(after_10)


def test_a_proposal_being_tested_is_waited_for_past_the_give_up_time() -> None:
    started = feed(view_of(2), proposed(0), v.FetchStarted(0, _digest(0), at=150.0))
    assert kinds(v.actions_due(started, 200 - WINDOW + 1)) == ["Vote"]  # still waiting on the store: reject
    view = v.reduce(started, v.Fetched(0, _digest(0)))
    assert kinds(v.actions_due(view, 200 - WINDOW + 1)) == ["Evaluate"]  # local work: no reject in its place
    assert v.reduce(view_of(2), v.Fetched(0, _digest(0))).fetched is False  # nothing proposed: nothing fetched


@pytest.mark.parametrize(("voting_timeout", "window"), [(3, 1.5), (8, 4.0), (10, 5.0), (60, 12.0)])
def test_a_first_fetch_always_gets_at_least_half_the_voting_window(voting_timeout: int, window: float) -> None:
    assert v.give_up_window(voting_timeout) == window


def test_a_first_fetch_that_starts_late_still_gets_half_the_window() -> None:
    view = feed(view_of(2), proposed(0))
    late = 200 - WINDOW + 1  # e.g. the agent started after the give-up time
    assert kinds(v.actions_due(view, late)) == ["Evaluate"]  # no fetch started yet: start one, reject nothing
    view = v.reduce(view, v.FetchStarted(0, _digest(0), at=late))
    assert v.reduce(view, v.FetchStarted(0, _digest(0), at=late + 1)) == view  # the first start counts
    assert kinds(v.actions_due(view, late + WINDOW / 2 - 0.1)) == ["Evaluate"]
    (action,) = v.actions_due(view, late + WINDOW / 2)
    assert isinstance(action, v.Vote) and action.timed_out
    assert "the fetch had not finished" in str(action.judgement.reason)
    # a failed attempt ends the patience at once
    failed = v.reduce(view, v.FetchFailed(0, _digest(0), "StoreUnavailable: down"))
    assert kinds(v.actions_due(failed, late)) == ["Vote"]


SLOTS_FULL = "could not start fetching: 4 fetches still running"


def test_a_proposal_whose_fetch_cannot_start_gets_a_reject_at_the_give_up_time_before_the_deadline() -> None:
    # Prepare: every fetch slot is busy from the moment the proposal is seen
    view = feed(view_of(2), proposed(0), v.FetchRefused(0, _digest(0), at=150.0, reason=SLOTS_FULL))
    give_up_at = 200 - WINDOW
    # Execute / Assert: tried again until the give-up time, then a reject naming the cause, before the deadline
    assert kinds(v.actions_due(view, give_up_at - 0.5)) == ["Evaluate"]
    (action,) = v.actions_due(view, give_up_at)
    assert give_up_at < 200
    assert isinstance(action, v.Vote) and action.timed_out and not action.judgement.approve
    assert action.judgement.score == INVALID_PROPOSAL_SCORE and SLOTS_FULL in str(action.judgement.reason)


def test_a_fetch_refused_after_the_give_up_time_is_a_reject_at_once() -> None:
    # Prepare: the agent tries first after the give-up time (it was down), and no slot is free
    late = 200 - WINDOW + 1
    view = feed(view_of(2), proposed(0))
    assert kinds(v.actions_due(view, late)) == ["Evaluate"]
    # Execute
    refused = v.reduce(view, v.FetchRefused(0, _digest(0), at=late, reason=SLOTS_FULL))
    # Assert: no patience for a fetch that never started, and the reject is due before the deadline
    (action,) = v.actions_due(refused, late)
    assert isinstance(action, v.Vote) and action.timed_out and SLOTS_FULL in str(action.judgement.reason)


def test_a_fetch_that_starts_after_a_refusal_is_waited_for_from_the_first_try() -> None:
    # Prepare: refused first, then a slot freed and the fetch started
    view = feed(view_of(2), proposed(0), v.FetchRefused(0, _digest(0), at=150.0, reason=SLOTS_FULL),
                v.FetchStarted(0, _digest(0), at=151.0))
    # Assert: the refusal is over; patience counts from the first try, so the give-up time still holds
    assert view.fetch_refused is None and view.fetch_tried_at == 150.0
    assert kinds(v.actions_due(view, 200 - WINDOW - 0.5)) == ["Evaluate"]
    (action,) = v.actions_due(view, 200 - WINDOW)
    assert isinstance(action, v.Vote) and "the fetch had not finished" in str(action.judgement.reason)
    # refused again (a retry after a failure found no slot): the refusal is the reason again
    again = v.reduce(view, v.FetchRefused(0, _digest(0), at=190.0, reason=SLOTS_FULL))
    assert again.fetch_tried_at == 150.0 and SLOTS_FULL in str(v.actions_due(again, 200 - WINDOW)[0])


def test_a_refusal_for_another_proposal_or_epoch_is_ignored() -> None:
    view = feed(view_of(2), proposed(0))
    assert v.reduce(view, v.FetchRefused(0, _digest(5), at=150.0, reason=SLOTS_FULL)) == view
    assert v.reduce(view, v.FetchRefused(1, _digest(0), at=150.0, reason=SLOTS_FULL)) == view
