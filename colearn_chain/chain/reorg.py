"""A log cursor that notices reorganisations: events of blocks the chain dropped come back as :class:`Removed`.

Why: :class:`~.events.LogCursor` reads each block once, so an event in a block that a reorganisation
later drops would stay in its reader's view forever, and a transaction that vanished with it would
never be sent again. This cursor remembers the hash of every block it delivered events from and of the
last block of each range it read, for the last ``window`` blocks. Before each read it asks the node
for the newest remembered block: if its hash changed, it walks back to the newest block whose hash
still matches (the fork point), hands over a :class:`Removed` for every event it had delivered after
it (newest first, so undoing them is undoing a stack), and reads on from the fork point, so the
events of the chain's new blocks follow in the same poll.

The hash of a range's last block is asked for *before* its logs are read: logs that come from a
source a step behind the chain (a shared :class:`~.follow.ChainFollower`'s cache, or a node that had
not switched yet) were then read after that hash, so a reorganisation that makes them stale also
changes the remembered hash, and the next poll takes them back.

A reorganisation reaching below the oldest remembered block takes back every remembered event and reads
on from that block; events older than the window cannot be taken back, so a reader must then ask the
chain for its state (the agent resyncs whenever an undone event leaves its view unsure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from web3 import Web3
from web3.exceptions import BlockNotFound

from .events import ChainEvent, LogCursor, TopicFilter, as_hex

__all__ = ["DEFAULT_REORG_WINDOW", "Removed", "ReorgAwareCursor", "block_hash", "fork_point"]

log = logging.getLogger(__name__)

#: Blocks whose hashes are remembered: deeper than any reorganisation a proof-of-stake chain has had.
DEFAULT_REORG_WINDOW: Final[int] = 64


@dataclass(frozen=True)
class Removed:
    """An event the chain no longer holds: its block was dropped by a reorganisation."""

    event: ChainEvent


class ReorgAwareCursor:
    """A :class:`LogCursor` (same arguments) whose :meth:`poll` also reports events that vanished."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        start_block: int,
        confirmations: int = 0,
        topics: TopicFilter | None = None,
        window: int = DEFAULT_REORG_WINDOW,
        head: Callable[[], int] | None = None,
        get_logs: Callable[[Any], Sequence[Any]] | None = None,
    ) -> None:
        self.w3 = w3
        self.inner = LogCursor(w3, address, start_block=start_block, confirmations=confirmations, topics=topics,
                               head=head, get_logs=get_logs)
        self.window = window
        #: block number -> (its hash when read, the events delivered from it)
        self._blocks: dict[int, tuple[str, list[ChainEvent]]] = {}
        #: What a poll took from the chain but has not handed over yet: a later call of the same poll failed
        #: (a flaky node), and the cursor has already moved past it, so the next poll hands it over first.
        self._pending: list[ChainEvent | Removed] = []

    @property
    def next_block(self) -> int:
        """The first block not read yet."""
        return self.inner.next_block

    @property
    def confirmations(self) -> int:
        return self.inner.confirmations

    def poll(self) -> list[ChainEvent | Removed]:
        """Removed events of dropped blocks (newest first), then the new blocks' events in chain order.

        Safe to retry: whatever this cursor took from the chain before an RPC call failed is handed over by
        the next poll, so a flaky node loses no event and no :class:`Removed`.
        """
        self._pending.extend(self._undo_reorg())
        target = self.inner.safe_head()
        if target >= self.inner.next_block:
            target_hash = self._hash_of(target)  # before the logs: see the module's docstring
            if target_hash is not None:  # None: the head we were told of is gone; read at the next poll
                before = self.inner.next_block
                events = self.inner.poll(to_block=target)
                self._pending.extend(events)
                last = self.inner.next_block - 1
                if last >= before:
                    self._remember(events, last, target_hash if last == target else None)
        out, self._pending = self._pending, []
        return out

    def _hash_of(self, number: int) -> str | None:
        return block_hash(self.w3, number)

    def _remember(self, events: list[ChainEvent], last: int, last_hash: str | None) -> None:
        """Remember the blocks of ``events`` and ``last`` (whose hash, asked before the read, is ``last_hash``;
        None: ask now, as the read stopped short of its target)."""
        for event in events:
            _, delivered = self._blocks.setdefault(event.meta.block_number, (event.meta.block_hash, []))
            delivered.append(event)
        if last_hash is None and last not in self._blocks:
            try:
                last_hash = self._hash_of(last)
            except Exception:  # noqa: BLE001 - any failure of the node: the events' own blocks are remembered
                log.debug("block %d's hash is unknown (the node failed): a reorganisation is then noticed by the "
                          "newest block this reader delivered events from", last)
        if last_hash is not None:
            self._blocks[last] = (last_hash, self._blocks.get(last, ("", []))[1])
        for number in [n for n in self._blocks if n <= last - self.window]:
            del self._blocks[number]

    def _undo_reorg(self) -> list[Removed]:
        """If the newest remembered block changed, rewind to the fork point and return what it removed."""
        if not self._blocks:
            return []
        numbers = sorted(self._blocks, reverse=True)
        if self._hash_of(numbers[0]) == self._blocks[numbers[0]][0]:
            return []
        fork = fork_point(numbers, lambda n: self._hash_of(n) == self._blocks[n][0])
        if fork is None:
            fork = numbers[-1] - 1
            log.warning("a reorganisation reaches below block %d, the oldest this reader remembers (at most %d): "
                        "every event read since is taken back", numbers[-1], self.window)
        removed = [Removed(e) for n in numbers if n > fork for e in reversed(self._blocks[n][1])]
        for number in [n for n in numbers if n > fork]:
            del self._blocks[number]
        log.warning("a reorganisation replaced blocks %d..%d: %d event(s) taken back, reading the new blocks",
                    fork + 1, numbers[0], len(removed))
        self.inner.next_block = min(self.inner.next_block, fork + 1)
        return removed


def block_hash(w3: Web3, number: int) -> str | None:
    """The hash of block ``number`` now, None when the chain has no such block (it got shorter)."""
    try:
        block = w3.eth.get_block(number)
    except BlockNotFound:
        return None
    return as_hex(block["hash"]) if block is not None and block.get("hash") is not None else None


def fork_point(numbers_newest_first: list[int], unchanged: Callable[[int], bool]) -> int | None:
    """The newest remembered block still on the chain (its ancestors are then too), or None."""
    for number in numbers_newest_first:
        if unchanged(number):
            return number
    return None
