"""What `colearn-chain run` prints about its baselines: one line each, and accuracies named by test set."""

from __future__ import annotations

import io
from typing import Any

import pytest

from colearn_chain.learners import make_learners
from colearn_chain.learners.baselines import (
    centralized,
    local_test_accuracy,
    run_epochs,
    solo,
)
from colearn_chain.progress import Progress

SMALL: dict[str, Any] = {"n_learners": 3, "dataset": "digits", "split": "dirichlet", "alpha": 0.5, "seed": 0}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_prints_one_line_when_done() -> None:
    # Prepare
    out = io.StringIO()
    bar = Progress("solo baseline", 3, out)
    # Execute
    for _ in range(3):
        bar.advance()
    bar.done("mean global test accuracy 0.5000")
    # Assert
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("solo baseline: mean global test accuracy 0.5000 (3 epochs, ")


def test_progress_on_a_terminal_rewrites_one_line_in_place() -> None:
    # Prepare
    out = _Terminal()
    bar = Progress("centralized baseline", 2, out)
    # Execute
    bar.advance()
    bar.advance()
    bar.done("global test accuracy 0.9000")
    # Assert: every update returns to the start of the same line; one newline, at the end
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") == 4
    assert "centralized baseline: epochs 2/2" in text
    assert text.rsplit("\r\033[K", 1)[1].startswith("centralized baseline: global test accuracy 0.9000 (2 epochs, ")


def test_progress_without_a_stream_is_silent() -> None:
    bar = Progress("reference driver", 1, None)
    bar.advance()
    bar.done("ignored")
    assert bar.count == 1


def test_baselines_report_each_in_memory_epoch() -> None:
    # Prepare
    calls: list[str] = []
    # Execute
    solo(SMALL, 2, on_epoch=lambda: calls.append("solo"))
    centralized(SMALL, 2, on_epoch=lambda: calls.append("centralized"))
    # Assert: solo runs each of the 3 learners for 2 epochs
    assert calls == ["solo"] * 6 + ["centralized"] * 2


def test_local_test_accuracy_of_an_accepted_model_is_what_its_voters_reported() -> None:
    # Prepare: the epoch lines report the proposal's test score on each voter's local test split;
    # after an accept, the final model's local test accuracy must be the same numbers.
    learners = make_learners(**SMALL)
    # Execute
    results = run_epochs(learners, 3)
    # Assert
    last = results[-1]
    assert last.accepted
    reported = [vote.test_score for vote in last.votes if vote is not None]
    assert local_test_accuracy(learners).per_learner == pytest.approx(reported, abs=0)
