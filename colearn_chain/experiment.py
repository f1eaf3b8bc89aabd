"""One whole collective-learning experiment on chain: what `colearn-chain run` does.

It starts what it was not given (Anvil, the embedded weight store), makes a wallet per learner,
deploys the contract with the learners' shared initial model, runs one agent process per learner,
shows each epoch as it closes, and then reports the shared model against the baselines (solo,
centralized, and the in-memory reference driver on the same learners). Whatever it started it stops,
on Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount

from .agent import StateDir
from .chain.client import ChainClient
from .chain.connection import connect
from .chain.events import (
    EpochSkipped,
    LogCursor,
    ProposalAccepted,
    ProposalRejected,
    VoteCast,
)
from .codec import digest_hex, encode_weights
from .decision import threshold_to_bps
from .exceptions import ColearnChainError
from .explorer.server import serve_in_background
from .history import History
from .learners import learner_config, make_learner
from .protocol import proposer_index
from .results import assemble_results
from .services import stop_processes
from .services.anvil import (
    DEV_KEY,
    LOCAL_CHAIN_IDS,
    AnvilNode,
    fund,
    fund_from_unlocked,
)
from .store import KuboStore, LocalStore, WeightStore
from .wallet import (
    ENV_KEYSTORE_PASSWORD,
    ENV_PRIVATE_KEY,
    create_keystore,
    load_keystore,
)

log = logging.getLogger(__name__)

ENV_LEARNER_KEYS = "COLEARN_LEARNER_KEYS"
ENV_FUNDER_KEY = "COLEARN_FUNDER_KEY"


class ExperimentError(ColearnChainError):
    """Raised when an experiment cannot start or its agents fail."""


@dataclass(frozen=True)
class ExperimentSettings:
    """Everything `colearn-chain run` takes; defaults make a meaningful run in a few minutes on 2 cores."""

    learners: int = 5
    epochs: int = 20
    kind: str = "sklearn"
    dataset: str = "digits"
    model: str = "linear"
    split: str = "dirichlet"
    alpha: float = 0.5
    threshold: float = 0.5
    colearn_variant: bool = False
    seed: int = 0
    rpc: str | None = None
    ipfs: str | None = None
    out: Path = Path("results/run")
    proposal_timeout: int = 120
    voting_timeout: int = 120
    block_time: float | None = None
    explorer: bool = False
    explorer_port: int = 0
    learner_overrides: dict[str, Any] = field(default_factory=dict)

    def learner_config(self) -> dict[str, Any]:
        """The JSON-able config every agent (and the reference) builds its learner from."""
        if self.kind == "toy":
            return learner_config("toy", n_learners=self.learners, seed=self.seed, **self.learner_overrides)
        settings: dict[str, Any] = {
            "n_learners": self.learners, "seed": self.seed, "dataset": self.dataset, "model": self.model,
            "split": self.split,
        }
        if self.split == "dirichlet":
            settings["alpha"] = self.alpha
        return learner_config("sklearn", **settings, **self.learner_overrides)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


# ───────────────────────────────────────────────────────────── services


@contextlib.contextmanager
def _chain(settings: ExperimentSettings) -> Iterator[str]:
    if settings.rpc:
        yield settings.rpc
        return
    with AnvilNode(block_time=settings.block_time, log_path=settings.out / "anvil.log") as node:
        log.info("started anvil on %s", node.url)
        yield node.url


def _store(settings: ExperimentSettings) -> tuple[WeightStore, str]:
    if settings.ipfs:
        return KuboStore(settings.ipfs), settings.ipfs
    root = settings.out / "store"
    return LocalStore(root), f"local:{root.resolve()}"


@dataclass(frozen=True)
class _Wallet:
    """A learner's account and how its agent unlocks it: a keystore (generated keys) or the raw key
    (keys the user supplied, which the run does not copy to disk)."""

    account: LocalAccount
    keystore: Path | None


def _user_keys(n: int) -> list[LocalAccount] | None:
    given = os.environ.get(ENV_LEARNER_KEYS)
    if not given:
        return None
    keys = [k.strip() for k in given.split(",") if k.strip()]
    if len(keys) < n:
        raise ExperimentError(f"${ENV_LEARNER_KEYS} holds {len(keys)} keys; {n} learners need {n}")
    accounts = []
    for i, key in enumerate(keys[:n]):
        try:
            accounts.append(Account.from_key(key))
        except (ValueError, TypeError):
            # eth-keys may quote the input in its message: never pass it on.
            raise ExperimentError(f"key {i} in ${ENV_LEARNER_KEYS} is not a valid private key") from None
    return accounts


def _learner_wallets(n: int, rpc_url: str, out: Path, password: str) -> list[_Wallet]:
    """The learners' wallets: $COLEARN_LEARNER_KEYS (funded keys on an existing chain), or new keys in
    encrypted keystores under ``out/wallets``, funded from $COLEARN_FUNDER_KEY, the node's unlocked dev
    account, or (on a local chain id only) Anvil's well-known dev key."""
    supplied = _user_keys(n)
    if supplied is not None:
        return [_Wallet(account, None) for account in supplied]
    folder = out / "wallets"
    wallets = []
    for i in range(n):
        path = folder / f"learner-{i}.keystore.json"
        create_keystore(path, password, overwrite=True)
        wallets.append(_Wallet(load_keystore(path, password), path))
    addresses = [w.account.address for w in wallets]
    funder = os.environ.get(ENV_FUNDER_KEY)
    w3 = connect(rpc_url)
    if funder:
        fund(rpc_url, addresses, 10.0, funder_key=funder)
    elif w3.eth.accounts:
        fund_from_unlocked(rpc_url, addresses, 10.0)
    elif w3.eth.chain_id in LOCAL_CHAIN_IDS:
        fund(rpc_url, addresses, 10.0, funder_key=DEV_KEY)
    else:
        raise ExperimentError(
            f"cannot fund new learner wallets on chain {w3.eth.chain_id}: set ${ENV_LEARNER_KEYS} to funded "
            f"keys (comma-separated) or ${ENV_FUNDER_KEY} to a funded key"
        )
    return wallets


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file that is owner-only from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# ───────────────────────────────────────────────────────────── agents


@dataclass
class _AgentProcess:
    index: int
    address: str
    state_dir: Path
    process: subprocess.Popen[bytes]


#: Secrets of the run that no agent process may inherit (each gets only its own key or password).
_WITHHELD = (ENV_LEARNER_KEYS, ENV_FUNDER_KEY, ENV_PRIVATE_KEY, ENV_KEYSTORE_PASSWORD)


def _start_agents(
    wallets: Sequence[_Wallet], password: str, rpc_url: str, deployment_path: Path, store_url: str,
    settings: ExperimentSettings,
) -> list[_AgentProcess]:
    agents = []
    base_env = {k: v for k, v in os.environ.items() if k not in _WITHHELD}
    for i, wallet in enumerate(wallets):
        state_dir = settings.out / "agents" / f"learner-{i}"
        state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "colearn_chain.cli", "agent",
            "--rpc", rpc_url,
            "--deployment", str(deployment_path),
            "--store", store_url,
            "--state-dir", str(state_dir),
            "--until-epoch", str(settings.epochs),
        ]
        if wallet.keystore is not None:
            cmd += ["--keystore", str(wallet.keystore)]
            env = {**base_env, ENV_KEYSTORE_PASSWORD: password}
        else:
            env = {**base_env, ENV_PRIVATE_KEY: wallet.account.key.hex()}
        with open(state_dir / "agent.log", "ab") as log_file:
            process = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        agents.append(_AgentProcess(i, wallet.account.address, state_dir, process))
    return agents


def _stop_agents(agents: Sequence[_AgentProcess]) -> None:
    killed = stop_processes([agent.process for agent in agents], timeout=15)
    if killed:
        log.warning("%d agent(s) did not stop within 15 s and were killed", len(killed))


def _read_evaluations(state_dir: Path) -> dict[int, dict[str, Any]]:
    """The agent's own record of each vote (epoch -> vote_score, test_score, reason)."""
    return StateDir(state_dir).evaluations()


def _follow(
    cursor: LogCursor, learners: Sequence[str], agents: Sequence[_AgentProcess], settings: ExperimentSettings
) -> None:
    """Print each epoch as it closes until every agent has exited; fail fast when one crashes."""
    index = {address: i for i, address in enumerate(learners)}
    votes: dict[int, dict[int, bool]] = {}
    started = last_progress = time.monotonic()
    # Keepers close an epoch at the latest a little after both deadlines; nothing for much longer
    # than that means the agents are stuck.
    stall_limit = 2 * (settings.proposal_timeout + settings.voting_timeout) + 60
    while True:
        events = cursor.poll()
        if events:
            last_progress = time.monotonic()
        for event in events:
            if isinstance(event, VoteCast):
                votes.setdefault(event.epoch, {})[index[event.voter]] = event.approve
            elif isinstance(event, (ProposalAccepted, ProposalRejected, EpochSkipped)):
                _print_epoch(event, votes.get(event.epoch, {}), learners, agents, settings, time.monotonic() - started)
        failed = [a for a in agents if a.process.poll() not in (None, 0)]
        if failed:
            names = ", ".join(f"learner {a.index} (exit {a.process.returncode}, log {a.state_dir / 'agent.log'})" for a in failed)
            raise ExperimentError(f"agent process failed: {names}")
        if all(a.process.poll() == 0 for a in agents):
            for event in cursor.poll():  # the last epoch's events
                if isinstance(event, (ProposalAccepted, ProposalRejected, EpochSkipped)):
                    _print_epoch(event, votes.get(event.epoch, {}), learners, agents, settings, time.monotonic() - started)
            return
        if time.monotonic() - last_progress > stall_limit:
            raise ExperimentError(
                f"no event from the contract for {stall_limit} s: the agents are stuck; "
                f"see their logs in {settings.out / 'agents'}"
            )
        time.sleep(0.2)


def _print_epoch(
    event: Any, votes: dict[int, bool], learners: Sequence[str], agents: Sequence[_AgentProcess],
    settings: ExperimentSettings, elapsed: float,
) -> None:
    n = len(learners)
    proposer = proposer_index(event.epoch, n)
    grid = "".join("+" if votes.get(i) else ("-" if i in votes else ".") for i in range(n))
    if isinstance(event, EpochSkipped):
        outcome, tally = "skipped", ""
    else:
        outcome = "accepted" if isinstance(event, ProposalAccepted) else "rejected"
        tally = f"{event.approvals}/{event.approvals + event.rejections}"
    # Each voter's test score is the proposal's score on its own local test split (accuracy for the
    # ready-made learners), not the global held-out test set that results.json's final accuracy uses.
    scores = [
        record["test_score"]
        for agent in agents
        if (record := _read_evaluations(agent.state_dir).get(event.epoch)) and record.get("test_score") is not None
    ]
    metric = "accuracy" if settings.kind == "sklearn" else "score"
    mean = f"{np.mean(scores):.4f}" if scores else "  -   "
    print(
        f"epoch {event.epoch + 1:>3}/{settings.epochs}  proposer {proposer:>2}  {outcome:<8} {tally:>5}  "
        f"votes [{grid}]  proposal's mean local test {metric} {mean}  ({elapsed:5.1f} s)",
        flush=True,
    )


# ───────────────────────────────────────────────────────────── the run


def run_experiment(settings: ExperimentSettings) -> dict[str, Any]:
    """Run the whole experiment and return the results dict (also written to ``settings.out``)."""
    from .report import write_all

    settings.out.mkdir(parents=True, exist_ok=True)
    config = settings.learner_config()
    store, store_url = _store(settings)
    with contextlib.ExitStack() as stack:
        rpc_url = stack.enter_context(_chain(settings))
        # One random password for the run's new keystores, kept owner-only beside them.
        password = secrets.token_hex(16)
        wallets = _learner_wallets(settings.learners, rpc_url, settings.out, password)
        if wallets[0].keystore is not None:
            _write_secret(settings.out / "wallets" / "password.txt", password)
        accounts = [w.account for w in wallets]

        # Every learner starts from the same weights (colearn's set_equal_weights): learner 0's.
        initial = encode_weights(make_learner(config, 0).current_weights())
        initial_cid = store.put(initial)
        deployer = ChainClient(rpc_url, accounts[0])
        deployment = deployer.deploy(
            [a.address for a in accounts],
            threshold_to_bps(settings.threshold),
            settings.proposal_timeout,
            settings.voting_timeout,
            not settings.colearn_variant,
            digest_hex(initial),
            initial_cid,
            extra={"learner_config": config},
        )
        deployment_path = deployment.save(settings.out / "deployment.json")
        print(f"deployed {deployment.address} on chain {deployment.chain_id}; {settings.learners} learners, "
              f"{settings.epochs} epochs; store {store.describe()}", flush=True)

        if settings.explorer:
            server, url = serve_in_background(rpc_url, deployment, settings.explorer_port)
            stack.callback(server.stop)
            print(f"explorer: {url}", flush=True)

        agents = _start_agents(wallets, password, rpc_url, deployment_path, store_url, settings)
        stack.callback(_stop_agents, agents)
        w3 = connect(rpc_url)
        cursor = LogCursor(w3, deployment.address, start_block=deployment.block)
        _follow(cursor, deployment.learners, agents, settings)

        print("agents done; computing baselines (solo, centralized, reference driver)", flush=True)
        history = History.load(w3, deployment)
        results = assemble_results(
            settings=settings.to_json(), config=config, deployment=deployment, rpc_url=rpc_url,
            started_chain=settings.rpc is None, history=history, state_dirs=[a.state_dir for a in agents],
            epochs=settings.epochs, threshold=settings.threshold, proposer_votes=not settings.colearn_variant,
            progress_stream=sys.stdout,
        )
    paths = write_all(results, settings.out)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return results
