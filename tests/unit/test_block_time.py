"""--block-time: a number of seconds above 0, refused as a usage error before any chain is started."""

from __future__ import annotations

import pytest

from colearn_chain.cli import build_parser
from colearn_chain.services.chains import chain_node


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "the block time must be a number of seconds above 0, got -1.0"),
    ("0", "the block time must be a number of seconds above 0, got 0.0"),
    ("nan", "the block time must be a number of seconds above 0, got nan"),
    ("inf", "the block time must be a number of seconds above 0, got inf"),
    ("soon", "not a number of seconds: 'soon'"),
])
@pytest.mark.parametrize("command", ["chain", "run"])
def test_a_block_time_that_is_not_above_zero_is_a_usage_error(
    command: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Execute
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, f"--block-time={value}"])
    # Assert
    assert exit_.value.code == 2
    assert f"argument --block-time: {message}" in capsys.readouterr().err


def test_a_block_time_above_zero_is_taken_and_a_node_refuses_a_bad_one() -> None:
    # Execute
    args = build_parser().parse_args(["chain", "--block-time", "0.5"])
    # Assert
    assert args.block_time == 0.5
    with pytest.raises(ValueError, match="the block time must be a number of seconds above 0, got -1"):
        chain_node("anvil", block_time=-1)
