"""Learners built from a JSON-able spec: the bundled kinds and any plug-in factory.

A **learner spec** (what ``deploy`` records in the deployment record as ``learner_config`` and ``run``
writes to ``results.json``) is a flat JSON object::

    {"kind": "numpy" | "toy" | "MODULE:FACTORY" | another registered kind,
     "n_learners": 5, "seed": 0, ...options}

An agent process rebuilds its own learner with ``make_learner(spec, index)``, which calls the factory
(:mod:`.registry`) as ``FACTORY(index, n_learners, seed, options)``; the in-memory reference builds
every learner with the same call, so both hold identical learners (same data parts, same initial
weights, same proposal randomness). ``learner_config`` fills in the defaults a factory declares and
rejects options it does not declare, so the spec written down is complete.

Why the ``numpy`` defaults (:data:`NUMPY_DEFAULTS`): ``python bench/learning.py --sweep``
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
(``tests/unit/test_numpy_models.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from ..exceptions import LearnerContractError
from ..mli import MachineLearningInterface
from .data import FederatedData, LearnerData, Scaling, split_learners
from .numpy_models import ClassifierLearner, TrainingConfig, make_model
from .owndata import learner_own_data
from .registry import BUNDLED, RESERVED, declared_options, learner_factory, resolve_factory
from .toy import ToyLearner
from .vote_rule import VoteRule

#: The kinds this package ships (:data:`.registry.BUNDLED`): the numpy models, the toy learner, and the
#: learners of other frameworks, each in its own module (scikit-learn's estimators, Keras).
KINDS = tuple(BUNDLED)
#: ``run --model`` names beyond the numpy ``linear`` / ``mlp``, and the kind each one is: ``--model
#: sklearn-mlp`` is ``--learner sklearn-mlp``, ``--model cnn`` is ``--learner keras-cnn``.
MODEL_KINDS: dict[str, str] = {"sklearn-sgd": "sklearn-sgd", "sklearn-mlp": "sklearn-mlp", "cnn": "keras-cnn"}
#: The kinds whose learners are :class:`ClassifierLearner` on a bundled data set or own data: the run
#: reports their accuracy, and with a bundled data set their global test accuracy and pooled baselines.
READY_MADE = ("numpy", *MODEL_KINDS.values())

TOY_DEFAULTS: dict[str, Any] = {"kind": "toy", "n_learners": 5, "seed": 0, "dim": 4}

NUMPY_DEFAULTS: dict[str, Any] = {
    "kind": "numpy",
    "n_learners": 5,
    "seed": 0,
    # data
    "dataset": "digits",
    "split": "dirichlet",
    "alpha": 0.5,
    "scaling": "shared",  # learner 0's statistics, published with the initial model (see data.py)
    # own data instead of a bundled data set (see owndata.py): a file or a folder of one file per learner,
    # and what the consortium agrees on (recorded by `run --data` / `deploy --data`)
    "data": None,
    "label_column": None,
    "n_features": None,
    "n_classes": None,
    "feature_mean": None,
    "feature_scale": None,
    # model
    "model": "linear",
    "hidden": 32,
    # local training budget and recipe per proposal (local_epochs, learning_rate, prox, ...)
    **dataclasses.asdict(TrainingConfig()),
    # vote rule
    "vote_metric": VoteRule().metric,
    "vote_tolerance": VoteRule().tolerance,
    "vote_confidence": VoteRule().confidence,
    "vote_small_part": VoteRule().small_part,
    "vote_small_part_tolerance": VoteRule().small_part_tolerance,
    "vote_untrained_tolerance": VoteRule().untrained_tolerance,
}

#: The options that say which data a ready-made learner trains on (a bundled set's split, or own data).
DATA_KEYS = ("dataset", "split", "alpha", "scaling", "data", "label_column", "n_features", "n_classes",
             "feature_mean", "feature_scale")
#: The options of the vote rule (:func:`vote_rule_from`).
VOTE_KEYS = tuple(k for k in NUMPY_DEFAULTS if k.startswith("vote_"))
_TRAINING_KEYS = tuple(f.name for f in dataclasses.fields(TrainingConfig))
#: The methods every learner has (:class:`colearn_chain.mli.MachineLearningInterface`).
_METHODS = ("propose_weights", "test_weights", "accept_weights", "current_weights")
#: What n_learners and seed default to when a spec leaves them out.
_SPEC_DEFAULTS: dict[str, Any] = {"n_learners": 5, "seed": 0}


def _options(defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in defaults.items() if k not in RESERVED}


@learner_factory(_options(TOY_DEFAULTS))
def toy_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    """The ``toy`` kind: a :class:`ToyLearner` (options: ``dim``)."""
    return ToyLearner(index, seed=seed, dim=int(options["dim"]))


@learner_factory(_options(NUMPY_DEFAULTS))
def numpy_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    """The ``numpy`` kind: a :class:`ClassifierLearner` on its part of a bundled data set, or on its own
    data (option ``data``: a file, or a folder of one file per learner); the options are NUMPY_DEFAULTS'."""
    full = {**options, "n_learners": n_learners, "seed": seed}
    data = learner_data(index, n_learners, seed, options)
    model = make_model(full["model"], data.n_features, data.n_classes, hidden=int(full["hidden"]))
    return ClassifierLearner(
        data,
        model,
        index=index,
        seed=seed,
        training=_training_config(full),
        vote_rule=vote_rule_from(full),
    )


def learner_data(index: int, n_learners: int, seed: int, options: Mapping[str, Any]) -> LearnerData:
    """Learner ``index``'s data parts as the :data:`DATA_KEYS` options say: its own file, or its share of a
    bundled data set (every ready-made kind takes its data this way)."""
    if options["data"] is not None:
        return learner_own_data(index, seed, dict(options))
    if options["n_features"] is not None:
        raise ValueError("this consortium's learners train on their own data (the spec has n_features): "
                         "give this learner its data (--data FILE)")
    return federated_data({**options, "n_learners": n_learners, "seed": seed}).learners[index]


def learner_config(kind: str = "numpy", **settings: Any) -> dict[str, Any]:
    """The complete spec of ``kind`` (a registered kind or ``MODULE:FACTORY``) with ``settings`` as its options.

    Options the factory declares (:func:`.registry.learner_factory`) get their defaults and no others
    are allowed; a factory that declares none gets ``settings`` as given. ValueError says what is wrong.
    """
    factory = resolve_factory(kind)
    declared = declared_options(factory)
    if declared is not None:
        unknown = sorted(set(settings) - set(declared) - set(RESERVED))
        if unknown:
            raise ValueError(
                f"unknown options for {kind!r} learners: {', '.join(unknown)} "
                f"(it takes {', '.join(sorted(declared)) or 'none'}, besides n_learners and seed)"
            )
    config = {"kind": kind, **_SPEC_DEFAULTS, **(declared or {}), **settings}
    for key in ("n_learners", "seed"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            config[key] = int(value)
    if config["n_learners"] < 1:
        raise ValueError(f"n_learners must be >= 1, got {config['n_learners']}")
    return config


def complete_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its factory's defaults filled in (``kind`` defaults to numpy); ValueError if it is bad."""
    settings = dict(spec)
    return learner_config(settings.pop("kind", "numpy"), **settings)


def make_learner(config: Mapping[str, Any], index: int) -> MachineLearningInterface:
    """Build learner ``index`` of the consortium the spec ``config`` describes (defaults fill missing keys).

    Raises ValueError for a bad spec or index, LearnerContractError when the factory returns no learner.
    """
    full = complete_spec(config)
    kind = full["kind"]
    n_learners = full["n_learners"]
    if not 0 <= index < n_learners:
        raise ValueError(f"learner index {index} outside 0..{n_learners - 1}")
    options = {k: v for k, v in full.items() if k not in RESERVED}
    learner = resolve_factory(kind)(index, n_learners, full["seed"], options)
    missing = [m for m in _METHODS if not callable(getattr(learner, m, None))]
    if missing:
        raise LearnerContractError(
            f"learner factory {kind!r} returned a {type(learner).__name__}, which lacks {', '.join(missing)}: "
            "a factory must return a MachineLearningInterface"
        )
    return learner


def federated_data(config: Mapping[str, Any]) -> FederatedData:
    """The data split a ``numpy`` config describes (memoised: every learner of a run needs the same split)."""
    return _federated_data(
        config["dataset"], int(config["n_learners"]), config["split"], float(config["alpha"]),
        int(config["seed"]), config["scaling"],
    )


@functools.lru_cache(maxsize=8)
def _federated_data(
    dataset: str, n_learners: int, split: str, alpha: float, seed: int, scaling: Scaling
) -> FederatedData:
    return split_learners(dataset, n_learners=n_learners, split=split, alpha=alpha, seed=seed, scaling=scaling)


def vote_rule_from(config: Mapping[str, Any]) -> VoteRule:
    """Build the VoteRule from the ``vote_*`` settings, coercing JSON's numbers (20.0 -> 20)."""
    return VoteRule(
        metric=config["vote_metric"], tolerance=float(config["vote_tolerance"]),
        confidence=float(config["vote_confidence"]), small_part=int(config["vote_small_part"]),
        small_part_tolerance=float(config["vote_small_part_tolerance"]),
        untrained_tolerance=float(config["vote_untrained_tolerance"]),
    )


def _training_config(config: Mapping[str, Any]) -> TrainingConfig:
    """Build the TrainingConfig, coercing JSON's numbers back to each field's type (10.0 -> 10)."""
    values: dict[str, Any] = {}
    for key in _TRAINING_KEYS:
        default = getattr(TrainingConfig, key)
        value = config[key]
        values[key] = value if value is None or default is None or isinstance(default, str) else type(default)(value)
    return TrainingConfig(**values)


def make_learners(kind: str = "numpy", **settings: Any) -> list[MachineLearningInterface]:
    """Build every learner of a consortium: ``[make_learner(config, i) for i in range(n_learners)]``."""
    config = learner_config(kind, **settings)
    return [make_learner(config, i) for i in range(config["n_learners"])]


__all__ = [
    "DATA_KEYS",
    "KINDS",
    "MODEL_KINDS",
    "NUMPY_DEFAULTS",
    "READY_MADE",
    "TOY_DEFAULTS",
    "VOTE_KEYS",
    "ClassifierLearner",
    "ToyLearner",
    "complete_spec",
    "federated_data",
    "learner_config",
    "learner_data",
    "make_learner",
    "make_learners",
    "numpy_learner",
    "toy_learner",
    "vote_rule_from",
]
