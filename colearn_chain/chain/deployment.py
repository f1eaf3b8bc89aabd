"""The deployment record: where the contract lives and with which parameters.

Written by `brownie run scripts/deploy.py` and by `colearn-chain deploy`/`run`; read by agents, `status`
and the explorer, so none of them has to scan the chain for the contract's first block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from web3 import Web3

from .._files import atomic_write
from ..exceptions import ColearnChainError
from ..text import printable

FORMAT = "colearn-chain/deployment@1"
_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"0x[0-9a-fA-F]{64}")
_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1  # beyond any chain id or block number a node serves


class DeploymentError(ColearnChainError, ValueError):
    """Raised when a deployment record cannot be read or is malformed; the message names the file and field.

    A ValueError too, as every reader of a record catches that.
    """


def _whole(least: int, most: int | None = None) -> Callable[[Any], str | None]:
    def problem(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number (a JSON integer, not a string)"
        if value < least:
            return f"must be {least} or more"
        if most is not None and value > most:
            return f"must be {most} or less"
        return None
    return problem


def _address(value: Any) -> str | None:
    if not isinstance(value, str) or not _HEX40.fullmatch(value):
        return "must be an address: a string of 0x and 40 hex digits"
    if value[2:] not in (value[2:].lower(), value[2:].upper()) and not Web3.is_checksum_address(value):
        return "has mixed-case hex digits that are not a valid checksum (a typo?)"
    return None


def _hash(value: Any) -> str | None:
    return None if isinstance(value, str) and _HEX64.fullmatch(value) else "must be a string of 0x and 64 hex digits"


def _learners(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list of addresses"
    for i, item in enumerate(value):
        problem = _address(item)
        if problem is not None:
            return f"item {i} {problem}"
    return None


def _is(kind: type, what: str) -> Callable[[Any], str | None]:
    return lambda value: None if isinstance(value, kind) else f"must be {what}"


#: What each field of a record must hold (the ranges are those the contract's constructor accepts).
_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "chain_id": _whole(1, _INT64_MAX),
    "address": _address,
    "block": _whole(0, _INT64_MAX),
    "tx_hash": _hash,
    "learners": _learners,
    "vote_threshold_bps": _whole(1, 10_000),
    "proposal_timeout": _whole(1, _UINT32_MAX),
    "voting_timeout": _whole(1, _UINT32_MAX),
    "proposer_votes": _is(bool, "true or false"),
    "initial_digest": _hash,
    "initial_cid": _is(str, "a string"),
    "extra": _is(dict, "a JSON object"),
}


@dataclass(frozen=True)
class Deployment:
    """One deployed CollectiveLearning contract."""

    chain_id: int
    address: str
    block: int
    tx_hash: str
    learners: list[str]
    vote_threshold_bps: int
    proposal_timeout: int
    voting_timeout: int
    proposer_votes: bool
    initial_digest: str
    initial_cid: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        # Readable by others: the record is what every participant is given.
        atomic_write(path, (json.dumps(self.to_json(), indent=2) + "\n").encode(), mode=0o644)
        return path

    @classmethod
    def from_json(cls, data: Any, *, source: str = "the deployment record") -> Deployment:
        """The record ``data`` (parsed JSON) holds; DeploymentError naming ``source`` and the first bad field.

        Every field is checked, type and range, because every reader acts on them (a negative block
        would have an agent wait forever for it, a chain id given as a string never matches the RPC's).
        """
        what = f"{source} is not a colearn-chain deployment record"
        if not isinstance(data, dict):
            raise DeploymentError(f"{what}: it holds a JSON {type(data).__name__}, not an object")
        if data.get("format") != FORMAT:
            raise DeploymentError(f"{what} (format {printable(data.get('format'))!r}, want {FORMAT!r})")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - {"format", *names})
        if unknown:
            raise DeploymentError(f"{source}: unknown field(s) {printable(unknown)}; a record has {names}")
        missing = [name for name in names if name not in data and name != "extra"]
        if missing:
            raise DeploymentError(f"{source}: field(s) {missing} missing; write the record again "
                                  "(colearn-chain deploy writes one)")
        for name, check in _CHECKS.items():
            if name in data:
                problem = check(data[name])
                if problem is not None:
                    raise DeploymentError(f"{source}: field {name!r} {problem}, got {printable(repr(data[name]))}")
        return cls(**{k: v for k, v in data.items() if k != "format"})

    @classmethod
    def load(cls, path: Path | str) -> Deployment:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, or not UTF-8
            raise DeploymentError(f"cannot read deployment record {path}: {printable(exc)}") from exc
        return cls.from_json(data, source=f"deployment record {path}")
