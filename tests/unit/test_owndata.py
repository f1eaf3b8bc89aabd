"""A learner's own data (--data): every way a file can be unusable is refused with a message naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colearn_chain.exceptions import ColearnChainError
from colearn_chain.experiment import ExperimentSettings
from colearn_chain.learners import complete_spec, make_learner
from colearn_chain.learners.numpy_models import ClassifierLearner
from colearn_chain.learners.owndata import (
    MAX_CLASSES,
    DataFileError,
    folder_files,
    learner_file,
    load_data_file,
    own_data_options,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4))
Y = np.arange(30) % 3


def _npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": X}, "no array 'y' (an NPZ holds x and y; this one holds ['x'])"),
    ({"x": X[:, 0], "y": Y}, "x must be 2-D (rows x features), got shape (30,)"),
    ({"x": X, "y": Y.reshape(10, 3)}, "y must be 1-D (one label per row), got shape (10, 3)"),
    ({"x": X, "y": Y[:29]}, "x has 30 rows, y 29 labels"),
    ({"x": np.zeros((0, 4)), "y": np.zeros(0)}, "no data (x has shape (0, 4))"),
    ({"x": np.full((30, 4), "a"), "y": Y}, "x must be numeric, got dtype <U1"),
    ({"x": np.where(np.arange(120).reshape(30, 4) == 5, np.nan, X), "y": Y},
     "x holds NaN or infinite values (first at row 1, feature column 1)"),
    ({"x": X, "y": np.where(np.arange(30) == 2, 0.5, Y)}, "labels must be class numbers 0, 1, 2, ...; row 2 has 0.5"),
    ({"x": X, "y": np.where(np.arange(30) == 4, -1, Y)}, "labels must be class numbers 0, 1, 2, ...; row 4 has -1"),
    ({"x": X, "y": Y.astype(str)}, "labels must be class numbers 0, 1, 2, ..., got dtype <U"),
    ({"x": np.array([[object()]] * 30), "y": Y}, "not a readable NPZ file"),
])
def test_a_bad_npz_file_is_refused_saying_why(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    # Prepare
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    # Execute / Assert
    with pytest.raises(DataFileError) as error:
        load_data_file(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


@pytest.mark.parametrize(("text", "column", "message"), [
    ("", None, "empty file (a CSV starts with a header row)"),
    ("a,label\n1,0\n2,x\n", None, "line 3, column 'label': 'x' is not a number"),
    ("a,b,label\n1,2,0\n3,4\n", None, "line 3 has 2 fields, the header 3"),
    ("a,label\n1,0\n", "class", "no column 'class' for the labels; the columns are ['a', 'label']"),
    ("label\n1\n", None, "needs a label column and at least one feature column"),
    ("a,label\n1,0.5\n", None, "labels must be class numbers 0, 1, 2, ...; line 2 has 0.5"),
    ("a,label\nnan,0\n", None, "x holds NaN or infinite values"),
])
def test_a_bad_csv_file_is_refused_saying_why(tmp_path: Path, text: str, column: str | None, message: str) -> None:
    # Prepare
    path = _csv(tmp_path / "mine.csv", text)
    # Execute / Assert
    with pytest.raises(DataFileError, match=r"mine\.csv") as error:
        load_data_file(path, label_column=column)
    assert message in str(error.value)


def test_csv_labels_are_the_label_column_else_the_last(tmp_path: Path) -> None:
    # Execute
    named = load_data_file(_csv(tmp_path / "a.csv", "label,f1,f2\n2,0.5,1\n0,1.5,2\n"))
    last = load_data_file(_csv(tmp_path / "b.csv", "f1,f2,y\n0.5,1,2\n1.5,2,0\n"))
    chosen = load_data_file(_csv(tmp_path / "c.csv", "f1,cls,f2\n0.5,1,2\n1.5,0,4\n"), label_column="cls")
    # Assert
    assert named.y.tolist() == [2, 0] and named.x.tolist() == [[0.5, 1.0], [1.5, 2.0]]
    assert last.y.tolist() == [2, 0] and last.x.tolist() == [[0.5, 1.0], [1.5, 2.0]]
    assert chosen.y.tolist() == [1, 0] and chosen.x.tolist() == [[0.5, 2.0], [1.5, 4.0]]


def test_a_csv_with_a_byte_order_mark_reads_as_the_same_csv_without_one(tmp_path: Path) -> None:
    # Prepare: Excel's "CSV UTF-8" starts the file with a BOM, right before the label column's name
    text = "label,f1,f2\n2,0.5,1\n0,1.5,2\n1,2.5,3\n"
    plain = _csv(tmp_path / "plain.csv", text)
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + text.encode())
    # Execute
    expected, got = load_data_file(plain), load_data_file(excel)
    # Assert
    assert got.y.tolist() == expected.y.tolist() == [2, 0, 1]
    assert got.x.tolist() == expected.x.tolist() == [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]]


@pytest.mark.parametrize(("label", "shown"), [
    ("1e12", "1000000000000.0"), ("1e20", "1e+20"), ("100000", "100000.0"), ("-3", "-3.0"), ("inf", "inf"),
])
def test_a_label_too_large_to_be_a_class_is_refused_naming_its_line(tmp_path: Path, label: str, shown: str) -> None:
    # Prepare
    path = _csv(tmp_path / "huge.csv", f"a,label\n1,0\n2,1\n3,{label}\n")
    # Execute / Assert
    with pytest.raises(DataFileError) as error:
        load_data_file(path)
    assert str(error.value) == (f"{path}: labels must be class numbers 0, 1, 2, ...; line 4 has {shown} "
                                f"(a label is a whole number from 0 to {MAX_CLASSES - 1})")


def test_the_largest_allowed_label_gives_a_consortium_without_building_every_class(tmp_path: Path) -> None:
    # Prepare: one file whose labels reach the limit (a single file may leave classes empty)
    y = np.where(Y == 2, MAX_CLASSES - 1, Y)
    path = _npz(tmp_path / "wide.npz", x=X, y=y)
    # Execute
    options = own_data_options(path, n_learners=1, seed=0)
    # Assert
    assert options["n_classes"] == MAX_CLASSES
    with pytest.raises(DataFileError, match=f"n_classes must be 1 to {MAX_CLASSES}, got {10**12}"):
        own_data_options(path, n_learners=1, seed=0, n_classes=10**12)


def test_missing_and_unknown_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        load_data_file(tmp_path / "nope.npz")
    with pytest.raises(DataFileError, match=r"not a data file \(give .npz or .csv\)"):
        load_data_file(_csv(tmp_path / "mine.txt", "a,label\n1,0\n"))


def test_a_folder_gives_each_learner_its_file(tmp_path: Path) -> None:
    # Prepare: learner-<i> names sort by number, not text
    for i in (0, 1, 2, 10, 3, 4, 5, 6, 7, 8, 9):
        _npz(tmp_path / f"learner-{i}.npz", x=X, y=Y)
    other = tmp_path / "other"
    other.mkdir()
    _csv(other / "b.csv", "a,label\n1,0\n")
    _npz(other / "a.npz", x=X, y=Y)
    # Execute / Assert
    assert learner_file(tmp_path, 10).name == "learner-10.npz" and learner_file(tmp_path, 2).name == "learner-2.npz"
    assert [p.name for p in folder_files(other)] == ["a.npz", "b.csv"]
    with pytest.raises(DataFileError, match="2 data files, none for learner 2"):
        learner_file(other, 2)
    (tmp_path / "learner-10.npz").rename(tmp_path / "learner-12.npz")
    with pytest.raises(DataFileError, match=r"must number 0, 1, 2, ... once each"):
        folder_files(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match=r"no \.npz or \.csv files"):
        folder_files(tmp_path / "empty")


def _folder(tmp_path: Path, *parts: tuple[np.ndarray, np.ndarray]) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for i, (x, y) in enumerate(parts):
        _npz(folder / f"learner-{i}.npz", x=x, y=y)
    return folder


@pytest.mark.parametrize(("parts", "n_learners", "message"), [
    ([(X, Y), (X[:, :3], Y)], 2, "learner-1.npz: 3 features, .*learner-0.npz has 4: every learner's data must have "
                                 "the same features"),
    ([(X, Y * 2), (X, Y * 2)], 2, "class 1 has no rows in any learner's data"),
    ([(X, Y), (X[:2], Y[:2])], 2, r"learner-1.npz: 2 rows, too few for a train, vote and test part \(at least 3\)"),
    ([(X, Y), (X, Y)], 3, "2 data files for 3 learners: give one per learner"),
])
def test_a_consortium_whose_files_disagree_is_refused(
    tmp_path: Path, parts: list[tuple[np.ndarray, np.ndarray]], n_learners: int, message: str
) -> None:
    # Prepare
    folder = _folder(tmp_path, *parts)
    # Execute / Assert
    with pytest.raises(DataFileError, match=message):
        own_data_options(folder, n_learners=n_learners, seed=0)


def test_own_data_spec_is_complete_and_rebuilds_the_same_learners(tmp_path: Path) -> None:
    # Prepare
    folder = _folder(tmp_path, (X, Y), (X + 1, Y), (X - 1, Y))
    # Execute
    spec = json.loads(json.dumps(ExperimentSettings(learners=3, data=folder, seed=4).learner_config()))
    first, again = make_learner(spec, 1), make_learner(spec, 1)
    # Assert: the shape and learner 0's scaler are recorded; parts are a pure function of (seed, index, file)
    assert (spec["n_features"], spec["n_classes"], spec["dataset"]) == (4, 3, None)
    assert len(spec["feature_mean"]) == 4 and spec["data"] == str(folder.resolve())
    assert isinstance(first, ClassifierLearner) and isinstance(again, ClassifierLearner)
    assert np.array_equal(first.data.train.x, again.data.train.x)
    assert np.array_equal(first.data.vote.y, again.data.vote.y)
    assert len(first.data.train) + len(first.data.vote) + len(first.data.test) == 30
    assert np.array_equal(first.current_weights()["coef"], make_learner(spec, 0).current_weights()["coef"])


def test_an_agents_file_must_fit_the_consortium(tmp_path: Path) -> None:
    # Prepare: a consortium of 4 features and 3 classes, as deploy would record it
    recorded = complete_spec({"kind": "numpy", "n_learners": 2, **own_data_options(
        _npz(tmp_path / "deployer.npz", x=X, y=Y), n_learners=1, seed=0), "data": None})
    mine = {**recorded, "data": str(_npz(tmp_path / "mine.npz", x=X, y=np.where(Y == 2, 5, Y)))}
    wide = {**recorded, "data": str(_npz(tmp_path / "wide.npz", x=np.hstack([X, X]), y=Y))}
    # Execute / Assert
    with pytest.raises(DataFileError, match=r"mine.npz: label 5, the consortium has 3 classes \(0 to 2"):
        make_learner(mine, 1)
    with pytest.raises(DataFileError, match=r"wide\.npz: 8 features, the consortium's model takes 4"):
        make_learner(wide, 1)
    with pytest.raises(ValueError, match=r"give this learner its data \(--data FILE\)"):
        make_learner(recorded, 1)
    assert isinstance(make_learner({**recorded, "data": str(tmp_path / "mine.npz"), "n_classes": 6}, 1),
                      ClassifierLearner)


def test_run_flags_that_do_not_apply_to_own_data_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, (X, Y), (X, Y))
    with pytest.raises(ColearnChainError, match="--data gives each learner its own data: dataset, split do not apply"):
        ExperimentSettings(learners=2, data=folder, dataset="wine", split="iid").learner_config()
    with pytest.raises(ColearnChainError, match="the 'toy' learner takes no data option"):
        ExperimentSettings(kind="toy", learners=2, data=folder).learner_config()
