"""`colearn-chain agent`: run one learner's agent as its own process until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3Exception

from ..agent import Agent, AgentSettings, StateDir
from ..chain.client import ChainClient
from ..chain.deployment import Deployment
from ..chain.follow import ChainFollower
from ..codec import DEFAULT_MAX_BLOB_BYTES
from ..exceptions import ColearnChainError
from ..learners import make_learner
from ..store import from_url
from ..text import redact_in, redact_url
from ..wallet import ENV_KEYSTORE_PASSWORD, ENV_PRIVATE_KEY
from ._options import (
    account_from,
    add_data_options,
    add_key_options,
    add_learner_options,
    add_rpc_option,
    interval,
    learner_spec_from,
    load_learner_config,
    non_negative_int,
    positive_int,
    rpc_from,
)
from .calls import write_rpc_calls

log = logging.getLogger(__name__)

#: The variable an agent may read its WebSocket URL from (like the RPC URL, it may carry an API key).
ENV_WS_URL = "COLEARN_WS_URL"

DESCRIPTION = f"""\
Run one learner in the collective-learning protocol. The agent signs with its own key (--keystore with
the password in ${ENV_KEYSTORE_PASSWORD}, or the key in ${ENV_PRIVATE_KEY}); its learner index is the
position of that address in the contract's learner list, and its learner is built for that index from
the learner spec in the deployment record (or --learner-config), amended by --learner and
--learner-option: FACTORY(index, n_learners, seed, options). A learner that breaks the learner
interface (wrong return type, a proposal or test that changes its current weights, weights whose names,
shapes or dtypes change) is named in the log with the method and what was wrong: a broken test is a
reject vote with that reason, a broken proposal is not sent (the epoch is skipped). --data FILE gives
the numpy learner this member's own data (see --data below).

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
    add_key_options(parser)
    parser.add_argument("--state-dir", required=True, type=Path, metavar="DIR",
                        help="where the agent keeps every model it adopted (current.json names the current one)")
    add_agent_options(parser)
    parser.set_defaults(func=run)


def add_agent_options(parser: argparse.ArgumentParser) -> None:
    """The options `agent` and `agents` share (all but the key and the state directory)."""
    add_rpc_option(parser)
    parser.add_argument("--deployment", required=True, type=Path, metavar="FILE",
                        help="deployment record written by `colearn-chain deploy`")
    parser.add_argument("--store", required=True, metavar="URL_OR_DIR",
                        help="weight store: a directory (local:PATH) or a Kubo API, best your own node "
                        "(http://127.0.0.1:5001; see `colearn-chain ipfs-node`)")
    parser.add_argument("--learner-config", metavar="JSON_FILE",
                        help="learner spec (JSON file or inline JSON: {\"kind\": ..., \"n_learners\": ..., "
                        "\"seed\": ..., options}); default: the one in the deployment record")
    add_learner_options(parser, default_from="the kind of the learner spec")
    add_data_options(parser, data_help="this learner's own data: NPZ with arrays x (rows x features) and y (class "
                     "numbers 0, 1, ...), or CSV with a header and a label column; it is checked, then cut into train, "
                     "vote and test parts. Its features and classes must fit the consortium's n_features and "
                     "n_classes in the learner spec (the numpy learner's option data)")
    parser.add_argument("--confirmations", type=non_negative_int, default=0, metavar="N",
                        help="act only on events N blocks deep, so a short reorganisation cannot make the agent "
                        "act on a vanished event (default 0; use a few on a testnet). N > 0 needs a chain that keeps "
                        "making blocks: with Anvil's instant mining nothing would ever become deep enough")
    parser.add_argument("--until-epoch", type=non_negative_int, metavar="N",
                        help="exit 0 once epoch N has started and every earlier accepted model is adopted")
    parser.add_argument("--poll-interval", type=interval, default=0.2, metavar="S",
                        help="seconds between polls of the chain, 0.05 to 3600 (default 0.2)")
    parser.add_argument("--max-blob-bytes", type=positive_int, default=DEFAULT_MAX_BLOB_BYTES, metavar="BYTES",
                        help=f"largest proposal blob to fetch and decode (default {DEFAULT_MAX_BLOB_BYTES})")
    parser.add_argument("--ws", metavar="URL", default=None,
                        help=f"WebSocket endpoint for new blocks (default: ${ENV_WS_URL}, else the RPC URL's host and "
                        "port, where Anvil serves both; geth serves it on its --ws.port)")
    parser.add_argument("--no-websocket", action="store_true",
                        help="poll the node over HTTP for new blocks instead of subscribing to them over WebSocket "
                        "(the agent falls back to polling by itself when the node serves no WebSocket)")


class AgentSetupError(ColearnChainError):
    """Raised when an agent cannot be set up: no endpoint, a bad deployment record, not a learner."""


def prepare(args: argparse.Namespace) -> tuple[str, Deployment, dict[str, Any]]:
    """The RPC URL, the deployment record and the learner config the agent command's arguments name."""
    try:
        rpc_url = rpc_from(args)
        deployment = Deployment.load(args.deployment)
        if args.learner_config is not None:
            base: dict[str, Any] | None = load_learner_config(args.learner_config)
        elif "learner_config" in deployment.extra:
            base = dict(deployment.extra["learner_config"])
        else:
            base = None
        spec = learner_spec_from(args, base)
        if spec is None:
            raise ValueError("no learner: pass --learner (or --learner-config); the deployment record has none")
        if args.data is not None:
            spec["data"] = str(args.data.resolve())
        if args.label_column is not None:
            spec["label_column"] = args.label_column
        config = spec
    except (OSError, ValueError) as error:
        raise AgentSetupError(str(error)) from error
    return rpc_url, deployment, config


def settings_from(args: argparse.Namespace, deployment: Deployment) -> AgentSettings:
    return AgentSettings(
        poll_interval=args.poll_interval,
        confirmations=args.confirmations,
        until_epoch=args.until_epoch,
        max_blob_bytes=args.max_blob_bytes,
        start_block=deployment.block,
    )


def follower_for(args: argparse.Namespace, rpc_url: str, deployment: Deployment) -> ChainFollower:
    """The process's follower of the chain: new heads over WebSocket unless --no-websocket, else HTTP polls."""
    ws = args.ws or os.environ.get(ENV_WS_URL)
    return ChainFollower(
        rpc_url, deployment.address, start_block=deployment.block, poll_interval=args.poll_interval,
        websocket=False if args.no_websocket else (ws or True),
    )


def build_agent(
    rpc_url: str, deployment: Deployment, config: dict[str, Any], account: LocalAccount,
    state_dir: Callable[[int], Path], store_url: str, settings: AgentSettings, follower: ChainFollower | None,
) -> tuple[int, Agent]:
    """Check that ``account`` is a learner of the deployment on this chain; return its index and its agent
    (whose state directory is ``state_dir(index)``)."""
    try:  # before the chain: a mistyped store is named at once, whatever the chain says
        store = from_url(store_url)
    except (OSError, ValueError) as error:
        raise AgentSetupError(f"--store: {error}") from error
    client = ChainClient(rpc_url, account, deployment.address)
    try:
        chain_id = client.chain_id()
        learners = client.learners()
    except Web3Exception as error:
        # Not transient (ChainClient retried those): the endpoint answers, but not as this chain would.
        raise AgentSetupError(
            f"cannot read the contract {deployment.address} through {redact_url(rpc_url)}: "
            f"{redact_in(str(error), rpc_url)}; "
            "check --rpc and --deployment"
        ) from error
    if chain_id != deployment.chain_id:
        raise AgentSetupError(f"{redact_url(rpc_url)} is chain {chain_id}, the deployment is on chain "
                              f"{deployment.chain_id}")
    if account.address not in learners:
        raise AgentSetupError(f"{account.address} is not a learner of {deployment.address}")
    index = learners.index(account.address)
    config = dict(config)
    n_learners = config.setdefault("n_learners", len(learners))
    if n_learners != len(learners):
        raise AgentSetupError(f"the learner config is for {n_learners} learners, the contract has {len(learners)}")
    try:
        learner = make_learner(config, index)
    except ValueError as error:
        raise AgentSetupError(f"cannot build learner {index}: {error}") from error
    try:
        state = StateDir(state_dir(index))
    except OSError as error:
        raise AgentSetupError(f"cannot use the state directory {state_dir(index)}: {error}; "
                              "name a folder you can write") from error
    return index, Agent(client, store, learner, state, settings, follower)


def run(args: argparse.Namespace) -> int:
    try:
        rpc_url, deployment, config = prepare(args)
        account = account_from(args)
        follower = follower_for(args, rpc_url, deployment)
        index, agent = build_agent(rpc_url, deployment, config, account, lambda _: args.state_dir, args.store,
                                   settings_from(args, deployment), follower)
    except AgentSetupError as error:
        log.error("%s", error)
        return 2

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current step", signum)
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("agent for learner %d (%s) of %s, store %s, state %s",
             index, account.address, deployment.address, agent.store.describe(), args.state_dir)
    with follower:
        code = agent.run()
    write_rpc_calls(args.state_dir, agent, follower, 1)
    return code
