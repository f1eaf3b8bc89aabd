"""The contract records only CIDs of 1..MAX_CID_LENGTH bytes in [0-9A-Za-z] (propose and the initial model).

Every agent decodes, prints and logs the CIDs the contract emits: a hostile member's CID that is not
UTF-8 (or holds terminal escapes) must be refused on chain, with the position and the byte named.
Invalid UTF-8 cannot pass through brownie's string encoding, so those calls are ABI-encoded here (a
`string` is encoded exactly as `bytes`) and sent as raw signed transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from brownie import web3
from eth_abi import encode

from colearn_chain.chain.revert import decode_revert
from conftest import (
    INITIAL_DIGEST,
    PROPOSING,
    VOTING,
    current_model,
    digest_of,
    expect_revert,
)

# Real content ids of the empty file, as `ipfs add` and `ipfs cid base32` print them.
CIDV0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
CIDV1 = "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"
ALPHANUMERIC = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# (case, CID bytes, position of the first bad byte): one of each kind of byte a CID must not hold.
HOSTILE = [
    ("escape-first", b"\x1b[2J" + CIDV0.encode(), 0),
    ("newline-last", CIDV0.encode() + b"\n", 46),
    ("nul", b"Qm\x00" + CIDV0.encode()[3:], 2),
    ("space", b"Qm x", 2),
    ("slash", CIDV0.encode() + b"/etc", 46),
    ("dot", b"Qm..", 2),
    ("dash", b"-" + CIDV1.encode()[1:], 0),
    ("underscore", b"u_" + CIDV1.encode()[2:], 1),
    ("non-ascii-utf8", "Qmé".encode(), 2),
    ("invalid-utf8", b"Qm\xff\xfe", 2),
    ("del", b"Qm\x7f", 2),
    ("last-of-longest", b"b" * 99 + b"\x1b", 99),
]


def propose_data(cl: Any, epoch: int, digest: str, cid: bytes) -> str:
    """Calldata of propose(epoch, digest, cid) with the CID as raw bytes."""
    args = encode(["uint256", "bytes32", "bytes"], [epoch, bytes.fromhex(digest[2:]), cid])
    return str(cl.propose.signature) + args.hex()


def deploy_data(CollectiveLearning: Any, learners: list[Any], cid: bytes) -> str:
    """Creation code of a 5-learner deployment whose initial CID is raw bytes."""
    types = ["address[]", "uint256", "uint256", "uint256", "bool", "bytes32", "bytes"]
    args = [[a.address for a in learners], 5000, 100, 200, True, bytes.fromhex(INITIAL_DIGEST[2:]), cid]
    return str(CollectiveLearning.bytecode) + encode(types, args).hex()


def byte_arg(value: int) -> bytes:
    """The `character` argument as brownie reports it (a bytes1)."""
    return bytes([value])


@pytest.mark.parametrize("cid", [CIDV0, CIDV1], ids=["cidv0", "cidv1-base32"])
def test_real_cids_are_recorded(cl: Any, learners: list[Any], cid: str) -> None:
    # Execute
    tx = cl.propose(0, digest_of("w"), cid, {"from": learners[0]})
    # Assert
    assert tx.events["WeightsProposed"]["cid"] == cid
    assert cl.epochState()["cid"] == cid


@pytest.mark.parametrize("cid", [CIDV0, CIDV1], ids=["cidv0", "cidv1-base32"])
def test_real_cids_are_accepted_as_the_initial_model(deploy: Callable[..., Any], learners: list[Any], cid: str) -> None:
    cl = deploy(learners, cid=cid)
    assert current_model(cl) == (INITIAL_DIGEST, cid, 0)


@pytest.mark.parametrize("case, cid, position", HOSTILE, ids=[case for case, _, _ in HOSTILE])
def test_hostile_proposal_is_refused_by_position_and_byte(
    cl: Any, learners: list[Any], case: str, cid: bytes, position: int
) -> None:
    # Execute: a signed transaction carrying the raw bytes
    expect_revert(
        lambda: learners[0].transfer(cl.address, 0, data=propose_data(cl, 0, digest_of(case), cid)),
        error="InvalidCidCharacter", with_args=[position, byte_arg(cid[position])],
    )
    # Assert: nothing recorded; the proposer can still propose a real CID
    assert cl.epochState()["currentPhase"] == PROPOSING
    cl.propose(0, digest_of("w"), CIDV0, {"from": learners[0]})
    assert cl.epochState()["currentPhase"] == VOTING


def test_escapes_through_brownie_strings_are_refused(cl: Any, learners: list[Any]) -> None:
    # The same check through the ordinary string encoding a client uses.
    for cid, position, character in [("\x1b]0;pwned\x07Qm", 0, 0x1B), ("QmA\r\nB", 3, 0x0D), ("Qm\u202eX", 2, 0xE2)]:
        expect_revert(
            cl.propose, 0, digest_of("x"), cid, {"from": learners[0]},
            error="InvalidCidCharacter", with_args=[position, byte_arg(character)],
        )


def test_every_byte_value_is_judged_by_the_alphabet(cl: Any, learners: list[Any]) -> None:
    # Execute: each of the 256 byte values between two valid bytes, through eth_call (nothing mined)
    refused: dict[int, tuple[object, ...]] = {}
    for value in range(256):
        data = propose_data(cl, 0, digest_of("x"), b"Q" + bytes([value]) + b"m")
        call = {"from": learners[0].address, "to": cl.address, "data": data}
        try:
            web3.eth.call(call)
        except ValueError as exc:  # brownie's web3 reports a revert as {"message", "data"}
            revert = decode_revert(exc.args[0]["data"])
            refused[value] = (revert.name, *revert.args_)
    # Assert: exactly the non-alphanumeric bytes are refused, each at position 1 with its own value
    assert set(refused) == set(range(256)) - ALPHANUMERIC
    assert all(refused[v] == ("InvalidCidCharacter", 1, f"0x{v:02x}") for v in refused)
    assert int(cl.CID_ALPHABET()) == sum(1 << v for v in ALPHANUMERIC)


def test_length_is_checked_before_the_characters(cl: Any, learners: list[Any]) -> None:
    too_long = b"\x1b" * 101
    expect_revert(
        lambda: learners[0].transfer(cl.address, 0, data=propose_data(cl, 0, digest_of("x"), too_long)),
        error="CidTooLong", with_args=[101, 100],
    )
    expect_revert(
        lambda: learners[0].transfer(cl.address, 0, data=propose_data(cl, 0, digest_of("x"), b"")),
        error="EmptyModel",
    )


def test_hostile_initial_cid_is_refused(deploy: Callable[..., Any], learners: list[Any]) -> None:
    expect_revert(lambda: deploy(learners, cid=CIDV0 + "\n"), error="InvalidCidCharacter", with_args=[46, byte_arg(10)])
    expect_revert(lambda: deploy(learners, cid="\x1b[0m"), error="InvalidCidCharacter", with_args=[0, byte_arg(0x1B)])


def test_initial_cid_that_is_not_utf8_is_refused(CollectiveLearning: Any, learners: list[Any], accounts: Any) -> None:
    # Execute: a signed creation transaction carrying the raw bytes
    data = deploy_data(CollectiveLearning, learners, b"QmOK\xc3\x28")
    expect_revert(
        lambda: accounts[0].transfer(None, 0, data=data),
        error="InvalidCidCharacter", with_args=[4, byte_arg(0xC3)],
    )
