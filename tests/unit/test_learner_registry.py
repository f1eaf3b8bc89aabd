"""The learner plug-in point: factory references, declared options, the recorded spec, option parsing."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colearn_chain.cli import main
from colearn_chain.cli._options import learner_spec_from
from colearn_chain.exceptions import ColearnChainError, LearnerContractError
from colearn_chain.experiment import ExperimentSettings
from colearn_chain.learners import complete_spec, learner_config, make_learner
from colearn_chain.learners.registry import (
    BUNDLED,
    GROUP,
    available_kinds,
    learner_factory,
    parse_learner_option,
    parse_learner_options,
    resolve_factory,
)
from colearn_chain.learners.toy import ToyLearner
from colearn_chain.mli import MachineLearningInterface

ROOT = Path(__file__).resolve().parents[2]
CALLS: list[tuple[int, int, int, dict[str, Any]]] = []


def plain_factory(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    CALLS.append((index, n_learners, seed, options))
    return ToyLearner(index, seed=seed, dim=int(options.get("dim", 2)))


@learner_factory({"dim": 3, "note": "x"})
def declared_factory(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> MachineLearningInterface:
    return ToyLearner(index, seed=seed, dim=int(options["dim"]))


def not_a_learner(index: int, n_learners: int, seed: int, options: dict[str, Any]) -> object:
    return {"w": np.zeros(2)}


NOT_CALLABLE = 42


def test_the_bundled_kinds_are_the_entry_points_pyproject_registers() -> None:
    # Execute
    text = (ROOT / "pyproject.toml").read_text()  # read by hand: tomllib is Python 3.11+, the package 3.10+
    section = text.split(f'[project.entry-points."{GROUP}"]', 1)[1].split("\n[", 1)[0]
    declared = dict(re.findall(r'^([\w-]+) = "([^"]+)"$', section, flags=re.MULTILINE))
    # Assert
    assert declared == dict(BUNDLED)
    assert {"numpy", "toy", "sklearn-sgd", "sklearn-mlp", "keras-cnn"} <= set(available_kinds())


def test_a_factory_gets_index_n_learners_seed_and_the_options() -> None:
    # Prepare
    CALLS.clear()
    spec = {"kind": f"{__name__}:plain_factory", "n_learners": 3, "seed": 7, "dim": 5, "label": "mine"}
    # Execute
    learner = make_learner(spec, 2)
    # Assert: options as given (the factory declares none), the reserved keys as arguments
    assert CALLS == [(2, 3, 7, {"dim": 5, "label": "mine"})]
    assert isinstance(learner, ToyLearner) and learner.index == 2 and learner.dim == 5
    assert complete_spec(spec) == spec


def test_declared_options_are_completed_and_unknown_ones_refused() -> None:
    # Execute
    spec = learner_config(f"{__name__}:declared_factory", n_learners=2)
    # Assert
    assert spec == {"kind": f"{__name__}:declared_factory", "n_learners": 2, "seed": 0, "dim": 3, "note": "x"}
    with pytest.raises(ValueError, match=r"unknown options for .*: colour \(it takes dim, note, besides"):
        learner_config(f"{__name__}:declared_factory", colour="red")
    with pytest.raises(ValueError, match="not options"):
        learner_factory({"seed": 1})


@pytest.mark.parametrize(("reference", "message"), [
    ("torch", "unknown learner kind 'torch'; choose one of keras-cnn, numpy, sklearn-mlp, sklearn-sgd, toy"),
    ("sklearn", "unknown learner kind 'sklearn' (the numpy models' kind was called 'sklearn' before); choose"),
    ("no_such_module_xyz:make", "cannot import learner module 'no_such_module_xyz'"),
    (f"{__name__}:missing", f"module '{__name__}' has no 'missing'"),
    (f"{__name__}:", f"module '{__name__}' has no ''"),
    (f"{__name__}:NOT_CALLABLE", "is a int, not a callable"),
    ("", "a learner is named by MODULE:FACTORY or a registered kind"),
])
def test_a_bad_reference_says_why(reference: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_factory(reference)


def test_a_factory_that_returns_no_learner_is_named() -> None:
    with pytest.raises(LearnerContractError, match="returned a dict, which lacks propose_weights, test_weights"):
        make_learner({"kind": f"{__name__}:not_a_learner", "n_learners": 1}, 0)


def test_spec_numbers_are_checked() -> None:
    with pytest.raises(ValueError, match="n_learners must be >= 1"):
        learner_config("toy", n_learners=0)
    with pytest.raises(ValueError, match="seed must be a whole number, got 'a'"):
        learner_config("toy", seed="a")
    assert learner_config("toy", n_learners=3.0)["n_learners"] == 3
    with pytest.raises(ValueError, match=r"learner index 3 outside 0\.\.2"):
        make_learner({"kind": "toy", "n_learners": 3}, 3)


@pytest.mark.parametrize(("text", "expected"), [
    ("local_epochs=5", ("local_epochs", 5)),
    ("learning_rate=0.1", ("learning_rate", 0.1)),
    ("shuffle=true", ("shuffle", True)),
    ("sizes=[1, 2]", ("sizes", [1, 2])),
    ("vote_metric=accuracy", ("vote_metric", "accuracy")),
    ('name="5"', ("name", "5")),
    ("data=/tmp/a=b.npz", ("data", "/tmp/a=b.npz")),
    ("empty=", ("empty", "")),
])
def test_options_are_json_when_they_parse_else_strings(text: str, expected: tuple[str, Any]) -> None:
    assert parse_learner_option(text) == expected


@pytest.mark.parametrize("text", ["local_epochs", "=5", " =5"])
def test_an_option_without_a_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a learner option is KEY=VALUE"):
        parse_learner_option(text)


def test_later_options_win() -> None:
    assert parse_learner_options(["a=1", "b=2", "a=3"]) == {"a": 3, "b": 2}


def _args(learner: str | None, *options: str) -> argparse.Namespace:
    return argparse.Namespace(learner=learner, learner_option=list(options))


def test_cli_spec_amends_the_recorded_one() -> None:
    # Prepare
    recorded = {"kind": "numpy", "n_learners": 5, "seed": 2, "dataset": "wine", "model": "mlp"}
    # Execute / Assert: options over the record; another factory keeps only n_learners and seed
    assert learner_spec_from(_args(None, "model=linear"), recorded) == {**recorded, "model": "linear"}
    assert learner_spec_from(_args("numpy"), recorded) == recorded
    assert learner_spec_from(_args("toy", "dim=3"), recorded) == {"kind": "toy", "n_learners": 5, "seed": 2, "dim": 3}
    assert learner_spec_from(_args(None), None) is None
    with pytest.raises(ValueError, match="--learner-option without a learner"):
        learner_spec_from(_args(None, "dim=3"), None)


def test_run_flags_go_only_to_learners_that_declare_them() -> None:
    # Execute / Assert
    numpy_spec = ExperimentSettings(learners=3, dataset="wine", split="iid").learner_config()
    assert (numpy_spec["dataset"], numpy_spec["split"], numpy_spec["n_learners"]) == ("wine", "iid", 3)
    assert ExperimentSettings(kind="toy", learners=2).learner_config()["kind"] == "toy"
    with pytest.raises(ColearnChainError, match="the 'toy' learner takes no dataset, model option"):
        ExperimentSettings(kind="toy", dataset="wine", model="mlp").learner_config()


@pytest.mark.parametrize(("args", "message"), [
    (["--learner", "nope"], "unknown learner kind 'nope'"),
    (["--learner", "toy", "--dataset", "wine"], "the 'toy' learner takes no dataset option"),
    (["--learner-option", "bad"], "a learner option is KEY=VALUE, got 'bad'"),
    (["--model", "convnet"], "unknown model 'convnet'; choose 'linear' or 'mlp'"),
    (["--learner", "toy", "--model", "cnn"], "--model cnn is the 'keras-cnn' learner, not an option of the 'toy'"),
    (["--learner-option", "learning_rat=0.1"], "unknown options for 'numpy' learners: learning_rat"),
])
def test_run_refuses_a_bad_learner_before_starting_anything(
    args: list[str], message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Execute
    code = main(["run", *args, "--out", str(tmp_path / "out")])
    # Assert: exit status 2 with the reason, and nothing was made
    assert code == 2
    assert message in caplog.text
    assert not (tmp_path / "out").exists()
