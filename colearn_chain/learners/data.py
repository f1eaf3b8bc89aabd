"""Datasets and their split among learners, deterministic from a seed.

* Datasets: scikit-learn's bundled ``digits``, ``breast_cancer`` and ``wine`` (no download) and
  ``mnist1d`` generated offline with ``mnist1d.data.make_dataset`` (never its downloading
  ``get_dataset``); nothing is written to disk, the generated set is memoised in this process.
* A stratified global held-out test set (``global_test_fraction``) serves the reports only.
* The rest is divided among the learners: ``iid`` (a shuffled equal split) or ``dirichlet``
  label skew (per class, shares drawn from Dirichlet(alpha); smaller alpha = more skew).
* Each learner's share is cut into its own train / vote / test parts. The vote part (which decides
  votes) is disjoint from the test part (which is only reported), unlike colearn (its issue #216).
* Features are standardized, and every learner must standardize the same way, or the shared weights
  mean different things to different learners. ``scaling="shared"`` (the default) uses the mean and
  standard deviation of learner 0's training part: the deployer publishes them with the initial
  model, so nothing of the other learners' data is needed or revealed. ``scaling="pooled"`` uses all
  learners' training parts (it would need a secure sum over the consortium; the centralized baseline
  uses it). ``scaling="local"`` lets each learner use its own statistics: no sharing at all, but under
  label skew the learners then feed the shared model inconsistent inputs (see bench/learning.py).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..extras import require

DATASETS = ("digits", "breast_cancer", "wine", "mnist1d")
SPLITS = ("iid", "dirichlet")
Scaling = Literal["shared", "pooled", "local"]
_MAX_DIRICHLET_TRIES = 1000


@dataclass(frozen=True)
class Split:
    """Features ``x`` (float64, samples x features), integer labels ``y``, and which dataset ``rows`` they are."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class LearnerData:
    """One learner's private parts, already standardized, plus the global test set scaled the same way."""

    index: int
    train: Split
    vote: Split
    test: Split
    global_test: Split
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(self.train.x.shape[1])


@dataclass(frozen=True)
class FederatedData:
    """A dataset divided among learners."""

    dataset: str
    learners: tuple[LearnerData, ...]
    n_features: int
    n_classes: int

    def pooled_train(self) -> Split:
        """All learners' training parts together (the centralized baseline's data)."""
        return _concat([d.train for d in self.learners])

    def pooled_vote(self) -> Split:
        """All learners' vote parts together."""
        return _concat([d.vote for d in self.learners])

    def pooled_test(self) -> Split:
        """All learners' test parts together."""
        return _concat([d.test for d in self.learners])

    def without(self, index: int) -> FederatedData:
        """The same division with learner ``index``'s part left out (what that member's data is worth)."""
        return replace(self, learners=tuple(d for d in self.learners if d.index != index))


def load_dataset(name: str) -> Split:
    """Return the whole dataset ``name`` (features unscaled); bundled or generated, never downloaded."""
    if name == "mnist1d":
        x, y = _mnist1d()
    else:
        datasets = require("sklearn.datasets", f"the data set {name!r}")
        loaders = {
            "digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine
        }
        if name not in loaders:
            raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
        x, y = loaders[name](return_X_y=True)
    return Split(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64))


@functools.lru_cache(maxsize=1)
def _mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """Generate mnist1d offline with its default arguments (5000 samples, 40 features, 10 classes).

    ``make_dataset`` reseeds the global ``random`` and ``numpy.random`` state; we restore both so
    generating data never changes anybody else's random stream.
    """
    mnist1d_data = require("mnist1d.data", "the data set 'mnist1d'")
    get_dataset_args, make_dataset = mnist1d_data.get_dataset_args, mnist1d_data.make_dataset
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x = np.concatenate([data["x"], data["x_test"]])
    y = np.concatenate([data["y"], data["y_test"]])
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def split_learners(
    dataset: str,
    *,
    n_learners: int,
    split: str = "dirichlet",
    alpha: float = 0.5,
    seed: int = 0,
    global_test_fraction: float = 0.2,
    vote_fraction: float = 0.2,
    test_fraction: float = 0.2,
    scaling: Scaling = "shared",
    min_samples: int = 10,
) -> FederatedData:
    """Divide ``dataset`` among ``n_learners``, deterministically from ``seed``.

    ``min_samples`` is the least data a learner may get under the Dirichlet split (shares are
    redrawn until every learner has it), so each learner's train, vote and test parts are non-empty.
    """
    if n_learners < 1:
        raise ValueError(f"n_learners must be >= 1, got {n_learners}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "dirichlet" and not alpha > 0:
        raise ValueError(f"Dirichlet alpha must be > 0, got {alpha}")
    if not (vote_fraction > 0 and test_fraction > 0 and vote_fraction + test_fraction < 1):
        raise ValueError("vote_fraction and test_fraction must be > 0 and leave room for training data")
    if scaling not in ("shared", "pooled", "local"):
        raise ValueError(f"unknown scaling {scaling!r}; choose 'shared', 'pooled' or 'local'")

    data = load_dataset(dataset)
    n_classes = int(data.y.max()) + 1
    rng = np.random.default_rng([seed, DATASETS.index(dataset)])
    pool_idx, global_idx = _stratified_holdout(data.y, global_test_fraction, rng)
    if split == "iid":
        shares = np.array_split(rng.permutation(pool_idx), n_learners)
    else:
        shares = _dirichlet_shares(data.y, pool_idx, n_learners, alpha, min_samples, rng)

    parts = []
    for share in shares:
        order = rng.permutation(share)
        n_vote = max(1, round(len(order) * vote_fraction))
        n_test = max(1, round(len(order) * test_fraction))
        if len(order) - n_vote - n_test < 1:
            raise ValueError(f"a learner got only {len(order)} samples: too few for train, vote and test parts")
        vote_rows, test_rows, train_rows = order[:n_vote], order[n_vote:n_vote + n_test], order[n_vote + n_test:]
        parts.append(tuple(_take(data, np.sort(i)) for i in (train_rows, vote_rows, test_rows)))

    global_test = _take(data, global_idx)
    common = _stats(_concat([p[0] for p in parts]).x) if scaling == "pooled" else _stats(parts[0][0].x)
    learners = []
    for index, (train, vote, test) in enumerate(parts):
        mean, scale = _stats(train.x) if scaling == "local" else common
        learners.append(
            LearnerData(
                index=index,
                train=_scale(train, mean, scale),
                vote=_scale(vote, mean, scale),
                test=_scale(test, mean, scale),
                global_test=_scale(global_test, mean, scale),
                n_classes=n_classes,
            )
        )
    return FederatedData(
        dataset=dataset, learners=tuple(learners), n_features=int(data.x.shape[1]), n_classes=n_classes
    )


def _stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of every class; return (rest, held out) index arrays."""
    if not 0 < fraction < 1:
        raise ValueError(f"global_test_fraction must be in (0, 1), got {fraction}")
    held, rest = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = round(len(idx) * fraction)
        held.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(held))


def _dirichlet_shares(
    y: np.ndarray, pool_idx: np.ndarray, n: int, alpha: float, min_samples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Label skew after Hsu et al. (2019): each class is divided among learners in Dirichlet(alpha) shares."""
    if len(pool_idx) < n * min_samples:
        raise ValueError(f"{len(pool_idx)} samples cannot give {n} learners {min_samples} each")
    for _ in range(_MAX_DIRICHLET_TRIES):
        shares: list[list[np.ndarray]] = [[] for _ in range(n)]
        for c in np.unique(y[pool_idx]):
            idx = rng.permutation(pool_idx[y[pool_idx] == c])
            cuts = (np.cumsum(rng.dirichlet(np.full(n, alpha))) * len(idx)).astype(int)[:-1]
            for learner, chunk in enumerate(np.split(idx, cuts)):
                shares[learner].append(chunk)
        merged = [np.concatenate(s) for s in shares]
        if min(len(s) for s in merged) >= min_samples:
            return merged
    raise ValueError(f"no Dirichlet({alpha}) split gave every learner {min_samples} samples; raise alpha")


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation; a constant feature gets scale 1 (left centred, not blown up)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return mean, scale


def _take(data: Split, rows: np.ndarray) -> Split:
    return Split(data.x[rows], data.y[rows], rows)


def _scale(s: Split, mean: np.ndarray, scale: np.ndarray) -> Split:
    """Standardize; the result is read-only because memoised splits are shared between learners."""
    out = Split((s.x - mean) / scale, s.y.copy(), None if s.rows is None else s.rows.copy())
    for array in (out.x, out.y, out.rows):
        if array is not None:
            array.setflags(write=False)
    return out


def _concat(splits: list[Split]) -> Split:
    rows = None if any(s.rows is None for s in splits) else np.concatenate([s.rows for s in splits])
    return Split(np.concatenate([s.x for s in splits]), np.concatenate([s.y for s in splits]), rows)
