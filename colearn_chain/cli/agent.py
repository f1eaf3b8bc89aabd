"""`colearn-chain agent`: run one learner's agent as its own process until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from types import FrameType

from web3.exceptions import Web3Exception

from ..agent import Agent, AgentSettings, StateDir
from ..chain.client import ChainClient
from ..chain.deployment import Deployment
from ..codec import DEFAULT_MAX_BLOB_BYTES
from ..learners import make_learner
from ..store import from_url
from ..text import redact_url
from ..wallet import ENV_KEYSTORE_PASSWORD, ENV_PRIVATE_KEY
from ._options import (
    account_from,
    add_key_options,
    add_rpc_option,
    load_learner_config,
    rpc_from,
)

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Run one learner in the collective-learning protocol. The agent signs with its own key (--keystore with
the password in ${ENV_KEYSTORE_PASSWORD}, or the key in ${ENV_PRIVATE_KEY}); its learner index is the
position of that address in the contract's learner list, and its learner is built from the learner
config for that index.

It follows the contract's events: when it is the proposer it trains, puts the encoded weights in the
weight store and proposes their digest and CID; on a proposal it fetches the blob, checks its digest
against the chain, decodes it into its model's shapes and tests it, then votes (a blob that is missing,
tampered with, too large or of the wrong shapes gets a reject vote with the reason logged); on an
accept it adopts the weights and saves them in --state-dir. Any agent closes an epoch whose deadline
has passed. Restarting with the same arguments resumes from the chain's state; it never votes twice.

Every step is logged with its epoch and transaction hash. Exit status: 0 when --until-epoch is reached
(or on SIGTERM/SIGINT), 2 on an error that stops the agent.
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "agent",
        help="run one learner's agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_rpc_option(parser)
    parser.add_argument("--deployment", required=True, type=Path, metavar="FILE",
                        help="deployment record written by `colearn-chain deploy`")
    add_key_options(parser)
    parser.add_argument("--store", required=True, metavar="URL_OR_DIR",
                        help="weight store: a directory (local:PATH) or a Kubo API, best your own node "
                        "(http://127.0.0.1:5001; see `colearn-chain ipfs-node`)")
    parser.add_argument("--learner-config", metavar="JSON_FILE",
                        help="learner config (JSON file or inline JSON); default: the one in the deployment record")
    parser.add_argument("--state-dir", required=True, type=Path, metavar="DIR",
                        help="where the agent keeps every model it adopted (current.json names the current one)")
    parser.add_argument("--confirmations", type=int, default=0, metavar="N",
                        help="act only on events N blocks deep, so a short reorganisation cannot make the agent "
                        "act on a vanished event (default 0; use a few on a testnet). N > 0 needs a chain that keeps "
                        "making blocks: with Anvil's instant mining nothing would ever become deep enough")
    parser.add_argument("--until-epoch", type=int, metavar="N",
                        help="exit 0 once epoch N has started and every earlier accepted model is adopted")
    parser.add_argument("--poll-interval", type=float, default=0.2, metavar="S",
                        help="seconds between polls of the chain (default 0.2)")
    parser.add_argument("--max-blob-bytes", type=int, default=DEFAULT_MAX_BLOB_BYTES, metavar="BYTES",
                        help=f"largest proposal blob to fetch and decode (default {DEFAULT_MAX_BLOB_BYTES})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        rpc_url = rpc_from(args)
        deployment = Deployment.load(args.deployment)
        if args.learner_config is not None:
            config = load_learner_config(args.learner_config)
        elif "learner_config" in deployment.extra:
            config = dict(deployment.extra["learner_config"])
        else:
            raise ValueError("no --learner-config and none in the deployment record")
    except (OSError, ValueError) as error:
        log.error("%s", error)
        return 2
    account = account_from(args)
    client = ChainClient(rpc_url, account, deployment.address)
    try:
        chain_id = client.chain_id()
        learners = client.learners()
    except Web3Exception as error:
        # Not transient (ChainClient retried those): the endpoint answers, but not as this chain would.
        log.error("cannot read the contract %s through %s: %s; check --rpc and --deployment",
                  deployment.address, redact_url(rpc_url), error)
        return 2
    if chain_id != deployment.chain_id:
        log.error("%s is chain %d, the deployment is on chain %d", redact_url(rpc_url), chain_id, deployment.chain_id)
        return 2
    if account.address not in learners:
        log.error("%s is not a learner of %s", account.address, deployment.address)
        return 2
    index = learners.index(account.address)
    n_learners = config.setdefault("n_learners", len(learners))
    if n_learners != len(learners):
        log.error("the learner config is for %s learners, the contract has %d", n_learners, len(learners))
        return 2
    learner = make_learner(config, index)
    store = from_url(args.store)
    settings = AgentSettings(
        poll_interval=args.poll_interval,
        confirmations=args.confirmations,
        until_epoch=args.until_epoch,
        max_blob_bytes=args.max_blob_bytes,
        start_block=deployment.block,
    )
    agent = Agent(client, store, learner, StateDir(args.state_dir), settings)

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current step", signum)
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("agent for learner %d (%s) of %s, store %s, state %s",
             index, account.address, deployment.address, store.describe(), args.state_dir)
    return agent.run()
