"""`colearn-chain deploy`: deploy the contract for a list of learners and write the deployment record."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from web3 import Web3
from web3.exceptions import Web3Exception

from ..chain.client import ChainClient
from ..chain.connection import ENV_RPC_URL
from ..codec import decode_weights, digest_hex, encode_weights
from ..decision import threshold_to_bps
from ..exceptions import ColearnChainError
from ..learners import complete_spec, make_learner
from ..learners.owndata import own_data_options
from ..store import from_url
from ..text import redact_url
from ..wallet import ENV_KEYSTORE_PASSWORD, ENV_PRIVATE_KEY
from ._options import (
    account_from,
    add_data_options,
    add_key_options,
    add_learner_options,
    add_rpc_option,
    check_writable_file,
    learner_spec_from,
    load_learner_config,
    positive_int,
    rpc_from,
)

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Deploy CollectiveLearning (the compiled contract shipped in the package) with a fixed, ordered list of
learner addresses, and write a deployment record (address, block, parameters) that agents read.

The initial model every learner starts from is either a safetensors file (--initial-model) or the
initial weights of the learners a spec describes: learner 0's weights, which every learner of a spec
shares. The spec is --learner-config, --learner KIND|MODULE:FACTORY, or both, with --learner-option
KEY=VALUE on top; FACTORY(index, n_learners, seed, options) builds each learner. The initial model is put
in the weight store (--store) and its sha256 digest and CID are recorded on chain. The spec, completed
with its factory's defaults, is kept in the record ("learner_config"), so agents rebuild identical
learners without being told it again.

The deployer signs with the keystore given by --keystore (password in ${ENV_KEYSTORE_PASSWORD}) or with
the key in ${ENV_PRIVATE_KEY}; it needs no other role in the consortium. The chain is --rpc, else
${ENV_RPC_URL} (better for a URL with an API key: it stays out of the shell history and process list).
--out is checked for writing before anything is deployed.
"""

EPILOG = """\
example:
  colearn-chain deploy --rpc http://127.0.0.1:8545 --learners 0xA..,0xB..,0xC.. --threshold 0.5 \\
      --proposal-timeout 30 --voting-timeout 30 --learner-config '{"kind": "toy", "seed": 0}' \\
      --store ./blobs --out deployment.json
  colearn-chain deploy ... --learner examples.centroid:make_learner --learner-option seed=1 --store ./blobs \\
      --out deployment.json
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "deploy",
        help="deploy the contract and write a deployment record",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_rpc_option(parser)
    parser.add_argument("--learners", required=True, metavar="A,B,C",
                        help="comma-separated learner addresses, in proposing order (epoch e: learner e %% n)")
    parser.add_argument("--threshold", type=float, default=0.5, metavar="FRACTION",
                        help="fraction of voters that must approve, in (0, 1] (default 0.5, the seed's)")
    parser.add_argument("--proposal-timeout", type=positive_int, required=True, metavar="S",
                        help="seconds the proposer has before anyone may skip the epoch")
    parser.add_argument("--voting-timeout", type=positive_int, required=True, metavar="S",
                        help="seconds the voters have, from the proposal, before anyone may close the epoch")
    parser.add_argument("--colearn-variant", action="store_true",
                        help="colearn 0.2.8's rule: the proposer does not vote, threshold over n - 1 voters "
                        "(default: the seed's rule, everyone votes, threshold over n)")
    initial = parser.add_argument_group("the initial model: --initial-model, or a learner spec whose learner 0 "
                                        "gives it (--learner-config and/or --learner, with --learner-option)")
    initial.add_argument("--initial-model", type=Path, metavar="FILE.safetensors",
                         help="the initial weights as a safetensors file (no learner spec is recorded)")
    initial.add_argument("--learner-config", metavar="JSON",
                         help="a learner spec (inline JSON or a JSON file), e.g. '{\"kind\": \"toy\", \"seed\": 0}'; "
                         "n_learners defaults to the number of learners")
    add_learner_options(parser, default_from="the kind of --learner-config")
    add_data_options(parser, data_help="own data instead of a bundled data set (the numpy learner): a file like the "
                     "ones the agents will bring (NPZ with x and y, or CSV with a label column), whose features and "
                     "classes set the model's shape (n_features, n_classes: pass --learner-option n_classes=K when "
                     "this file lacks some) and whose training part gives the published feature scaler. The record "
                     "keeps those, not the file's path: each agent brings its own --data")
    parser.add_argument("--store", required=True, metavar="URL",
                        help="weight store for the initial model: a directory (local:PATH) or a Kubo API "
                        "(http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001/http)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="deployment record to write (JSON)")
    add_key_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        learners = [Web3.to_checksum_address(a.strip()) for a in args.learners.split(",") if a.strip()]
    except ValueError as error:
        log.error("--learners: %s", error)
        return 2
    extra: dict[str, object] = {}
    try:
        rpc_url = rpc_from(args)
        check_writable_file(args.out, "--out")
        account = account_from(args)  # a missing key or a wrong password (WalletError) stops here too
        threshold_bps = threshold_to_bps(args.threshold)
        base = None if args.learner_config is None else load_learner_config(args.learner_config)
        spec = learner_spec_from(args, base)
        if (args.initial_model is None) == (spec is None):
            raise ValueError("give either --initial-model or a learner spec (--learner-config, --learner)")
        if args.initial_model is not None:
            blob = args.initial_model.read_bytes()
            decode_weights(blob)  # refuse a file that agents could not decode
        else:
            assert spec is not None
            spec.setdefault("n_learners", len(learners))
            if args.data is not None:
                n_classes = spec.get("n_classes")
                spec.update(own_data_options(
                    args.data, n_learners=1, seed=int(spec.get("seed", 0)), label_column=args.label_column,
                    n_classes=None if n_classes is None else int(n_classes),
                ))
            config = complete_spec(spec)  # recorded complete: every agent rebuilds the same learners
            blob = encode_weights(make_learner(config, 0).current_weights())
            extra["learner_config"] = {**config, "data": None} if args.data is not None else config
        store = from_url(args.store)
        extra["store"] = store.describe()  # where the initial model was put; informative only, never read back
        cid = store.put(blob)
    except (OSError, ValueError) as error:
        log.error("%s", error)
        return 2
    digest = digest_hex(blob)
    log.info("initial model: %d bytes, digest %s, cid %s in %s", len(blob), digest, cid, store.describe())

    client = ChainClient(rpc_url, account)
    try:
        deployment = client.deploy(
            learners,
            threshold_bps,
            args.proposal_timeout,
            args.voting_timeout,
            not args.colearn_variant,
            digest,
            cid,
            extra=extra,
        )
    except Web3Exception as error:  # the node refused the transaction: most often an unfunded deployer
        raise ColearnChainError(
            f"the deployment was refused by {redact_url(rpc_url)}: {error}; the deployer {client.sender} has "
            f"{_balance(client)} on it: fund that address or sign with another key"
        ) from error
    try:
        deployment.save(args.out)
    except OSError as error:  # checked writable above, but the disk may still fill or the folder vanish
        print(json.dumps(deployment.to_json(), indent=2))  # the record itself, for the user to save
        raise ColearnChainError(
            f"the contract IS deployed at {deployment.address} (block {deployment.block}, tx "
            f"{deployment.tx_hash}, chain {deployment.chain_id}), but its record could not be written to "
            f"{args.out}: {error}; the record is printed on standard output: save it as the deployment file "
            "and do not deploy again"
        ) from error
    log.info("deployment record written to %s", args.out)
    print(deployment.address)
    return 0


def _balance(client: ChainClient) -> str:
    """The deployer's balance for an error message ("an unknown balance" when the node will not say)."""
    try:
        wei = int(client.w3.eth.get_balance(client.account.address))
    except Exception:  # noqa: BLE001 - only ever part of an error message already being reported
        return "an unknown balance"
    return f"{Web3.from_wei(wei, 'ether')} ETH ({wei} wei)"
