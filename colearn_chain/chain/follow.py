"""Following the chain from one process: new heads pushed over WebSocket, the contract's logs read once.

Why: an agent that asks the node for the block number and the logs on every poll makes calls in
proportion to the time it runs and the number of agents, though the chain changed only when a block
was mined. A :class:`ChainFollower` learns of each new block once per process (an ``eth_subscribe``
to ``newHeads`` over WebSocket where the node serves it, as Anvil and geth do on the same port; else
one ``eth_blockNumber`` per poll interval over HTTP), wakes the agents it serves, and reads the
contract's logs for the new blocks with one ``eth_getLogs`` that every agent of the process shares,
decoded once. A new block wakes the agents only when its header's bloom filter says it may hold one of
the contract's events that an agent acts on (a proposal, an outcome, a new epoch), not for each of
the learners' votes: waking every agent for every vote made the work per epoch grow with the square of
the number of learners. Agents still read everything at their next poll.
Agents keep their own :class:`~.events.LogCursor` (order, confirmations, ranges); only the transport
below it changes.

The cache holds the logs of one chain: a reorganisation must not leave a dropped block's logs in it
for the next reader (a block number names a different block after one). So the cache remembers the
hash of the last block of every range it read and of every block it holds logs from, and before
serving or extending it checks that its newest block is still the chain's; if not, it drops every
block after the newest one that still is (the fork point) and reads them again. A range's last hash
is asked for before its logs and the cache's newest block is checked after that and before the logs,
so a reorganisation at any moment of a read leaves a hash that no longer matches, never a mixture of
two chains that looks whole. The head follows the node down too (a chain can get shorter).

Everything a node sends over the socket is treated as hostile: a message that is not a well-formed
notification of our subscription is ignored, and a socket that fails sends the follower back to
HTTP polling, never stops an agent.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound

from ..text import redact_in, redact_url
from .connection import RetryingHTTPProvider, RetryPolicy, http_web3
from .events import ChainEvent, decode_log, event_topic
from .reorg import block_hash, fork_point

__all__ = ["ChainFollower", "websocket_url"]

log = logging.getLogger(__name__)

#: Blocks of logs kept behind the newest read: a cursor further behind reads the node itself.
KEEP_BLOCKS: Final[int] = 10_000
#: Largest block range asked in one eth_getLogs (the same bound as LogCursor's).
MAX_RANGE: Final[int] = 5_000
#: Largest WebSocket message accepted (a block header is about 1 KiB).
MAX_MESSAGE: Final[int] = 1 << 20
#: Seconds to open the socket and have the subscription confirmed.
WS_TIMEOUT: Final[float] = 5.0
#: Seconds without a new head over the socket after which the head is also asked for over HTTP.
HEAD_CHECK: Final[float] = 2.0
#: The events an agent acts on at once (the others, votes, are read at its next poll).
WAKING_EVENTS: Final[tuple[str, ...]] = (
    "EpochStarted", "WeightsProposed", "ProposalAccepted", "ProposalRejected", "EpochSkipped",
)


def _bloom_bits(item: bytes) -> tuple[int, ...]:
    """The three bits of a 2048-bit log bloom that ``item`` (an address or a topic) sets (yellow paper 4.3.1)."""
    digest = keccak(item)
    return tuple(((digest[i] << 8) | digest[i + 1]) & 2047 for i in (0, 2, 4))


def bloom_may_hold(bloom: int, item: bytes) -> bool:
    """Whether a block's log bloom may hold ``item`` (False: it certainly does not)."""
    return all(bloom >> bit & 1 for bit in _bloom_bits(item))


def websocket_url(rpc_url: str) -> str | None:
    """The WebSocket URL a node serving ``rpc_url`` over HTTP answers on the same port, or None.

    Anvil and geth (``--ws`` on the HTTP port, or a proxy) serve both on one address; a hosted
    endpoint's WebSocket path differs by provider, so only http(s) URLs are mapped, path kept.
    """
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    return urlunsplit((scheme, *parts[1:])) if scheme else None


class ChainFollower:
    """The chain's head for every agent of one process, and the contract's logs read once for all of them.

    ``start_block`` is where the shared log cache starts (the deployment's block). ``websocket``:
    True derives the socket from ``rpc_url``, a string is the socket's URL, False polls over HTTP only.
    """

    def __init__(
        self, rpc_url: str, address: str, *, start_block: int, poll_interval: float = 0.2,
        websocket: bool | str = True,
    ) -> None:
        self.rpc_url = rpc_url
        self.address = Web3.to_checksum_address(address)
        self.poll_interval = poll_interval
        self.w3 = http_web3(rpc_url, policy=RetryPolicy())
        self.ws_url = websocket_url(rpc_url) if websocket is True else (websocket or None)
        #: "websocket" while heads are pushed, "http" while they are polled
        self.mode = "http"
        self._head = -1
        self._head_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._logs_lock = threading.Lock()
        self._first = start_block  # the cache holds every log of blocks [_first, _read_to]
        self._read_to = start_block - 1
        self._logs: list[ChainEvent] = []
        self._blocks: list[int] = []  # block number of each cached event, for bisect
        #: block number -> hash when read, for the last block of each range read and each block with logs
        self._hashes: dict[int, str] = {}
        self._address_bytes = bytes(HexBytes(self.address))
        self._waking_topics = [bytes(HexBytes(event_topic(name))) for name in WAKING_EVENTS]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ───────────────────────────────────────────────────────────── public

    @property
    def provider(self) -> RetryingHTTPProvider:
        provider = self.w3.provider
        assert isinstance(provider, RetryingHTTPProvider)
        return provider

    def start(self) -> ChainFollower:
        """Subscribe to new heads (or start polling) on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="chain-follower", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * WS_TIMEOUT)

    def __enter__(self) -> ChainFollower:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on_new_head(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (quick, thread-safe: e.g. setting an Event) on every new head."""
        self._listeners.append(callback)

    def head(self) -> int:
        """The newest block number known (asked of the node once if none is known yet)."""
        if self._head < 0:
            self._set_head(int(self.w3.eth.block_number))
        return self._head

    def get_logs(self, query: dict[str, Any]) -> list[Any]:
        """``eth_getLogs`` for ``query``: all of the contract's logs in a block range are served, decoded,
        from the shared cache (read from the node once per new range); any other query goes to the node."""
        if (
            query.get("topics") is not None
            or Web3.to_checksum_address(query["address"]) != self.address
            or not isinstance(query.get("fromBlock"), int)
            or not isinstance(query.get("toBlock"), int)
        ):
            return list(self.w3.eth.get_logs(query))  # type: ignore[arg-type]
        start, end = int(query["fromBlock"]), int(query["toBlock"])
        with self._logs_lock:
            if start < self._first:
                return list(self.w3.eth.get_logs(query))  # type: ignore[arg-type]
            if self._read_to >= end:
                self._drop_orphans()  # served from the cache only while its newest block is the chain's
            while self._read_to < end:
                upto = min(end, self._read_to + MAX_RANGE)
                upto_hash = block_hash(self.w3, upto)  # before the logs: see the module's docstring
                if upto_hash is None:
                    raise BlockNotFound(f"block {upto} is not on the chain (it got shorter or is not mined yet)")
                if self._drop_orphans():
                    continue
                logs = self.w3.eth.get_logs({"address": self.address, "fromBlock": self._read_to + 1, "toBlock": upto})
                for event in sorted((decode_log(item) for item in logs), key=lambda e: e.meta.position):
                    self._logs.append(event)
                    self._blocks.append(event.meta.block_number)
                    self._hashes[event.meta.block_number] = event.meta.block_hash
                self._hashes[upto] = upto_hash
                self._read_to = upto
            self._prune()
            lo = bisect.bisect_left(self._blocks, start)
            hi = bisect.bisect_right(self._blocks, end)
            return self._logs[lo:hi]

    # ───────────────────────────────────────────────────────────── inside

    def _prune(self) -> None:
        first = self._read_to - KEEP_BLOCKS
        if first > self._first:
            cut = bisect.bisect_left(self._blocks, first)
            del self._logs[:cut], self._blocks[:cut]
            for number in [n for n in self._hashes if n < first]:
                del self._hashes[number]
            self._first = first

    def _drop_orphans(self) -> bool:
        """If the cache's newest block is no longer the chain's, drop every block after the fork point (the
        newest remembered block still on the chain) and return True; the caller reads them again."""
        if self._read_to < self._first or block_hash(self.w3, self._read_to) == self._hashes.get(self._read_to):
            return False
        numbers = sorted(self._hashes, reverse=True)
        fork = fork_point(numbers, lambda n: block_hash(self.w3, n) == self._hashes[n])
        if fork is None:
            fork = self._first - 1
        cut = bisect.bisect_right(self._blocks, fork)
        log.warning("a reorganisation replaced blocks %d..%d: the shared log cache reads them again (%d log(s) "
                    "dropped)", fork + 1, self._read_to, len(self._logs) - cut)
        del self._logs[cut:], self._blocks[cut:]
        for number in [n for n in self._hashes if n > fork]:
            del self._hashes[number]
        self._read_to = fork
        return True

    def _set_head(self, number: int, *, wake: bool = True) -> None:
        """Take the node's head, lower ones too (a reorganisation can shorten the chain); wake on a new one."""
        with self._head_lock:
            if number == self._head:
                return
            rose = number > self._head
            self._head = number
        if wake and rose:
            for callback in self._listeners:
                callback()

    def _worth_waking(self, bloom: int | None) -> bool:
        """Whether a block with log bloom ``bloom`` (None: unknown) may hold an event the agents act on."""
        if bloom is None:
            return True
        return bloom_may_hold(bloom, self._address_bytes) and any(
            bloom_may_hold(bloom, topic) for topic in self._waking_topics
        )

    def _follow(self) -> None:
        if self.ws_url is not None:
            try:
                self._subscribe(self.ws_url)
                return  # stopped
            except Exception as error:  # noqa: BLE001 - any failure of the socket means: poll instead
                log.info("no WebSocket subscription at %s (%s: %s); following the chain over HTTP",
                         redact_url(self.ws_url), type(error).__name__, redact_in(str(error), self.ws_url))
        self.mode = "http"
        while not self._stopping.wait(self.poll_interval):
            try:
                self._set_head(int(self.w3.eth.block_number))
            except Exception as error:  # noqa: BLE001 - the agents' own calls report a dead node
                log.debug("polling the head failed: %s: %s", type(error).__name__, redact_in(str(error), self.rpc_url))

    def _subscribe(self, url: str) -> None:
        """Follow ``newHeads`` over the socket until stopped (returns) or the socket fails (raises)."""
        from websockets.sync.client import connect

        with connect(url, open_timeout=WS_TIMEOUT, max_size=MAX_MESSAGE, compression=None) as socket:
            socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
            reply = json.loads(socket.recv(timeout=WS_TIMEOUT))
            subscription = reply.get("result") if isinstance(reply, dict) else None
            if not isinstance(subscription, str):
                raise ConnectionError(f"eth_subscribe refused: {str(reply)[:200]}")
            self.mode = "websocket"
            log.info("following new heads over WebSocket %s", redact_url(url))
            # A block mined before the subscription took effect is not lost: read the head once now.
            self._set_head(int(self.w3.eth.block_number))
            checked = time.monotonic()
            while not self._stopping.is_set():
                if time.monotonic() - checked >= HEAD_CHECK:
                    # A socket can die without a word: ask over HTTP now and then, so the agents never
                    # wait on a head that stopped moving here only.
                    checked = time.monotonic()
                    self._set_head(int(self.w3.eth.block_number))
                try:
                    message = socket.recv(timeout=0.5)
                except TimeoutError:
                    continue
                head = _new_head(message, subscription)
                if head is not None:
                    checked = time.monotonic()
                    self._set_head(head[0], wake=self._worth_waking(head[1]))


def _new_head(message: str | bytes, subscription: str) -> tuple[int, int | None] | None:
    """The block number and log bloom (None if absent or malformed) of a ``newHeads`` notification of
    ``subscription``; None for anything else."""
    try:
        data = json.loads(message)
        params = data["params"]
        if data.get("method") != "eth_subscription" or params["subscription"] != subscription:
            return None
        header = params["result"]
        number = int(header["number"], 16)
        raw = header.get("logsBloom")
        bloom = int(raw, 16) if isinstance(raw, str) and len(raw) == 2 + 512 else None
        return number, bloom
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
