"""plot.png stays a readable file of bounded size however long the run and however many its members.

Why: the figure grew 0.45 inch per epoch, so a long run (thousands of epochs) asked matplotlib for an
image past its size limit and the report failed at the very end of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from colearn_chain.report import DPI, MAX_HEIGHT, MAX_WIDTH, plot


def _results(n_epochs: int, n_learners: int) -> dict[str, Any]:
    epochs = [{
        "epoch": e, "proposer": e % n_learners, "outcome": "accepted" if e % 3 else "rejected",
        "votes": [{"learner": i, "approve": (e + i) % 4 != 0, "test_score": 0.5 + 0.4 * e / n_epochs,
                   "vote_score": 0.45 + 0.4 * e / n_epochs} for i in range(n_learners)],
    } for e in range(n_epochs)]
    return {
        "epochs": epochs, "learners": [f"0x{i:040x}" for i in range(n_learners)],
        "config": {"threshold": 0.5, "learner_config": {"kind": "numpy", "dataset": "digits", "n_learners": n_learners,
                                                        "split": "iid", "model": "linear"}},
        "final": {"test_accuracy_mean": 0.9}, "baselines": {"centralized": 0.95, "solo_mean": 0.7},
    }


@pytest.mark.parametrize(("n_epochs", "n_learners"), [(5, 3), (2000, 100)])
def test_plot_is_bounded_in_size(n_epochs: int, n_learners: int, tmp_path: Path) -> None:
    # Execute
    path = plot(_results(n_epochs, n_learners), tmp_path)
    # Assert: a PNG no larger than the bounds (tight_layout may trim, never grow)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert 0 < width <= MAX_WIDTH * DPI and 0 < height <= MAX_HEIGHT * DPI, (width, height)


def test_a_long_run_is_wider_than_a_short_one(tmp_path: Path) -> None:
    short = matplotlib.image.imread(plot(_results(5, 3), tmp_path)).shape[1]
    (tmp_path / "long").mkdir()
    long = matplotlib.image.imread(plot(_results(40, 3), tmp_path / "long")).shape[1]
    assert long > short
