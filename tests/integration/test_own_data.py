"""Own data (--data): `run` on a folder of learner files; `deploy` and agents each with its own file; real chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sklearn.datasets import load_digits

from colearn_chain.agent import StateDir
from colearn_chain.chain.connection import connect
from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.events import LogCursor, ProposalAccepted, ProposalRejected
from colearn_chain.driver import run
from colearn_chain.learners import make_learner
from colearn_chain.services import stop_processes
from colearn_chain.services.anvil import AnvilNode, fund

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


def _env(account: LocalAccount) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLEARN_")}
    return {**env, "PYTHONPATH": str(ROOT), "COLEARN_PRIVATE_KEY": "0x" + bytes(account.key).hex()}


def test_deploy_and_agents_each_with_its_own_file(tmp_path: Path) -> None:
    # Prepare: two members with their own files (one CSV); the deployer describes the model with member 0's
    data = tmp_path / "data"
    _write_learner_files(data)
    files = [data / "learner-0.npz", data / "learner-2.csv"]
    members, deployer = [Account.create(), Account.create()], Account.create()
    store, record = f"local:{tmp_path / 'store'}", tmp_path / "deployment.json"
    with AnvilNode() as node:
        fund(node.url, [a.address for a in [*members, deployer]])
        deployed = subprocess.run(
            [sys.executable, "-m", "colearn_chain.cli", "deploy", "--rpc", node.url,
             "--learners", ",".join(a.address for a in members), "--proposal-timeout", "30", "--voting-timeout", "30",
             "--learner", "numpy", "--learner-option", "model=linear", "--data", str(files[0]),
             "--store", store, "--out", str(record)],
            env=_env(deployer), cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr

        # Execute: each agent brings its own file (the record holds the model's shape, not a path)
        agents = []
        for i, member in enumerate(members):
            extra = ["--label-column", "digit"] if files[i].suffix == ".csv" else []
            log = (tmp_path / f"agent{i}.log").open("wb")
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "colearn_chain.cli", "agent", "--rpc", node.url, "--deployment", str(record),
                 "--store", store, "--state-dir", str(tmp_path / f"state{i}"), "--until-epoch", "3",
                 "--poll-interval", "0.1", "--data", str(files[i]), *extra],
                env=_env(member), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            ))
            log.close()
        try:
            codes = [agent.wait(timeout=300) for agent in agents]
        finally:
            stop_processes(agents)
        deployment = Deployment.load(record)
        events = LogCursor(connect(node.url), deployment.address, start_block=deployment.block).poll()

    # Assert: the record carries the shape and scaler, no path; the chain equals the reference on the same data
    assert codes == [0, 0], [(tmp_path / f"agent{i}.log").read_text()[-2000:] for i in range(2)]
    spec = deployment.extra["learner_config"]
    assert (spec["data"], spec["n_features"], spec["n_classes"], len(spec["feature_mean"])) == (None, 64, 10, 64)
    learners = [make_learner({**spec, "data": str(f), "label_column": "digit" if f.suffix == ".csv" else None}, i)
                for i, f in enumerate(files)]
    reference = run(learners, 3)
    chain = [isinstance(e, ProposalAccepted) for e in events if isinstance(e, (ProposalAccepted, ProposalRejected))]
    assert chain == [r.accepted for r in reference] and any(chain)
    for i, learner in enumerate(learners):
        final = StateDir(tmp_path / f"state{i}").current_weights()
        assert final is not None and all(np.array_equal(final[k], v) for k, v in learner.current_weights().items())
