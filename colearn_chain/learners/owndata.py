"""A learner's own data from a file (``--data``), checked, and cut into its train / vote / test parts.

Formats: NPZ with arrays ``x`` (rows x features) and ``y`` (one label per row), read without pickle;
or CSV with a header row, one column of labels (``label_column``: by default the column named ``label``,
else the last one) and numeric features in the others; a byte order mark (Excel's "CSV UTF-8") is
ignored. Labels are class numbers 0, 1, 2, ... below :data:`MAX_CLASSES`.

A consortium's learners must agree on the model's shape: ``n_features`` and ``n_classes`` are part of
the learner spec (``run --data DIR`` and ``deploy --data FILE`` work them out and record them), and a
file that does not fit them is refused with both numbers named. For the same reason every learner
standardizes its features with the one published scaler (``feature_mean`` / ``feature_scale``, learner
0's training statistics, as the bundled data sets do), when the spec carries one.

A folder (``run --data DIR``) holds one file per learner: ``learner-0.npz``, ``learner-1.csv``, ...
when so named, else the data files in name order (learner ``i`` takes the ``i``-th).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import LearnerData, Split

#: The file formats a learner's own data may come in.
SUFFIXES = (".npz", ".csv")
#: The share of a learner's rows in its vote part and in its test part (the rest trains), as for the bundled sets.
VOTE_FRACTION = TEST_FRACTION = 0.2
#: One more than the largest label a file may hold: a model with more classes than this is not one anybody
#: means to train, and a typo (a label of 1e12) must be refused before anything is sized by it.
MAX_CLASSES = 100_000
_OWN_SPLIT = 4  # the generator stream of the own-data split (apart from data.py's and the models')
_NAMED = re.compile(r"learner-(\d+)$")


class DataFileError(ValueError):
    """Raised when a learner's own data cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Shape:
    """What every learner's data must agree on, and the published scaler (None: each its own statistics)."""

    n_features: int
    n_classes: int
    feature_mean: tuple[float, ...] | None = None
    feature_scale: tuple[float, ...] | None = None


def load_data_file(path: Path, *, label_column: str | None = None) -> Split:
    """The checked rows of ``path`` (NPZ or CSV); DataFileError saying what is wrong."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        x, y = _read_npz(path)
    elif path.suffix.lower() == ".csv":
        x, y = _read_csv(path, label_column)
    else:
        raise DataFileError(f"{path}: not a data file (give {' or '.join(SUFFIXES)})")
    return check_rows(x, y, str(path), csv_lines=path.suffix.lower() == ".csv")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:  # never unpickle: object arrays are refused
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataFileError(f"{path}: no array {' or '.join(map(repr, missing))} "
                                    f"(an NPZ holds x and y; this one holds {sorted(archive.files)})")
            return archive["x"], archive["y"]
    except DataFileError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise DataFileError(f"{path}: not a readable NPZ file: {error}") from error


def _read_csv(path: Path, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark, which must not become part of
        # the first column's name (else a "label" column there would not be found).
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(f"{path}: not a readable CSV file: {error}") from error
    if not rows:
        raise DataFileError(f"{path}: empty file (a CSV starts with a header row)")
    header = [name.strip() for name in rows[0]]
    if label_column is None:
        label = header.index("label") if "label" in header else len(header) - 1
    elif label_column in header:
        label = header.index(label_column)
    else:
        raise DataFileError(f"{path}: no column {label_column!r} for the labels; the columns are {header}")
    if len(header) < 2:
        raise DataFileError(f"{path}: needs a label column and at least one feature column, has {header}")
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataFileError(f"{path}: line {r + 2} has {len(row)} fields, the header {len(header)}")
        for c, field in enumerate(row):
            try:
                values[r, c] = float(field)
            except ValueError:
                raise DataFileError(f"{path}: line {r + 2}, column {header[c]!r}: {field!r} is not a number") from None
    return np.delete(values, label, axis=1), values[:, label]


def check_rows(x: np.ndarray, y: np.ndarray, source: str, *, csv_lines: bool = False) -> Split:
    """``x`` and ``y`` as a Split, if they are usable rows of features and labels; DataFileError if not.

    A bad value is located by its row (from 0), or by its line in a CSV file (``csv_lines``: the header is line 1).
    """
    x, y = np.asarray(x), np.asarray(y)

    def where(row: int) -> str:
        return f"line {row + 2}" if csv_lines else f"row {row}"

    if x.ndim != 2:
        raise DataFileError(f"{source}: x must be 2-D (rows x features), got shape {x.shape}")
    if y.ndim != 1:
        raise DataFileError(f"{source}: y must be 1-D (one label per row), got shape {y.shape}")
    if len(x) != len(y):
        raise DataFileError(f"{source}: x has {len(x)} rows, y {len(y)} labels")
    if len(y) == 0 or x.shape[1] == 0:
        raise DataFileError(f"{source}: no data (x has shape {x.shape})")
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"{source}: x must be numeric, got dtype {x.dtype}")
    bad = np.argwhere(~np.isfinite(x.astype(np.float64)))
    if len(bad):
        raise DataFileError(f"{source}: x holds NaN or infinite values (first at {where(bad[0][0])}, "
                            f"feature column {bad[0][1]})")
    if y.dtype.kind not in "biuf":
        raise DataFileError(f"{source}: labels must be class numbers 0, 1, 2, ..., got dtype {y.dtype}")
    as_float = y.astype(np.float64)
    with np.errstate(invalid="ignore"):
        wrong = np.flatnonzero(~np.isfinite(as_float) | (as_float != np.round(as_float)) | (as_float < 0)
                               | (as_float >= MAX_CLASSES))
    if len(wrong):
        raise DataFileError(f"{source}: labels must be class numbers 0, 1, 2, ...; {where(wrong[0])} has "
                            f"{y[wrong[0]].item()!r} (a label is a whole number from 0 to {MAX_CLASSES - 1})")
    return Split(x.astype(np.float64), as_float.astype(np.int64))


def learner_file(data: Path, index: int) -> Path:
    """Learner ``index``'s file: ``data`` itself, or its file in the folder ``data``."""
    if not data.is_dir():
        return data
    files = folder_files(data)
    if index >= len(files):
        raise DataFileError(f"{data}: {len(files)} data files, none for learner {index} "
                            f"(name them learner-0{SUFFIXES[0]}, learner-1{SUFFIXES[0]}, ... or give one per learner)")
    return files[index]


def folder_files(folder: Path) -> list[Path]:
    """The per-learner files of ``folder`` in learner order (``learner-<i>.*`` when so named, else name order)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataFileError(f"{folder}: no {' or '.join(SUFFIXES)} files")
    named = {p: _NAMED.match(p.stem) for p in files}
    if all(named.values()):
        by_index = sorted(files, key=lambda p: int(named[p].group(1)))  # type: ignore[union-attr]
        indices = [int(named[p].group(1)) for p in by_index]  # type: ignore[union-attr]
        if indices != list(range(len(by_index))):
            raise DataFileError(f"{folder}: the learner-<i> files must number 0, 1, 2, ... once each, got {indices}")
        return by_index
    return files


def split_own(
    rows: Split, *, index: int, seed: int, shape: Shape, source: str, local_scaling: bool = False
) -> LearnerData:
    """Cut one learner's rows into train / vote / test (seeded by ``(seed, index)``) and standardize them.

    The rows must fit ``shape`` (features, class numbers). Features are scaled with the shape's published
    scaler, or with the learner's own training statistics when it has none or ``local_scaling`` is set.
    """
    if rows.x.shape[1] != shape.n_features:
        raise DataFileError(f"{source}: {rows.x.shape[1]} features, the consortium's model takes {shape.n_features} "
                            "(n_features in the learner spec)")
    top = int(rows.y.max())
    if top >= shape.n_classes:
        raise DataFileError(f"{source}: label {top}, the consortium has {shape.n_classes} classes (0 to "
                            f"{shape.n_classes - 1}; n_classes in the learner spec)")
    parts = [Split(rows.x[i], rows.y[i], i) for i in _part_rows(len(rows), seed, index, source)]
    if shape.feature_mean is None or shape.feature_scale is None or local_scaling:
        mean, scale = statistics(parts[0].x)
    else:
        if len(shape.feature_mean) != shape.n_features or len(shape.feature_scale) != shape.n_features:
            raise DataFileError(f"the learner spec's feature_mean / feature_scale must have {shape.n_features} values")
        mean, scale = np.asarray(shape.feature_mean), np.asarray(shape.feature_scale)
    train_part, vote_part, test_part = (_scaled(p, mean, scale) for p in parts)
    # No global test set exists for own data: reports use each learner's own test part.
    return LearnerData(index=index, train=train_part, vote=vote_part, test=test_part, global_test=test_part,
                       n_classes=shape.n_classes)


def statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation; a constant feature gets scale 1."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return mean, scale


def consortium_shape(files: Sequence[Path], *, seed: int, label_column: str | None,
                     n_classes: int | None = None) -> Shape:
    """The shape the learners of ``files`` (learner 0 first) agree on, and learner 0's published scaler.

    Every file must have the same number of features; ``n_classes`` defaults to the largest label + 1,
    and every class must have rows in some file. DataFileError names the file that does not fit.
    """
    loaded = [(path, load_data_file(path, label_column=label_column)) for path in files]
    n_features = loaded[0][1].x.shape[1]
    for path, rows in loaded[1:]:
        if rows.x.shape[1] != n_features:
            raise DataFileError(f"{path}: {rows.x.shape[1]} features, {loaded[0][0]} has {n_features}: "
                                "every learner's data must have the same features")
    present: set[int] = set().union(*(set(np.unique(rows.y).tolist()) for _, rows in loaded))
    classes = max(present) + 1 if n_classes is None else n_classes
    if not 1 <= classes <= MAX_CLASSES:
        raise DataFileError(f"n_classes must be 1 to {MAX_CLASSES}, got {classes}")
    # The first class without rows, found without building the set of all classes.
    empty = next((c for c in range(classes) if c not in present), None)
    if empty is not None and len(files) > 1:
        raise DataFileError(f"class {empty} has no rows in any learner's data ({len(files)} files): labels must "
                            f"be 0 to {classes - 1} with every class present somewhere")
    unscaled = Shape(n_features, classes)
    for index, (path, rows) in enumerate(loaded):
        split_own(rows, index=index, seed=seed, shape=unscaled, source=str(path))  # each fits, or says why
    first_path, first = loaded[0]
    train_rows = _part_rows(len(first), seed, 0, str(first_path))[0]
    mean, scale = statistics(first.x[train_rows])
    return Shape(n_features, classes, tuple(mean.tolist()), tuple(scale.tolist()))


def _part_rows(n: int, seed: int, index: int, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row numbers of learner ``index``'s train, vote and test parts of its ``n`` rows."""
    n_vote, n_test = max(1, round(n * VOTE_FRACTION)), max(1, round(n * TEST_FRACTION))
    if n - n_vote - n_test < 1:
        raise DataFileError(f"{source}: {n} rows, too few for a train, vote and test part (at least 3)")
    order = np.random.default_rng([seed, index, _OWN_SPLIT]).permutation(n)
    train, vote, test = order[n_vote + n_test:], order[:n_vote], order[n_vote:n_vote + n_test]
    return np.sort(train), np.sort(vote), np.sort(test)


def _scaled(part: Split, mean: np.ndarray, scale: np.ndarray) -> Split:
    out = Split((part.x - mean) / scale, part.y.copy(), part.rows)
    out.x.setflags(write=False)
    out.y.setflags(write=False)
    return out


def own_data_options(
    data: Path, *, n_learners: int, seed: int, label_column: str | None = None, n_classes: int | None = None
) -> dict[str, object]:
    """The numpy learner's options for own data at ``data`` (a file, or a folder of one file per learner).

    They carry what the consortium must agree on, worked out from the files: ``n_features``,
    ``n_classes`` and learner 0's scaler (the first file's training part). DataFileError if they disagree.
    """
    if data.is_dir():
        files = folder_files(data)
        if len(files) < n_learners:
            raise DataFileError(f"{data}: {len(files)} data files for {n_learners} learners: give one per learner")
        files = files[:n_learners]
    else:
        files = [data]
    shape = consortium_shape(files, seed=seed, label_column=label_column, n_classes=n_classes)
    return {
        "dataset": None, "split": None, "alpha": None,  # no bundled data set is used
        "data": str(data.resolve()), "label_column": label_column, "n_features": shape.n_features,
        "n_classes": shape.n_classes, "feature_mean": list(shape.feature_mean or ()),
        "feature_scale": list(shape.feature_scale or ()),
    }


def learner_own_data(index: int, seed: int, options: dict[str, object]) -> LearnerData:
    """Learner ``index``'s parts of its own data, as the numpy learner's ``options`` describe them."""
    path = learner_file(Path(str(options["data"])), index)
    rows = load_data_file(path, label_column=None if options["label_column"] is None else str(options["label_column"]))
    if options["scaling"] == "pooled":
        raise DataFileError("scaling 'pooled' needs a bundled data set; own data scales with the published "
                            "scaler ('shared') or with each learner's own statistics ('local')")
    mean, scale = options["feature_mean"], options["feature_scale"]
    shape = Shape(
        n_features=rows.x.shape[1] if options["n_features"] is None else _whole(options["n_features"], "n_features"),
        n_classes=(int(rows.y.max()) + 1 if options["n_classes"] is None
                   else _whole(options["n_classes"], "n_classes", MAX_CLASSES)),
        feature_mean=tuple(float(v) for v in mean) if isinstance(mean, list) and mean else None,
        feature_scale=tuple(float(v) for v in scale) if isinstance(scale, list) and scale else None,
    )
    return split_own(rows, index=index, seed=seed, shape=shape, source=str(path),
                     local_scaling=options["scaling"] == "local")


def _whole(value: object, name: str, most: float = math.inf) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or not 1 <= value <= most):
        limit = "" if most == math.inf else f" and <= {most}"
        raise DataFileError(f"{name} must be a whole number >= 1{limit}, got {value!r}")
    return int(value)
