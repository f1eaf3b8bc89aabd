"""`colearn-chain wallet new`: create a learner's encrypted keystore and print its address."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..wallet import (
    ENV_KEYSTORE_PASSWORD,
    WalletError,
    create_keystore,
    keystore_password,
)

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Create a new random private key and write it to FILE as an encrypted keystore (Web3 Secret Storage,
scrypt; the file is readable by its owner only). Prints the new address: give it to whoever deploys
the contract (`colearn-chain deploy --learners ...`) and fund it so the agent can pay for gas.

The password is read from ${ENV_KEYSTORE_PASSWORD}, else asked for twice on the terminal. The agent
later reads the same variable to unlock the keystore (`colearn-chain agent --keystore FILE`).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "wallet", help="create a learner's keystore", description="Manage a learner's key.",
    )
    actions = parser.add_subparsers(dest="wallet_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="write a new encrypted keystore and print its address",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    new.add_argument("--out", required=True, type=Path, metavar="FILE", help="keystore file to write (must not exist)")
    new.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    new.set_defaults(func=run_new)


def _password() -> str:
    password = keystore_password(confirm=True)
    if password is None:
        raise WalletError(f"set {ENV_KEYSTORE_PASSWORD} or run at a terminal to type the password")
    return password


def run_new(args: argparse.Namespace) -> int:
    password = _password()
    try:
        address = create_keystore(args.out, password, overwrite=args.force)
    except OSError as error:  # a directory, a missing or read-only folder
        raise WalletError(
            f"cannot write the keystore to --out {args.out}: {error}; name a file you can write"
        ) from error
    print(address)
    return 0
