"""The agent's one failure table for propose / vote / close, and the runner of work beside the loop."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from web3.exceptions import Web3RPCError

from colearn_chain.agent.background import Background
from colearn_chain.agent.send import Kind, Outcome, classify, send
from colearn_chain.chain.client import SentTx
from colearn_chain.exceptions import ChainUnavailable, ContractRevert, TransactionFailed


@pytest.mark.parametrize(
    ("kind", "revert", "outcome", "level"),
    [
        ("close", "WrongEpoch", Outcome.LOST_RACE, logging.DEBUG),
        ("close", "TooEarlyToClose", Outcome.LOST_RACE, logging.DEBUG),
        ("close", "UnexpectedPhase", Outcome.RETRY, logging.WARNING),
        ("vote", "AlreadyVoted", Outcome.SETTLED, logging.INFO),
        ("vote", "VotingClosed", Outcome.LOST_RACE, logging.DEBUG),
        ("vote", "WrongEpoch", Outcome.LOST_RACE, logging.DEBUG),
        ("vote", "UnexpectedPhase", Outcome.LOST_RACE, logging.DEBUG),
        ("vote", "EmptyModel", Outcome.RETRY, logging.WARNING),
        ("propose", "ProposalClosed", Outcome.SETTLED, logging.WARNING),
        ("propose", "WrongEpoch", Outcome.SETTLED, logging.WARNING),
        ("propose", "NotLearner", Outcome.FATAL, logging.ERROR),
        ("vote", "NotLearner", Outcome.FATAL, logging.ERROR),
    ],
)
def test_reverts_are_classified_by_action_and_rule(kind: Kind, revert: str, outcome: Outcome, level: int) -> None:
    assert classify(kind, ContractRevert(revert)) == (outcome, level)


@pytest.mark.parametrize("kind", ["propose", "vote", "close"])
@pytest.mark.parametrize(
    "error",
    [
        TransactionFailed("out of gas", tx_hash="0x1", block=1, gas_used=10, gas_limit=10),
        ChainUnavailable("node down"),
        Web3RPCError("internal error"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_no_rule_caused_are_sent_again(kind: Kind, error: Exception) -> None:
    sent = send(kind, lambda: (_ for _ in ()).throw(error))
    assert sent.outcome is Outcome.RETRY and not sent.outcome.done and sent.error is error


def test_a_mined_send_and_a_settling_revert_are_done() -> None:
    tx = SentTx("0xabc", 21_000, 7)
    assert send("vote", lambda: tx) == send("vote", lambda: tx)
    assert send("vote", lambda: tx).tx == tx and send("vote", lambda: tx).outcome.done

    def already() -> SentTx:
        raise ContractRevert("AlreadyVoted")

    sent = send("vote", already)
    assert sent.outcome.done and sent.revert == "AlreadyVoted"


def test_an_error_that_is_not_a_send_failure_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        send("close", lambda: {}["missing"])  # type: ignore[no-any-return]


def _wait(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_background_runs_one_job_per_key_within_its_limit_and_hands_each_result_once() -> None:
    jobs = Background(limit=2)
    release = threading.Event()
    assert jobs.submit("a", lambda cancelled: release.wait(5) and "a done")
    assert not jobs.submit("a", lambda cancelled: "again")  # one per key
    assert jobs.submit("b", lambda cancelled: release.wait(5) and 1 / 0)
    assert not jobs.submit("c", lambda cancelled: "c")  # the limit: "a" and "b" still run
    release.set()
    _wait(lambda: jobs.busy() == 0)
    done = dict(jobs.finished())
    assert done["a"].result() == "a done" and isinstance(done["b"].exception(), ZeroDivisionError)
    assert jobs.finished() == [] and len(jobs) == 0


def test_an_abandoned_job_is_told_and_still_counts_until_it_ends() -> None:
    jobs = Background(limit=1)
    seen: list[bool] = []
    release = threading.Event()

    def job(cancelled: threading.Event) -> None:
        release.wait(5)
        seen.append(cancelled.is_set())

    jobs.submit(("judge", 3), job)
    jobs.abandon(lambda key: key != ("judge", 3))
    assert not jobs.has(("judge", 3)) and jobs.busy() == 1
    assert not jobs.submit(("judge", 4), lambda cancelled: None)  # a hanging abandoned job still holds its place
    release.set()
    _wait(lambda: jobs.busy() == 0)
    assert seen == [True] and jobs.finished() == []


def test_a_job_that_waits_on_no_peer_may_take_one_place_beyond_the_limit() -> None:
    # Prepare: the one place held by a fetch that hangs
    jobs = Background(limit=1)
    release = threading.Event()
    assert jobs.submit(("judge", 1), lambda cancelled: release.wait(5))
    # Execute / Assert: a fetch is refused; a test of a blob at hand runs; a second one is refused
    try:
        assert not jobs.submit(("judge", 2), lambda cancelled: None)
        assert jobs.submit(("judge", 3), lambda cancelled: release.wait(5), local=True)
        assert not jobs.submit(("judge", 4), lambda cancelled: None, local=True)
        assert jobs.busy() == 2
    finally:
        release.set()
    _wait(lambda: jobs.busy() == 0)


def test_a_job_that_ends_wakes_the_waiting_loop_before_its_poll_interval() -> None:
    # Prepare: a job that ends when told to
    jobs = Background(limit=1)
    release = threading.Event()
    assert jobs.submit("fetch", lambda cancelled: release.wait(5))
    threading.Timer(0.05, release.set).start()
    # Execute: the loop's sleep between steps, with a poll interval far longer than the job
    started = time.monotonic()
    jobs.wait(10.0)
    woke_after = time.monotonic() - started
    # Assert: woken by the job, whose result is then collected
    assert woke_after < 5.0
    assert [key for key, _ in jobs.finished()] == ["fetch"]
