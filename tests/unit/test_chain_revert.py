"""Revert data -> ContractRevert: the custom error's name and arguments, readable."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from web3.exceptions import ContractCustomError

from colearn_chain.chain.revert import Phase, decode_revert, revert_from_exception

CALLER = "0x1111111111111111111111111111111111111111"
PROPOSER = "0x2222222222222222222222222222222222222222"


def _data(signature: str, types: list[str], values: list[object]) -> str:
    return "0x" + (function_signature_to_4byte_selector(signature) + encode(types, values)).hex()


def test_custom_error_is_decoded_with_argument_names() -> None:
    # Prepare
    data = _data("NotProposer(uint256,address,address)", ["uint256", "address", "address"], [3, CALLER, PROPOSER])

    # Execute
    revert = decode_revert(data)

    # Assert
    assert revert.name == "NotProposer"
    assert revert.args_ == (3, CALLER, PROPOSER)
    assert str(revert) == f"NotProposer(epoch=3, caller={CALLER}, proposer={PROPOSER})"


def test_enum_arguments_are_named_phases() -> None:
    # Prepare
    data = _data("UnexpectedPhase(uint256,uint8,uint8)", ["uint256", "uint8", "uint8"], [1, 0, 1])

    # Execute
    revert = decode_revert(data)

    # Assert
    assert revert.args_ == (1, Phase.Proposing, Phase.Voting)
    assert str(revert) == "UnexpectedPhase(epoch=1, current=Proposing, expected=Voting)"


def test_web3_custom_error_becomes_contract_revert() -> None:
    # Prepare
    data = _data("WrongEpoch(uint256,uint256)", ["uint256", "uint256"], [0, 1])

    # Execute
    revert = revert_from_exception(ContractCustomError(data, data=data))

    # Assert
    assert revert is not None and revert.name == "WrongEpoch" and revert.args_ == (0, 1)


def test_unknown_or_short_data_is_reported_not_raised() -> None:
    # Execute
    unknown = decode_revert("0xdeadbeef")
    empty = decode_revert("0x")
    string = decode_revert(_data("Error(string)", ["string"], ["nope"]))

    # Assert
    assert unknown.name == "UnknownRevert" and "0xdeadbeef" in str(unknown)
    assert empty.name == "UnknownRevert"
    assert string.name == "Error" and string.args_ == ("nope",)
