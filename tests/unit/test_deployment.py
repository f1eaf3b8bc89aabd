"""The deployment record: a malformed one is refused with one clear error naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from colearn_chain.chain.deployment import FORMAT, Deployment, DeploymentError
from colearn_chain.exceptions import ColearnChainError

GOOD: dict[str, Any] = {
    "format": FORMAT, "chain_id": 31337, "address": "0x" + "12" * 20, "block": 3, "tx_hash": "0x" + "ab" * 32,
    "learners": ["0x" + "34" * 20, "0x" + "56" * 20], "vote_threshold_bps": 5000, "proposal_timeout": 600,
    "voting_timeout": 600, "proposer_votes": True, "initial_digest": "0x" + "11" * 32,
    "initial_cid": "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "extra": {"learner_config": {"kind": "toy"}},
}


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(("record", "message"), [
    ([1], "is not a colearn-chain deployment record: it holds a JSON list, not an object"),
    ("text", "is not a colearn-chain deployment record: it holds a JSON str, not an object"),
    ({"format": "other"}, "is not a colearn-chain deployment record (format 'other', want"),
    ({"format": FORMAT, "address": "0x" + "12" * 20}, "field(s) ['chain_id', 'block', 'tx_hash', 'learners', "),
    (_without("initial_cid"), "field(s) ['initial_cid'] missing"),
    ({**GOOD, "colour": "red"}, "unknown field(s) ['colour']"),
    ({**GOOD, "block": "abc"}, "field 'block' must be a whole number (a JSON integer, not a string), got 'abc'"),
    ({**GOOD, "block": -1}, "field 'block' must be 0 or more, got -1"),
    ({**GOOD, "block": True}, "field 'block' must be a whole number"),
    ({**GOOD, "block": 10**30}, f"field 'block' must be {2**63 - 1} or less, got {10**30}"),
    ({**GOOD, "block": 3.0}, "field 'block' must be a whole number"),
    ({**GOOD, "chain_id": "31337"}, "field 'chain_id' must be a whole number (a JSON integer, not a string), "
                                    "got '31337'"),
    ({**GOOD, "chain_id": 0}, "field 'chain_id' must be 1 or more, got 0"),
    ({**GOOD, "address": 123}, "field 'address' must be an address: a string of 0x and 40 hex digits, got 123"),
    ({**GOOD, "address": "0x" + "zz" * 20}, "field 'address' must be an address"),
    ({**GOOD, "address": "0x" + "Ab" * 20}, "field 'address' has mixed-case hex digits that are not a valid checksum"),
    ({**GOOD, "tx_hash": "0x12"}, "field 'tx_hash' must be a string of 0x and 64 hex digits, got '0x12'"),
    ({**GOOD, "learners": "0x" + "34" * 20}, "field 'learners' must be a list of addresses"),
    ({**GOOD, "learners": ["0x" + "34" * 20, 5]}, "field 'learners' item 1 must be an address"),
    ({**GOOD, "vote_threshold_bps": 10_001}, "field 'vote_threshold_bps' must be 10000 or less, got 10001"),
    ({**GOOD, "proposal_timeout": 0}, "field 'proposal_timeout' must be 1 or more, got 0"),
    ({**GOOD, "voting_timeout": 2**40}, "field 'voting_timeout' must be 4294967295 or less"),
    ({**GOOD, "proposer_votes": 1}, "field 'proposer_votes' must be true or false, got 1"),
    ({**GOOD, "initial_digest": "0xzz"}, "field 'initial_digest' must be a string of 0x and 64 hex digits, got '0xzz'"),
    ({**GOOD, "initial_cid": None}, "field 'initial_cid' must be a string, got None"),
    ({**GOOD, "extra": 5}, "field 'extra' must be a JSON object, got 5"),
    ({**GOOD, "extra": "\x1b[2J"}, "field 'extra' must be a JSON object, got '\\x1b[2J'"),
])
def test_a_malformed_record_is_refused_naming_the_file_and_field(tmp_path: Path, record: Any, message: str) -> None:
    # Prepare
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(record))
    # Execute
    with pytest.raises(DeploymentError) as error:
        Deployment.load(path)
    # Assert: one error the CLI prints (a ColearnChainError; a ValueError for the readers that catch that)
    assert isinstance(error.value, ColearnChainError) and isinstance(error.value, ValueError)
    assert str(error.value).startswith(f"deployment record {path}") and message in str(error.value)
    assert "\x1b" not in str(error.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "cannot read deployment record"),
    (b"\xff\xfe{}", "cannot read deployment record"),
    (b"[" * 100_000 + b"]" * 100_000, "cannot read deployment record"),
])
def test_an_unreadable_record_is_refused_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    # Prepare
    path = tmp_path / "deployment.json"
    path.write_bytes(content)
    # Execute / Assert
    with pytest.raises(DeploymentError, match=message) as error:
        Deployment.load(path)
    assert str(path) in str(error.value)


def test_a_saved_record_loads_back_the_same_and_extra_may_be_left_out(tmp_path: Path) -> None:
    # Prepare
    record = Deployment.from_json(GOOD)
    checksummed = {**_without("extra"), "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}
    # Execute
    loaded = Deployment.load(record.save(tmp_path / "deployment.json"))
    bare = Deployment.from_json(checksummed)
    # Assert
    assert loaded == record and loaded.to_json() == GOOD
    assert bare.extra == {} and bare.address == checksummed["address"]
