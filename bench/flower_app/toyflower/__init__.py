"""colearn-chain's toy learners as a Flower app: one SuperNode per learner, FedAvg over all of them."""

from __future__ import annotations

from typing import Any

from colearn_chain.learners import make_learner
from colearn_chain.mli import MachineLearningInterface

#: The learner config of bench/epoch.py (its TOY, with the number of learners added).
TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}


def toy_learner(index: int, n_learners: int) -> MachineLearningInterface:
    return make_learner({**TOY, "n_learners": n_learners}, index)
