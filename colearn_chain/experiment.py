"""One whole collective-learning experiment on chain: what `colearn-chain run` does.

It starts what it was not given (Anvil, the embedded weight store), makes a wallet per learner,
deploys the contract with the learners' shared initial model, runs one agent process per learner,
shows each epoch as it closes, and then reports the shared model against the baselines (solo,
centralized, and the in-memory reference driver on the same learners). Whatever it started it stops,
on Ctrl-C too.

Secrets: no password or key is ever written in plain text, and none is put on a command line (visible
to every user in ``ps``). New learner keys go into keystores encrypted with ``COLEARN_KEYSTORE_PASSWORD``
(or a password typed once at a terminal); a run on the local chain it started itself, with no password
given, uses throwaway keys that live only in this process and its agents' environments. Agents get the
RPC URL through ``COLEARN_RPC_URL`` and their key or password through the environment; every URL written
down (results.json, logs) goes through :func:`~colearn_chain.text.redact_url`.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
from .chain.connection import ENV_RPC_URL, connect
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
from .learners import MODEL_KINDS, learner_config, make_learner
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
from .text import redact_url
from .wallet import (
    ENV_KEYSTORE_PASSWORD,
    ENV_PRIVATE_KEY,
    create_keystore,
    keystore_password,
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
        kind, model = MODEL_KINDS.get(self.model, ("sklearn", self.model))  # e.g. sklearn-mlp, cnn
        settings: dict[str, Any] = {
            "n_learners": self.learners, "seed": self.seed, "dataset": self.dataset, "model": model,
            "split": self.split,
        }
        if self.split == "dirichlet":
            settings["alpha"] = self.alpha
        return learner_config(kind, **settings, **self.learner_overrides)

    def to_json(self) -> dict[str, Any]:
        """The settings as written to results.json: URLs redacted (they may carry an API key)."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["rpc"] = redact_url(self.rpc) if self.rpc else None
        data["ipfs"] = redact_url(self.ipfs) if self.ipfs else None
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
    """A learner's account and how its agent unlocks it: a keystore (generated keys, with a password) or
    the raw key through the agent's environment (keys the user supplied, or throwaway keys on the run's
    own local chain), which the run never writes to disk."""

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


def _run_password(settings: ExperimentSettings, rpc_url: str) -> str | None:
    """The password for new learner keystores, or None for throwaway keys.

    $COLEARN_KEYSTORE_PASSWORD wins; a run on a local development chain (the one it starts itself, or a
    given one with a local chain id) needs no keystore: its keys are worthless outside it. On any other
    chain the password is asked once at a terminal, and without one the run stops rather than invent a
    password it would have to write down.
    """
    if os.environ.get(ENV_KEYSTORE_PASSWORD) is None and (
        settings.rpc is None or connect(rpc_url).eth.chain_id in LOCAL_CHAIN_IDS
    ):
        return None
    password = keystore_password(what="password for the learners' new keystores")
    if not password:
        raise ExperimentError(
            f"new learner keys on {redact_url(rpc_url)} need a keystore password: set "
            f"${ENV_KEYSTORE_PASSWORD} (or ${ENV_LEARNER_KEYS} to funded keys), or run at a terminal"
        )
    return password


def _learner_wallets(n: int, rpc_url: str, out: Path, password: str | None) -> list[_Wallet]:
    """The learners' wallets: $COLEARN_LEARNER_KEYS (funded keys on an existing chain), or new keys
    (in keystores under ``out/wallets`` encrypted with ``password``; in memory only when it is None),
    funded from $COLEARN_FUNDER_KEY, the node's unlocked dev account, or (on a local chain id only)
    Anvil's well-known dev key."""
    supplied = _user_keys(n)
    if supplied is not None:
        return [_Wallet(account, None) for account in supplied]
    folder = out / "wallets"
    wallets = []
    for i in range(n):
        if password is None:
            wallets.append(_Wallet(Account.create(), None))
            continue
        path = folder / f"learner-{i}.keystore.json"
        create_keystore(path, password, overwrite=True)
        wallets.append(_Wallet(load_keystore(path, password), path))
    addresses = [str(w.account.address) for w in wallets]
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


# ───────────────────────────────────────────────────────────── agents


@dataclass
class _AgentProcess:
    index: int
    address: str
    state_dir: Path
    process: subprocess.Popen[bytes]


#: Secrets of the run that no agent process may inherit (each gets only its own key or password).
_WITHHELD = (ENV_LEARNER_KEYS, ENV_FUNDER_KEY, ENV_PRIVATE_KEY, ENV_KEYSTORE_PASSWORD, ENV_RPC_URL)


def _start_agents(
    wallets: Sequence[_Wallet], password: str | None, rpc_url: str, deployment_path: Path, store_url: str,
    settings: ExperimentSettings,
) -> list[_AgentProcess]:
    """One agent process per wallet. Its key or password and the RPC URL (which may carry an API key)
    go through its environment, never its command line: ``ps`` shows every user the arguments."""
    agents = []
    base_env = {k: v for k, v in os.environ.items() if k not in _WITHHELD}
    base_env[ENV_RPC_URL] = rpc_url
    for i, wallet in enumerate(wallets):
        state_dir = settings.out / "agents" / f"learner-{i}"
        state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "colearn_chain.cli", "agent",
            "--deployment", str(deployment_path),
            "--store", store_url,
            "--state-dir", str(state_dir),
            "--until-epoch", str(settings.epochs),
        ]
        if wallet.keystore is not None and password is not None:
            cmd += ["--keystore", str(wallet.keystore)]
            env = {**base_env, ENV_KEYSTORE_PASSWORD: password}
        else:
            env = {**base_env, ENV_PRIVATE_KEY: wallet.account.key.hex()}
        with open(state_dir / "agent.log", "ab") as log_file:
            process = subprocess.Popen(
                cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
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
            names = ", ".join(
                f"learner {a.index} (exit {a.process.returncode}, log {a.state_dir / 'agent.log'})" for a in failed
            )
            raise ExperimentError(f"agent process failed: {names}")
        if all(a.process.poll() == 0 for a in agents):
            for event in cursor.poll():  # the last epoch's events
                if isinstance(event, (ProposalAccepted, ProposalRejected, EpochSkipped)):
                    elapsed = time.monotonic() - started
                    _print_epoch(event, votes.get(event.epoch, {}), learners, agents, settings, elapsed)
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
        password = _run_password(settings, rpc_url) if os.environ.get(ENV_LEARNER_KEYS) is None else None
        wallets = _learner_wallets(settings.learners, rpc_url, settings.out, password)
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
            settings=settings.to_json(), config=config, deployment=deployment, rpc_url=redact_url(rpc_url),
            started_chain=settings.rpc is None, history=history, state_dirs=[a.state_dir for a in agents],
            epochs=settings.epochs, threshold=settings.threshold, proposer_votes=not settings.colearn_variant,
            progress_stream=sys.stdout,
        )
    paths = write_all(results, settings.out)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return results
