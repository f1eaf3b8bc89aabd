"""A consortium of real agent processes on a real chain, for the agent integration tests and the bench.

Each agent is `python -m colearn_chain.cli agent ...` in its own process with its own key in its
environment, exactly as a user runs it; the harness only deploys, starts, kills and reads back (chain
events, state directories, logs). Nothing here decides what the agents do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from colearn_chain import driver
from colearn_chain.agent import StateDir
from colearn_chain.chain.client import ChainClient
from colearn_chain.chain.deployment import Deployment
from colearn_chain.chain.events import (
    ChainEvent,
    EpochSkipped,
    LogCursor,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
)
from colearn_chain.learners import make_learner
from colearn_chain.services import stop_processes
from colearn_chain.services.anvil import fund
from colearn_chain.typing import Weights

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class AgentProcess:
    """One running (or finished) agent process and where its files are."""

    index: int
    account: LocalAccount
    state_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Consortium:
    """n learners with their own keys, one deployment, and their agents."""

    rpc_url: str
    workdir: Path
    store_url: str
    learner_config: dict[str, Any]
    n: int
    proposal_timeout: int = 10
    voting_timeout: int = 10
    threshold: float = 0.5
    proposer_votes: bool = True
    #: when set, every key lives in a keystore with this password (the deployer's made by `wallet new`)
    keystore_password: str | None = None
    #: the endpoint the agents use, when not ``rpc_url`` (e.g. a fault-injecting proxy in front of it)
    agent_rpc_url: str | None = None
    #: each agent's own weight store, when not the shared ``store_url`` (e.g. its own Kubo node)
    store_urls: list[str] | None = None
    #: each agent's command prefix, e.g. ``ip netns exec NS`` to run it in its own network namespace
    prefixes: list[list[str]] | None = None
    accounts: list[LocalAccount] = field(default_factory=list)
    agents: list[AgentProcess] = field(default_factory=list)
    deployment: Deployment | None = None

    @property
    def deployment_path(self) -> Path:
        return self.workdir / "deployment.json"

    @property
    def config(self) -> dict[str, Any]:
        return {**self.learner_config, "n_learners": self.n}

    def setup(self) -> Consortium:
        """Create and fund the learners' keys and deploy through the CLI (as a user would)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.accounts = [Account.create() for _ in range(self.n)]
        deployer = Account.create()
        key_args: list[str] = []
        if self.keystore_password is not None:
            deployer = self._cli_keystore(self.workdir / "keys" / "deployer.json")
            key_args = ["--keystore", str(self.workdir / "keys" / "deployer.json")]
            for i, account in enumerate(self.accounts):  # cheap scrypt: the agents' loading path is the same
                path = self.keystore(i)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(Account.encrypt(account.key, self.keystore_password, iterations=2**4)))
        fund(self.rpc_url, [a.address for a in self.accounts] + [deployer.address])
        args = [
            "deploy", *key_args, "--rpc", self.rpc_url,
            "--learners", ",".join(a.address for a in self.accounts),
            "--threshold", str(self.threshold),
            "--proposal-timeout", str(self.proposal_timeout),
            "--voting-timeout", str(self.voting_timeout),
            "--learner-config", json.dumps(self.config),
            "--store", self.store_url,
            "--out", str(self.deployment_path),
        ]
        if not self.proposer_votes:
            args.append("--colearn-variant")
        result = subprocess.run(
            [sys.executable, "-m", "colearn_chain.cli", *args],
            env=self._env(deployer), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"deploy failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        self.deployment = Deployment.load(self.deployment_path)
        self.agents = [
            AgentProcess(i, account, self.workdir / f"agent{i}" / "state", self.workdir / f"agent{i}.log")
            for i, account in enumerate(self.accounts)
        ]
        return self

    def keystore(self, index: int) -> Path:
        return self.workdir / "keys" / f"learner{index}.json"

    def _cli_keystore(self, path: Path) -> LocalAccount:
        """A keystore made by `colearn-chain wallet new`, and its account."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLEARN_")}
        env["COLEARN_KEYSTORE_PASSWORD"] = str(self.keystore_password)
        result = subprocess.run(
            [sys.executable, "-m", "colearn_chain.cli", "wallet", "new", "--out", str(path)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"wallet new failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        account = Account.from_key(Account.decrypt(json.loads(path.read_text()), str(self.keystore_password)))
        if result.stdout.strip() != account.address:
            raise RuntimeError(f"wallet new printed {result.stdout!r}, the keystore holds {account.address}")
        return account

    def _env(self, account: LocalAccount) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLEARN_")}
        if self.keystore_password is not None:
            env["COLEARN_KEYSTORE_PASSWORD"] = self.keystore_password
        else:
            env["COLEARN_PRIVATE_KEY"] = "0x" + bytes(account.key).hex()
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _command(
        self, command: str, index: int | None, state: Sequence[str], until_epoch: int | None,
        extra: Sequence[str],
    ) -> list[str]:
        """The command line of `colearn-chain agent` (``index``: whose) or `agents` (``index`` None: several,
        sharing one store and namespace) for this consortium (``state``: where they keep it)."""
        if index is None and (self.prefixes or self.store_urls):
            raise ValueError("agents in one process share one store and one namespace: no per-agent nodes")
        args = [
            *(self.prefixes[index] if self.prefixes and index is not None else []),
            sys.executable, "-m", "colearn_chain.cli", command,
            "--rpc", self.agent_rpc_url or self.rpc_url,
            "--deployment", str(self.deployment_path),
            "--store", self.store_urls[index] if self.store_urls and index is not None else self.store_url,
            "--learner-config", json.dumps(self.config),
            *state,
            "--poll-interval", "0.1",
            *extra,
        ]
        if until_epoch is not None:
            args += ["--until-epoch", str(until_epoch)]
        return args

    def start(self, index: int, *, until_epoch: int | None, extra: Sequence[str] = ()) -> AgentProcess:
        """Start agent ``index`` (again), appending to its log."""
        agent = self.agents[index]
        args = self._command("agent", index, ["--state-dir", str(agent.state_dir)], until_epoch, extra)
        if self.keystore_password is not None:
            args += ["--keystore", str(self.keystore(index))]
        with open(agent.log_path, "ab") as log_file:  # the child holds its own descriptor
            log_file.write(f"----- run {agent.runs} -----\n".encode())
            log_file.flush()
            agent.proc = subprocess.Popen(
                args, env=self._env(agent.account), cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        agent.runs += 1
        return agent

    def start_all(
        self, *, until_epoch: int | None, skip: Sequence[int] = (), per_process: int = 1, extra: Sequence[str] = ()
    ) -> None:
        """Start every agent not skipped: a process each, or ``per_process`` of them per `colearn-chain agents`."""
        chosen = [i for i in range(self.n) if i not in skip]
        if per_process <= 1:
            for i in chosen:
                self.start(i, until_epoch=until_epoch, extra=extra)
            return
        for first in range(0, len(chosen), per_process):
            self.start_group(chosen[first:first + per_process], until_epoch=until_epoch, extra=extra)

    def start_group(self, indices: Sequence[int], *, until_epoch: int | None, extra: Sequence[str] = ()) -> None:
        """Start the agents ``indices`` in one `colearn-chain agents` process; each keeps its own state
        directory and log (``agent{i}/state/..`` is replaced by ``states/learner-{i}`` for them)."""
        root = self.workdir / "states"
        args = self._command("agents", None, ["--state-root", str(root)], until_epoch, extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLEARN_")}
        env["COLEARN_PRIVATE_KEYS"] = ",".join("0x" + bytes(self.agents[i].account.key).hex() for i in indices)
        env["PYTHONUNBUFFERED"] = "1"
        log_path = self.workdir / f"group-{indices[0]}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        for i in indices:
            agent = self.agents[i]
            agent.state_dir = root / f"learner-{i}"
            agent.log_path = agent.state_dir / "agent.log"
            agent.proc = proc
            agent.runs += 1

    def kill(self, index: int) -> None:
        """SIGKILL: no chance to clean up, as a crash or a power cut."""
        proc = self.agents[index].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def wait(self, timeout: float, indices: Sequence[int] | None = None) -> dict[int, int | None]:
        """Wait for the agents to exit; return each exit code (None for one still running, then killed)."""
        chosen = [a for a in self.agents if a.proc is not None and (indices is None or a.index in indices)]
        deadline = time.monotonic() + timeout
        codes: dict[int, int | None] = {}
        for agent in chosen:
            assert agent.proc is not None
            try:
                codes[agent.index] = agent.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[agent.index] = None
        return codes

    def stop_all(self) -> None:
        """Terminate whatever still runs (test teardown)."""
        stop_processes([agent.proc for agent in self.agents if agent.proc is not None])

    # ───────────────────────────────────────── reading back

    def client(self, index: int = 0) -> ChainClient:
        assert self.deployment is not None
        return ChainClient(self.rpc_url, self.accounts[index], self.deployment.address)

    def events(self) -> list[ChainEvent]:
        assert self.deployment is not None
        client = self.client()
        return LogCursor(client.w3, self.deployment.address, start_block=self.deployment.block).poll()

    def decisions(self) -> list[tuple[int, str]]:
        """(epoch, "accepted" | "rejected" | "skipped") for every closed epoch, from the chain's events."""
        kinds = {ProposalAccepted: "accepted", ProposalRejected: "rejected", EpochSkipped: "skipped"}
        return [(e.epoch, kinds[type(e)]) for e in self.events() if type(e) in kinds]  # type: ignore[attr-defined]

    def votes(self) -> dict[int, dict[int, bool]]:
        """epoch -> learner index -> approve, from the chain's VoteCast events."""
        index = {a.address: i for i, a in enumerate(self.accounts)}
        out: dict[int, dict[int, bool]] = {}
        for event in self.events():
            if isinstance(event, VoteCast):
                out.setdefault(event.epoch, {})[index[event.voter]] = event.approve
        return out

    def vote_events(self) -> list[VoteCast]:
        return [e for e in self.events() if isinstance(e, VoteCast)]

    def failed_transactions(self) -> list[str]:
        """Hashes of the transactions mined as failed since the deployment (each one paid gas for nothing)."""
        assert self.deployment is not None
        w3 = self.client().w3
        failed: list[str] = []
        for number in range(self.deployment.block, w3.eth.block_number + 1):
            for tx_hash in w3.eth.get_block(number)["transactions"]:
                if w3.eth.get_transaction_receipt(tx_hash)["status"] != 1:  # type: ignore[arg-type]
                    failed.append(Web3.to_hex(tx_hash))  # type: ignore[arg-type]
        return failed

    def final_weights(self, index: int) -> Weights:
        weights = StateDir(self.agents[index].state_dir).current_weights()
        assert weights is not None, f"agent {index} saved no model"
        return weights

    def reference(self, epochs: int) -> tuple[list[driver.EpochResult], list[Any]]:
        """The in-memory driver on identically built learners."""
        learners = [make_learner(self.config, i) for i in range(self.n)]
        results = driver.run(learners, epochs, vote_threshold=self.threshold, proposer_votes=self.proposer_votes)
        return results, learners


def same_weights(a: Weights, b: Weights) -> bool:
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
