"""Datasets and their split among learners: deterministic, disjoint, skewed when asked, never downloaded."""

from __future__ import annotations

import random

import numpy as np
import pytest

from colearn_chain.learners.data import load_dataset, split_learners


def _all_rows(fed):  # every part of every learner, plus the global test set
    parts = [p for d in fed.learners for p in (d.train, d.vote, d.test)] + [fed.learners[0].global_test]
    return [p.rows for p in parts]


@pytest.mark.parametrize("split", ["iid", "dirichlet"])
def test_parts_are_disjoint_and_cover_the_dataset(split: str) -> None:
    # Prepare
    n_rows = len(load_dataset("digits"))
    # Execute
    fed = split_learners("digits", n_learners=5, split=split, alpha=0.5, seed=0)
    # Assert
    rows = np.concatenate(_all_rows(fed))
    assert len(rows) == n_rows
    assert len(np.unique(rows)) == n_rows
    for d in fed.learners:
        assert len(np.intersect1d(d.vote.rows, d.test.rows)) == 0
        assert min(len(d.train), len(d.vote), len(d.test)) >= 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    # Prepare / Execute
    a = split_learners("wine", n_learners=3, split="dirichlet", seed=1)
    b = split_learners("wine", n_learners=3, split="dirichlet", seed=1)
    c = split_learners("wine", n_learners=3, split="dirichlet", seed=2)
    # Assert
    for x, y in zip(_all_rows(a), _all_rows(b), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.learners[2].train.x, b.learners[2].train.x)
    assert not all(np.array_equal(x, y) for x, y in zip(_all_rows(a), _all_rows(c), strict=True))


def _label_skew(fed) -> float:
    """Mean over learners of the share of their most common class."""
    shares = []
    for d in fed.learners:
        y = np.concatenate([d.train.y, d.vote.y, d.test.y])
        shares.append(np.bincount(y).max() / len(y))
    return float(np.mean(shares))


def test_dirichlet_skews_labels_more_as_alpha_falls() -> None:
    # Prepare / Execute
    iid = _label_skew(split_learners("digits", n_learners=5, split="iid", seed=0))
    mild = _label_skew(split_learners("digits", n_learners=5, split="dirichlet", alpha=10.0, seed=0))
    strong = _label_skew(split_learners("digits", n_learners=5, split="dirichlet", alpha=0.1, seed=0))
    # Assert
    assert iid < 0.15
    assert strong > mild
    assert strong > 0.4


def test_global_test_set_is_stratified() -> None:
    # Prepare
    y = load_dataset("digits").y
    # Execute
    test = split_learners("digits", n_learners=5, split="dirichlet", alpha=0.1, seed=0).learners[0].global_test
    # Assert
    expected = np.round(np.bincount(y) * 0.2)
    np.testing.assert_array_equal(np.bincount(test.y), expected)


def test_pooled_scaling_standardizes_the_pooled_training_data() -> None:
    # Prepare / Execute
    fed = split_learners("breast_cancer", n_learners=4, split="dirichlet", seed=0, scaling="pooled")
    pooled = fed.pooled_train().x
    # Assert
    np.testing.assert_allclose(pooled.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(pooled.std(axis=0), 1.0, atol=1e-9)
    np.testing.assert_array_equal(fed.learners[0].global_test.x, fed.learners[3].global_test.x)


def test_without_leaves_out_exactly_one_members_parts() -> None:
    # Prepare
    fed = split_learners("wine", n_learners=5, split="dirichlet", alpha=0.5, seed=1)
    # Execute
    rest = fed.without(2)
    # Assert
    assert [d.index for d in rest.learners] == [0, 1, 3, 4]
    for pooled, whole, left_out in ((rest.pooled_train(), fed.pooled_train(), fed.learners[2].train),
                                    (rest.pooled_vote(), fed.pooled_vote(), fed.learners[2].vote),
                                    (rest.pooled_test(), fed.pooled_test(), fed.learners[2].test)):
        np.testing.assert_array_equal(np.sort(pooled.rows), np.setdiff1d(whole.rows, left_out.rows))
    assert len(fed.learners) == 5  # the original is untouched


def test_local_scaling_uses_only_the_learners_own_training_data() -> None:
    # Prepare / Execute
    fed = split_learners("breast_cancer", n_learners=4, split="dirichlet", seed=0, scaling="local")
    # Assert
    for d in fed.learners:
        np.testing.assert_allclose(d.train.x.mean(axis=0), 0.0, atol=1e-9)
    assert not np.allclose(fed.learners[0].global_test.x, fed.learners[1].global_test.x)


@pytest.mark.parametrize(
    "name, shape, classes", [("digits", (1797, 64), 10), ("breast_cancer", (569, 30), 2), ("wine", (178, 13), 3)]
)
def test_bundled_datasets_load(name: str, shape: tuple, classes: int) -> None:
    # Execute
    data = load_dataset(name)
    # Assert
    assert data.x.shape == shape and data.x.dtype == np.float64
    assert len(np.unique(data.y)) == classes


def test_mnist1d_is_generated_offline_without_touching_global_random_state() -> None:
    # Prepare
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    # Execute
    data = load_dataset("mnist1d")
    # Assert
    assert data.x.shape == (5000, 40)
    assert len(np.unique(data.y)) == 10
    assert (np.random.random(), random.random()) == (expected_np, expected_py)


def test_bad_arguments_are_refused() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split"):
        split_learners("digits", n_learners=2, split="quantity")
    with pytest.raises(ValueError, match="alpha"):
        split_learners("digits", n_learners=2, split="dirichlet", alpha=0.0)
    with pytest.raises(ValueError):
        split_learners("wine", n_learners=20, split="dirichlet", alpha=0.5)
