"""A learner's own key: a new encrypted keystore, or a key loaded from a keystore or the environment.

Why here and not in the agent: the key must come from the learner (never an unlocked node account),
and only two ways are offered, both usual for Ethereum tools: an encrypted keystore (Web3 Secret
Storage, scrypt) whose password is in ``COLEARN_KEYSTORE_PASSWORD`` (or typed once, hidden, at a
terminal), or the raw key in ``COLEARN_PRIVATE_KEY`` (handy on a local chain). Nothing in this module
ever logs a key or a password, and no password is ever written to a file.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ._files import atomic_write
from .exceptions import ColearnChainError
from .text import printable

__all__ = [
    "DEV_CHAIN_SCRYPT_N",
    "ENV_KEYSTORE_PASSWORD",
    "ENV_PRIVATE_KEY",
    "ENV_PRIVATE_KEYS",
    "WalletError",
    "accounts_from_keys",
    "create_keystore",
    "keystore_password",
    "load_account",
    "load_keystore",
    "new_keystore",
]

log = logging.getLogger(__name__)

#: Environment variable holding the keystore password.
ENV_KEYSTORE_PASSWORD: Final[str] = "COLEARN_KEYSTORE_PASSWORD"
#: Environment variable holding a raw private key (0x-prefixed hex), used when no keystore is given.
ENV_PRIVATE_KEY: Final[str] = "COLEARN_PRIVATE_KEY"
#: Environment variable holding several raw private keys, comma-separated: the agents of one process.
ENV_PRIVATE_KEYS: Final[str] = "COLEARN_PRIVATE_KEYS"
#: scrypt, as geth and eth-account default to; the cost parameter is eth-account's default (2**18).
KDF: Final[Literal["scrypt"]] = "scrypt"
#: scrypt's cost for keys made for a local development chain (worthless outside it): about a millisecond
#: instead of about two seconds per key, so a hundred learners' keystores are made (and read) at once.
#: `wallet new` never uses it.
DEV_CHAIN_SCRYPT_N: Final[int] = 2**10
#: The order of secp256k1's group: a private key is a number from 1 to this minus one.
_CURVE_ORDER: Final[int] = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class WalletError(ColearnChainError):
    """Raised when a key cannot be created or loaded (missing file or variable, wrong password, bad key)."""


def _account_of(key: str | bytes) -> LocalAccount | None:
    """The account of the private ``key``, or None if it is not one (never an error that may quote the key).

    Why not eth-account's own check alone: it takes the zero key (whose "address" is public knowledge)
    and refuses one above the curve order with a bare ``Exception``.
    """
    try:
        account: LocalAccount = Account.from_key(key)
    except Exception:  # noqa: BLE001 - eth-keys/coincurve raise bare Exception("Invalid privkey") too
        return None
    return account if 0 < int.from_bytes(bytes(account.key), "big") < _CURVE_ORDER else None


def keystore_password(
    *, confirm: bool = False, env: Mapping[str, str] | None = None, what: str = "keystore password"
) -> str | None:
    """The keystore password: ``COLEARN_KEYSTORE_PASSWORD``, else asked once with hidden input at a terminal.

    ``confirm`` asks twice (for a new keystore). None when the variable is unset and no one can be
    asked (no terminal on stdin): the caller decides whether that is an error.
    """
    env = os.environ if env is None else env
    password = env.get(ENV_KEYSTORE_PASSWORD)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass(f"{what}: ")
    if confirm and first != getpass.getpass("repeat it: "):
        raise WalletError("the passwords differ")
    return first


def new_keystore(
    path: Path | str, password: str, *, overwrite: bool = False, iterations: int | None = None
) -> LocalAccount:
    """Create a new random key, write it encrypted to ``path`` (mode 0600) and return its account.

    ``iterations`` is scrypt's cost parameter ``n`` (eth-account's default when None); a local
    development chain's throwaway keys use :data:`DEV_CHAIN_SCRYPT_N`, tests may lower it further.
    The caller gets the account itself, so a key just made is never decrypted again in this process.
    """
    if not password:
        raise WalletError("refusing to write a keystore with an empty password")
    path = Path(path)
    if path.exists() and not overwrite:
        raise WalletError(f"{path} exists; refusing to overwrite a keystore")
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, password, kdf=KDF, iterations=iterations)
    # Written under a private temporary name (0600 from its first byte) and renamed into place.
    atomic_write(path, json.dumps(keystore).encode(), mode=0o600)
    log.info("wrote keystore %s for %s", path, account.address)
    return account


def create_keystore(path: Path | str, password: str, *, overwrite: bool = False, iterations: int | None = None) -> str:
    """Like :func:`new_keystore`, returning the new key's address (what `wallet new` prints)."""
    return str(new_keystore(path, password, overwrite=overwrite, iterations=iterations).address)


def load_keystore(path: Path | str, password: str) -> LocalAccount:
    """Decrypt the keystore at ``path``."""
    try:
        keystore = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # ValueError: not JSON, or not UTF-8
        raise WalletError(f"cannot read keystore {path}: {printable(error)}") from error
    if not isinstance(keystore, dict) or not isinstance(keystore.get("crypto", keystore.get("Crypto")), dict):
        raise WalletError(f"{path} is not a keystore file (a keystore is a JSON object with a 'crypto' object)")
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as error:  # eth-account: "MAC mismatch" for a wrong password
        raise WalletError(f"cannot decrypt keystore {path}: wrong password or damaged file") from error
    except (KeyError, TypeError, AttributeError, IndexError, NotImplementedError) as error:
        # eth-keyfile reads the fields it needs without checking them first.
        raise WalletError(f"{path} is not a keystore file (missing or malformed field: {error!r}); "
                          "give a Web3 Secret Storage keystore, as `colearn-chain wallet new` writes") from error
    account = _account_of(key)
    if account is None:
        raise WalletError(f"keystore {path} holds no valid private key")
    return account


def load_account(keystore: Path | str | None = None, *, env: Mapping[str, str] | None = None) -> LocalAccount:
    """The learner's account: from ``keystore`` with the password in the environment, else the key in it."""
    env = os.environ if env is None else env
    if keystore is not None:
        password = keystore_password(env=env, what=f"password of {keystore}")
        if password is None:
            raise WalletError(
                f"keystore {keystore} given but {ENV_KEYSTORE_PASSWORD} is not set (and no terminal to ask)"
            )
        return load_keystore(keystore, password)
    key = env.get(ENV_PRIVATE_KEY)
    if not key:
        raise WalletError(f"no key: pass a keystore (password in {ENV_KEYSTORE_PASSWORD}) or set {ENV_PRIVATE_KEY}")
    account = _account_of(key.strip())
    if account is None:
        # The message of eth-keys' error may quote the input: never pass it on.
        raise WalletError(f"{ENV_PRIVATE_KEY} is not a valid private key (0x and 64 hex digits, not zero)")
    return account


def accounts_from_keys(text: str, variable: str) -> list[LocalAccount]:
    """The accounts of the comma-separated private keys ``text`` (read from the environment ``variable``).

    A bad key is named by its position only: the message of eth-keys' error may quote the input.
    """
    accounts = []
    for i, key in enumerate(k.strip() for k in text.split(",") if k.strip()):
        account = _account_of(key)
        if account is None:
            raise WalletError(f"key {i} in ${variable} is not a valid private key")
        accounts.append(account)
    return accounts
