"""`colearn-chain run`: a whole collective-learning experiment on chain, with baselines and a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..experiment import ENV_FUNDER_KEY, ENV_LEARNER_KEYS, ExperimentSettings, run_experiment
from ..learners import MODEL_KINDS
from ..wallet import ENV_KEYSTORE_PASSWORD

DESCRIPTION = f"""\
Run a collective-learning experiment on chain: start a local chain (Anvil) unless --rpc is given, use the
embedded weight store (a content-addressed folder with IPFS-identical CIDs) unless --ipfs is given,
make a wallet per learner, deploy the contract with the learners' shared initial model, run one agent
process per learner, and show each epoch as it closes (proposer, outcome, the vote grid: + approve,
- reject, . missing, and the proposal's mean score on the voters' local test splits).

Then it compares the shared model with baselines computed in the same run: each learner alone with
the same local budget (solo), one learner on the pooled data (centralized), and the in-memory
reference driver on identically built learners (do decisions and final weights match).

Writes to --out: results.json (every epoch, vote, score and transaction with its gas; URLs redacted),
plot.png (scores per epoch above, the vote grid below), summary.md, deployment.json, the agents' logs
and models (agents/), and the learners' keystores (wallets/), encrypted with ${ENV_KEYSTORE_PASSWORD}
(asked at a terminal when unset). On a local development chain (the one it starts, or a given one with
chain id 31337 or 1337), with no password set, the learners get throwaway keys that are never written.
Agents get the RPC URL and their key or password through their environment, never their command line.

On an existing chain (--rpc) the learners need funded keys: ${ENV_LEARNER_KEYS} (comma-separated
private keys), or ${ENV_FUNDER_KEY} (a funded key that pays 10 ETH to each new learner wallet); a
development chain with unlocked accounts (Anvil, Ganache) funds them itself.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = ExperimentSettings()
    p = subparsers.add_parser(
        "run", help="run a whole experiment on chain and report it", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("experiment")
    g.add_argument("--learners", type=int, default=defaults.learners, metavar="N",
                   help=f"number of learners, one agent process each (default {defaults.learners})")
    g.add_argument("--epochs", type=int, default=defaults.epochs, metavar="N",
                   help=f"epochs to run (default {defaults.epochs})")
    g.add_argument("--learner-kind", choices=("sklearn", "toy"), default=defaults.kind,
                   help="ready-made scikit-learn style learners on real data, or the tiny deterministic toy "
                        f"learner (default {defaults.kind})")
    g.add_argument("--dataset", choices=("digits", "breast_cancer", "wine", "mnist1d"), default=defaults.dataset,
                   help=f"data set, all available offline (default {defaults.dataset})")
    g.add_argument("--model", choices=("linear", "mlp", *MODEL_KINDS), default=defaults.model,
                   help="model every learner trains: numpy linear or mlp, scikit-learn's SGDClassifier "
                        "(sklearn-sgd) or MLPClassifier (sklearn-mlp), or the Keras 1-D CNN (cnn) "
                        f"(default {defaults.model})")
    g.add_argument("--split", choices=("iid", "dirichlet"), default=defaults.split,
                   help=f"how the data is spread over learners (default {defaults.split})")
    g.add_argument("--alpha", type=float, default=defaults.alpha,
                   help="Dirichlet concentration for --split dirichlet; smaller is more skewed "
                        f"(default {defaults.alpha})")
    g.add_argument("--learner-option", action="append", default=[], metavar="KEY=JSON",
                   help="override one learner setting, e.g. local_epochs=5 or vote_metric='\"accuracy\"' "
                        "(repeatable)")
    g.add_argument("--seed", type=int, default=defaults.seed,
                   help=f"seed of data split and training (default {defaults.seed})")
    c = p.add_argument_group("protocol")
    c.add_argument("--threshold", type=float, default=defaults.threshold,
                   help=f"fraction of voters that must approve, in (0, 1] (default {defaults.threshold})")
    c.add_argument("--colearn-variant", action="store_true",
                   help="colearn 0.2.8 rule: the proposer does not vote, threshold over n - 1 "
                        "(default: everyone votes)")
    c.add_argument("--proposal-timeout", type=int, default=defaults.proposal_timeout, metavar="S",
                   help="seconds a proposer has before anyone may skip the epoch "
                        f"(default {defaults.proposal_timeout})")
    c.add_argument("--voting-timeout", type=int, default=defaults.voting_timeout, metavar="S",
                   help=f"seconds voters have before anyone may close the epoch (default {defaults.voting_timeout})")
    i = p.add_argument_group("infrastructure")
    i.add_argument("--rpc", metavar="URL", help="use this chain (Ganache, a testnet) instead of starting Anvil")
    i.add_argument("--ipfs", metavar="API",
                   help="use this Kubo API (e.g. http://127.0.0.1:5001) instead of the embedded store")
    i.add_argument("--block-time", type=float, metavar="S",
                   help="started Anvil mines a block every S seconds (default: per transaction)")
    i.add_argument("--explorer", action="store_true", help="serve the explorer page on loopback during the run")
    i.add_argument("--explorer-port", type=int, default=0, metavar="N", help="explorer port (default: a free one)")
    i.add_argument("--out", type=Path, default=Path("results/run"), metavar="DIR",
                   help="output folder (default results/run)")
    p.set_defaults(func=_run)


def _overrides(items: list[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--learner-option wants KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _run(args: argparse.Namespace) -> int:
    settings = ExperimentSettings(
        learners=args.learners, epochs=args.epochs, kind=args.learner_kind, dataset=args.dataset, model=args.model,
        split=args.split, alpha=args.alpha, threshold=args.threshold, colearn_variant=args.colearn_variant,
        seed=args.seed, rpc=args.rpc, ipfs=args.ipfs, out=args.out, proposal_timeout=args.proposal_timeout,
        voting_timeout=args.voting_timeout, block_time=args.block_time, explorer=args.explorer,
        explorer_port=args.explorer_port, learner_overrides=_overrides(args.learner_option),
    )
    results = run_experiment(settings)
    reference = results["baselines"]["reference"]
    if not (reference["decisions_match"] and reference["weights_match"]):
        print("WARNING: the chain's decisions or final weights differ from the in-memory reference driver; "
              f"see {settings.out / 'results.json'} (baselines.reference) "
              f"and the agents' logs in {settings.out / 'agents'}")
        return 1
    return 0
