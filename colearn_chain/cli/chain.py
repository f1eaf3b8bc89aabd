"""`colearn-chain chain`: start a local development chain on a fixed loopback port and keep it up.

Why: brownie attaches to whatever answers on a development network's port, but cannot launch geth itself
(its `geth-dev` preset starts `ethnode` with no arguments, and geth --dev has no evm_snapshot for brownie's
test isolation). This starts the chain exactly as `colearn-chain run --chain` does (the same node classes:
RPC on 127.0.0.1, geth with its peer-to-peer side off) on the port a brownie network names, until stopped.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from ..services.anvil import ServiceError
from ..services.chains import CHAINS, block_time_problem, chain_node
from ..services.geth import DEFAULT_PERIOD, GethNode
from ._options import port

log = logging.getLogger(__name__)

#: brownie's development networks (anvil, ganache-cli, geth-dev) expect their node on this port.
BROWNIE_PORT = 8545

DESCRIPTION = f"""\
Start a local development chain with its RPC on 127.0.0.1:--port (default {BROWNIE_PORT}, where brownie's
development networks look) and keep it up until Ctrl-C or SIGTERM; its data goes with it. geth runs its dev
mode (chain id 1337, a block every {DEFAULT_PERIOD} s unless --block-time, WebSocket on a port of its own, no
peers, no discovery) with the same well-known funded dev key as Anvil. For brownie:
  colearn-chain chain --chain geth &
  brownie run scripts/deploy.py main MODEL.safetensors --network geth-dev
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chain", help="start a local chain on a fixed loopback port (for brownie)", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--chain", choices=CHAINS, default="geth", help="the chain client (default geth)")
    parser.add_argument("--port", type=port, default=BROWNIE_PORT, metavar="N",
                        help=f"the RPC port on 127.0.0.1 (default {BROWNIE_PORT}; 0: a free one, printed)")
    parser.add_argument("--block-time", type=block_time, default=None, metavar="S",
                        help=f"a block every S seconds (default: per transaction on anvil and ganache, "
                             f"{DEFAULT_PERIOD} s on geth, which takes whole seconds only)")
    parser.set_defaults(func=run)


def block_time(text: str) -> float:
    """--block-time's type: a number of seconds above 0 (a usage error names the value otherwise)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    problem = block_time_problem(seconds)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return seconds


def run(args: argparse.Namespace) -> int:
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        with chain_node(args.chain, block_time=args.block_time, port=args.port) as node:
            extra = f", WebSocket {node.ws_url}" if isinstance(node, GethNode) else ""
            print(f"{node.name} on {node.url} (chain id {node.chain_id}{extra}); Ctrl-C stops it", flush=True)
            stopping.wait()
    except (ServiceError, ValueError) as error:
        log.error("%s", error)
        return 2
    return 0
