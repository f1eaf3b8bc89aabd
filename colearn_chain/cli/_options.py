"""Options shared by several subcommands: the signing key and the learner config."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ..chain.connection import ENV_RPC_URL
from ..wallet import ENV_KEYSTORE_PASSWORD, ENV_PRIVATE_KEY, load_account


def add_rpc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rpc", metavar="URL", default=None,
        help=f"JSON-RPC endpoint of the chain (default: ${ENV_RPC_URL}; prefer the variable for a URL with an API key)",
    )


def rpc_from(args: argparse.Namespace) -> str:
    """--rpc, else $COLEARN_RPC_URL; ValueError when neither is given."""
    url = args.rpc or os.environ.get(ENV_RPC_URL)
    if not url:
        raise ValueError(f"no JSON-RPC endpoint: pass --rpc URL or set ${ENV_RPC_URL}")
    return str(url)


def add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keystore",
        metavar="FILE",
        type=Path,
        help=f"encrypted keystore (password in ${ENV_KEYSTORE_PASSWORD}); without it the key is read "
        f"from ${ENV_PRIVATE_KEY}",
    )


def account_from(args: argparse.Namespace) -> LocalAccount:
    return load_account(args.keystore)


def load_learner_config(value: str) -> dict[str, Any]:
    """A learner config from inline JSON (starting with '{') or from a JSON file."""
    text = value if value.lstrip().startswith("{") else Path(value).read_text()
    config = json.loads(text)
    if not isinstance(config, dict):
        raise ValueError(f"learner config must be a JSON object, got {type(config).__name__}")
    return config
