"""`colearn-chain run`: a whole collective-learning experiment on chain, with baselines and a report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..decision import threshold_to_bps
from ..experiment import ENV_FUNDER_KEY, ENV_LEARNER_KEYS, ExperimentError, ExperimentSettings, run_experiment
from ..learners import MODEL_KINDS, NUMPY_DEFAULTS, make_learner
from ..learners.data import DATASETS, SPLITS
from ..learners.registry import parse_learner_options
from ..services.chains import CHAINS
from ..services.geth import DEFAULT_PERIOD
from ..store import KuboStore
from ..wallet import ENV_KEYSTORE_PASSWORD
from ._options import non_negative_int, port, positive_int
from .chain import block_time

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Run a collective-learning experiment on chain: start a local chain (--chain: Anvil by default, Ganache
or geth's dev mode) unless --rpc is given, use the embedded weight store (a content-addressed folder with
IPFS-identical CIDs) unless --ipfs is given, make a wallet per learner, deploy the contract with the
learners' shared initial model, run one agent process per learner, and show each epoch as it closes
(proposer, outcome, the vote grid: + approve, - reject, . missing, and the proposal's mean score on
the voters' local test splits).

Then it compares the shared model with baselines computed in the same run: each learner alone with
the same local budget (solo), one learner on the pooled data (centralized), and the in-memory
reference driver on identically built learners (do decisions and final weights match). With any other
learner than numpy (--learner toy, MODULE:FACTORY, another registered kind) the reference driver still
runs on the same learners; solo and centralized need the numpy learners' pooled data, so results.json
lists them under baselines.absent with the reason.

Writes to --out: results.json (every epoch, vote, score and transaction with its gas; URLs redacted),
plot.png (scores per epoch above, the vote grid below), summary.md, deployment.json, the agents' logs
and models (agents/), and the learners' keystores (wallets/), encrypted with ${ENV_KEYSTORE_PASSWORD}
(asked at a terminal when unset). On a local development chain (the one it starts, or a given one with
chain id 31337 or 1337), with no password set, the learners get throwaway keys that are never written.
Agents get the RPC URL and their key or password through their environment, never their command line.

On an existing chain (--rpc) the learners need funded keys: ${ENV_LEARNER_KEYS} (comma-separated
private keys), or ${ENV_FUNDER_KEY} (a funded key that pays 10 ETH to each new learner wallet); a
development chain with unlocked accounts (Anvil, Ganache, geth --dev) funds them itself.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = ExperimentSettings()
    p = subparsers.add_parser(
        "run", help="run a whole experiment on chain and report it", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("experiment")
    g.add_argument("--learners", type=positive_int, default=defaults.learners, metavar="N",
                   help=f"number of learners, one agent process each (default {defaults.learners})")
    g.add_argument("--epochs", type=non_negative_int, default=defaults.epochs, metavar="N",
                   help=f"epochs to run (default {defaults.epochs})")
    g.add_argument("--learner", "--learner-kind", dest="learner", default=defaults.kind, metavar="KIND|MODULE:FACTORY",
                   help="the learners' factory: a registered kind (bundled: numpy, ready-made numpy models on real "
                        "data; toy, a tiny deterministic learner) or your own MODULE:FACTORY, called as "
                        "FACTORY(index, n_learners, seed, options) and returning a MachineLearningInterface "
                        f"(default {defaults.kind}; --learner-kind is its old name)")
    g.add_argument("--learner-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option for the factory, e.g. local_epochs=5 or vote_metric=accuracy; VALUE is parsed as "
                        "JSON when it parses (5, 0.1, true, [1,2]), else taken as a string (repeatable)")
    g.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"data set, all available offline: {', '.join(DATASETS)} (default {NUMPY_DEFAULTS['dataset']}; "
                        "an option of the learners that declare it)")
    g.add_argument("--model", default=None, metavar="NAME",
                   help=f"model every learner trains: linear or mlp for numpy (default {NUMPY_DEFAULTS['model']}; "
                        "an option of the learners that declare it, as are --split and --alpha); or another "
                        "framework's learner, the kind it names: "
                        f"{', '.join(f'{model} (--learner {kind})' for model, kind in MODEL_KINDS.items())}")
    g.add_argument("--split", choices=SPLITS, default=None,
                   help=f"how the data is spread over learners (default {NUMPY_DEFAULTS['split']})")
    g.add_argument("--alpha", type=float, default=None,
                   help="Dirichlet concentration for --split dirichlet; smaller is more skewed "
                        f"(default {NUMPY_DEFAULTS['alpha']})")
    g.add_argument("--data", type=Path, metavar="DIR",
                   help="the learners' own data instead of --dataset: a folder of one file per learner "
                        "(learner-0.npz, learner-1.csv, ... or its data files in name order); NPZ with arrays x "
                        "(rows x features) and y (class numbers 0, 1, ...), or CSV with a header and a label "
                        "column. Each learner cuts its file into train, vote and test parts; all files must have "
                        "the same features, and every class must have rows in some file. For the ready-made learners")
    g.add_argument("--label-column", metavar="NAME",
                   help="the CSV column holding the labels (default: the one named label, else the last)")
    g.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                   help=f"seed of data split and training (default {defaults.seed})")
    c = p.add_argument_group("protocol")
    c.add_argument("--threshold", type=float, default=defaults.threshold,
                   help=f"fraction of voters that must approve, in (0, 1] (default {defaults.threshold})")
    c.add_argument("--colearn-variant", action="store_true",
                   help="colearn 0.2.8 rule: the proposer does not vote, threshold over n - 1 "
                        "(default: everyone votes)")
    c.add_argument("--proposal-timeout", type=positive_int, default=defaults.proposal_timeout, metavar="S",
                   help="seconds a proposer has before anyone may skip the epoch "
                        f"(default {defaults.proposal_timeout})")
    c.add_argument("--voting-timeout", type=positive_int, default=defaults.voting_timeout, metavar="S",
                   help=f"seconds voters have before anyone may close the epoch (default {defaults.voting_timeout})")
    i = p.add_argument_group("infrastructure")
    i.add_argument("--rpc", metavar="URL", help="use this chain (a testnet, a node you run) instead of starting one")
    i.add_argument("--chain", choices=CHAINS, default=defaults.chain,
                   help="the local chain to start when no --rpc is given: anvil, ganache (both mine each "
                        "transaction at once unless --block-time), or geth's dev mode (a block every "
                        f"{DEFAULT_PERIOD} s unless --block-time) (default {defaults.chain})")
    i.add_argument("--ipfs", metavar="API",
                   help="use this Kubo API (e.g. http://127.0.0.1:5001) instead of the embedded store")
    i.add_argument("--ipfs-topology", choices=("shared", "per-agent"), default=defaults.ipfs_topology,
                   help="shared: one store for every agent (the embedded one, or --ipfs); per-agent: start a Kubo "
                        "node per learner, peered with the others only, so weights move between them by bitswap "
                        f"(default {defaults.ipfs_topology})")
    i.add_argument("--block-time", type=block_time, metavar="S",
                   help="the started chain makes a block every S seconds (default: per transaction on anvil "
                        f"and ganache, {DEFAULT_PERIOD} s on geth, which takes whole seconds only)")
    i.add_argument("--agents-per-process", type=positive_int, default=defaults.agents_per_process, metavar="K",
                   help="run K agents in one process (`colearn-chain agents`), each with its own key, transactions, "
                        "state directory and log, for simulations of many learners on few cores "
                        f"(default {defaults.agents_per_process}: a process per learner)")
    i.add_argument("--explorer", action="store_true", help="serve the explorer page on loopback during the run")
    i.add_argument("--explorer-port", type=port, default=0, metavar="N", help="explorer port (default: a free one)")
    i.add_argument("--out", type=Path, default=Path("results/run"), metavar="DIR",
                   help="output folder (default results/run)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = ExperimentSettings(
            learners=args.learners, epochs=args.epochs, kind=args.learner, dataset=args.dataset, model=args.model,
            split=args.split, alpha=args.alpha, data=args.data, label_column=args.label_column,
            threshold=args.threshold, colearn_variant=args.colearn_variant,
            seed=args.seed, rpc=args.rpc, ipfs=args.ipfs, out=args.out, proposal_timeout=args.proposal_timeout,
            voting_timeout=args.voting_timeout, block_time=args.block_time, chain=args.chain, explorer=args.explorer,
            explorer_port=args.explorer_port, learner_overrides=parse_learner_options(args.learner_option),
            agents_per_process=args.agents_per_process, ipfs_topology=args.ipfs_topology,
        )
        make_learner(settings.learner_config(), 0)  # a bad learner, option or file stops here, before any chain
        # So do a threshold the contract cannot take, an unusable --ipfs address (parsed only: nothing is
        # dialled) and an --out folder that cannot be made.
        threshold_to_bps(settings.threshold)
        if args.ipfs:
            KuboStore(args.ipfs)
        settings.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.error("--out %s cannot be made: %s; name a folder you can write", args.out, error)
        return 2
    except (ValueError, ExperimentError) as error:
        log.error("%s", error)
        return 2
    results = run_experiment(settings)
    reference = results["baselines"]["reference"]
    if "error" in reference:
        print(f"WARNING: the in-memory reference driver stopped: {reference['error']}; see the agents' logs "
              f"in {settings.out / 'agents'} for what they did about it")
        return 1
    if not (reference["decisions_match"] and reference["weights_match"]):
        print("WARNING: the chain's decisions or final weights differ from the in-memory reference driver; "
              f"see {settings.out / 'results.json'} (baselines.reference) "
              f"and the agents' logs in {settings.out / 'agents'}")
        return 1
    return 0
