"""LogCursor: reads each block once, in order, and loses nothing when a later chunk fails."""

from __future__ import annotations

from typing import Any

import pytest

from colearn_chain.chain import events as events_module
from colearn_chain.chain.events import LogCursor


class FakeEth:
    """Just enough of w3.eth: a head and get_logs that fails on chosen ranges."""

    def __init__(self, head: int, fail_from: set[int]) -> None:
        self.block_number = head
        self.fail_from = fail_from
        self.calls: list[tuple[int, int]] = []

    def get_logs(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        start, end = query["fromBlock"], query["toBlock"]
        self.calls.append((start, end))
        if start in self.fail_from:
            raise ConnectionError("rpc down")
        return [{"block": b} for b in range(start, end + 1)]


class FakeW3:
    def __init__(self, eth: FakeEth) -> None:
        self.eth = eth


@pytest.fixture(autouse=True)
def plain_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    # Decoding is tested against the real contract elsewhere; here a log is just its block number.
    monkeypatch.setattr(events_module, "decode_logs", lambda logs: [log["block"] for log in logs])


def test_reads_ranges_once_in_order() -> None:
    # Prepare
    eth = FakeEth(head=25, fail_from=set())
    cursor = LogCursor(FakeW3(eth), "0x" + "11" * 20, start_block=3, max_range=10)  # type: ignore[arg-type]
    # Execute
    first = cursor.poll()
    eth.block_number = 27
    second = cursor.poll()
    # Assert
    assert first == list(range(3, 26)) and second == [26, 27]
    assert eth.calls == [(3, 12), (13, 22), (23, 25), (26, 27)]


def test_confirmations_hold_back_recent_blocks() -> None:
    eth = FakeEth(head=10, fail_from=set())
    cursor = LogCursor(FakeW3(eth), "0x" + "11" * 20, start_block=0, confirmations=3)  # type: ignore[arg-type]
    assert cursor.poll() == list(range(0, 8))


def test_failed_later_chunk_keeps_earlier_events() -> None:
    # Prepare: the second chunk fails once
    eth = FakeEth(head=25, fail_from={13})
    cursor = LogCursor(FakeW3(eth), "0x" + "11" * 20, start_block=3, max_range=10)  # type: ignore[arg-type]
    # Execute
    first = cursor.poll()
    eth.fail_from = set()
    second = cursor.poll()
    # Assert: every block exactly once, in order, across the failure
    assert first == list(range(3, 13))
    assert second == list(range(13, 26))


def test_failure_with_nothing_read_raises() -> None:
    eth = FakeEth(head=5, fail_from={0})
    cursor = LogCursor(FakeW3(eth), "0x" + "11" * 20, start_block=0)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        cursor.poll()
    assert cursor.next_block == 0
