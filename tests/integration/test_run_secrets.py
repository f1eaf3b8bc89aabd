"""`colearn-chain run` keeps its secrets: no key or RPC URL on a command line, no password or key in a file.

The run is a real `colearn-chain run` process on a real Anvil; while its agents run, the test reads each
agent's /proc/<pid>/cmdline (what `ps` shows every user) and its environment (where the secrets must be
instead). Afterwards every file under the run's out folder is searched for the password and every
private key, as text and as hex.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from eth_account import Account

from colearn_chain.services.anvil import AnvilNode

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-staple-7f3a"
SECRET_USER, SECRET_PASS = "rpcuser", "rpc-pass-9d2e"


AgentsSeen = dict[int, tuple[str, dict[str, str]]]


def _run_watching_agents(args: list[str], env: dict[str, str], out: Path) -> tuple[int, str, AgentsSeen]:
    """Run `colearn-chain run ARGS`; return its exit code, output and each agent's (cmdline, environment)."""
    seen: dict[int, tuple[str, dict[str, str]]] = {}
    log = out.parent / "console.txt"
    with open(log, "wb") as console:
        run = subprocess.Popen([sys.executable, "-m", "colearn_chain.cli", "run", *args, "--out", str(out)],
                               env=env, cwd=ROOT, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            parent = psutil.Process(run.pid)
            deadline = time.monotonic() + 240
            while run.poll() is None and time.monotonic() < deadline:
                # The run's own children only: an agent may fork a short-lived helper (a library probing the
                # system), which carries the agent's command line until it execs and is not an agent.
                for child in parent.children():
                    try:
                        cmdline = "\0".join(child.cmdline())
                        if "agent" in child.cmdline() and child.pid not in seen:
                            seen[child.pid] = (cmdline, child.environ())
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue
                time.sleep(0.05)
            code = run.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    return code, log.read_text(errors="replace"), seen


def _files_holding(out: Path, needles: list[str]) -> list[str]:
    """Files under ``out`` whose bytes contain any needle (as given, and lower case)."""
    hits = []
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                if needle.encode() in data or needle.lower().encode() in data.lower():
                    hits.append(f"{path.relative_to(out)} holds {needle[:6]}…")
    return hits


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COLEARN_")} | {"PYTHONUNBUFFERED": "1"}


def test_run_with_an_rpc_url_holding_credentials_keeps_url_password_and_keys_secret(tmp_path: Path) -> None:
    # Prepare: a given chain reached through a URL with user:password, keystores under a password from the env
    out = tmp_path / "out"
    with AnvilNode() as node:
        port = node.url.rsplit(":", 1)[1].strip("/")
        secret_url = f"http://{SECRET_USER}:{SECRET_PASS}@127.0.0.1:{port}/"
        env = _base_env() | {"COLEARN_KEYSTORE_PASSWORD": PASSWORD}

        # Execute
        code, console, agents = _run_watching_agents(
            ["--learner-kind", "toy", "--learners", "2", "--epochs", "2", "--rpc", secret_url], env, out
        )

    # Assert
    assert code == 0, console
    assert len(agents) == 2, console
    keys = [
        bytes(Account.decrypt(json.loads(path.read_text()), PASSWORD)).hex()
        for path in sorted((out / "wallets").glob("*.keystore.json"))
    ]
    assert len(keys) == 2
    for cmdline, environ in agents.values():
        assert SECRET_PASS not in cmdline and SECRET_USER not in cmdline and f":{port}" not in cmdline
        assert PASSWORD not in cmdline and not any(key in cmdline.lower() for key in keys)
        assert environ.get("COLEARN_RPC_URL") == secret_url and environ.get("COLEARN_KEYSTORE_PASSWORD") == PASSWORD
    assert _files_holding(out, [PASSWORD, SECRET_PASS, SECRET_USER, *keys]) == []
    assert not (out / "wallets" / "password.txt").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["chain"]["rpc"] == f"http://***@127.0.0.1:{port}/"
    assert results["config"]["rpc"] == f"http://***@127.0.0.1:{port}/"
    assert SECRET_PASS not in console and PASSWORD not in console


def test_run_on_its_own_chain_without_a_password_uses_keys_that_never_touch_disk(tmp_path: Path) -> None:
    # Prepare: no --rpc, no password: throwaway keys, handed to the agents through their environment only
    out = tmp_path / "out"

    # Execute
    code, console, agents = _run_watching_agents(
        ["--learner-kind", "toy", "--learners", "2", "--epochs", "2"], _base_env(), out
    )

    # Assert
    assert code == 0, console
    assert len(agents) == 2, console
    keys = [environ["COLEARN_PRIVATE_KEY"].removeprefix("0x").lower() for _, environ in agents.values()]
    assert len(set(keys)) == 2 and all(len(key) == 64 for key in keys)
    for cmdline, environ in agents.values():
        assert not any(key in cmdline.lower() for key in keys) and "http://" not in cmdline
        assert environ["COLEARN_RPC_URL"].startswith("http://127.0.0.1:")
    assert _files_holding(out, keys) == []
    assert not (out / "wallets").exists()
