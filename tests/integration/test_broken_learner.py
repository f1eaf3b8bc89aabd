"""Agents whose learners break the interface name the fault, vote reject or skip their proposal, and go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_with_learners_that_break_the_interface_completes(tmp_path: Path) -> None:
    # Prepare: learner 1's proposals change its own weights, learner 2's tests adopt what they test
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    command = [sys.executable, "-m", "colearn_chain.cli", "run", "--learner", "broken_learners:make_learner",
               "--learners", "3", "--epochs", "3", "--proposal-timeout", "8", "--voting-timeout", "8",
               "--out", str(out)]

    # Execute: a real run; the agents must live through every epoch
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    # Assert: every agent reached the last epoch; the run reports the mismatch (exit 1), not a crash
    assert result.returncode == 1, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text())
    outcomes = [e["outcome"] for e in results["epochs"]]
    assert outcomes[1] == "skipped", outcomes  # learner 1 sent no proposal its learner broke
    assert outcomes[0] != "skipped" and outcomes[2] != "skipped", outcomes
    for epoch in (0, 2):
        vote = results["epochs"][epoch]["votes"][2]
        assert vote["approve"] is False, vote
        assert vote["reason"].startswith(
            "LearnerContractError: learner AdoptsWhatItTests: test_weights changed the current weights (tensor 'w')"
        ), vote
    log = (out / "agents" / "learner-1" / "agent.log").read_text()
    assert ("epoch 1: not proposing, our learner broke the learner interface: learner TrainsInPlace: "
            "propose_weights changed the current weights (tensor 'w')") in log
    assert "Traceback" not in log
    reference = results["baselines"]["reference"]
    assert reference["decisions_match"] is False  # the reference driver stops at the first violation, named
    assert "test_weights changed the current weights" in reference["error"]
    assert "WARNING: the in-memory reference driver stopped: learner AdoptsWhatItTests" in result.stdout
