"""The contract's events as small frozen dataclasses, decoded strictly, and a cursor that reads them in order.

The agent and the explorer never handle raw log dicts: a log that does not decode is an error, not a
warning (web3.py's default drops such logs silently).

A CID is whatever bytes the proposer sent (older deployments do not check them), so it is decoded here
as raw bytes, never as a strict UTF-8 ``string`` (web3.py's choice, which raises on invalid UTF-8 and
would stop every reader at that block). :func:`decode_cid` turns the bytes into a :class:`CidText`:
the CID itself when it is a plausible one, else an escaped, printable rendering plus the reason it is
invalid, which the events and views carry as ``cid_invalid``. An agent votes reject on such a proposal.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3

from ..exceptions import ColearnChainError
from ..text import printable
from .artifact import abi

#: The longest CID accepted as plausible, in bytes (the contract's MAX_CID_LENGTH is no larger).
MAX_CID_BYTES: Final[int] = 100
#: What a CID may look like: CIDv0 (base58btc) and CIDv1 (base32/base36) are plain ASCII letters and digits.
_CID_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9]+")


class CidText(NamedTuple):
    """A CID read from the chain: ``text`` is safe to show and to log; ``invalid`` says why it is no CID.

    When ``invalid`` is None, ``text`` is the CID exactly as recorded. Otherwise ``text`` is an escaped
    rendering of the raw bytes (never a plausible CID itself, so no store can be asked for it).
    """

    text: str
    invalid: str | None


def cid_problem(cid: str) -> str | None:
    """Why ``cid`` is not a plausible CID, or None: the one rule every reader and the voter apply."""
    if not cid:
        return "empty CID"
    if len(cid.encode("utf-8", errors="surrogatepass")) > MAX_CID_BYTES:
        return f"CID longer than {MAX_CID_BYTES} bytes"
    if not (cid.isascii() and _CID_PATTERN.fullmatch(cid)):
        return "CID holds characters other than ASCII letters and digits"
    return None


def decode_cid(raw: bytes, *, empty_ok: bool = False) -> CidText:
    """Raw CID bytes from a log or a view as a :class:`CidText`; never raises.

    ``empty_ok``: an empty CID is valid (epochState() before a proposal).
    """
    raw = bytes(raw)
    if not raw and empty_ok:
        return CidText("", None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return CidText(printable(raw, limit=2 * MAX_CID_BYTES), "CID is not valid UTF-8")
    problem = cid_problem(text)
    if problem is None:
        return CidText(text, None)
    shown = printable(text, limit=2 * MAX_CID_BYTES)
    if cid_problem(shown) is None:  # an escaped rendering never looks valid, but make sure
        shown = f"invalid:{shown}"
    return CidText(shown, problem)


def _bytes_for_strings(items: list[dict[str, Any]]) -> None:
    """ABI ``string`` -> ``bytes`` in place (same encoding, but decoded without a UTF-8 check)."""
    for item in items:
        if item.get("type") == "string":
            item["type"] = "bytes"
        if "components" in item:
            _bytes_for_strings(item["components"])


@lru_cache(maxsize=1)
def _view_abi() -> tuple[dict[str, Any], ...]:
    out = copy.deepcopy(abi())
    for item in out:
        if item.get("type") == "function":
            _bytes_for_strings(item.get("outputs", []))
    return tuple(out)


def view_abi() -> list[dict[str, Any]]:
    """The contract's ABI with every view's ``string`` output read as ``bytes``: use it for contract calls.

    Function selectors depend on inputs only, so calls and transactions are unchanged; a ``cid``
    returned by ``epochState()`` / ``currentModel()`` comes back as bytes for :func:`decode_cid`.
    """
    return copy.deepcopy(list(_view_abi()))


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
    #: why ``cid`` is not a plausible CID (then it is an escaped rendering), None when it is
    cid_invalid: str | None = None


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
    #: why ``cid`` is not a plausible CID (then it is an escaped rendering), None when it is
    cid_invalid: str | None = None


@dataclass(frozen=True)
class VoteCast:
    epoch: int
    voter: str
    approve: bool
    score: int
    meta: LogMeta


@dataclass(frozen=True)
class _Decision:
    """What both outcomes of a vote carry: the proposal decided on and the count that decided it."""

    epoch: int
    digest: str
    cid: str
    approvals: int
    rejections: int
    meta: LogMeta
    #: why ``cid`` is not a plausible CID (then it is an escaped rendering), None when it is
    cid_invalid: str | None = None


@dataclass(frozen=True)
class ProposalAccepted(_Decision):
    """The proposal became the current model."""


@dataclass(frozen=True)
class ProposalRejected(_Decision):
    """The proposal was not accepted; the current model stays."""


@dataclass(frozen=True)
class EpochSkipped:
    epoch: int
    proposer: str
    meta: LogMeta


ChainEvent = (
    ConsortiumFormed
    | ModelInitialized | EpochStarted | WeightsProposed | VoteCast | ProposalAccepted | ProposalRejected | EpochSkipped
)
#: Outcome events: each closes one epoch.
EpochClosed = ProposalAccepted | ProposalRejected | EpochSkipped

_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ConsortiumFormed, ModelInitialized, EpochStarted, WeightsProposed,
        VoteCast, ProposalAccepted, ProposalRejected, EpochSkipped,
    )
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
    return {event_abi_to_log_topic(item): item for item in abi() if item["type"] == "event"}  # type: ignore[arg-type]


_BY_TOPIC = _event_abis()


def as_hex(value: Any) -> str:
    """A hash, digest or byte string as 0x-prefixed hex (strings are taken as already hex)."""
    return Web3.to_hex(value) if not isinstance(value, str) else value


def _decode_args(event_abi: dict[str, Any], log: Any) -> dict[str, Any]:
    """The event's arguments by name: indexed ones from the topics, the rest from the data.

    ``string`` arguments are decoded as bytes: whether they are text is for :func:`decode_cid` to say.
    """
    inputs = event_abi["inputs"]
    indexed = [item for item in inputs if item.get("indexed")]
    plain = [item for item in inputs if not item.get("indexed")]
    topics = list(log["topics"])[1:]
    if len(topics) != len(indexed):
        raise ValueError(f"{len(topics)} topics for {len(indexed)} indexed arguments")
    args: dict[str, Any] = {}
    for item, topic in zip(indexed, topics, strict=True):  # this contract indexes only static types
        args[item["name"]] = abi_decode([item["type"]], bytes(HexBytes(topic)))[0]
    types = ["bytes" if item["type"] == "string" else item["type"] for item in plain]
    values = abi_decode(types, bytes(HexBytes(log["data"])))
    for item, value in zip(plain, values, strict=True):
        args[item["name"]] = decode_cid(value) if item["type"] == "string" else value
    return args


def decode_log(log: Any) -> ChainEvent:
    """Decode one raw log of the contract into its dataclass, or raise EventDecodeError.

    A CID that is not a plausible one (not UTF-8, control characters, too long) is no error: it is
    decoded into ``cid`` (escaped) and ``cid_invalid`` (why), so no proposal can stop a reader.
    """
    topics = log["topics"]
    if not topics:
        raise EventDecodeError(f"anonymous log at block {log.get('blockNumber')} is not from this contract")
    event_abi = _BY_TOPIC.get(bytes(HexBytes(topics[0])))
    if event_abi is None:
        raise EventDecodeError(f"unknown event topic {as_hex(topics[0])} at block {log.get('blockNumber')}")
    try:
        args = _decode_args(event_abi, log)
    except Exception as exc:  # malformed data under a known topic
        raise EventDecodeError(
            f"cannot decode {event_abi['name']} at block {log.get('blockNumber')}: {printable(exc)}"
        ) from exc
    fields: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, CidText):
            fields[_FIELD.get(key, key)] = value.text
            fields[f"{_FIELD.get(key, key)}_invalid"] = value.invalid
            continue
        if isinstance(value, (list, tuple)):
            value = tuple(Web3.to_checksum_address(v) for v in value)
        elif isinstance(value, (bytes, bytearray)):
            value = Web3.to_hex(bytes(value))
        elif isinstance(value, str) and Web3.is_address(value):
            value = Web3.to_checksum_address(value)
        fields[_FIELD.get(key, key)] = value
    meta = LogMeta(
        block_number=int(log["blockNumber"]),
        log_index=int(log["logIndex"]),
        tx_hash=as_hex(log["transactionHash"]),
        block_hash=as_hex(log["blockHash"]),
    )
    return _CLASSES[event_abi["name"]](**fields, meta=meta)  # type: ignore[no-any-return]


_EVENT_TYPES: Final[tuple[type, ...]] = tuple(_CLASSES.values())


def decode_logs(logs: Iterable[Any]) -> list[ChainEvent]:
    """Decode logs (events already decoded, e.g. by a shared follower, pass through) in chain order."""
    events: list[ChainEvent] = [
        cast(ChainEvent, log) if isinstance(log, _EVENT_TYPES) else decode_log(log) for log in logs
    ]
    events.sort(key=lambda e: e.meta.position)
    return events


TopicFilter = Sequence[str | Sequence[str] | None]


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
    ``head`` and ``get_logs`` replace asking the node for the block number and the logs (e.g. a
    :class:`~.follow.ChainFollower`'s pushed head and shared cache, whose events come decoded once for
    every agent of a process); by default ``w3`` is asked.
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        start_block: int,
        confirmations: int = 0,
        max_range: int = 5_000,
        topics: TopicFilter | None = None,
        head: Callable[[], int] | None = None,
        get_logs: Callable[[Any], Sequence[Any]] | None = None,
    ) -> None:
        self.w3 = w3
        self._head = head
        self._get_logs = get_logs
        self.address = Web3.to_checksum_address(address)
        self.next_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.topics = list(topics) if topics is not None else None

    def safe_head(self) -> int:
        """The newest block deep enough to act on."""
        head = self._head() if self._head is not None else int(self.w3.eth.block_number)
        return head - self.confirmations

    def poll(self, *, to_block: int | None = None) -> list[ChainEvent]:
        """Return the events of the blocks not read yet (up to the safe head, or ``to_block``), in order."""
        head = self.safe_head() if to_block is None else min(to_block, self.safe_head())
        events: list[ChainEvent] = []
        while self.next_block <= head:
            end = min(head, self.next_block + self.max_range - 1)
            query: Any = {"address": self.address, "fromBlock": self.next_block, "toBlock": end}
            if self.topics is not None:
                query["topics"] = self.topics
            try:
                logs = self._get_logs(query) if self._get_logs is not None else self.w3.eth.get_logs(query)
            except Exception:
                # The cursor already stands past the chunks read: hand those over, fail on the next poll.
                if events:
                    return events
                raise
            events.extend(decode_logs(logs))
            self.next_block = end + 1
        return events
