"""Options shared by several subcommands: the signing key and the learner spec."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ..chain.connection import ENV_RPC_URL
from ..learners.registry import parse_learner_options
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


def add_learner_options(parser: argparse.ArgumentParser, *, default_from: str) -> None:
    """--learner and repeated --learner-option, which build or amend a learner spec."""
    parser.add_argument(
        "--learner", metavar="KIND|MODULE:FACTORY",
        help="the learner's factory: a registered kind (bundled: numpy, toy) or your own MODULE:FACTORY, called "
        "as FACTORY(index, n_learners, seed, options) and returning a MachineLearningInterface "
        f"(default: {default_from})",
    )
    parser.add_argument(
        "--learner-option", action="append", default=[], metavar="KEY=VALUE",
        help="an option for the factory (repeatable; over the spec's own): VALUE is parsed as JSON when it parses "
        "(5, 0.1, true, [1,2]), else taken as a string; n_learners and seed set the spec's own",
    )


def learner_spec_from(args: argparse.Namespace, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """The learner spec ``base`` amended by --learner and --learner-option; None when there is none at all.

    A --learner naming another factory than ``base`` keeps only its n_learners and seed: the other
    factory's options are its own. ValueError on a malformed option.
    """
    options = parse_learner_options(args.learner_option)
    if args.learner is None and base is None:
        if options:
            raise ValueError("--learner-option without a learner: pass --learner (or a learner config)")
        return None
    spec = dict(base or {})
    if args.learner is not None and args.learner != spec.get("kind"):
        spec = {k: spec[k] for k in ("n_learners", "seed") if k in spec}
        spec["kind"] = args.learner
    spec.update(options)
    return spec


def add_data_options(parser: argparse.ArgumentParser, *, data_help: str) -> None:
    """--data FILE and --label-column: a learner's own data (the numpy learner's options data, label_column)."""
    parser.add_argument("--data", type=Path, metavar="FILE", help=data_help)
    parser.add_argument("--label-column", metavar="NAME",
                        help="the CSV column holding the labels (default: the one named label, else the last)")
