"""Keystores: written private (0600), readable with the password from the environment; keys never echoed."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest
from eth_account import Account

from colearn_chain.cli.wallet import run_new
from colearn_chain.wallet import (
    DEV_CHAIN_SCRYPT_N,
    ENV_KEYSTORE_PASSWORD,
    ENV_PRIVATE_KEY,
    WalletError,
    accounts_from_keys,
    create_keystore,
    load_account,
    new_keystore,
)

FAST_SCRYPT = 2**4  # unit tests only: the default cost takes about a second per operation


def test_new_keystore_is_private_and_loads_with_the_password(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "keys" / "learner.json"

    # Execute
    address = create_keystore(path, "secret", iterations=FAST_SCRYPT)
    account = load_account(path, env={ENV_KEYSTORE_PASSWORD: "secret"})

    # Assert
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert account.address == address
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_wrong_password_and_existing_file_are_refused(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "learner.json"
    create_keystore(path, "secret", iterations=FAST_SCRYPT)

    # Execute / Assert
    with pytest.raises(WalletError, match="wrong password"):
        load_account(path, env={ENV_KEYSTORE_PASSWORD: "guess"})
    with pytest.raises(WalletError, match="not set"):
        load_account(path, env={})
    with pytest.raises(WalletError, match="refusing to overwrite"):
        create_keystore(path, "secret", iterations=FAST_SCRYPT)


def test_key_from_the_environment_and_bad_key_message_hides_it() -> None:
    # Prepare
    account = Account.create()
    key = "0x" + bytes(account.key).hex()

    # Execute
    loaded = load_account(env={ENV_PRIVATE_KEY: key})
    with pytest.raises(WalletError) as error:
        load_account(env={ENV_PRIVATE_KEY: key[:-2]})

    # Assert
    assert loaded.address == account.address
    assert key[2:20] not in str(error.value)
    with pytest.raises(WalletError, match="no key"):
        load_account(env={})


def test_dev_chain_keystore_uses_the_light_scrypt_and_loads(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "learner.json"

    # Execute
    account = new_keystore(path, "secret", iterations=DEV_CHAIN_SCRYPT_N)
    loaded = load_account(path, env={ENV_KEYSTORE_PASSWORD: "secret"})

    # Assert: the key written is the key returned, under scrypt at the light cost
    params = json.loads(path.read_text())["crypto"]
    assert params["kdf"] == "scrypt" and params["kdfparams"]["n"] == DEV_CHAIN_SCRYPT_N
    assert loaded.key == account.key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wallet_new_keeps_the_standard_scrypt_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    path = tmp_path / "learner.json"
    monkeypatch.setenv(ENV_KEYSTORE_PASSWORD, "secret")

    # Execute
    code = run_new(argparse.Namespace(out=path, force=False))

    # Assert: eth-account's (and geth's) standard cost, far above the dev-chain one
    assert code == 0
    params = json.loads(path.read_text())["crypto"]
    assert params["kdf"] == "scrypt" and params["kdfparams"]["n"] == 2**18 > DEV_CHAIN_SCRYPT_N


def test_wallet_new_into_a_directory_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: --out names an existing folder, and --force asks to overwrite it
    folder = tmp_path / "keys"
    folder.mkdir()
    monkeypatch.setenv(ENV_KEYSTORE_PASSWORD, "secret")

    # Execute
    with pytest.raises(WalletError) as refused:
        run_new(argparse.Namespace(out=folder, force=True))

    # Assert
    assert f"cannot write the keystore to --out {folder}" in str(refused.value)
    assert "name a file you can write" in str(refused.value)
    assert folder.is_dir() and not list(folder.iterdir())  # no temporary file left behind


def test_accounts_from_keys_names_a_bad_key_by_position_never_by_value() -> None:
    # Arrange
    good = "0x" + "11" * 32
    bad = "0xnot-a-key-but-a-secret"
    # Act
    accounts = accounts_from_keys(f" {good} ,, {good}", "COLEARN_PRIVATE_KEYS")
    with pytest.raises(WalletError) as error:
        accounts_from_keys(f"{good},{bad}", "COLEARN_PRIVATE_KEYS")
    # Assert
    assert [a.address for a in accounts] == [Account.from_key(good).address] * 2
    assert str(error.value) == "key 1 in $COLEARN_PRIVATE_KEYS is not a valid private key"
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(("content", "message"), [
    ("{}", "is not a keystore file (a keystore is a JSON object with a 'crypto' object)"),
    ("[]", "is not a keystore file (a keystore is a JSON object with a 'crypto' object)"),
    ('{"crypto": "x"}', "is not a keystore file (a keystore is a JSON object with a 'crypto' object)"),
    ('{"version": 3, "crypto": {"kdf": "scrypt"}}', "is not a keystore file (missing or malformed field: "
                                                    "KeyError('kdfparams'))"),
    ('{"crypto": {"kdf": "scrypt"}}', "is not a keystore file (missing or malformed field: KeyError('version'))"),
    ('{"version": 3, "crypto": {"kdf": "scrypt", "kdfparams": []}}', "is not a keystore file"),
    ("{not json", "cannot read keystore"),
    pytest.param("[" * 100_000, "cannot read keystore", id="nested-too-deep"),
])
def test_a_file_that_is_not_a_keystore_is_refused_naming_it(tmp_path: Path, content: str, message: str) -> None:
    # Prepare
    path = tmp_path / "learner.json"
    path.write_text(content)
    # Execute
    with pytest.raises(WalletError) as error:
        load_account(path, env={ENV_KEYSTORE_PASSWORD: "secret"})
    # Assert
    assert str(path) in str(error.value) and message in str(error.value)


@pytest.mark.parametrize("key", ["0x" + "ff" * 32, "0x" + "00" * 32, "0x" + "ff" * 16 + "fe" + "ff" * 15])
def test_a_private_key_outside_the_curve_is_refused_and_never_quoted(key: str) -> None:
    # Execute / Assert
    with pytest.raises(WalletError) as error:
        load_account(env={ENV_PRIVATE_KEY: key})
    with pytest.raises(WalletError, match=r"key 1 in \$K is not a valid private key"):
        accounts_from_keys(f"{'0x' + '11' * 32},{key}", "K")
    assert str(error.value) == f"{ENV_PRIVATE_KEY} is not a valid private key (0x and 64 hex digits, not zero)"


def test_a_keystore_of_the_zero_key_is_refused(tmp_path: Path) -> None:
    # Prepare: a well-formed keystore, but of a key whose address anybody can compute
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(Account.encrypt(b"\0" * 32, "secret", kdf="scrypt", iterations=FAST_SCRYPT)))
    # Execute / Assert
    with pytest.raises(WalletError, match=f"keystore {path} holds no valid private key"):
        load_account(path, env={ENV_KEYSTORE_PASSWORD: "secret"})
