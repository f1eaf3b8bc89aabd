"""The contract's events as small frozen dataclasses, decoded strictly, and a cursor that reads them in order.

The agent and the explorer never handle raw log dicts: a log that does not decode is an error, not a
warning (web3.py's default drops such logs silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

from eth_utils import event_abi_to_log_topic
from web3 import Web3
from web3._utils.events import get_event_data

from ..exceptions import ColearnChainError
from .artifact import abi


@dataclass(frozen=True)
class LogMeta:
    """Where an event sits on the chain; (block_number, log_index) orders events totally."""

    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str

    @property
    def position(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass(frozen=True)
class ConsortiumFormed:
    learners: tuple[str, ...]
    vote_threshold_bps: int
    proposal_timeout: int
    voting_timeout: int
    proposer_votes: bool
    meta: LogMeta


@dataclass(frozen=True)
class ModelInitialized:
    digest: str
    cid: str
    meta: LogMeta


@dataclass(frozen=True)
class EpochStarted:
    epoch: int
    proposer: str
    proposal_deadline: int
    meta: LogMeta


@dataclass(frozen=True)
class WeightsProposed:
    epoch: int
    proposer: str
    digest: str
    cid: str
    voting_deadline: int
    meta: LogMeta


@dataclass(frozen=True)
class VoteCast:
    epoch: int
    voter: str
    approve: bool
    score: int
    meta: LogMeta


@dataclass(frozen=True)
class ProposalAccepted:
    epoch: int
    digest: str
    cid: str
    approvals: int
    rejections: int
    meta: LogMeta


@dataclass(frozen=True)
class ProposalRejected:
    epoch: int
    digest: str
    cid: str
    approvals: int
    rejections: int
    meta: LogMeta


@dataclass(frozen=True)
class EpochSkipped:
    epoch: int
    proposer: str
    meta: LogMeta


ChainEvent = Union[
    ConsortiumFormed,
    ModelInitialized, EpochStarted, WeightsProposed, VoteCast, ProposalAccepted, ProposalRejected, EpochSkipped
]
#: Outcome events: each closes one epoch.
EpochClosed = Union[ProposalAccepted, ProposalRejected, EpochSkipped]

_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (ConsortiumFormed, ModelInitialized, EpochStarted, WeightsProposed, VoteCast, ProposalAccepted, ProposalRejected, EpochSkipped)
}
# Solidity argument name -> dataclass field name.
_FIELD = {
    "proposalDeadline": "proposal_deadline",
    "votingDeadline": "voting_deadline",
    "voteThresholdBps": "vote_threshold_bps",
    "proposalTimeout": "proposal_timeout",
    "votingTimeout": "voting_timeout",
    "proposerVotes": "proposer_votes",
}


class EventDecodeError(ColearnChainError):
    """Raised when a log from the contract's address does not decode as one of its events."""


def _event_abis() -> dict[bytes, dict[str, Any]]:
    return {event_abi_to_log_topic(item): item for item in abi() if item["type"] == "event"}


_BY_TOPIC = _event_abis()
_CODEC = Web3().codec  # one codec for every log: building a Web3 per log doubled decoding time


def as_hex(value: Any) -> str:
    """A hash, digest or byte string as 0x-prefixed hex (strings are taken as already hex)."""
    return Web3.to_hex(value) if not isinstance(value, str) else value


def decode_log(log: Any) -> ChainEvent:
    """Decode one raw log of the contract into its dataclass, or raise EventDecodeError."""
    topics = log["topics"]
    if not topics:
        raise EventDecodeError(f"anonymous log at block {log.get('blockNumber')} is not from this contract")
    event_abi = _BY_TOPIC.get(bytes(topics[0]))
    if event_abi is None:
        raise EventDecodeError(f"unknown event topic {as_hex(topics[0])} at block {log.get('blockNumber')}")
    try:
        data = get_event_data(_CODEC, event_abi, log)
    except Exception as exc:  # malformed data under a known topic
        raise EventDecodeError(f"cannot decode {event_abi['name']} at block {log.get('blockNumber')}: {exc}") from exc
    fields: dict[str, Any] = {}
    for key, value in data["args"].items():
        if isinstance(value, (list, tuple)):
            value = tuple(Web3.to_checksum_address(v) for v in value)
        elif isinstance(value, (bytes, bytearray)):
            value = Web3.to_hex(value)
        elif isinstance(value, str) and Web3.is_address(value):
            value = Web3.to_checksum_address(value)
        fields[_FIELD.get(key, key)] = value
    meta = LogMeta(
        block_number=int(log["blockNumber"]),
        log_index=int(log["logIndex"]),
        tx_hash=as_hex(log["transactionHash"]),
        block_hash=as_hex(log["blockHash"]),
    )
    return _CLASSES[event_abi["name"]](**fields, meta=meta)


def decode_logs(logs: Iterable[Any]) -> list[ChainEvent]:
    """Decode logs and return them in chain order."""
    events = [decode_log(log) for log in logs]
    events.sort(key=lambda e: e.meta.position)
    return events


TopicFilter = Sequence[Optional[Union[str, Sequence[str]]]]


def event_topic(name: str) -> str:
    """The topic (keccak of the signature) of the contract's event ``name``, as 0x-hex."""
    for topic, item in _BY_TOPIC.items():
        if item["name"] == name:
            return Web3.to_hex(topic)
    raise KeyError(f"the contract has no event {name!r}")


def address_topic(address: str) -> str:
    """An indexed ``address`` argument as a topic (left-padded to 32 bytes)."""
    return "0x" + "00" * 12 + Web3.to_checksum_address(address)[2:].lower()


class LogCursor:
    """Reads the contract's events in chain order, each exactly once, only once ``confirmations`` deep.

    Works the same with instant mining and interval mining: it asks for block ranges up to
    ``head - confirmations`` and remembers the last block it has read, so a block is read once.
    ``topics`` (an eth_getLogs topic filter, e.g. ``[event_topic("WeightsProposed"), None,
    address_topic(me)]``) restricts which events it reads; by default, all of the contract's.
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        start_block: int,
        confirmations: int = 0,
        max_range: int = 5_000,
        topics: Optional[TopicFilter] = None,
    ) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.next_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.topics = list(topics) if topics is not None else None

    def safe_head(self) -> int:
        """The newest block deep enough to act on."""
        return int(self.w3.eth.block_number) - self.confirmations

    def poll(self, *, to_block: Optional[int] = None) -> list[ChainEvent]:
        """Return the events of the blocks not read yet (up to the safe head, or ``to_block``), in order."""
        head = self.safe_head() if to_block is None else min(to_block, self.safe_head())
        events: list[ChainEvent] = []
        while self.next_block <= head:
            end = min(head, self.next_block + self.max_range - 1)
            query: Any = {"address": self.address, "fromBlock": self.next_block, "toBlock": end}
            if self.topics is not None:
                query["topics"] = self.topics
            try:
                logs = self.w3.eth.get_logs(query)
            except Exception:
                # The cursor already stands past the chunks read: hand those over, fail on the next poll.
                if events:
                    return events
                raise
            events.extend(decode_logs(logs))
            self.next_block = end + 1
        return events
