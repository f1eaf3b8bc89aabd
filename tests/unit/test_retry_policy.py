"""The one retry policy of the chain layer, as pure logic: which failures and JSON-RPC responses are worth
asking again for, and how often and how long the policy waits before it gives up with ChainUnavailable."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from web3.exceptions import (
    ContractLogicError,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)

from colearn_chain.chain import connection
from colearn_chain.chain.connection import (
    RetryPolicy,
    is_transient,
    is_transient_response,
)
from colearn_chain.exceptions import ChainUnavailable


def _response(code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": 1, "error": error}


@pytest.mark.parametrize(
    "response",
    [
        _response(-32005, "limit exceeded"),
        _response(429, "Too Many Requests"),
        _response(-32000, "header not found"),
        _response(-32000, "request timed out"),
        _response(-32603, "service unavailable, try again"),
    ],
    ids=lambda r: str(r["error"]["message"]),
)
def test_busy_and_lagging_responses_are_transient(response: dict[str, Any]) -> None:
    assert is_transient_response(response)


@pytest.mark.parametrize(
    "response",
    [
        {"jsonrpc": "2.0", "id": 1, "result": "0x1"},
        _response(-32000, "nonce too low"),
        _response(-32601, "the method eth_foo does not exist"),
        _response(3, "execution reverted: timeout", data="0x08c379a0"),  # a revert, whatever it says
        _response(-32000, "execution reverted: rate limit", data={"data": "0x12345678"}),
        [{"jsonrpc": "2.0", "id": 1, "result": "0x1"}],  # a batch reply is judged per item by the caller
        "not a response",
    ],
    ids=lambda r: str(r)[:50],
)
def test_answers_refusals_and_reverts_are_not_transient(response: Any) -> None:
    assert not is_transient_response(response)


def test_responses_and_exceptions_follow_the_same_rule() -> None:
    for response in (_response(-32005, "limit exceeded"), _response(-32000, "nonce too low"),
                     _response(3, "execution reverted: timeout", data="0x08c379a0")):
        exc = Web3RPCError(str(response["error"]), rpc_response=response)  # type: ignore[arg-type]
        assert is_transient(exc) == is_transient_response(response)
    assert not is_transient(TransactionNotFound("not mined yet"))  # an answer, not a failure to answer
    assert not is_transient(ContractLogicError("execution reverted: timed out"))


class _Clock:
    """Records the policy's sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(connection.time, "sleep", fake.sleep)
    return fake


def _failing(times: int, error: Exception, result: str = "ok") -> tuple[list[int], Any]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return result

    return calls, call


def test_transient_failures_are_retried_with_doubling_capped_backoff(clock: _Clock) -> None:
    calls, call = _failing(5, requests.ConnectionError("refused"))

    result = RetryPolicy(retries=5, backoff=0.5, max_backoff=3.0).run("eth_call", call, endpoint="http://x")

    assert result == "ok" and len(calls) == 6
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_the_policy_gives_up_with_chain_unavailable_naming_the_endpoint(clock: _Clock) -> None:
    error = TooManyRequests("slow down")
    calls, call = _failing(100, error)

    with pytest.raises(ChainUnavailable) as raised:
        RetryPolicy(retries=2, backoff=0.1).run("eth_blockNumber", call, endpoint="http://127.0.0.1:1")

    assert len(calls) == 3 and clock.sleeps == [0.1, 0.2]
    assert "eth_blockNumber: http://127.0.0.1:1 unreachable after 3 attempts" in str(raised.value)
    assert raised.value.__cause__ is error


def test_a_refusal_is_raised_at_once(clock: _Clock) -> None:
    error = Web3RPCError("nonce too low", rpc_response=_response(-32000, "nonce too low"))  # type: ignore[arg-type]
    calls, call = _failing(1, error)

    with pytest.raises(Web3RPCError) as raised:
        RetryPolicy(retries=5).run("send", call)

    assert raised.value is error and len(calls) == 1 and clock.sleeps == []


def test_no_retry_asks_once(clock: _Clock) -> None:
    calls, call = _failing(1, requests.Timeout("slow"))

    with pytest.raises(ChainUnavailable):
        connection.NO_RETRY.run("eth_chainId", call)

    assert len(calls) == 1 and clock.sleeps == []
