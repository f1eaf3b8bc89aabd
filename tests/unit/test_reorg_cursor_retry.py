"""ReorgAwareCursor.poll is safe to retry: what it took from the chain before a call failed comes with the next poll.

A flaky node may fail any call of a poll; the agent retries the poll. Events read, and events a reorganisation
took back, must then still reach the reader: a lost Removed of our own vote means that vote is never sent again.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from colearn_chain.chain import events as events_module
from colearn_chain.chain.events import LogMeta, VoteCast
from colearn_chain.chain.reorg import Removed, ReorgAwareCursor

ADDRESS = "0x" + "11" * 20
ME = "0x" + "22" * 20


def _vote(block: int, block_hash: str) -> VoteCast:
    return VoteCast(epoch=1, voter=ME, approve=True, score=5, meta=LogMeta(block, 0, "0x" + "ab" * 32, block_hash))


class FlakyChain:
    """Block hashes, logs by block and a head; each call can be told to fail its next N times."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.hashes = {n: f"0xa{n}" for n in range(head + 1)}
        self.logs: dict[int, list[VoteCast]] = {}
        self.failures: dict[str, int] = {}

    def _maybe_fail(self, call: str) -> None:
        if self.failures.get(call, 0) > 0:
            self.failures[call] -= 1
            raise OSError(f"{call}: connection reset")

    def get_block(self, number: int) -> dict[str, str]:
        self._maybe_fail(f"block {number}")
        return {"hash": self.hashes[number]}

    def head_number(self) -> int:
        self._maybe_fail("head")
        return self.head

    def get_logs(self, query: dict[str, Any]) -> list[VoteCast]:
        self._maybe_fail(f"logs from {query['fromBlock']}")
        return [e for b in range(query["fromBlock"], query["toBlock"] + 1) for e in self.logs.get(b, [])]

    def cursor(self) -> ReorgAwareCursor:
        w3: Any = SimpleNamespace(eth=SimpleNamespace(get_block=self.get_block))
        return ReorgAwareCursor(w3, ADDRESS, start_block=1, head=self.head_number, get_logs=self.get_logs)


@pytest.fixture(autouse=True)
def decoded_already(monkeypatch: pytest.MonkeyPatch) -> None:
    # Decoding is tested against the real contract elsewhere; here get_logs hands out decoded events.
    monkeypatch.setattr(events_module, "decode_logs", list)


def _poll_retrying(cursor: ReorgAwareCursor, attempts: int = 3) -> list[Any]:
    """What the agent does: a failed poll is polled again."""
    for _ in range(attempts - 1):
        try:
            return cursor.poll()
        except OSError:
            continue
    return cursor.poll()


def test_events_a_reorganisation_took_back_survive_a_failure_after_the_rewind() -> None:
    # Prepare: our vote in block 2 was read
    chain = FlakyChain(head=3)
    vote = _vote(2, "0xa2")
    chain.logs[2] = [vote]
    cursor = chain.cursor()
    assert cursor.poll() == [vote]
    # Execute: blocks 2 and 3 are replaced without our vote, and the head call right after the rewind fails once
    chain.hashes.update({2: "0xb2", 3: "0xb3"})
    chain.logs.clear()
    chain.failures["head"] = 1
    out = _poll_retrying(cursor)
    # Assert
    assert out == [Removed(vote)]
    assert cursor.poll() == []


def test_a_first_chunks_events_survive_when_the_next_chunk_and_the_last_blocks_hash_fail() -> None:
    # Prepare: an event in block 1, read in chunks of two blocks; the second chunk fails, then the hash of the last
    # block of the first chunk (asked after its logs, as the read stopped short) fails too
    chain = FlakyChain(head=4)
    vote = _vote(1, "0xa1")
    chain.logs[1] = [vote]
    cursor = chain.cursor()
    cursor.inner.max_range = 2
    chain.failures.update({"logs from 3": 1, "block 2": 1})
    # Execute
    out = _poll_retrying(cursor)
    out += _poll_retrying(cursor)
    # Assert: delivered exactly once, and the cursor read on to the head
    assert out == [vote]
    assert cursor.next_block == 5
