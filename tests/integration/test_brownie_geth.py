"""brownie's `geth-dev` network on a geth that `colearn-chain chain --chain geth` started: `brownie run
scripts/deploy.py` and `scripts/status.py` work against it.

brownie attaches to the node answering on a development network's port; the test points `geth-dev` at a
free port in a brownie data folder of its own (a HOME of its own), so it never touches the user's
~/.brownie and never needs 8545 free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import solcx
from eth_account import Account

from colearn_chain.chain.connection import http_web3
from colearn_chain.chain.deployment import Deployment
from colearn_chain.codec import encode_weights
from colearn_chain.services.anvil import free_port
from colearn_chain.store.unixfs import cid_v0

ROOT = Path(__file__).resolve().parents[2]
BROWNIE = str(Path(sys.executable).parent / "brownie")


@pytest.fixture()
def geth_chain(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`colearn-chain chain --chain geth` on a free loopback port, until the test ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "colearn_chain.cli", "chain", "--chain", "geth", "--port", str(port),
         "--block-time", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        said = []  # log lines, then the line the chain prints once it answers (or nothing: it exited)
        while not (said and said[-1].startswith("geth on ")):
            line = proc.stdout.readline()
            assert line, "".join(said)
            said.append(line)
        assert said[-1].startswith(f"geth on http://127.0.0.1:{port} (chain id 1337"), "".join(said)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _brownie(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BROWNIE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def test_brownie_deploys_and_reads_status_on_geth_dev(
    geth_chain: tuple[int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    # Prepare: brownie's data folder in a HOME of the test's own, its geth-dev network on the chain's port
    port, chain = geth_chain
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLEARN_")}
    env |= {"HOME": str(tmp_path / "home"), "SOLCX_BINARY_PATH": str(solcx.get_solcx_install_folder())}
    (tmp_path / "home").mkdir()
    modified = _brownie(["networks", "modify", "geth-dev", f"port={port}"], env)
    assert modified.returncode == 0, modified.stdout + modified.stderr
    model = tmp_path / "initial.safetensors"
    model.write_bytes(encode_weights({"w": np.arange(6, dtype=np.float64).reshape(2, 3)}))
    learners = [Account.create().address for _ in range(3)]
    record_path = tmp_path / "deployment.json"
    env |= {"COLEARN_LEARNERS": ",".join(learners), "COLEARN_DEPLOYMENT": str(record_path)}

    # Execute
    deployed = _brownie(["run", "scripts/deploy.py", "main", str(model), "--network", "geth-dev"], env)
    status = _brownie(["run", "scripts/status.py", "--network", "geth-dev"], env)

    # Assert: the contract is on geth, as the record says, and status.py reads its epoch and model
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
    assert f"Attached to local RPC client listening at '127.0.0.1:{port}'" in deployed.stdout
    record = Deployment.load(record_path)
    w3 = http_web3(f"http://127.0.0.1:{port}")
    assert record.chain_id == w3.eth.chain_id == 1337
    assert len(w3.eth.get_code(record.address)) > 0  # type: ignore[arg-type]
    assert record.learners == learners and record.initial_cid == cid_v0(model.read_bytes())
    assert status.returncode == 0, status.stdout[-4000:] + status.stderr[-4000:]
    assert f"contract   {record.address} on chain 1337" in status.stdout
    assert "learners   3" in status.stdout and "epoch      0  phase Proposing" in status.stdout
    assert f"model      {record.initial_cid}" in status.stdout

    # ... and the chain command stops geth (and its data) on SIGTERM
    geth = [p for p in psutil.Process(chain.pid).children(recursive=True) if p.name() == "geth"]
    assert len(geth) == 1
    chain.send_signal(signal.SIGTERM)
    assert chain.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while geth[0].is_running() and geth[0].status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not geth[0].is_running() or geth[0].status() == psutil.STATUS_ZOMBIE
