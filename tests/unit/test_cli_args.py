"""The CLI refuses a bad number, port or path before it touches a chain, a store or a process.

Each bad value must stop the command with exit status 2 and a message naming the option and what it
wants, never a traceback, a busy loop or a crash after gas was spent.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from colearn_chain.chain.connection import ENV_RPC_URL
from colearn_chain.cli import build_parser, main
from colearn_chain.cli._options import rpc_from
from colearn_chain.cli.agents import _accounts
from colearn_chain.wallet import ENV_PRIVATE_KEYS, WalletError

KEY = "0x" + "11" * 32
DEPLOY = ["deploy", "--learners", "0x" + "12" * 20, "--proposal-timeout", "10", "--voting-timeout", "10",
          "--learner", "toy"]
SOURCE = ["--contract", "0x" + "12" * 20]
AGENT = ["agent", "--deployment", "d.json", "--store", "local:s", "--state-dir", "st"]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's message for ``argv``, which must be a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "option", "wanted"),
    [
        (["explorer", *SOURCE, "--port", "70000"], "--port", "an integer from 0 to 65535"),
        (["explorer", *SOURCE, "--port", "-1"], "--port", "an integer from 0 to 65535"),
        (["explorer", *SOURCE, "--poll", "0"], "--poll", "a number from 0.05 to 3600"),
        (["explorer", *SOURCE, "--poll", "-1"], "--poll", "a number from 0.05 to 3600"),
        (["explorer", *SOURCE, "--poll", "nan"], "--poll", "a number from 0.05 to 3600"),
        (["explorer", *SOURCE, "--poll", "inf"], "--poll", "a number from 0.05 to 3600"),
        (["explorer", *SOURCE, "--from-block", "-5"], "--from-block", "an integer >= 0"),
        (["status", *SOURCE, "--from-block", "-5"], "--from-block", "an integer >= 0"),
        (["status", *SOURCE, "--last", "-1"], "--last", "an integer >= 0"),
        (["run", "--explorer", "--explorer-port", "70000"], "--explorer-port", "an integer from 0 to 65535"),
        (["run", "--epochs", "-1"], "--epochs", "an integer >= 0"),
        (["run", "--learners", "0"], "--learners", "an integer >= 1"),
        (["run", "--agents-per-process", "0"], "--agents-per-process", "an integer >= 1"),
        (["run", "--proposal-timeout", "0"], "--proposal-timeout", "an integer >= 1"),
        (["run", "--seed", "-3"], "--seed", "an integer >= 0"),
        ([*DEPLOY[:4], "-1", *DEPLOY[5:]], "--proposal-timeout", "an integer >= 1"),
        ([*DEPLOY[:6], "0", *DEPLOY[7:]], "--voting-timeout", "an integer >= 1"),
        ([*AGENT, "--confirmations", "-1"], "--confirmations", "an integer >= 0"),
        ([*AGENT, "--until-epoch", "-1"], "--until-epoch", "an integer >= 0"),
        ([*AGENT, "--max-blob-bytes", "0"], "--max-blob-bytes", "an integer >= 1"),
        ([*AGENT, "--poll-interval", "nan"], "--poll-interval", "a number from 0.05 to 3600"),
        (["agents", "--deployment", "d.json", "--store", "s", "--state-root", "r", "--confirmations", "-1"],
         "--confirmations", "an integer >= 0"),
        (["chain", "--port", "-1"], "--port", "an integer from 0 to 65535"),
        (["chain", "--port", "65536"], "--port", "an integer from 0 to 65535"),
        (["ipfs-node", "--repo", "r", "--swarm", "/ip4/10.0.0.1/tcp/4001", "--allow", "10.0.0.0/24",
          "--api-port", "70000"], "--api-port", "an integer from 1 to 65535"),
        (["explorer", *SOURCE, "--port", "eighty"], "--port", "an integer from 0 to 65535"),
    ],
)
def test_a_bad_number_is_a_usage_error_naming_the_option(
    argv: list[str], option: str, wanted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Execute
    message = _refused(argv, capsys)

    # Assert
    assert f"argument {option}" in message and f"want {wanted}" in message
    assert "Traceback" not in message


def test_the_edges_of_each_range_are_accepted() -> None:
    # Execute
    explorer = build_parser().parse_args(["explorer", *SOURCE, "--port", "0", "--poll", "0.05", "--from-block", "0"])
    busy = build_parser().parse_args(["explorer", *SOURCE, "--port", "65535", "--poll", "3600"])
    run = build_parser().parse_args(["run", "--epochs", "0", "--learners", "1", "--explorer-port", "0"])
    agent = build_parser().parse_args([*AGENT, "--confirmations", "0", "--until-epoch", "0", "--max-blob-bytes", "1"])

    # Assert
    assert (explorer.port, explorer.poll, explorer.from_block) == (0, 0.05, 0)
    assert (busy.port, busy.poll) == (65535, 3600.0)
    assert (run.epochs, run.learners, run.explorer_port) == (0, 1, 0)
    assert (agent.confirmations, agent.until_epoch, agent.max_blob_bytes) == (0, 0, 1)


# ─────────────────────────────────────────────────────────────── the RPC endpoint


def test_deploy_status_and_explorer_read_the_rpc_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    secret = "https://node.example/v3/SECRET-KEY"
    monkeypatch.setenv(ENV_RPC_URL, secret)

    # Execute
    urls = [rpc_from(build_parser().parse_args(argv))
            for argv in ([*DEPLOY, "--store", "s", "--out", "o"], ["status", *SOURCE], ["explorer", *SOURCE])]
    given = rpc_from(build_parser().parse_args(["status", *SOURCE, "--rpc", "http://127.0.0.1:9"]))

    # Assert
    assert urls == [secret] * 3
    assert given == "http://127.0.0.1:9"


def test_status_keeps_its_local_default_and_deploy_needs_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    monkeypatch.delenv(ENV_RPC_URL, raising=False)

    # Execute
    status = rpc_from(build_parser().parse_args(["status", *SOURCE]))
    code = main([*DEPLOY, "--store", f"local:{tmp_path / 'store'}", "--out", str(tmp_path / "d.json")])

    # Assert
    assert status == "http://127.0.0.1:8545"
    assert code == 2
    assert f"pass --rpc URL or set ${ENV_RPC_URL}" in caplog.text
    assert not (tmp_path / "store").exists()  # refused before the initial model was stored


def test_help_of_deploy_status_and_explorer_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("deploy", "status", "explorer"):
        # Execute
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())

        # Assert
        assert f"default: ${ENV_RPC_URL}" in text, command


def test_deploy_help_examples_continue_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Execute
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deploy", "--help"])
    example = capsys.readouterr().out.split("example:")[1].splitlines()

    # Assert: each example ends on a continuation line (--out) that the line before carries on to
    lines = [line for line in example if line.strip()]
    ends = [i for i, line in enumerate(lines) if line.endswith("--out deployment.json")]
    assert len(ends) == len([line for line in lines if line.startswith("  colearn-chain deploy")]) == 2
    for i in ends:
        assert lines[i].startswith("      --") and lines[i - 1].endswith("\\"), lines[i - 1 : i + 1]


# ─────────────────────────────────────────────────────────────── paths and stores, before any chain


def test_deploy_refuses_an_unwritable_out_before_storing_or_deploying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: --out names a folder; the RPC is a closed port, so reaching it would be another error
    out = tmp_path / "records"
    out.mkdir()
    store = tmp_path / "store"

    # Execute
    code = main([*DEPLOY, "--rpc", "http://127.0.0.1:9", "--store", f"local:{store}", "--out", str(out)])

    # Assert
    assert code == 2
    assert f"--out {out} is a directory" in caplog.text
    assert not store.exists()


def test_deploy_refuses_an_unusable_store_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    monkeypatch.setenv("COLEARN_PRIVATE_KEY", KEY)

    # Execute
    ftp = main([*DEPLOY, "--rpc", "http://127.0.0.1:9", "--store", "ftp://x", "--out", str(tmp_path / "d.json")])
    proc = main([*DEPLOY, "--rpc", "http://127.0.0.1:9", "--store", "local:/proc/x", "--out", str(tmp_path / "e.json")])

    # Assert
    assert (ftp, proc) == (2, 2)
    assert "unknown weight store URL scheme" in caplog.text and "/proc/x" in caplog.text


def test_agent_refuses_an_unusable_store_before_reading_the_chain(
    tmp_path: Path, record_of_nothing: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a well-formed record; the RPC is a closed port, so reaching it would be another error
    record = record_of_nothing
    monkeypatch.setenv("COLEARN_PRIVATE_KEY", KEY)
    base = ["agent", "--rpc", "http://127.0.0.1:9", "--deployment", str(record), "--state-dir", str(tmp_path / "st")]

    # Execute
    ftp = main([*base, "--store", "ftp://x"])
    proc = main([*base, "--store", "local:/proc/x"])

    # Assert
    assert (ftp, proc) == (2, 2)
    assert "--store: unknown weight store URL scheme" in caplog.text
    assert "--store: " in caplog.text and "/proc/x" in caplog.text
    assert "cannot reach" not in caplog.text


def test_run_refuses_an_unusable_ipfs_address_before_starting_a_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Execute
    with caplog.at_level(logging.INFO):
        code = main(["run", "--learner", "toy", "--ipfs", "garbage", "--out", str(tmp_path / "out")])

    # Assert
    assert code == 2
    assert "garbage" in caplog.text
    assert "started" not in caplog.text  # no chain was started


def test_run_refuses_a_bad_threshold_or_out_before_starting_a_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Execute
    with caplog.at_level(logging.INFO):
        nan = main(["run", "--learner", "toy", "--threshold", "nan", "--out", str(tmp_path / "a")])
        third = main(["run", "--learner", "toy", "--threshold", "0.33333", "--out", str(tmp_path / "b")])
        proc = main(["run", "--learner", "toy", "--out", "/proc/run"])

    # Assert
    assert (nan, third, proc) == (2, 2, 2)
    assert "nan" in caplog.text and "not a whole number of basis points" in caplog.text
    assert "--out /proc/run cannot be made" in caplog.text
    assert "started" not in caplog.text  # no chain was started


def test_agents_refuse_the_same_key_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    other = "0x" + "22" * 32
    monkeypatch.setenv(ENV_PRIVATE_KEYS, f"{KEY},{other},{KEY}")

    # Execute
    with pytest.raises(WalletError) as refused:
        _accounts([])

    # Assert
    message = str(refused.value)
    assert "more than once" in message and f"${ENV_PRIVATE_KEYS}" in message
    assert "11" * 32 not in message  # named by address, never by key
