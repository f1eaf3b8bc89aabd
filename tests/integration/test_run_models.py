"""`colearn-chain run --model` with the other frameworks' learners (scikit-learn, Keras) on a real chain:
agents in their own processes rebuild them from the deployed spec and decide as the reference driver does,
and the run reports their accuracy and baselines as for the numpy models."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run import assert_results_match_chain, chain_record

from colearn_chain.experiment import ExperimentSettings, run_experiment
from colearn_chain.services.anvil import AnvilNode

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("model", "kind", "options"), [
    ("sklearn-sgd", "sklearn-sgd", {}),
    ("sklearn-mlp", "sklearn-mlp", {"hidden": [16], "local_epochs": 2}),  # small: a quick test
    ("cnn", "keras-cnn", {"channels": 4, "local_epochs": 2}),
])
def test_a_framework_model_runs_on_chain_and_matches_the_reference(
    model: str, kind: str, options: dict[str, object], tmp_path: Path
) -> None:
    # Prepare: wine (13 features), 3 learners, 3 epochs; the chain is given so the test can read it afterwards
    with AnvilNode() as node:
        settings = ExperimentSettings(learners=3, epochs=3, dataset="wine", split="iid", model=model,
                                      out=tmp_path / "out", rpc=node.url, learner_overrides=options)
        # Execute
        results = run_experiment(settings)
        chain = chain_record(node.url, results)
    # Assert: the spec names the kind; chain, results and reference agree; the baselines are there
    assert results["config"]["learner_config"]["kind"] == kind
    assert "model" not in results["config"]["learner_config"]
    assert_results_match_chain(results, chain, 3)
    assert results["final"]["same_weights_everywhere"] is True
    assert 0.0 < results["final"]["test_accuracy_mean"] <= 1.0
    assert 0.0 < results["baselines"]["centralized"] <= 1.0 and 0.0 < results["baselines"]["solo_mean"] <= 1.0
    assert "absent" not in results["baselines"]
