"""Ready-made learners and the factory that builds them from a JSON-able config.

An agent process rebuilds its own learner with ``make_learner(config, index)``; the in-memory
reference builds every learner with the same call, so both hold identical learners (same data
parts, same initial weights, same proposal randomness). ``learner_config`` fills in defaults and
rejects unknown keys, so the config written to ``results.json`` is complete.

Why the ``sklearn`` defaults (:data:`SKLEARN_DEFAULTS`): ``python bench/learning.py --sweep``
(digits, 5 learners, 20 epochs, seeds 0-2, one setting changed at a time). Final global test
accuracy of the shared model, Dirichlet alpha 0.5 / alpha 0.1, linear and MLP:

=============================  ===========  ===========
setting                        linear       mlp
=============================  ===========  ===========
defaults                       0.946/0.910  0.954/0.843
issue 4's baseline recipe      0.930/0.767  0.934/0.660
no proximal term (prox 0)      0.945/0.903  0.946/0.743
no class mask                  0.950/0.927  0.957/0.819
ties approve (tolerance 0)     0.943/0.909  0.953/0.837
1 local pass                   0.934/0.892  0.916/0.826
learning rate 0.2              0.929/0.852  0.637/0.513
local feature scaling          0.927/0.767  0.911/0.672
solo learners (mean)           0.745/0.451  0.714/0.434
centralized                    0.962/0.966  0.964/0.969
=============================  ===========  ===========

On an iid split every recipe gives 0.96 (centralized 0.965). The proximal pull toward the shared
weights (``prox=0.1``) matters most under strong skew; masking the softmax to the local classes,
class-balanced weights and a 0.02 vote tolerance (about one vote sample) add a little each and
make the run accept most epochs. A proposal of random weights is still rejected by every voter
(``tests/unit/test_sklearn_learners.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..mli import MachineLearningInterface
from . import estimators, keras
from .data import FederatedData, Scaling, split_learners
from .sklearn import ClassifierLearner, TrainingConfig, VoteRule, make_model
from .toy import ToyLearner

KINDS = ("toy", "sklearn", "estimator", "keras")

TOY_DEFAULTS: dict[str, Any] = {"kind": "toy", "n_learners": 5, "seed": 0, "dim": 4}

SKLEARN_DEFAULTS: dict[str, Any] = {
    "kind": "sklearn",
    "n_learners": 5,
    "seed": 0,
    # data
    "dataset": "digits",
    "split": "dirichlet",
    "alpha": 0.5,
    "scaling": "shared",  # learner 0's statistics, published with the initial model (see data.py)
    # model
    "model": "linear",
    "hidden": 32,
    # local training budget and recipe per proposal (local_epochs, learning_rate, prox, ...)
    **dataclasses.asdict(TrainingConfig()),
    # vote rule
    "vote_metric": VoteRule().metric,
    "vote_tolerance": VoteRule().tolerance,
}

_DEFAULTS = {"toy": TOY_DEFAULTS, "sklearn": SKLEARN_DEFAULTS}


# ---- learners of other frameworks, each in its own module with its own config (defaults, build) ----
class _Kind(NamedTuple):
    config: Callable[..., dict[str, Any]]
    build: Callable[[Mapping[str, Any], int], MachineLearningInterface]


#: kind -> how its module completes a config and builds learner ``index`` from it.
EXTRA_KINDS: dict[str, _Kind] = {
    "estimator": _Kind(estimators.estimator_config, estimators.build),
    "keras": _Kind(keras.keras_config, keras.build),
}
#: ``--model`` choices beyond the numpy ``linear`` / ``mlp``, and the kind each one needs.
MODEL_KINDS: dict[str, tuple[str, str]] = {
    "sklearn-sgd": ("estimator", "sgd"), "sklearn-mlp": ("estimator", "mlp"), "cnn": ("keras", "cnn"),
}
_TRAINING_KEYS = tuple(f.name for f in dataclasses.fields(TrainingConfig))


def learner_config(kind: str = "sklearn", **settings: Any) -> dict[str, Any]:
    """Return the complete config of ``kind`` with ``settings`` over the defaults; unknown keys raise ValueError."""
    if kind in EXTRA_KINDS:
        return EXTRA_KINDS[kind].config(**settings)
    if kind not in _DEFAULTS:
        raise ValueError(f"unknown learner kind {kind!r}; choose one of {', '.join(KINDS)}")
    defaults = _DEFAULTS[kind]
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"unknown settings for {kind!r} learners: {', '.join(unknown)}")
    config = {**defaults, **settings, "kind": kind}
    if int(config["n_learners"]) < 1:
        raise ValueError(f"n_learners must be >= 1, got {config['n_learners']}")
    return config


def make_learner(config: Mapping[str, Any], index: int) -> MachineLearningInterface:
    """Build learner ``index`` of the consortium ``config`` describes (defaults fill missing keys)."""
    settings = dict(config)
    if settings.get("kind") in EXTRA_KINDS:
        return EXTRA_KINDS[settings["kind"]].build(settings, index)
    full = learner_config(settings.pop("kind", "sklearn"), **settings)
    if not 0 <= index < full["n_learners"]:
        raise ValueError(f"learner index {index} outside 0..{full['n_learners'] - 1}")
    if full["kind"] == "toy":
        return ToyLearner(index, seed=int(full["seed"]), dim=int(full["dim"]))
    federated = federated_data(full)
    model = make_model(full["model"], federated.n_features, federated.n_classes, hidden=int(full["hidden"]))
    return ClassifierLearner(
        federated.learners[index],
        model,
        index=index,
        seed=int(full["seed"]),
        training=_training_config(full),
        vote_rule=VoteRule(metric=full["vote_metric"], tolerance=float(full["vote_tolerance"])),
    )


def federated_data(config: Mapping[str, Any]) -> FederatedData:
    """The data split a ``sklearn`` config describes (memoised: every learner of a run needs the same split)."""
    return _federated_data(
        config["dataset"], int(config["n_learners"]), config["split"], float(config["alpha"]),
        int(config["seed"]), config["scaling"],
    )


@functools.lru_cache(maxsize=8)
def _federated_data(
    dataset: str, n_learners: int, split: str, alpha: float, seed: int, scaling: Scaling
) -> FederatedData:
    return split_learners(dataset, n_learners=n_learners, split=split, alpha=alpha, seed=seed, scaling=scaling)


def _training_config(config: Mapping[str, Any]) -> TrainingConfig:
    """Build the TrainingConfig, coercing JSON's numbers back to each field's type (10.0 -> 10)."""
    values: dict[str, Any] = {}
    for key in _TRAINING_KEYS:
        default = getattr(TrainingConfig, key)
        value = config[key]
        values[key] = value if value is None or default is None or isinstance(default, str) else type(default)(value)
    return TrainingConfig(**values)


def make_learners(kind: str = "sklearn", **settings: Any) -> list[MachineLearningInterface]:
    """Build every learner of a consortium: ``[make_learner(config, i) for i in range(n_learners)]``."""
    config = learner_config(kind, **settings)
    return [make_learner(config, i) for i in range(config["n_learners"])]


__all__ = [
    "EXTRA_KINDS",
    "KINDS",
    "MODEL_KINDS",
    "SKLEARN_DEFAULTS",
    "TOY_DEFAULTS",
    "ClassifierLearner",
    "ToyLearner",
    "federated_data",
    "learner_config",
    "make_learner",
    "make_learners",
]
