"""`colearn-chain run --data DIR`: each learner trains on its own file, on a real chain, and the reference agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "colearn_chain.cli", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _write_learner_files(folder: Path) -> None:
    """digits cut in three: two NPZ files and one CSV whose label column is not the last."""
    x, y = load_digits(return_X_y=True)
    parts = np.array_split(np.random.default_rng(3).permutation(len(y)), 3)
    folder.mkdir()
    for i, rows in enumerate(parts[:2]):
        np.savez(folder / f"learner-{i}.npz", x=x[rows], y=y[rows])
    header = ",".join(["digit", *(f"p{j}" for j in range(x.shape[1]))])
    lines = [",".join(str(v) for v in [int(y[r]), *x[r].tolist()]) for r in parts[2]]
    (folder / "learner-2.csv").write_text("\n".join([header, *lines]) + "\n")


def test_run_on_the_learners_own_files(tmp_path: Path) -> None:
    # Prepare
    data = tmp_path / "data"
    _write_learner_files(data)
    out = tmp_path / "out"

    # Execute: a real run, its agents reading their own files
    result = _run("--data", str(data), "--label-column", "digit", "--learners", "3", "--epochs", "3",
                  "--out", str(out), cwd=tmp_path)

    # Assert: the chain and the reference agree; the learners learned; what needs pooled data says why not
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text())
    spec = results["config"]["learner_config"]
    assert (spec["data"], spec["n_features"], spec["n_classes"], spec["dataset"]) == (str(data), 64, 10, None)
    reference = results["baselines"]["reference"]
    assert reference["decisions_match"] and reference["weights_match"]
    assert any(e["outcome"] == "accepted" for e in results["epochs"])
    assert results["final"]["local_test_accuracy_mean"] > 0.8
    assert "no global held-out test set" in results["baselines"]["absent"]["solo"]
    assert "test_accuracy_mean" not in results["final"]


def test_unusable_files_stop_the_run_before_it_starts(tmp_path: Path) -> None:
    # Prepare: learner 1's labels are not class numbers
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "learner-0.npz", x=np.ones((20, 3)), y=np.arange(20) % 2)
    np.savez(data / "learner-1.npz", x=np.ones((20, 3)), y=np.full(20, 0.5))

    # Execute
    result = _run("--data", str(data), "--learners", "2", "--out", str(tmp_path / "out"), cwd=tmp_path)

    # Assert: a clear error naming the file, exit status 2, and no chain, wallet or output was made
    assert result.returncode == 2
    assert "learner-1.npz: labels must be class numbers 0, 1, 2, ...; row 0 has 0.5" in result.stderr
    assert not (tmp_path / "out").exists()
