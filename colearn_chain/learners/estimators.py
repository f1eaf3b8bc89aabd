"""Learners that train real scikit-learn estimators: ``SGDClassifier`` (log loss) and ``MLPClassifier``.

Each proposal builds a fresh estimator, puts the current shared weights into its fitted arrays and
trains ``local_epochs`` passes of ``partial_fit`` on the learner's training part; the fitted arrays
are the weights:

* ``sgd``: ``coef_`` (classes x features; 1 x features for two classes) and ``intercept_``;
* ``mlp``: ``coefs_.0`` (features x hidden), ``intercepts_.0``, ..., the last layer's ``coefs_.N``
  (hidden x classes; hidden x 1 for two classes), in scikit-learn's ``(in, out)`` layout.

Everything else is the numpy learners' (:class:`~colearn_chain.learners.numpy_models.ClassifierLearner`):
the data parts, the vote rule, and the guards against poisoning (non-finite weights or outputs,
tensors far outside the current scale, guess-level proposals), which work on any model that
computes class scores from named weights. Two recipes carry over as estimator settings:
``class_weight="balanced"`` (as sample weights over the classes present locally) and
``keep_absent_classes``, which leaves the output units of classes missing from the local data as
they were (the one-vs-rest classifiers of ``sgd`` are independent, so for it this is exact).

Determinism: an estimator's randomness (shuffling; the one-sample fit that lets scikit-learn set up
its state) comes from a ``RandomState`` seeded by ``(seed, index, k)`` for the ``k``-th proposal, and
scikit-learn runs single-threaded here (``n_jobs=None``), so an agent rebuilding learner ``i`` in
another process proposes bit-for-bit what the in-memory reference proposes.

The factories :func:`sgd_learner` and :func:`mlp_learner` are the registered kinds ``sklearn-sgd`` and
``sklearn-mlp`` (``run --model sklearn-sgd`` / ``sklearn-mlp``); their options and defaults are
:data:`SGD_DEFAULTS` and :data:`MLP_DEFAULTS`: the data (a bundled set's split or own data, as the numpy
kind takes it), the estimator's training and the vote rule.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..extras import require
from ..mli import MachineLearningInterface
from ..typing import Weights
from .data import Split

# The numpy learners' guards and seeds, reused rather than copied (one place for each rule).
from .numpy_models import (
    ClassifierLearner,
    Model,
)
from .registry import learner_factory


@dataclass(frozen=True)
class EstimatorSettings:
    """The local training of one proposal: ``local_epochs`` calls of ``partial_fit`` (one pass each).

    ``learning_rate`` is SGDClassifier's constant ``eta0`` or MLPClassifier's Adam ``learning_rate_init``;
    ``l2`` is scikit-learn's ``alpha``. The MLP kind's defaults (:data:`MLP_DEFAULTS`) come from
    ``bench/paper_mnist1d.py``.
    """

    local_epochs: int = 5
    learning_rate: float = 0.01
    batch_size: int = 32
    l2: float = 1e-4
    hidden: tuple[int, ...] = (64,)
    class_weight: str | None = "balanced"
    keep_absent_classes: bool = True

    def __post_init__(self) -> None:
        if self.local_epochs < 1 or self.batch_size < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("local_epochs, batch_size and every hidden layer size must be >= 1")
        if not self.learning_rate > 0 or self.l2 < 0:
            raise ValueError("need learning_rate > 0 and l2 >= 0")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")


class EstimatorModel(Model):
    """A scikit-learn estimator seen as a :class:`Model`: its forward pass over named weights, and its training.

    The forward pass (:meth:`logits`) lets the numpy learners' scoring and guards judge these
    weights; training is the estimator's own (:meth:`fit`), so there is no :meth:`backward`.
    """

    def __init__(self, n_features: int, n_classes: int, settings: EstimatorSettings) -> None:
        super().__init__(n_features, n_classes)
        self.settings = settings
        self._outputs = 1 if n_classes == 2 else n_classes  # scikit-learn's binary case has one output

    def backward(self, w: Weights, x: np.ndarray, dlogits: np.ndarray) -> Weights:
        raise NotImplementedError("a scikit-learn estimator trains itself: use fit()")

    def _class_scores(self, z: np.ndarray) -> np.ndarray:
        """One score per class; a binary estimator's single output ``z`` becomes ``[0, z]`` (softmax = sigmoid)."""
        if self.n_classes == 2:
            return np.concatenate([np.zeros_like(z), z], axis=1)
        return z

    @abc.abstractmethod
    def fit(self, start: Weights, data: Split, rng: np.random.RandomState) -> Weights:
        """Train an estimator from ``start`` on ``data``; return its fitted arrays (``start`` is not modified)."""

    def _sample_weight(self, y: np.ndarray) -> np.ndarray | None:
        if self.settings.class_weight != "balanced":
            return None
        counts = np.bincount(y, minlength=self.n_classes).astype(np.float64)
        present = counts > 0
        per_class = np.where(present, len(y) / (present.sum() * np.maximum(counts, 1.0)), 0.0)
        weights: np.ndarray = per_class[y]
        return weights

    def _absent(self, y: np.ndarray) -> np.ndarray:
        """Output units to leave untouched: classes missing locally (multi-class only, if asked)."""
        if not self.settings.keep_absent_classes or self.n_classes == 2:
            return np.zeros(self.n_classes, dtype=bool)
        absent: np.ndarray = np.bincount(y, minlength=self.n_classes) == 0
        return absent


class SGDModel(EstimatorModel):
    """``SGDClassifier(loss="log_loss")``: one-vs-rest logistic regressions, constant learning rate."""

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {"coef_": (self._outputs, self.n_features), "intercept_": (self._outputs,)}

    def init(self, rng: np.random.Generator) -> Weights:
        return {"coef_": np.zeros((self._outputs, self.n_features)), "intercept_": np.zeros(self._outputs)}

    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        return self._class_scores(x @ w["coef_"].T + w["intercept_"])

    def fit(self, start: Weights, data: Split, rng: np.random.RandomState) -> Weights:
        linear_model = require("sklearn.linear_model", "the scikit-learn SGDClassifier learner")
        s = self.settings
        estimator = linear_model.SGDClassifier(
            loss="log_loss", penalty="l2", alpha=s.l2, learning_rate="constant", eta0=s.learning_rate,
            shuffle=True, random_state=rng,
        )
        estimator.coef_ = np.array(start["coef_"], dtype=np.float64, order="C")
        estimator.intercept_ = np.array(start["intercept_"], dtype=np.float64)
        classes = np.arange(self.n_classes)
        sample_weight = self._sample_weight(data.y)
        for _ in range(s.local_epochs):
            estimator.partial_fit(data.x, data.y, classes=classes, sample_weight=sample_weight)
        out = {"coef_": np.array(estimator.coef_, dtype=np.float64), "intercept_": np.array(estimator.intercept_)}
        absent = self._absent(data.y)
        out["coef_"][absent] = start["coef_"][absent]
        out["intercept_"][absent] = start["intercept_"][absent]
        return out


class MLPModel(EstimatorModel):
    """``MLPClassifier``: ReLU hidden layers, Adam, trained with ``partial_fit`` from the shared weights."""

    @property
    def _units(self) -> list[int]:
        return [self.n_features, *self.settings.hidden, self._outputs]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        units = self._units
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(units)):
            shapes[f"coefs_.{i}"] = (fan_in, fan_out)
            shapes[f"intercepts_.{i}"] = (fan_out,)
        return shapes

    def init(self, rng: np.random.Generator) -> Weights:
        """scikit-learn's own initialisation (Glorot uniform; factor 2 for a logistic output), from ``rng``."""
        units = self._units
        weights: Weights = {}
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(units)):
            factor = 2.0 if self.n_classes == 2 and i == len(units) - 2 else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights[f"coefs_.{i}"] = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            weights[f"intercepts_.{i}"] = rng.uniform(-bound, bound, size=fan_out)
        return weights

    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        layers = len(self._units) - 1
        h = x
        for i in range(layers):
            h = h @ w[f"coefs_.{i}"] + w[f"intercepts_.{i}"]
            if i < layers - 1:
                h = np.maximum(h, 0.0)
        return self._class_scores(h)

    def fit(self, start: Weights, data: Split, rng: np.random.RandomState) -> Weights:
        neural_network = require("sklearn.neural_network", "the scikit-learn MLPClassifier learner")
        s = self.settings
        layers = len(self._units) - 1
        estimator = neural_network.MLPClassifier(
            hidden_layer_sizes=s.hidden, activation="relu", solver="adam", alpha=s.l2,
            batch_size=min(s.batch_size, len(data)), learning_rate_init=s.learning_rate, shuffle=True,
            random_state=rng,
        )
        classes = np.arange(self.n_classes)
        with warnings.catch_warnings():  # one sample sets up scikit-learn's fitted state; its step is discarded
            warnings.simplefilter("ignore")
            estimator.partial_fit(data.x[:1], data.y[:1], classes=classes)
        estimator.coefs_ = [np.array(start[f"coefs_.{i}"], dtype=np.float64) for i in range(layers)]
        estimator.intercepts_ = [np.array(start[f"intercepts_.{i}"], dtype=np.float64) for i in range(layers)]
        # The optimizer made by that first call updates the arrays it was given: drop it, so the next
        # call makes a fresh Adam over the shared weights just set.
        if hasattr(estimator, "_optimizer"):
            del estimator._optimizer
        sample_weight = self._sample_weight(data.y)
        for _ in range(s.local_epochs):
            estimator.partial_fit(data.x, data.y, sample_weight=sample_weight)
        out: Weights = {}
        for i in range(layers):
            out[f"coefs_.{i}"] = np.array(estimator.coefs_[i], dtype=np.float64)
            out[f"intercepts_.{i}"] = np.array(estimator.intercepts_[i], dtype=np.float64)
        absent = self._absent(data.y)
        last = layers - 1
        out[f"coefs_.{last}"][:, absent] = start[f"coefs_.{last}"][:, absent]
        out[f"intercepts_.{last}"][absent] = start[f"intercepts_.{last}"][absent]
        return out


class EstimatorLearner(ClassifierLearner):
    """A :class:`ClassifierLearner` whose proposals are trained by a scikit-learn estimator.

    Votes, guards, scores and the proposal count are the numpy learner's; ``training`` is accepted
    for the same constructor (the baselines rebuild learners with it) but the estimator's own
    settings (:attr:`EstimatorModel.settings`) decide the training.
    """

    model: EstimatorModel
    model_type = EstimatorModel

    def _train(self, start: Weights, rng: np.random.Generator) -> Weights:
        """The estimator's own fit from ``start`` (the current weights, shrunk first if hostile)."""
        random_state = np.random.RandomState(int(rng.integers(2**31 - 1)))
        with np.errstate(over="ignore", invalid="ignore"):  # a hostile start may overflow; the guards judge it
            proposal = self.model.fit(start, self.data.train, random_state)
        return self.model.check(proposal)

# ----------------------------------------------------------------------------- building
def _defaults(**model: Any) -> dict[str, Any]:
    """The options of an estimator kind: the numpy kind's data and vote options, the estimator's training."""
    from . import DATA_KEYS, NUMPY_DEFAULTS, VOTE_KEYS  # the package's option names (it does not import this module)

    training = {f.name: f.default for f in dataclasses.fields(EstimatorSettings) if f.name != "hidden"}
    return {
        **{k: NUMPY_DEFAULTS[k] for k in DATA_KEYS}, **training, **{k: NUMPY_DEFAULTS[k] for k in VOTE_KEYS},
        **model,
    }


#: The ``sklearn-sgd`` kind's options and defaults.
SGD_DEFAULTS: dict[str, Any] = _defaults()
#: The ``sklearn-mlp`` kind's options and defaults; the MLP's are mnist1d's (``bench/paper_mnist1d.py``):
#: the MNIST-1D paper's shape (two hidden layers of 256), Adam 0.01, batch 100, a plain loss, tolerance 0.05.
MLP_DEFAULTS: dict[str, Any] = _defaults(
    hidden=[256, 256], learning_rate=0.01, batch_size=100, l2=0.1, local_epochs=15, class_weight=None,
    vote_tolerance=0.05,
)


def build(model: str, index: int, n_learners: int, seed: int, options: Mapping[str, Any]) -> EstimatorLearner:
    """Learner ``index`` training scikit-learn's ``model`` ("sgd" or "mlp") as ``options`` say."""
    from . import learner_data, vote_rule_from

    data = learner_data(index, n_learners, seed, options)
    settings = EstimatorSettings(
        local_epochs=int(options["local_epochs"]), learning_rate=float(options["learning_rate"]),
        batch_size=int(options["batch_size"]), l2=float(options["l2"]),
        hidden=tuple(int(h) for h in options.get("hidden", EstimatorSettings().hidden)),
        class_weight=options["class_weight"], keep_absent_classes=bool(options["keep_absent_classes"]),
    )
    model_class = {"sgd": SGDModel, "mlp": MLPModel}[model]
    return EstimatorLearner(
        data, model_class(data.n_features, data.n_classes, settings), index=index, seed=seed,
        vote_rule=vote_rule_from(options),
    )


@learner_factory(SGD_DEFAULTS)
def sgd_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    """The ``sklearn-sgd`` kind: an ``SGDClassifier`` learner; its options are :data:`SGD_DEFAULTS`."""
    return build("sgd", index, n_learners, seed, options)


@learner_factory(MLP_DEFAULTS)
def mlp_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    """The ``sklearn-mlp`` kind: an ``MLPClassifier`` learner; its options are :data:`MLP_DEFAULTS`."""
    return build("mlp", index, n_learners, seed, options)


__all__ = [
    "MLP_DEFAULTS",
    "SGD_DEFAULTS",
    "EstimatorLearner",
    "EstimatorModel",
    "EstimatorSettings",
    "MLPModel",
    "SGDModel",
    "build",
    "mlp_learner",
    "sgd_learner",
]
