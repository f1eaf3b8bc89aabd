"""`pip install colearn-chain` without extras gives a working agent.

How, and why this way: the package is copied out of the checkout (so nothing imports the source tree
by accident and the checkout gets no build/ folder) and installed with pip into a brand-new venv
without system site-packages, i.e. exactly what a user's `pip install colearn-chain` resolves from
the core dependencies alone. `--constraint` holds pip to the versions of the environment running
the tests (which `make setup` installed, so the wheels are in pip's cache and the install takes
about half a minute): the lean agent is checked with the versions the rest of the suite tests, and
no new release can slip in between. Then, from outside the checkout, with that venv's own
interpreter: no extra was installed, the CLI answers, a missing extra gives its clear error, and an
agent with the toy learner deploys and runs two epochs on a real Anvil chain with the embedded store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.events import LogCursor, ProposalAccepted, ProposalRejected
from colearn_chain.learners.registry import BUNDLED
from colearn_chain.services.anvil import AnvilNode, fund

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: Distributions only an extra may bring (experiments, brownie, dev).
EXTRA_ONLY = ("scikit-learn", "matplotlib", "mnist1d", "eth-brownie", "pytest", "hypothesis", "mypy", "ruff", "keras",
              "jax")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points Python at the checkout or at other keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLEARN_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with `pip install colearn-chain` (no extras); returns its bin directory."""
    work = tmp_path_factory.mktemp("lean")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "colearn_chain", source / "colearn_chain",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    constraints = work / "constraints.txt"
    constraints.write_text("\n".join(line for line in freeze.splitlines() if "==" in line) + "\n")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env(), timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--constraint", str(constraints), str(source)],
        check=False, capture_output=True, text=True, env=_clean_env(), cwd=work, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return venv / "bin"


def _run(lean: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(lean / args[0]), *args[1:]], check=False, capture_output=True, text=True, cwd=cwd,
                          env=env or _clean_env(), timeout=120)


def test_installs_no_extra_and_answers_help(lean: Path, tmp_path: Path) -> None:
    # Execute
    listed = _run(lean, "python", "-m", "pip", "list", "--format=json", cwd=tmp_path)
    top = _run(lean, "colearn-chain", "--help", cwd=tmp_path)
    agent = _run(lean, "colearn-chain", "agent", "--help", cwd=tmp_path)
    where = _run(lean, "python", "-c", "import colearn_chain; print(colearn_chain.__file__)", cwd=tmp_path)
    kinds = _run(lean, "python", "-c", "from importlib.metadata import entry_points as e; "
                 "print(sorted((p.name, p.value) for p in e(group='colearn_chain.learners')))", cwd=tmp_path)
    # Assert
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"colearn-chain", "web3", "eth-account", "numpy", "safetensors", "ipfshttpclient"} <= installed
    assert installed.isdisjoint(EXTRA_ONLY), sorted(installed & set(EXTRA_ONLY))
    assert top.returncode == 0 and "agent" in top.stdout, top.stderr
    assert agent.returncode == 0 and "--deployment" in agent.stdout, agent.stderr
    assert where.stdout.strip().startswith(str(lean.parent)), where.stdout  # the installed copy, not the checkout
    # The bundled learner kinds are registered in the entry-point group, as another package's would be.
    assert kinds.stdout.strip() == str(sorted(BUNDLED.items())), kinds.stdout + kinds.stderr


def test_agent_modules_import_and_a_missing_extra_says_which(lean: Path, tmp_path: Path) -> None:
    # Execute
    modules = ("colearn_chain.agent", "colearn_chain.cli.agent", "colearn_chain.cli.deploy", "colearn_chain.cli.status",
               "colearn_chain.cli.explorer", "colearn_chain.store", "colearn_chain.results", "colearn_chain.experiment")
    imported = _run(lean, "python", "-c", f"import {', '.join(modules)}", cwd=tmp_path)
    plot = _run(lean, "python", "-c", "import colearn_chain.report", cwd=tmp_path)
    data = _run(lean, "python", "-c", "from colearn_chain.learners import make_learners; make_learners('numpy')",
                cwd=tmp_path)
    keras = _run(lean, "python", "-c", "from colearn_chain.learners.keras import cnn; cnn(40, 10)", cwd=tmp_path)
    # Assert
    assert imported.returncode == 0, imported.stderr
    for result in (plot, data):
        assert result.returncode != 0
        assert "MissingExtra" in result.stderr and "pip install 'colearn-chain[experiments]'" in result.stderr
    assert keras.returncode != 0
    assert "MissingExtra" in keras.stderr and "pip install 'colearn-chain[keras]'" in keras.stderr


def test_toy_agent_runs_two_epochs_on_anvil(lean: Path, tmp_path: Path) -> None:
    # Prepare: one learner (it proposes and votes), toy learner, embedded store, a real chain
    learner, deployer = Account.create(), Account.create()
    store = f"local:{tmp_path / 'store'}"
    config = json.dumps({"kind": "toy", "seed": 0, "n_learners": 1})
    with AnvilNode() as node:
        fund(node.url, [learner.address, deployer.address])
        deployed = _run(
            lean, "colearn-chain", "deploy", "--rpc", node.url, "--learners", learner.address,
            "--proposal-timeout", "30", "--voting-timeout", "30", "--learner-config", config,
            "--store", store, "--out", str(tmp_path / "deployment.json"), cwd=tmp_path,
            env=_clean_env(COLEARN_PRIVATE_KEY="0x" + bytes(deployer.key).hex()),
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        # Execute
        ran = _run(
            lean, "colearn-chain", "agent", "--rpc", node.url, "--deployment", str(tmp_path / "deployment.json"),
            "--store", store, "--state-dir", str(tmp_path / "state"), "--until-epoch", "2",
            "--poll-interval", "0.1", cwd=tmp_path,
            env=_clean_env(COLEARN_PRIVATE_KEY="0x" + bytes(learner.key).hex()),
        )
        deployment = Deployment.load(tmp_path / "deployment.json")
        events = LogCursor(Web3(Web3.HTTPProvider(node.url)), deployment.address, start_block=deployment.block).poll()
    # Assert
    assert ran.returncode == 0, ran.stdout + ran.stderr
    decided = [e.epoch for e in events if isinstance(e, (ProposalAccepted, ProposalRejected))]
    assert decided == [0, 1]
