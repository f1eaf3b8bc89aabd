"""`colearn-chain explorer`: serve the explorer page for a contract on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..exceptions import ColearnChainError
from ..explorer.server import start_server
from ._options import interval, port
from .status import add_source_args, open_history

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explorer",
        help="serve a live explorer page for a contract on 127.0.0.1",
        description="Serve the contract's epochs, votes, scores and transactions as a live web page (loopback only).",
    )
    add_source_args(parser)
    parser.add_argument("--port", type=port, default=8765, metavar="N",
                        help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
    parser.add_argument("--no-gas", action="store_true", help="skip the receipts (faster on a slow public RPC)")
    parser.add_argument("--poll", type=interval, default=1.0, metavar="SECONDS",
                        help="seconds between reads of new blocks, 0.05 to 3600 (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    history = open_history(args, gas=False)
    history.gas = not args.no_gas
    try:
        server = start_server(history, port=args.port, poll_interval=args.poll)
    except OSError as exc:
        raise ColearnChainError(f"cannot listen on 127.0.0.1:{args.port}: {exc}") from exc
    log.info("explorer for %s at %s (Ctrl-C to stop)", history.address, server.url)
    try:
        server.stopping.wait()
    except KeyboardInterrupt:  # the normal way to stop a foreground server
        log.info("stopping")
    finally:
        server.stop()
    return 0
