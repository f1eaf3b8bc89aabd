"""One whole collective-learning experiment on chain: what `colearn-chain run` does.

It starts what it was not given (Anvil, the embedded weight store), makes a wallet per learner,
deploys the contract with the learners' shared initial model, runs one agent process per learner,
shows each epoch as it closes, and then reports the shared model against the baselines (solo,
centralized, and the in-memory reference driver on the same learners). Whatever it started it stops,
on Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from .chain.client import ChainClient
from .chain.deployment import Deployment
from .chain.events import EpochSkipped, LogCursor, ProposalAccepted, ProposalRejected, VoteCast
from .codec import decode_weights, digest_hex, encode_weights
from .decision import threshold_to_bps
from .driver import run as run_reference
from .exceptions import ColearnChainError
from .history import History
from .learners import learner_config, make_learner
from .learners import baselines
from .services.anvil import DEV_KEY, AnvilNode, fund
from .store import KuboStore, LocalStore, WeightStore
from .typing import Weights

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
        settings: dict[str, Any] = dict(
            n_learners=self.learners, seed=self.seed, dataset=self.dataset, model=self.model, split=self.split,
        )
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


def _learner_accounts(n: int, rpc_url: str) -> list[LocalAccount]:
    """The learners' wallets: from $COLEARN_LEARNER_KEYS (funded keys on an existing chain), or new keys
    funded from $COLEARN_FUNDER_KEY, the node's unlocked dev account, or Anvil's dev key."""
    given = os.environ.get(ENV_LEARNER_KEYS)
    if given:
        keys = [k.strip() for k in given.split(",") if k.strip()]
        if len(keys) < n:
            raise ExperimentError(f"${ENV_LEARNER_KEYS} holds {len(keys)} keys; {n} learners need {n}")
        return [Account.from_key(k) for k in keys[:n]]
    accounts = [Account.create() for _ in range(n)]
    addresses = [a.address for a in accounts]
    funder = os.environ.get(ENV_FUNDER_KEY)
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    if funder:
        fund(rpc_url, addresses, 10.0, funder_key=funder)
    elif w3.eth.accounts:
        # A development chain (Anvil, Ganache) with unlocked accounts: fund from the first one.
        sender = w3.eth.accounts[0]
        for address in addresses:
            w3.eth.wait_for_transaction_receipt(
                w3.eth.send_transaction({"from": sender, "to": address, "value": w3.to_wei(10, "ether")})
            )
    else:
        try:
            fund(rpc_url, addresses, 10.0, funder_key=DEV_KEY)
        except Exception as exc:
            raise ExperimentError(
                f"cannot fund new learner wallets on {rpc_url}: set ${ENV_LEARNER_KEYS} to funded keys "
                f"(comma-separated) or ${ENV_FUNDER_KEY} to a funded key ({exc})"
            ) from exc
    return accounts


def _save_keystores(accounts: Sequence[LocalAccount], out: Path) -> str:
    """Write each learner's key as an encrypted keystore; the password goes to a 0600 file beside them."""
    folder = out / "wallets"
    folder.mkdir(parents=True, exist_ok=True)
    password = os.urandom(16).hex()
    secret = folder / "password.txt"
    secret.write_text(password)
    secret.chmod(0o600)
    for i, account in enumerate(accounts):
        path = folder / f"learner-{i}.keystore.json"
        path.write_text(json.dumps(Account.encrypt(account.key, password, kdf="scrypt", iterations=2**14)))
        path.chmod(0o600)
    return password


# ───────────────────────────────────────────────────────────── agents


@dataclass
class _AgentProcess:
    index: int
    address: str
    state_dir: Path
    process: subprocess.Popen[bytes]


def _start_agents(
    accounts: Sequence[LocalAccount], rpc_url: str, deployment_path: Path, store_url: str, settings: ExperimentSettings
) -> list[_AgentProcess]:
    agents = []
    for i, account in enumerate(accounts):
        state_dir = settings.out / "agents" / f"learner-{i}"
        state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "COLEARN_PRIVATE_KEY": account.key.hex()}
        env.pop("COLEARN_KEYSTORE_PASSWORD", None)
        cmd = [
            sys.executable, "-m", "colearn_chain.cli", "agent",
            "--rpc", rpc_url,
            "--deployment", str(deployment_path),
            "--store", store_url,
            "--state-dir", str(state_dir),
            "--until-epoch", str(settings.epochs),
        ]
        with open(state_dir / "agent.log", "ab") as log_file:
            process = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        agents.append(_AgentProcess(i, account.address, state_dir, process))
    return agents


def _stop_agents(agents: Sequence[_AgentProcess]) -> None:
    for agent in agents:
        if agent.process.poll() is None:
            agent.process.terminate()
    for agent in agents:
        try:
            agent.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.process.kill()
            agent.process.wait()


def _read_evaluations(state_dir: Path) -> dict[int, dict[str, Any]]:
    """The agent's own record of each vote (epoch -> vote_score, test_score, reason)."""
    path = state_dir / "evaluations.jsonl"
    records: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[int(record["epoch"])] = record
    return records


def _follow(
    cursor: LogCursor, learners: Sequence[str], agents: Sequence[_AgentProcess], settings: ExperimentSettings
) -> None:
    """Print each epoch as it closes until every agent has exited; fail fast when one crashes."""
    index = {address: i for i, address in enumerate(learners)}
    votes: dict[int, dict[int, bool]] = {}
    started = time.monotonic()
    while True:
        for event in cursor.poll():
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
        time.sleep(0.2)


def _print_epoch(
    event: Any, votes: dict[int, bool], learners: Sequence[str], agents: Sequence[_AgentProcess],
    settings: ExperimentSettings, elapsed: float,
) -> None:
    n = len(learners)
    proposer = event.epoch % n
    grid = "".join("+" if votes.get(i) else ("-" if i in votes else ".") for i in range(n))
    if isinstance(event, EpochSkipped):
        outcome, tally = "skipped", ""
    else:
        outcome = "accepted" if isinstance(event, ProposalAccepted) else "rejected"
        tally = f"{event.approvals}/{event.approvals + event.rejections}"
    scores = [
        record["test_score"]
        for agent in agents
        if (record := _read_evaluations(agent.state_dir).get(event.epoch)) and record.get("test_score") is not None
    ]
    mean = f"{np.mean(scores):.4f}" if scores else "  -   "
    print(
        f"epoch {event.epoch + 1:>3}/{settings.epochs}  proposer {proposer:>2}  {outcome:<8} {tally:>5}  "
        f"votes [{grid}]  mean test score {mean}  ({elapsed:5.1f} s)",
        flush=True,
    )


# ───────────────────────────────────────────────────────────── results


def _agent_weights(agent: _AgentProcess, template: Weights) -> Weights:
    from .agent import StateDir

    weights = StateDir(agent.state_dir).current_weights()
    if weights is None:
        raise ExperimentError(f"learner {agent.index} saved no model in {agent.state_dir}")
    return decode_weights(encode_weights(weights), expected=template)


def _weights_equal(a: Weights, b: Weights) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _epoch_transactions(record: Any) -> list[tuple[str, Any]]:
    """The epoch's transactions, each once, named for what it did."""
    named: dict[str, tuple[str, Any]] = {}
    if record.proposal is not None:
        named[record.proposal.tx.hash] = ("propose", record.proposal.tx)
    for vote in record.votes:
        named[vote.tx.hash] = ("vote", vote.tx)
    if record.close is not None:
        kind = "closing vote" if record.close.hash in named else "close"
        named[record.close.hash] = (kind, record.close)
    return list(named.values())


def _results(
    settings: ExperimentSettings,
    config: dict[str, Any],
    deployment: Deployment,
    rpc_url: str,
    history: History,
    agents: Sequence[_AgentProcess],
) -> dict[str, Any]:
    learners = list(deployment.learners)
    evaluations = [_read_evaluations(a.state_dir) for a in agents]
    epochs = []
    for record in history.epochs[: settings.epochs]:
        votes = []
        for i, address in enumerate(learners):
            vote = record.vote_of(address)
            own = evaluations[i].get(record.epoch, {})
            votes.append({
                "learner": i,
                "address": address,
                "approve": None if vote is None else vote.approve,
                "vote_score": None if vote is None else vote.score,
                "test_score": own.get("test_score"),
                "reason": own.get("reason"),
                "tx": None if vote is None else vote.tx.hash,
                "gas": None if vote is None else vote.tx.gas_used,
            })
        epochs.append({
            "epoch": record.epoch,
            "proposer": record.proposer_index,
            "proposer_address": record.proposer,
            "outcome": record.outcome,
            "approvals": record.approvals,
            "rejections": record.rejections,
            "cid": None if record.proposal is None else record.proposal.cid,
            "digest": None if record.proposal is None else record.proposal.digest,
            "votes": votes,
            "transactions": [
                {"kind": kind, "hash": tx.hash, "block": tx.block, "from": tx.sender, "gas": tx.gas_used}
                for kind, tx in _epoch_transactions(record)
            ],
            "gas": record.gas_used,
        })

    # Final models as the agents hold them, scored on the global held-out test set.
    fresh = [make_learner(config, i) for i in range(len(learners))]
    template = fresh[0].current_weights()
    final_weights = [_agent_weights(a, template) for a in agents]
    for learner, weights in zip(fresh, final_weights):
        learner.accept_weights(weights)
    final: dict[str, Any] = {}
    if config["kind"] == "sklearn":
        accuracies = baselines.global_test_accuracy(fresh)
        final = {"test_accuracy_mean": accuracies.mean, "test_accuracy": list(accuracies.per_learner)}
    final["same_weights_everywhere"] = all(_weights_equal(final_weights[0], w) for w in final_weights[1:])

    # The in-memory reference driver on identically built learners.
    reference_learners = [make_learner(config, i) for i in range(len(learners))]
    reference = run_reference(
        reference_learners, settings.epochs, vote_threshold=settings.threshold,
        proposer_votes=not settings.colearn_variant,
    )
    chain_decisions = [e["outcome"] == "accepted" for e in epochs]
    reference_decisions = [r.accepted for r in reference]
    reference_json = {
        "decisions": reference_decisions,
        "decisions_match": chain_decisions == reference_decisions,
        "weights_match": all(
            _weights_equal(w, learner.current_weights()) for w, learner in zip(final_weights, reference_learners)
        ),
    }
    baselines_json: dict[str, Any] = {"reference": reference_json}
    if config["kind"] == "sklearn":
        solo = baselines.solo(config, settings.epochs)
        central = baselines.centralized(config, settings.epochs)
        baselines_json.update({
            "solo_mean": solo.mean, "solo": list(solo.per_learner), "centralized": central.mean,
        })
        reference_json["test_accuracy_mean"] = baselines.global_test_accuracy(reference_learners).mean

    return {
        "config": {**settings.to_json(), "learner_config": config},
        "chain": {
            "rpc": rpc_url,
            "started_by_run": settings.rpc is None,
            "chain_id": deployment.chain_id,
            "contract": deployment.address,
            "deploy_block": deployment.block,
            "deploy_tx": deployment.tx_hash,
        },
        "learners": learners,
        "epochs": epochs,
        "final": final,
        "baselines": baselines_json,
    }


# ───────────────────────────────────────────────────────────── the run


def run_experiment(settings: ExperimentSettings) -> dict[str, Any]:
    """Run the whole experiment and return the results dict (also written to ``settings.out``)."""
    from .report import write_all

    settings.out.mkdir(parents=True, exist_ok=True)
    config = settings.learner_config()
    store, store_url = _store(settings)
    with contextlib.ExitStack() as stack:
        rpc_url = stack.enter_context(_chain(settings))
        accounts = _learner_accounts(settings.learners, rpc_url)
        _save_keystores(accounts, settings.out)

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
            from .cli.explorer import serve_in_background

            server, url = serve_in_background(rpc_url, deployment, settings.explorer_port)
            stack.callback(server.shutdown)
            print(f"explorer: {url}", flush=True)

        agents = _start_agents(accounts, rpc_url, deployment_path, store_url, settings)
        stack.callback(_stop_agents, agents)
        cursor = LogCursor(Web3(Web3.HTTPProvider(rpc_url)), deployment.address, start_block=deployment.block)
        _follow(cursor, deployment.learners, agents, settings)

        print("agents done; computing baselines (solo, centralized, reference driver)", flush=True)
        history = History.load(Web3(Web3.HTTPProvider(rpc_url)), deployment)
        results = _results(settings, config, deployment, rpc_url, history, agents)
    paths = write_all(results, settings.out)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return results
