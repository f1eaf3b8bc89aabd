"""Ready-made learners in plain numpy (no scikit-learn inside): a softmax regression and a one-hidden-layer MLP.

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

Votes follow a :class:`~colearn_chain.learners.vote_rule.VoteRule`: a metric on the learner's vote
part, compared with the same metric of the current weights, approving when the proposal is not worse
by more than a tolerance (and, on a small vote part, neither is its log-loss). The defaults were
chosen with ``bench/learning.py`` and ``bench/vote_rules.py`` (see :mod:`colearn_chain.learners` and
:mod:`colearn_chain.learners.vote_rule`).

Poisoning cannot stick. A score alone cannot protect an untrained model: at epoch 0 almost anything
scores as badly as the initial weights, and weights of 1e308 (finite, but every logit overflows)
once passed such a vote and left every later honest proposal non-finite. So:

* a voter refuses, with a reason, weights that are non-finite, give non-finite outputs on its vote
  part, have a tensor whose RMS exceeds ``max(SCALE_GROWTH * its current RMS, MAX_RMS)``, or
  rescale the whole model by more than ``JOINT_SCALE_FACTOR`` (:func:`refusal`); and weights
  that score no better than guessing (``vote_rule.GUESS_MARGIN``), which matters only while the current model
  is no better either, as at epoch 0, where random, constant or vanishing weights would pass;
* local training starts from the current weights with every tensor shrunk to RMS <= ``MAX_RMS``
  (it never is in honest runs) and clips each step's gradient norm to ``MAX_GRAD_NORM`` (never
  reached in honest runs either), so honest training from *any* accepted model stays finite and
  the next honest proposal leaves a poisoned model behind.

The bounds come from ``bench/honest_scale.py`` (4 datasets x iid/Dirichlet 0.5 x both models x
3 seeds x 20 epochs): honest tensors never exceeded an RMS of 1.9, the whole model 0.69, honest
gradient norms 110; see each constant. ``bench/learning.py`` then prints the same numbers as before
these guards except where the guessing floor changed a few epoch-0 votes under label skew:
wine Dirichlet linear 0.944 -> 0.935, mnist1d Dirichlet linear 0.278 -> 0.283 and MLP 0.318 -> 0.311
(means over 3 seeds; within seed noise), the other 13 cells bit-for-bit; digits (the README's table
and ``--sweep``) is unchanged. The floor also refuses a lone learner's guess-level proposals, so the
solo baselines of wine fell (iid linear 0.926 -> 0.900, Dirichlet 0.720 / 0.700 -> 0.648 / 0.643).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from ..exceptions import WeightsMismatch
from ..mli import MachineLearningInterface, ProposedWeights
from ..typing import Weights
from .data import LearnerData, Split
from .vote_rule import GUESS_MARGIN, Metric, SampleScores, VoteRule, VoteScores, sample_scores

_INIT, _PROPOSE = 0, 1
#: The vote rule a learner gets unless told otherwise (frozen, so one shared instance is safe).
DEFAULT_VOTE_RULE = VoteRule()

#: The largest root-mean-square value of a tensor that needs no justification: a voter accepts any
#: tensor up to it, and local training shrinks a start tensor above it back to it. Honest training
#: reached at most 1.9 (a bias; weight matrices 1.2), so 4 leaves 2x headroom.
MAX_RMS = 4.0
#: Beyond MAX_RMS a proposal's tensor may be at most this many times its current RMS. Honest tensors
#: never get there, so this only paces a model that was forced beyond it (its joint RMS, below, is
#: the tighter bound for whole-model rescaling).
SCALE_GROWTH = 4.0
#: Each local step's gradient (loss, l2 and proximal terms together) is clipped to this norm.
#: Honest steps reached 110 (mnist1d MLP), so honest training is unchanged; it bounds every step
#: when the start is hostile, so the weights cannot blow up within a proposal.
MAX_GRAD_NORM = 1000.0
#: The RMS of all tensors together ("joint") may change by at most this factor in one proposal, except
#: that growth up to JOINT_MAX_RMS is always allowed. Honest proposals changed it by 0.93x to 3x, by
#: more than 1.7x only while it was below 0.7 (early epochs); honest joint RMS never exceeded 0.69.
#: A rescaled model keeps a linear model's votes, yet scaled down it restarts training from
#: almost nothing (and starves an MLP of gradients), scaled up it slows all later learning. Shrinking
#: a current model whose joint RMS exceeds MAX_RMS is always allowed: that is how training recovers.
JOINT_SCALE_FACTOR = 2.0
JOINT_MAX_RMS = 1.0


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
    class_weight: Literal["balanced"] | None = "balanced"

    def __post_init__(self) -> None:
        if self.local_epochs < 1 or self.batch_size < 1:
            raise ValueError("local_epochs and batch_size must be >= 1")
        if self.learning_rate <= 0 or not 0 <= self.momentum < 1 or self.prox < 0 or self.l2 < 0:
            raise ValueError("need learning_rate > 0, 0 <= momentum < 1, prox >= 0, l2 >= 0")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")


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
    def shapes(self) -> dict[str, tuple[int, ...]]:
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

    @property
    def dtypes(self) -> dict[str, np.dtype[Any]]:
        """Name -> dtype of every tensor: float64 here; a framework's model says its variables' own."""
        return {name: np.dtype(np.float64) for name in self.shapes}

    def check(self, weights: Weights) -> Weights:
        """Return ``weights`` if names, shapes and dtypes fit this model, else raise WeightsMismatch saying why."""
        expected, dtypes = self.shapes, self.dtypes
        if set(weights) != set(expected):
            missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise WeightsMismatch(f"tensor names differ: missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            array, dtype = weights[name], dtypes[name]
            if array.shape != shape or array.dtype != dtype:
                raise WeightsMismatch(f"{name!r} must be {dtype} {shape}, got {array.dtype} {array.shape}")
        return weights


class SoftmaxRegression(Model):
    """Multinomial logistic regression: ``logits = x @ coef.T + intercept`` (scikit-learn's layout)."""

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {"coef": (self.n_classes, self.n_features), "intercept": (self.n_classes,)}

    def init(self, rng: np.random.Generator) -> Weights:
        return {name: np.zeros(shape) for name, shape in self.shapes.items()}

    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        z: np.ndarray = x @ w["coef"].T + w["intercept"]
        return z

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
    def shapes(self) -> dict[str, tuple[int, ...]]:
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
        h: np.ndarray = np.maximum(x @ w["layer0.weight"].T + w["layer0.bias"], 0.0)
        return h

    def logits(self, w: Weights, x: np.ndarray) -> np.ndarray:
        z: np.ndarray = self._hidden(w, x) @ w["layer1.weight"].T + w["layer1.bias"]
        return z

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


# ----------------------------------------------------------------------------- guards
def rms(array: np.ndarray) -> float:
    """Root mean square of ``array``, without overflow for huge finite values; inf if any value is non-finite."""
    if array.size == 0:
        return 0.0
    if not np.all(np.isfinite(array)):
        return float("inf")
    peak = float(np.max(np.abs(array)))
    if peak == 0.0:
        return 0.0
    return peak * float(np.sqrt(np.mean(np.square(array / peak))))


def _joint_rms(weights: Weights) -> float:
    return rms(np.concatenate([w.ravel() for w in weights.values()]))


def _logits(model: Model, weights: Weights, x: np.ndarray) -> np.ndarray:
    """Class scores without overflow warnings: hostile weights may overflow, callers check finiteness."""
    with np.errstate(over="ignore", invalid="ignore"):
        return model.logits(weights, x)


def refusal(model: Model, weights: Weights, current: Weights, vote: Split) -> str | None:
    """Why ``weights`` must be rejected whatever they score, or None; see the module docstring."""
    for name, array in weights.items():
        if not np.all(np.isfinite(array)):
            return f"tensor {name!r} holds NaN or infinite values"
    joint, now_joint = _joint_rms(weights), _joint_rms(current)
    if joint * JOINT_SCALE_FACTOR < now_joint <= MAX_RMS:  # above MAX_RMS, shrinking is the way back
        return f"the weights' joint RMS {joint:.3g} is below 1/{JOINT_SCALE_FACTOR:g} of the current {now_joint:.3g}"
    if joint > max(JOINT_SCALE_FACTOR * now_joint, JOINT_MAX_RMS):
        return (f"the weights' joint RMS {joint:.3g} exceeds max({JOINT_SCALE_FACTOR:g} x the current "
                f"{now_joint:.3g}, {JOINT_MAX_RMS:g})")
    for name, array in weights.items():
        size, now = rms(array), rms(current[name])
        bound = max(SCALE_GROWTH * now, MAX_RMS)
        if size > bound:
            return (f"tensor {name!r} has RMS {size:.3g}, beyond the bound {bound:.3g} "
                    f"(max({SCALE_GROWTH:g} x the current {now:.3g}, {MAX_RMS:g}))")
    z = _logits(model, weights, vote.x)
    if not np.all(np.isfinite(z)) or not np.all(np.isfinite(_softmax(z))):
        return "the weights give non-finite outputs on the vote part"
    return None


def _bounded_start(weights: Weights) -> Weights:
    """A finite copy of ``weights``, each tensor's RMS at most MAX_RMS (direction kept); honest ones unchanged."""
    out = {}
    for name, array in weights.items():
        finite = np.nan_to_num(array, nan=0.0, posinf=np.finfo(np.float64).max, neginf=np.finfo(np.float64).min)
        size = rms(finite)
        if size > MAX_RMS:
            peak = float(np.max(np.abs(finite)))
            unit = finite / peak  # in [-1, 1]: squaring cannot overflow
            finite = unit * (MAX_RMS / float(np.sqrt(np.mean(np.square(unit)))))
        out[name] = finite
    return out


def _clip(grads: Weights, max_norm: float) -> Weights:
    """Scale ``grads`` down so their joint norm is at most ``max_norm``; unchanged below it."""
    with np.errstate(over="ignore"):
        squared = sum(float(np.vdot(g, g)) for g in grads.values())
    if squared <= max_norm * max_norm:  # the honest case: one dot product per tensor
        return grads
    flat = np.concatenate([g.ravel() for g in grads.values()])
    norm = rms(flat) * float(np.sqrt(flat.size))  # exact even where the squares overflowed
    return {k: g * (max_norm / norm) for k, g in grads.items()}


# ----------------------------------------------------------------------------- metrics
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return p


def score(model: Model, weights: Weights, split: Split, metric: Metric) -> float:
    """``metric`` of ``weights`` on ``split``, higher is better (log-loss is negated); see :func:`sample_scores`."""
    return _sample_scores(model, weights, split, metric).mean


def _sample_scores(model: Model, weights: Weights, split: Split, metric: Metric) -> SampleScores:
    return sample_scores(_logits(model, weights, split.x), split.y, metric)


# ----------------------------------------------------------------------------- training
def train(
    model: Model,
    start: Weights,
    data: Split,
    config: TrainingConfig,
    rng: np.random.Generator,
) -> Weights:
    """Return new weights after ``config.local_epochs`` passes from ``start``; ``start`` is not modified.

    Training starts from ``start`` shrunk to the honest scale and clips every step's gradient (see
    the module docstring), so the result is finite from any finite ``start``; honest starts and
    steps are far inside both bounds and train exactly as without them.
    """
    start = _bounded_start(start)
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
            steps = _clip({k: grads[k] + config.l2 * w[k] + config.prox * (w[k] - start[k]) for k in w}, MAX_GRAD_NORM)
            for k, g in steps.items():
                velocity[k] = config.momentum * velocity[k] + g
                w[k] -= config.learning_rate * velocity[k]
    return w


# ----------------------------------------------------------------------------- the learner
class ClassifierLearner(MachineLearningInterface):
    """A learner holding one model, its current (shared) weights and its own data parts.

    ``seed`` must be the consortium's seed (it fixes the initial weights, identical for all
    learners) and ``index`` the learner's place in the order (it fixes the proposal randomness).
    :attr:`proposals_made` counts calls to :meth:`propose_weights`; an agent that restarts sets it
    through :meth:`restore_proposal_count` (the number of epochs in which the chain recorded its
    proposal) to continue the reference's sequence exactly.
    """

    #: The kind of model this learner trains (a framework's learner names its own).
    model_type: ClassVar[type[object]] = Model  # (abstract: a type[Model] would not hold it)

    def __init__(
        self,
        data: LearnerData,
        model: Model,
        *,
        index: int,
        seed: int = 0,
        training: TrainingConfig = TrainingConfig(),
        vote_rule: VoteRule = DEFAULT_VOTE_RULE,
    ) -> None:
        if not isinstance(model, self.model_type):
            raise TypeError(f"{type(self).__name__} needs a {self.model_type.__name__}, got {type(model).__name__}")
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
        self._current = self._vote_scores(self._weights)

    def propose_weights(self) -> Weights:
        """Train a copy of the current weights on the training part; the current weights stay as they are.

        A current model with a tensor beyond MAX_RMS was forced on the consortium (honest training and
        honest votes never get there): training starts from it shrunk plus the initial weights, whose
        randomness separates hidden units a hostile model made identical (a constant MLP never learns).
        """
        rng = np.random.default_rng([self.seed, self.index, _PROPOSE, self.proposals_made])
        self.proposals_made += 1
        return self._train(self._start_weights(), rng)

    def _start_weights(self) -> Weights:
        """The current weights, or, beyond MAX_RMS, their bounded copy plus the initial weights (in their dtype)."""
        start = self._weights
        if any(rms(v) > MAX_RMS for v in start.values()):
            initial = self.model.init(np.random.default_rng([self.seed, _INIT]))
            with np.errstate(over="ignore"):  # a float32 model cannot hold every float64 bound _bounded_start uses
                start = {k: (v + initial[k]).astype(initial[k].dtype) for k, v in _bounded_start(start).items()}
        return start

    def _train(self, start: Weights, rng: np.random.Generator) -> Weights:
        """One proposal's training from ``start``: the numpy models' loop (other frameworks' learners override it)."""
        return train(self.model, start, self.data.train, self.training, rng)

    def test_weights(self, weights: Weights) -> ProposedWeights:
        """Vote score on the vote part decides, unless :func:`refusal` rejects the weights outright (with its reason).

        The test score (accuracy) on the separate test part is only reported.
        """
        self.model.check(weights)
        scores = self._vote_scores(weights)
        vote_score = scores.metric.mean
        test_score = score(self.model, weights, self.data.test, "accuracy")
        reason = refusal(self.model, weights, self._weights, self.data.vote)
        if reason is None and scores.chance is not None and self.vote_rule.guessing(scores):
            reason = f"vote score {vote_score:.3g} is no better than guessing ({scores.chance:.3g} + {GUESS_MARGIN:g})"
        vote = reason is None and self.vote_rule.approves(scores, self._current)
        return ProposedWeights(
            weights=weights, vote_score=vote_score, test_score=test_score, vote=bool(vote), reason=reason
        )

    def accept_weights(self, weights: Weights) -> None:
        """Adopt a private copy of ``weights`` and remember their vote score for the next comparison."""
        self._weights = {k: v.copy() for k, v in self.model.check(weights).items()}
        self._current = self._vote_scores(self._weights)

    def restore_proposal_count(self, count: int) -> None:
        """Continue the proposal sequence after ``count`` proposals (what the chain recorded)."""
        self.proposals_made = count

    def current_weights(self) -> Weights:
        """Return a copy of the current weights."""
        return {k: v.copy() for k, v in self._weights.items()}

    def evaluate(
        self, split: Split | None = None, metric: Metric = "accuracy", weights: Weights | None = None
    ) -> float:
        """Score the current (or given) weights on ``split``, by default the global held-out test set."""
        return score(self.model, self._weights if weights is None else weights,
                     self.data.global_test if split is None else split, metric)

    def _vote_scores(self, weights: Weights) -> VoteScores:
        return self.vote_rule.scores(_logits(self.model, weights, self.data.vote.x), self.data.vote.y)
