"""Options shared by several subcommands: the signing key, the learner spec, and the checked number types."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ..chain.connection import ENV_RPC_URL
from ..learners.registry import parse_learner_options
from ..wallet import ENV_KEYSTORE_PASSWORD, ENV_PRIVATE_KEY, load_account

# ─────────────────────────────────────────────────────────────── checked numbers
# argparse `type=`s: a bad number stops the command at parse time with argparse's usage line and exit
# status 2, before any chain, store or process is touched.


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """A type for integers in [low, high] (no upper bound when ``high`` is None)."""
    wanted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"want {wanted}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"want {wanted}, got {text!r}")
        return value

    return parse


def float_range(low: float, high: float) -> Callable[[str], float]:
    """A type for finite numbers in [low, high] (never nan or inf)."""
    wanted = f"a number from {low:g} to {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"want {wanted}, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"want {wanted}, got {text!r}")
        return value

    return parse


#: A count, block number or epoch (0 allowed).
non_negative_int = int_range(0)
#: A count that must be at least one (learners, timeouts in seconds, byte limits).
positive_int = int_range(1)
#: A loopback port where 0 asks the system for a free one.
port = int_range(0, 65535)
#: A port that must be named (a fixed port others are told about).
fixed_port = int_range(1, 65535)
#: Seconds between polls, or between blocks: fast enough to matter, never a busy loop or a dead poller.
interval = float_range(0.05, 3600.0)


def check_writable_file(path: Path, option: str) -> None:
    """ValueError unless ``path`` can be written (as a file created beside it and renamed over it).

    Why before the work: a command that spends gas (deploy) must not find out afterwards that it cannot
    keep the record of what it did. Creates the parent folder, as writing the file would.
    """
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory: name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{option} {path} cannot be written ({error}): name a file in a writable folder") from None


# ─────────────────────────────────────────────────────────────── the chain and the key


def add_rpc_option(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """--rpc URL; without it $COLEARN_RPC_URL, then ``default`` (see :func:`rpc_from`)."""
    fallback = f"${ENV_RPC_URL}, else {default}" if default else f"${ENV_RPC_URL}"
    parser.add_argument(
        "--rpc", metavar="URL", default=None,
        help=f"JSON-RPC endpoint of the chain (default: {fallback}; prefer the variable for a URL with an API key)",
    )
    parser.set_defaults(rpc_default=default)


def rpc_from(args: argparse.Namespace) -> str:
    """--rpc, else $COLEARN_RPC_URL, else the option's default; ValueError when none is given."""
    url = args.rpc or os.environ.get(ENV_RPC_URL) or getattr(args, "rpc_default", None)
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
