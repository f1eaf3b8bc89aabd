"""The copyable example learner (examples/centroid.py) runs through `--learner` on a real chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_with_the_example_learner_matches_the_reference(tmp_path: Path) -> None:
    # Prepare: the README's command, from the repository's folder (where `examples` is importable)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "colearn_chain.cli", "run", "--learner", "examples.centroid:make_learner",
               "--learners", "3", "--epochs", "5", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # Execute: a real run (Anvil, the embedded store, one agent process per learner)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    # Assert: it completes, the chain agrees with the reference driver, and the pooled baselines say why not
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["learner_config"] == {
        "kind": "examples.centroid:make_learner", "n_learners": 3, "seed": 0,
    }
    assert len(results["epochs"]) == 5
    reference = results["baselines"]["reference"]
    assert reference["decisions_match"] and reference["weights_match"]
    assert reference["decisions"] == [e["outcome"] == "accepted" for e in results["epochs"]]
    assert any(reference["decisions"]), "the example learns: some epoch is accepted"
    assert all(v["test_score"] is not None for e in results["epochs"] for v in e["votes"])
    assert "pooled data" in results["baselines"]["absent"]["solo"]
    assert results["final"]["same_weights_everywhere"] is True
    assert "decisions match the chain: True, final weights match: True" in result.stdout
    assert "not computed" in result.stdout
