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
import tempfile
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
from .learners import MODEL_KINDS, READY_MADE, learner_config, make_learner
from .learners.owndata import own_data_options
from .learners.registry import declared_options, resolve_factory
from .protocol import proposer_index
from .results import assemble_results
from .services import kubo_swarm, stop_processes
from .services.anvil import (
    DEV_KEY,
    LOCAL_CHAIN_IDS,
    fund,
    fund_from_unlocked,
)
from .services.chains import chain_node
from .services.geth import GethNode
from .store import KuboStore, LocalStore, WeightStore
from .text import redact_url
from .wallet import (
    DEV_CHAIN_SCRYPT_N,
    ENV_KEYSTORE_PASSWORD,
    ENV_PRIVATE_KEY,
    ENV_PRIVATE_KEYS,
    WalletError,
    accounts_from_keys,
    keystore_password,
    new_keystore,
)

log = logging.getLogger(__name__)

ENV_LEARNER_KEYS = "COLEARN_LEARNER_KEYS"
ENV_FUNDER_KEY = "COLEARN_FUNDER_KEY"
#: ExperimentSettings fields that are options of the learners declaring them.
_DATA_FLAGS = ("dataset", "model", "split", "alpha")


class ExperimentError(ColearnChainError):
    """Raised when an experiment cannot start or its agents fail."""


@dataclass(frozen=True)
class ExperimentSettings:
    """Everything `colearn-chain run` takes; defaults make a meaningful run in a few minutes on 2 cores."""

    learners: int = 5
    epochs: int = 20
    kind: str = "numpy"  # a registered learner kind or MODULE:FACTORY (colearn_chain.learners.registry)
    # Options of the learners that declare them (the numpy kind); None: the learner's default.
    dataset: str | None = None
    model: str | None = None
    split: str | None = None
    alpha: float | None = None
    data: Path | None = None  # own data instead of a data set: a folder of one file per learner (owndata.py)
    label_column: str | None = None  # the label column of CSV files (default: "label", else the last)
    threshold: float = 0.5
    colearn_variant: bool = False
    seed: int = 0
    rpc: str | None = None
    ipfs: str | None = None
    #: "shared": one store for every agent (the embedded one, or the Kubo node at ``ipfs``); "per-agent":
    #: a Kubo node per learner, peered with the others only (blobs move by bitswap)
    ipfs_topology: str = "shared"
    out: Path = Path("results/run")
    proposal_timeout: int = 120
    voting_timeout: int = 120
    block_time: float | None = None
    #: the chain client a run starts when not given --rpc: "anvil", "ganache" or "geth"
    chain: str = "anvil"
    explorer: bool = False
    explorer_port: int = 0
    #: agents run in one process (1: a process per learner; more: `colearn-chain agents` with that many)
    agents_per_process: int = 1
    learner_overrides: dict[str, Any] = field(default_factory=dict)

    def learner_config(self) -> dict[str, Any]:
        """The JSON-able learner spec every agent (and the reference) builds its learner from.

        dataset, model, split and alpha go to a learner that declares them as options; given to one that
        does not, they are an error rather than silently ignored.
        """
        flags: dict[str, Any] = {k: v for k in _DATA_FLAGS if (v := getattr(self, k)) is not None}
        kind = self.learner_kind
        if kind != self.kind:  # --model names another framework's learner: it is that kind, not an option
            del flags["model"]
        if self.data is not None:
            unused = sorted(set(flags) & {"dataset", "split", "alpha"})
            if unused:
                raise ExperimentError(f"--data gives each learner its own data: {', '.join(unused)} do not apply")
        wanted = set(flags) | ({"data"} if self.data is not None else set())
        if wanted:
            declared = declared_options(resolve_factory(kind))
            stray = sorted(wanted - set(declared or ()))
            if stray:
                raise ExperimentError(
                    f"the {kind!r} learner takes no {', '.join(stray)} option; "
                    "pass its own options with --learner-option KEY=VALUE"
                )
        if self.data is not None:
            n_classes = self.learner_overrides.get("n_classes")
            flags.update(own_data_options(
                self.data, n_learners=self.learners, seed=self.seed, label_column=self.label_column,
                n_classes=None if n_classes is None else int(n_classes),
            ))
        return learner_config(
            kind, n_learners=self.learners, seed=self.seed, **flags, **self.learner_overrides
        )

    @property
    def learner_kind(self) -> str:
        """The learners' kind: ``kind``, or the kind a ``--model`` of another framework names (``cnn``: keras-cnn)."""
        if self.model not in MODEL_KINDS:
            return self.kind
        if self.kind not in ("numpy", MODEL_KINDS[self.model]):
            raise ExperimentError(f"--model {self.model} is the {MODEL_KINDS[self.model]!r} learner, "
                                  f"not an option of the {self.kind!r} learner")
        return MODEL_KINDS[self.model]

    def to_json(self) -> dict[str, Any]:
        """The settings as written to results.json: URLs redacted (they may carry an API key)."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["data"] = None if self.data is None else str(self.data)
        data["rpc"] = redact_url(self.rpc) if self.rpc else None
        data["ipfs"] = redact_url(self.ipfs) if self.ipfs else None
        return data


# ───────────────────────────────────────────────────────────── services


@contextlib.contextmanager
def _chain(settings: ExperimentSettings) -> Iterator[tuple[str, str | None]]:
    """The chain's RPC URL and, for a started node serving WebSocket on a port of its own (geth), that URL."""
    if settings.rpc:
        yield settings.rpc, None
        return
    node = chain_node(settings.chain, block_time=settings.block_time, log_path=settings.out / f"{settings.chain}.log")
    with node:
        log.info("started %s on %s", node.name, node.url)
        yield node.url, node.ws_url if isinstance(node, GethNode) else None


def _store(settings: ExperimentSettings) -> tuple[WeightStore, str]:
    if settings.ipfs:
        return KuboStore(settings.ipfs), settings.ipfs
    root = settings.out / "store"
    return LocalStore(root), f"local:{root.resolve()}"


def _stores(
    settings: ExperimentSettings, stack: contextlib.ExitStack
) -> tuple[WeightStore, list[str], kubo_swarm.KuboSwarm | None]:
    """The deployer's store and each agent's store URL: one shared store, or a Kubo node per learner (the
    deployer adds the initial model to learner 0's node, whose weights it is)."""
    if settings.ipfs_topology == "shared":
        store, url = _store(settings)
        return store, [url] * settings.learners, None
    if settings.ipfs_topology != "per-agent":
        raise ExperimentError(f"unknown IPFS topology {settings.ipfs_topology!r}: use shared or per-agent")
    if settings.ipfs:
        raise ExperimentError("--ipfs names one shared Kubo node; --ipfs-topology per-agent starts a node per learner")
    # Throwaway nodes: their repos (each holds its node's identity key) go when the run ends.
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="colearn-ipfs-")))
    try:
        swarm = stack.enter_context(kubo_swarm.KuboSwarm(root, settings.learners))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:  # no binary, or a daemon that exited
        raise ExperimentError(f"cannot start the learners' IPFS nodes (--ipfs-topology per-agent): {error}") from error
    for line in swarm.describe():
        log.info("IPFS %s", line)
    return KuboStore(swarm.nodes[0].api), [node.url for node in swarm.nodes], swarm


def _print_bitswap(swarm: kubo_swarm.KuboSwarm) -> None:
    """What moved between the learners' nodes: each node's bitswap counters and its connections."""
    for i, node in enumerate(swarm.nodes):
        try:
            stat = kubo_swarm.bitswap_stat(node)
            peers = sorted(addr for addr, _ in kubo_swarm.connected_peers(node))
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as error:
            print(f"ipfs node {i}: not answering ({error})", flush=True)
            continue
        print(f"ipfs node {i}: bitswap blocks received {stat['BlocksReceived']} ({stat['DataReceived']} bytes), "
              f"sent {stat['BlocksSent']} ({stat['DataSent']} bytes); connected to {', '.join(peers) or 'nobody'}",
              flush=True)


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
    try:
        accounts = accounts_from_keys(given, ENV_LEARNER_KEYS)
    except WalletError as error:
        raise ExperimentError(str(error)) from None
    if len(accounts) < n:
        raise ExperimentError(f"${ENV_LEARNER_KEYS} holds {len(accounts)} keys; {n} learners need {n}")
    return accounts[:n]


def _on_dev_chain(settings: ExperimentSettings, rpc_url: str) -> bool:
    """Whether the run's chain is a local development chain (the one it started, or a local chain id)."""
    return settings.rpc is None or connect(rpc_url).eth.chain_id in LOCAL_CHAIN_IDS


def _run_password(settings: ExperimentSettings, rpc_url: str) -> str | None:
    """The password for new learner keystores, or None for throwaway keys.

    $COLEARN_KEYSTORE_PASSWORD wins; a run on a local development chain (the one it starts itself, or a
    given one with a local chain id) needs no keystore: its keys are worthless outside it. On any other
    chain the password is asked once at a terminal, and without one the run stops rather than invent a
    password it would have to write down.
    """
    if os.environ.get(ENV_KEYSTORE_PASSWORD) is None and _on_dev_chain(settings, rpc_url):
        return None
    password = keystore_password(what="password for the learners' new keystores")
    if not password:
        raise ExperimentError(
            f"new learner keys on {redact_url(rpc_url)} need a keystore password: set "
            f"${ENV_KEYSTORE_PASSWORD} (or ${ENV_LEARNER_KEYS} to funded keys), or run at a terminal"
        )
    return password


def _learner_wallets(
    n: int, rpc_url: str, out: Path, password: str | None, *, scrypt_n: int | None = None
) -> list[_Wallet]:
    """The learners' wallets: $COLEARN_LEARNER_KEYS (funded keys on an existing chain), or new keys
    (in keystores under ``out/wallets`` encrypted with ``password`` at scrypt cost ``scrypt_n``, the
    standard one when None; in memory only when ``password`` is None), funded from $COLEARN_FUNDER_KEY,
    the node's unlocked dev account, or (on a local chain id only) Anvil's well-known dev key."""
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
        wallets.append(_Wallet(new_keystore(path, password, overwrite=True, iterations=scrypt_n), path))
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
_WITHHELD = (
    ENV_LEARNER_KEYS, ENV_FUNDER_KEY, ENV_PRIVATE_KEY, ENV_PRIVATE_KEYS, ENV_KEYSTORE_PASSWORD, ENV_RPC_URL
)


def _start_agents(
    wallets: Sequence[_Wallet], password: str | None, rpc_url: str, deployment_path: Path, store_urls: Sequence[str],
    settings: ExperimentSettings, *, ws_url: str | None = None,
) -> list[_AgentProcess]:
    """One agent process per wallet, or one per ``settings.agents_per_process`` wallets. Keys, passwords
    and the RPC URL (which may carry an API key) go through the environment, never the command line:
    ``ps`` shows every user the arguments. ``ws_url``: the WebSocket endpoint of the node the run started
    (a loopback URL), when it is not on the RPC port."""
    base_env = {k: v for k, v in os.environ.items() if k not in _WITHHELD}
    base_env[ENV_RPC_URL] = rpc_url
    common = ["--deployment", str(deployment_path), "--until-epoch", str(settings.epochs)]
    if ws_url is not None:
        common += ["--ws", ws_url]
    root = settings.out / "agents"
    per = max(1, settings.agents_per_process)
    agents = []
    for first in range(0, len(wallets), per):
        group = list(enumerate(wallets))[first:first + per]
        dirs = [root / f"learner-{i}" for i, _ in group]
        for state_dir in dirs:
            state_dir.mkdir(parents=True, exist_ok=True)
        stores = {store_urls[i] for i, _ in group}
        if len(stores) > 1:
            raise ExperimentError("agents sharing a process share one store: use --agents-per-process 1 "
                                  "with --ipfs-topology per-agent")
        keyed = all(w.keystore is not None for _, w in group) and password is not None
        common_here = [*common, "--store", stores.pop()]
        if per == 1:
            cmd = [sys.executable, "-m", "colearn_chain.cli", "agent", *common_here, "--state-dir", str(dirs[0])]
            log_path = dirs[0] / "agent.log"
        else:
            # The learners' indices come from the order of the wallets: learner-i is wallet i's directory.
            cmd = [sys.executable, "-m", "colearn_chain.cli", "agents", *common_here, "--state-root", str(root)]
            log_path = root / f"process-{first // per}.log"
        if keyed:
            cmd += [arg for _, w in group for arg in ("--keystore", str(w.keystore))]
            env = {**base_env, ENV_KEYSTORE_PASSWORD: str(password)}
        elif per == 1:
            env = {**base_env, ENV_PRIVATE_KEY: group[0][1].account.key.hex()}
        else:
            env = {**base_env, ENV_PRIVATE_KEYS: ",".join(w.account.key.hex() for _, w in group)}
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        agents += [_AgentProcess(i, w.account.address, d, process) for (i, w), d in zip(group, dirs, strict=True)]
    return agents


def _stop_agents(agents: Sequence[_AgentProcess]) -> None:
    processes = list({id(agent.process): agent.process for agent in agents}.values())  # a process may run several
    killed = stop_processes(processes, timeout=15)
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
    metric = "accuracy" if settings.learner_kind in READY_MADE else "score"
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
    with contextlib.ExitStack() as stack:
        store, store_urls, swarm = _stores(settings, stack)
        rpc_url, ws_url = stack.enter_context(_chain(settings))
        password = _run_password(settings, rpc_url) if os.environ.get(ENV_LEARNER_KEYS) is None else None
        # Keys for a local development chain are worthless outside it: a light scrypt (or none) is enough.
        scrypt_n = DEV_CHAIN_SCRYPT_N if password is not None and _on_dev_chain(settings, rpc_url) else None
        wallets = _learner_wallets(settings.learners, rpc_url, settings.out, password, scrypt_n=scrypt_n)
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

        agents = _start_agents(wallets, password, rpc_url, deployment_path, store_urls, settings, ws_url=ws_url)
        stack.callback(_stop_agents, agents)
        w3 = connect(rpc_url)
        cursor = LogCursor(w3, deployment.address, start_block=deployment.block)
        _follow(cursor, deployment.learners, agents, settings)
        if swarm is not None:
            _print_bitswap(swarm)

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
