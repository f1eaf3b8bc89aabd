"""The `colearn-chain` command line. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from ..exceptions import ColearnChainError
from ._logging import setup_logging

#: Subcommand modules under colearn_chain.cli, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = ("run", "wallet", "deploy", "agent", "agents", "status", "explorer", "verify", "ipfs-node",
                             "chain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colearn-chain",
        description="Collective learning driven by a smart contract: deploy, run agents, inspect epochs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # ipfshttpclient 0.8 passes urllib3 an argument it deprecated: a warning on every run's output that
    # tells a user nothing they can act on (tests filter it likewise, in pyproject.toml).
    warnings.filterwarnings("ignore", message="The 'strict' parameter", category=FutureWarning)
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except ColearnChainError as exc:
        logging.getLogger("colearn_chain").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
