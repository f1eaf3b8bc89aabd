"""Ready-made learners: a softmax regression and a one-hidden-layer MLP, scikit-learn style.

They are the models of scikit-learn's ``SGDClassifier(loss="log_loss")`` (multinomial) and
``MLPClassifier``, written in numpy rather than wrapping those estimators, because collective
learning needs three things the estimators do not give:

* **exact determinism** across processes: an agent rebuilding learner ``i`` from its config must
  propose bit-for-bit what the in-memory reference proposes (the minibatch order of the ``k``-th
  proposal comes from a generator seeded by ``(seed, index, k)``, nothing global);
* **training from the shared weights without forgetting** under label skew: a proximal pull
  toward the shared weights (FedProx) and a softmax restricted to the classes present in the local
  data (FedRS-style), so a proposer does not teach the model to never predict classes it lacks;
* **weights as fixed named arrays** whose shapes depend only on ``(n_features, n_classes, hidden)``:
  ``coef`` / ``intercept`` for the linear model, ``layer0.weight`` / ``layer0.bias`` /
  ``layer1.weight`` / ``layer1.bias`` (PyTorch's ``(out, in)`` layout) for the MLP.

Votes follow a :class:`VoteRule`: a metric on the learner's vote part, compared with the same
metric of the current weights, approving when the proposal is not worse by more than a tolerance.
The defaults were chosen with ``bench/learning.py`` (see the module docstring of
:mod:`colearn_chain.learners`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Dict, Literal, Optional, Tuple

import numpy as np

from ..exceptions import WeightsMismatch
from ..mli import MachineLearningInterface, ProposedWeights
from ..typing import Weights
from .data import LearnerData, Split

Metric = Literal["accuracy", "balanced_accuracy", "log_loss"]
METRICS: Tuple[str, ...] = ("accuracy", "balanced_accuracy", "log_loss")
_INIT, _PROPOSE = 0, 1
_EPS = 1e-12


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class TrainingConfig:
    """The local training budget and recipe of one proposal.

    ``local_epochs`` passes of minibatch SGD with momentum over the learner's training part,
    starting from the shared weights. ``prox`` adds ``prox/2 * ||w - shared||^2``;
    ``mask_absent_classes`` drops the classes missing from the local training data from the
    softmax; ``class_weight="balanced"`` weights each present class equally.
    """

    local_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    prox: float = 0.1
    l2: float = 1e-4
    mask_absent_classes: bool = True
    class_weight: Optional[Literal["balanced"]] = "balanced"

    def __post_init__(self) -> None:
        if self.local_epochs < 1 or self.batch_size < 1:
            raise ValueError("local_epochs and batch_size must be >= 1")
        if self.learning_rate <= 0 or not 0 <= self.momentum < 1 or self.prox < 0 or self.l2 < 0:
            raise ValueError("need learning_rate > 0, 0 <= momentum < 1, prox >= 0, l2 >= 0")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")


@dataclass(frozen=True)
class VoteRule:
    """Approve iff ``metric(proposal) >= metric(current) - tolerance`` on the vote part.

    Scores are "higher is better": ``log_loss`` is reported as minus the mean log-loss.
    A tolerance of 0 approves ties, which lets a consortium move off a plateau; the default 0.02
    (about one sample of a digits vote part) also lets through proposals that are no worse beyond
    the noise of a small vote part, while anything clearly harmful is still rejected.
    """

    metric: Metric = "balanced_accuracy"
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown vote metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        if self.tolerance < 0:
            raise ValueError(f"vote tolerance must be >= 0, got {self.tolerance}")


# ----------------------------------------------------------------------------- models
class Model(abc.ABC):
    """A differentiable classifier over named weights; pure functions, no state."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        if n_features < 1 or n_classes < 2:
            raise ValueError(f"need n_features >= 1 and n_classes >= 2, got {n_features}, {n_classes}")
        self.n_features = n_features
        self.n_classes = n_classes

    @property
    @abc.abstractmethod
    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Name -> shape of every tensor (all float64)."""

    @abc.abstractmethod
    def init(self, rng: np.random.Generator) -> Weights:
        """Initial weights, the same for every learner of a consortium (same rng seed)."""

    @abc.abstractmethod
    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        """Class scores, samples x classes."""

    @abc.abstractmethod
    def backward(self, w: Weights, x: np.ndarray, dlogits: np.ndarray) -> Weights:
        """Gradient of the loss with respect to each tensor, given its gradient w.r.t. the logits."""

    def check(self, weights: Weights) -> Weights:
        """Return ``weights`` if names, shapes and dtypes fit this model, else raise WeightsMismatch saying what differs."""
        expected = self.shapes
        if set(weights) != set(expected):
            missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise WeightsMismatch(f"tensor names differ: missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            array = weights[name]
            if array.shape != shape or array.dtype != np.float64:
                raise WeightsMismatch(f"{name!r} must be float64 {shape}, got {array.dtype} {array.shape}")
        return weights


class SoftmaxRegression(Model):
    """Multinomial logistic regression: ``logits = x @ coef.T + intercept`` (scikit-learn's layout)."""

    @property
    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        return {"coef": (self.n_classes, self.n_features), "intercept": (self.n_classes,)}

    def init(self, rng: np.random.Generator) -> Weights:
        return {name: np.zeros(shape) for name, shape in self.shapes.items()}

    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        return x @ w["coef"].T + w["intercept"]

    def backward(self, w: Weights, x: np.ndarray, dlogits: np.ndarray) -> Weights:
        return {"coef": dlogits.T @ x, "intercept": dlogits.sum(axis=0)}


class MLP(Model):
    """One hidden ReLU layer of ``hidden`` units: the shape of ``MLPClassifier(hidden_layer_sizes=(hidden,))``."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 32) -> None:
        super().__init__(n_features, n_classes)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.hidden = hidden

    @property
    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        f, h, c = self.n_features, self.hidden, self.n_classes
        return {"layer0.weight": (h, f), "layer0.bias": (h,), "layer1.weight": (c, h), "layer1.bias": (c,)}

    def init(self, rng: np.random.Generator) -> Weights:
        f, h, c = self.n_features, self.hidden, self.n_classes
        return {
            "layer0.weight": rng.uniform(-1, 1, size=(h, f)) * np.sqrt(6.0 / f),  # He-uniform for ReLU
            "layer0.bias": np.zeros(h),
            "layer1.weight": rng.uniform(-1, 1, size=(c, h)) * np.sqrt(6.0 / (h + c)),  # Glorot-uniform
            "layer1.bias": np.zeros(c),
        }

    def _hidden(self, w: Weights, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ w["layer0.weight"].T + w["layer0.bias"], 0.0)

    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        return self._hidden(w, x) @ w["layer1.weight"].T + w["layer1.bias"]

    def backward(self, w: Weights, x: np.ndarray, dlogits: np.ndarray) -> Weights:
        h = self._hidden(w, x)
        dh = (dlogits @ w["layer1.weight"]) * (h > 0)
        return {
            "layer0.weight": dh.T @ x,
            "layer0.bias": dh.sum(axis=0),
            "layer1.weight": dlogits.T @ h,
            "layer1.bias": dlogits.sum(axis=0),
        }


def make_model(name: str, n_features: int, n_classes: int, *, hidden: int = 32) -> Model:
    """Build ``"linear"`` or ``"mlp"``; the shapes depend only on these arguments."""
    if name == "linear":
        return SoftmaxRegression(n_features, n_classes)
    if name == "mlp":
        return MLP(n_features, n_classes, hidden)
    raise ValueError(f"unknown model {name!r}; choose 'linear' or 'mlp'")


# ----------------------------------------------------------------------------- metrics
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def score(model: Model, weights: Weights, split: Split, metric: Metric) -> float:
    """``metric`` of ``weights`` on ``split``, higher is better (log-loss is negated)."""
    if len(split) == 0:
        return 0.0
    z = model.logits(weights, split.x)
    if metric == "log_loss":
        p = _softmax(z)[np.arange(len(split)), split.y]
        return -float(np.mean(-np.log(np.clip(p, _EPS, 1.0))))
    correct = np.argmax(z, axis=1) == split.y
    if metric == "accuracy":
        return float(np.mean(correct))
    if metric == "balanced_accuracy":
        return float(np.mean([np.mean(correct[split.y == c]) for c in np.unique(split.y)]))
    raise ValueError(f"unknown metric {metric!r}")


# ----------------------------------------------------------------------------- training
def train(
    model: Model,
    start: Weights,
    data: Split,
    config: TrainingConfig,
    rng: np.random.Generator,
) -> Weights:
    """Return new weights after ``config.local_epochs`` passes from ``start``; ``start`` is not modified."""
    w = {k: v.copy() for k, v in start.items()}
    velocity = {k: np.zeros_like(v) for k, v in w.items()}
    n = len(data)
    present = np.bincount(data.y, minlength=model.n_classes) > 0
    if config.class_weight == "balanced":
        counts = np.bincount(data.y, minlength=model.n_classes).astype(np.float64)
        per_class = np.where(present, n / (present.sum() * np.maximum(counts, 1.0)), 0.0)
        sample_weight = per_class[data.y]
    else:
        sample_weight = np.ones(n)
    absent = ~present if config.mask_absent_classes else np.zeros(model.n_classes, dtype=bool)

    for _ in range(config.local_epochs):
        order = rng.permutation(n)
        for lo in range(0, n, config.batch_size):
            batch = order[lo:lo + config.batch_size]
            z = model.logits(w, data.x[batch])
            z[:, absent] = -np.inf  # the softmax over present classes only
            p = _softmax(z)
            p[np.arange(len(batch)), data.y[batch]] -= 1.0
            dlogits = p * (sample_weight[batch] / len(batch))[:, None]
            grads = model.backward(w, data.x[batch], dlogits)
            for k in w:
                g = grads[k] + config.l2 * w[k] + config.prox * (w[k] - start[k])
                velocity[k] = config.momentum * velocity[k] + g
                w[k] -= config.learning_rate * velocity[k]
    return w


# ----------------------------------------------------------------------------- the learner
class ClassifierLearner(MachineLearningInterface):
    """A learner holding one model, its current (shared) weights and its own data parts.

    ``seed`` must be the consortium's seed (it fixes the initial weights, identical for all
    learners) and ``index`` the learner's place in the order (it fixes the proposal randomness).
    :attr:`proposals_made` counts calls to :meth:`propose_weights`; an agent that restarts restores
    it (the number of epochs in which it proposed) to continue the reference's sequence exactly.
    """

    def __init__(
        self,
        data: LearnerData,
        model: Model,
        *,
        index: int,
        seed: int = 0,
        training: TrainingConfig = TrainingConfig(),
        vote_rule: VoteRule = VoteRule(),
    ) -> None:
        if (model.n_features, model.n_classes) != (data.n_features, data.n_classes):
            raise ValueError("the model's features/classes do not match the data's")
        self.data = data
        self.model = model
        self.index = index
        self.seed = seed
        self.training = training
        self.vote_rule = vote_rule
        self.proposals_made = 0
        self._weights = model.init(np.random.default_rng([seed, _INIT]))
        self._current_vote_score = self._vote_score(self._weights)

    def propose_weights(self) -> Weights:
        """Train a copy of the current weights on the training part; the current weights stay as they are."""
        rng = np.random.default_rng([self.seed, self.index, _PROPOSE, self.proposals_made])
        self.proposals_made += 1
        return train(self.model, self._weights, self.data.train, self.training, rng)

    def test_weights(self, weights: Weights) -> ProposedWeights:
        """Vote score on the vote part decides; test score (accuracy) on the separate test part is reported."""
        self.model.check(weights)
        vote_score = self._vote_score(weights)
        test_score = score(self.model, weights, self.data.test, "accuracy")
        vote = vote_score >= self._current_vote_score - self.vote_rule.tolerance
        return ProposedWeights(weights=weights, vote_score=vote_score, test_score=test_score, vote=bool(vote))

    def accept_weights(self, weights: Weights) -> None:
        """Adopt a private copy of ``weights`` and remember their vote score for the next comparison."""
        self._weights = {k: v.copy() for k, v in self.model.check(weights).items()}
        self._current_vote_score = self._vote_score(self._weights)

    def restore_proposal_count(self, count: int) -> None:
        """Continue the proposal sequence after ``count`` proposals (what the chain recorded)."""
        self.proposals_made = count

    def current_weights(self) -> Weights:
        """Return a copy of the current weights."""
        return {k: v.copy() for k, v in self._weights.items()}

    def evaluate(self, split: Optional[Split] = None, metric: Metric = "accuracy", weights: Optional[Weights] = None) -> float:
        """Score the current (or given) weights on ``split``, by default the global held-out test set."""
        return score(self.model, self._weights if weights is None else weights,
                     self.data.global_test if split is None else split, metric)

    def _vote_score(self, weights: Weights) -> float:
        return score(self.model, weights, self.data.vote, self.vote_rule.metric)
