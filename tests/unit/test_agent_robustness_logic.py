"""Pure logic behind the agent's robustness: which RPC errors are worth a retry, how Kubo's errors map onto
the store's, and the log cursor's topic filter and upper bound (what restoring the proposal count uses)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from web3.exceptions import (
    ContractCustomError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    Web3RPCError,
)

from colearn_chain.chain import events as events_module
from colearn_chain.chain.client import _is_transient
from colearn_chain.chain.events import LogCursor, address_topic, event_topic
from colearn_chain.exceptions import CidNotFound, StoreUnavailable
from colearn_chain.store.kubo import _from_message


def _rpc_error(code: int, message: str, data: Any = None) -> Web3RPCError:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return Web3RPCError(str(error), rpc_response={"jsonrpc": "2.0", "id": 1, "error": error})  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    "error",
    [
        _rpc_error(-32005, "limit exceeded"),
        _rpc_error(429, "Too Many Requests"),
        _rpc_error(-32000, "daily request count exceeded, request rate limited"),
        _rpc_error(-32000, "header not found"),
        _rpc_error(-32000, "request timed out"),
        TooManyRequests("slow down"),
        RequestTimedOut("timed out"),
        TimeExhausted("no answer"),
        requests.HTTPError("429 Client Error: Too Many Requests"),
        requests.ConnectionError("refused"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:40],
)
def test_rate_limits_lag_and_timeouts_are_transient(error: BaseException) -> None:
    assert _is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        _rpc_error(-32000, "nonce too low"),
        _rpc_error(-32000, "insufficient funds for gas * price + value"),
        _rpc_error(3, "execution reverted: timeout", data="0x08c379a0"),  # a revert, whatever it says
        ContractCustomError("0x1234", data="0x12345678"),
        ValueError("bad argument"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:40],
)
def test_refusals_and_reverts_are_not_transient(error: BaseException) -> None:
    assert not _is_transient(error)


def test_kubo_deadline_exceeded_means_the_store_is_slow_not_the_cid_missing() -> None:
    # Prepare
    timeout = "failed to get block: context deadline exceeded"
    missing = "block was not found locally (offline): ipld: could not find Qm"

    # Execute
    slow = _from_message(timeout, subject="cat QmX", cid="QmX")
    gone = _from_message(missing, subject="cat QmX", cid="QmX")

    # Assert
    assert isinstance(slow, StoreUnavailable)
    assert isinstance(gone, CidNotFound)


class _Eth:
    def __init__(self, head: int) -> None:
        self.block_number = head
        self.queries: list[dict[str, Any]] = []

    def get_logs(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries.append(query)
        return [{"block": b} for b in range(query["fromBlock"], query["toBlock"] + 1)]


class _W3:
    def __init__(self, eth: _Eth) -> None:
        self.eth = eth


def test_log_cursor_filters_by_topics_and_stops_at_to_block(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.setattr(events_module, "decode_logs", lambda logs: [log["block"] for log in logs])
    eth = _Eth(head=50)
    me = "0x" + "ab" * 20
    topics = [event_topic("WeightsProposed"), None, address_topic(me)]
    cursor = LogCursor(_W3(eth), "0x" + "11" * 20, start_block=3, max_range=10, topics=topics)  # type: ignore[arg-type]

    # Execute
    first = cursor.poll(to_block=20)
    rest = cursor.poll()

    # Assert
    assert first == list(range(3, 21)) and rest == list(range(21, 51))
    assert [(q["fromBlock"], q["toBlock"]) for q in eth.queries] == [(3, 12), (13, 20), (21, 30), (31, 40), (41, 50)]
    assert all(q["topics"] == topics for q in eth.queries)
    assert topics[2] == "0x" + "00" * 12 + "ab" * 20


def test_log_cursor_without_topics_asks_for_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "decode_logs", lambda logs: [log["block"] for log in logs])
    eth = _Eth(head=4)
    LogCursor(_W3(eth), "0x" + "11" * 20, start_block=0).poll()  # type: ignore[arg-type]
    assert "topics" not in eth.queries[0]
