"""`--model` names beyond the numpy models reach their framework's learners through the config registry."""

from __future__ import annotations

import json

import pytest

from colearn_chain.experiment import ExperimentSettings
from colearn_chain.learners import MODEL_KINDS, learner_config, make_learner
from colearn_chain.learners.estimators import EstimatorLearner, MLPModel, SGDModel
from colearn_chain.learners.keras import KerasLearner


@pytest.mark.parametrize(("model", "kind", "name"), [
    ("sklearn-sgd", "estimator", "sgd"), ("sklearn-mlp", "estimator", "mlp"), ("cnn", "keras", "cnn"),
    ("linear", "sklearn", "linear"),
])
def test_a_run_writes_the_kind_and_model_each_name_needs(model: str, kind: str, name: str) -> None:
    # Execute
    config = ExperimentSettings(model=model, dataset="wine", learners=3).learner_config()
    # Assert
    assert (config["kind"], config["model"], config["dataset"], config["n_learners"]) == (kind, name, "wine", 3)
    assert json.loads(json.dumps(config)) == config


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


def test_unknown_settings_of_a_framework_kind_are_refused() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="unknown settings for 'keras'"):
        learner_config("keras", prox=0.1)
    with pytest.raises(ValueError, match="unknown settings for 'estimator'"):
        learner_config("estimator", momentum=0.9)
