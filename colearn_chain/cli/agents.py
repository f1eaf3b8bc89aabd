"""`colearn-chain agents`: several learners' agents in one process (what `run --agents-per-process` starts).

Why: a process per learner costs an interpreter, a learner build and a follower of the chain each; a
hundred of them do not fit on two cores. Here each agent is the same :class:`~colearn_chain.agent.Agent`
as in `colearn-chain agent`, on its own thread, with its own key, client (so its own transactions and
nonces), state directory and log file (``agent.log`` in its state directory); they share one
:class:`~colearn_chain.chain.follow.ChainFollower` (one subscription to new heads, one read of the
contract's logs per new block) and the process's memoised learner data.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from eth_account.signers.local import LocalAccount

from ..agent import Agent
from ..wallet import ENV_KEYSTORE_PASSWORD, ENV_PRIVATE_KEYS, WalletError, accounts_from_keys, load_account
from ._logging import FORMAT, EscapingFilter
from .agent import AgentSetupError, add_agent_options, build_agent, follower_for, prepare, settings_from
from .calls import write_rpc_calls

log = logging.getLogger(__name__)


DESCRIPTION = f"""\
Run several learners' agents in one process, each exactly as `colearn-chain agent` runs one: its own key
(--keystore, repeated, with the password in ${ENV_KEYSTORE_PASSWORD}; or the keys, comma-separated, in
${ENV_PRIVATE_KEYS}), its own transactions, its own state directory (--state-root/learner-INDEX) and its
own log (agent.log there). They share one follower of the chain. Exit status: 0 when every agent
reached --until-epoch (or on SIGTERM/SIGINT), 2 when any stopped on an error.
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "agents", help="run several learners' agents in one process (for simulations)", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keystore", action="append", type=Path, default=[], metavar="FILE",
                        help=f"a learner's keystore (repeatable); without any, keys come from ${ENV_PRIVATE_KEYS}")
    parser.add_argument("--state-root", required=True, type=Path, metavar="DIR",
                        help="each agent keeps its models and log in DIR/learner-INDEX")
    add_agent_options(parser)
    parser.set_defaults(func=run)


def _accounts(keystores: list[Path]) -> list[LocalAccount]:
    """The agents' accounts, each address once: two agents of one key would share a state directory and
    race each other's nonces."""
    if keystores:
        accounts = [load_account(path) for path in keystores]
    else:
        accounts = accounts_from_keys(os.environ.get(ENV_PRIVATE_KEYS, ""), ENV_PRIVATE_KEYS)
    if not accounts:
        raise WalletError(f"no keys: pass --keystore FILE (repeatable) or set ${ENV_PRIVATE_KEYS}")
    addresses = [account.address for account in accounts]
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    if twice:
        given = "--keystore files" if keystores else f"keys in ${ENV_PRIVATE_KEYS}"
        raise WalletError(f"the {given} name {', '.join(twice)} more than once: give each learner's key once")
    return accounts


class _ThreadLog(logging.Filter):
    """Passes the records of one agent's thread and of the jobs it started (named after it)."""

    def __init__(self, thread_name: str) -> None:
        super().__init__()
        self.thread_name = thread_name

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.threadName or ""
        return name == self.thread_name or name.startswith(self.thread_name + ":")


def _own_log(path: Path, thread_name: str) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_ThreadLog(thread_name))
    handler.addFilter(EscapingFilter())
    logging.getLogger().addHandler(handler)
    return handler


def run(args: argparse.Namespace) -> int:
    try:
        rpc_url, deployment, config = prepare(args)
        accounts = _accounts(args.keystore)
        follower = follower_for(args, rpc_url, deployment)
        settings = settings_from(args, deployment)
        agents: list[tuple[int, Agent, Path]] = []
        for account in accounts:
            # The learner index comes from the chain; the state directory is named after it.
            index, agent = build_agent(rpc_url, deployment, config, account, lambda i: args.state_root / f"learner-{i}",
                                       args.store, settings, follower)
            agents.append((index, agent, args.state_root / f"learner-{index}"))
    except AgentSetupError as error:
        log.error("%s", error)
        return 2

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping every agent after its current step", signum)
        for _, agent, _ in agents:
            agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    codes: dict[int, int] = {}

    def _run_one(index: int, agent: Agent) -> None:
        try:
            codes[index] = agent.run()
        except Exception:  # one agent's failure is its own: the others go on
            log.exception("agent of learner %d stopped on an error", index)
            codes[index] = 2

    threads = []
    handlers = []
    with follower:
        for index, agent, state_dir in agents:
            name = f"learner-{index}"
            handlers.append(_own_log(state_dir / "agent.log", name))
            log.info("agent for learner %d (%s) of %s, state %s", index, agent.me, deployment.address, state_dir)
            thread = threading.Thread(target=_run_one, args=(index, agent), name=name, daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            while thread.is_alive():  # join in slices: the main thread must stay free to take signals
                thread.join(timeout=0.5)
    for (_, agent, state_dir) in agents:
        write_rpc_calls(state_dir, agent, follower, len(agents))
    for handler in handlers:
        logging.getLogger().removeHandler(handler)
        handler.close()
    failed = sorted(i for i, code in codes.items() if code != 0)
    if failed:
        log.error("agents of learners %s stopped on errors; see their agent.log", failed)
        return 2
    return 0
