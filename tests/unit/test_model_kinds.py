"""`--model` names beyond the numpy models are their framework's registered learner kinds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colearn_chain.exceptions import ColearnChainError
from colearn_chain.experiment import ExperimentSettings
from colearn_chain.learners import MODEL_KINDS, learner_config, make_learner
from colearn_chain.learners.estimators import EstimatorLearner, MLPModel, SGDModel
from colearn_chain.learners.keras import KerasLearner


@pytest.mark.parametrize(("model", "kind"), [
    ("sklearn-sgd", "sklearn-sgd"), ("sklearn-mlp", "sklearn-mlp"), ("cnn", "keras-cnn"), ("linear", "numpy"),
])
def test_a_run_writes_the_kind_each_model_name_needs(model: str, kind: str) -> None:
    # Execute
    config = ExperimentSettings(model=model, dataset="wine", learners=3).learner_config()
    # Assert: the same spec as --learner KIND names, and only the numpy kind has a model option
    assert (config["kind"], config["dataset"], config["n_learners"]) == (kind, "wine", 3)
    assert config.get("model") == ("linear" if kind == "numpy" else None)
    assert json.loads(json.dumps(config)) == config
    assert config == ExperimentSettings(kind=kind, model=None if kind != "numpy" else model, dataset="wine",
                                        learners=3).learner_config()


def test_agents_build_the_framework_learner_from_the_deployed_config() -> None:
    # Prepare: what a deployment carries, after a JSON round trip
    configs = {
        model: json.loads(json.dumps(ExperimentSettings(model=model, dataset="wine", learners=3,
                                                        learner_overrides={"local_epochs": 1}).learner_config()))
        for model in MODEL_KINDS
    }
    # Execute
    learners = {model: make_learner(config, 2) for model, config in configs.items()}
    # Assert
    assert isinstance(learners["sklearn-sgd"], EstimatorLearner) and isinstance(learners["sklearn-sgd"].model, SGDModel)
    assert isinstance(learners["sklearn-mlp"], EstimatorLearner) and isinstance(learners["sklearn-mlp"].model, MLPModel)
    assert isinstance(learners["cnn"], KerasLearner) and learners["cnn"].index == 2


def test_unknown_options_of_a_framework_kind_are_refused() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="unknown options for 'keras-cnn' learners: momentum"):
        learner_config("keras-cnn", momentum=0.9)
    with pytest.raises(ValueError, match="unknown options for 'sklearn-sgd' learners: hidden"):
        learner_config("sklearn-sgd", hidden=[8])
    with pytest.raises(ColearnChainError, match="--model cnn is the 'keras-cnn' learner, not an option of the 'toy'"):
        ExperimentSettings(kind="toy", model="cnn").learner_config()


@pytest.mark.parametrize("kind", ["sklearn-sgd", "sklearn-mlp", "keras-cnn"])
def test_a_framework_kind_trains_on_a_members_own_file(kind: str, tmp_path: Path) -> None:
    # Prepare: a member's NPZ of 3 classes, 8 features
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 8)) + y[:, None]
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    small = {"hidden": [8]} if kind == "sklearn-mlp" else {"channels": 4} if kind == "keras-cnn" else {}
    # Execute
    learner = make_learner(learner_config(kind, n_learners=2, data=str(tmp_path / "mine.npz"), local_epochs=1,
                                          **small), 1)
    # Assert: its parts come from the file, and it proposes weights of its shape
    assert isinstance(learner, (EstimatorLearner, KerasLearner))
    assert (learner.data.n_features, learner.data.n_classes) == (8, 3)
    assert len(learner.data.train) + len(learner.data.vote) + len(learner.data.test) == 120
    proposal = learner.propose_weights()
    assert {k: v.shape for k, v in proposal.items()} == {k: v.shape for k, v in learner.current_weights().items()}
    with pytest.raises(ValueError, match="no such file"):
        make_learner(learner_config(kind, n_learners=2, data=str(tmp_path / "missing.npz")), 0)
