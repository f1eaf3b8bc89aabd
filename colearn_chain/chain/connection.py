"""The one way to reach a JSON-RPC endpoint: a Web3 over HTTP, and one retry policy for transient errors.

Why one module: every reader and writer of the chain (agents, status, the explorer, a run) faces the
same flaky endpoints (connection refused, timeouts, rate limits, a load-balanced node that has not
seen a block yet), so they share one answer to "is this worth asking again" (:func:`is_transient`) and
one backoff loop (:class:`RetryPolicy`), ending in :class:`ChainUnavailable` with the URL.

A policy applies at one level only: either per request, inside the provider (:func:`connect`, for
readers that make many plain calls), or per call around several requests (``ChainClient.retrying``,
whose provider does not retry), never both, so retries never multiply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    TransactionIndexingInProgress,
    TransactionNotFound,
    Web3RPCError,
)
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from ..exceptions import ChainUnavailable
from ..text import redact_in, redact_url
from .revert import revert_data_of

__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "RetryPolicy",
    "RetryingHTTPProvider",
    "connect",
    "http_web3",
    "is_transient",
    "is_transient_response",
    "rpc_error",
]

#: The variable an agent reads its JSON-RPC URL from: a URL often carries a provider's API key, and a process's
#: environment, unlike its command line, is not visible to every user of the machine.
ENV_RPC_URL: Final[str] = "COLEARN_RPC_URL"

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds one HTTP request may take.
DEFAULT_TIMEOUT: Final[float] = 10.0

#: Requests never repeated by the provider: a send asked again after a timeout may be a second payment.
#: (ChainClient retries its sends itself, knowing the transaction's hash, see ``transactions``.)
_NEVER_REPEATED: Final[frozenset[str]] = frozenset({"eth_sendTransaction", "eth_sendRawTransaction"})

#: Errors that say nothing about the request, only that the node could not answer it now.
_TRANSIENT_TYPES: Final[tuple[type[BaseException], ...]] = (
    OSError,  # requests' exceptions (incl. HTTP 429/5xx from raise_for_status), ConnectionError, TimeoutError
    TooManyRequests,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionIndexingInProgress,
)
#: JSON-RPC error codes meaning "busy, ask again": -32005 limit exceeded (EIP-1474), 429 from gateways.
_TRANSIENT_CODES: Final[frozenset[int]] = frozenset({-32005, 429})
#: Node messages (lower case) meaning the same: rate limits, a node behind its peers, timeouts.
_TRANSIENT_HINTS: Final[tuple[str, ...]] = (
    "rate limit",
    "too many requests",
    "limit exceeded",
    "header not found",  # a load-balanced node that has not seen the block its peer just reported
    "timeout",
    "timed out",
    "deadline exceeded",
    "try again",
    "temporarily unavailable",
    "service unavailable",
)


def rpc_error(response: Any, fallback: str = "") -> tuple[int | None, str]:
    """(code, lower-case message) of a JSON-RPC error response (``fallback`` is added to the message)."""
    code: int | None = None
    message = fallback
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        error = response["error"]
        if isinstance(error.get("code"), int):
            code = error["code"]
        message = f"{error.get('message', '')} {message}"
    return code, message.lower()


def _transient_error(code: int | None, message: str) -> bool:
    return code in _TRANSIENT_CODES or any(hint in message for hint in _TRANSIENT_HINTS)


def is_transient(exc: BaseException) -> bool:
    """Whether the node may answer if asked again: connection or HTTP errors, timeouts, rate limits, lag.

    A revert is never transient, whatever its message says.
    """
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, ContractLogicError) or revert_data_of(exc) is not None:
        return False
    if isinstance(exc, Web3RPCError) and not isinstance(exc, TransactionNotFound):
        return _transient_error(*rpc_error(exc.rpc_response, str(exc)))
    return False


def is_transient_response(response: Any) -> bool:
    """Whether a JSON-RPC response is an error worth asking again for (the same rule as :func:`is_transient`)."""
    if not isinstance(response, dict) or not isinstance(response.get("error"), dict):
        return False
    data = response["error"].get("data")
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return False  # revert data: a rule refused the call, whatever the message says
    return _transient_error(*rpc_error(response))


@dataclass(frozen=True)
class RetryPolicy:
    """Retry transient failures ``retries`` times, with exponential backoff from ``backoff`` seconds,
    capped at ``max_backoff``, then raise ChainUnavailable."""

    retries: int = 5
    backoff: float = 0.25
    max_backoff: float = 5.0

    def run(self, what: str, call: Callable[[], T], *, endpoint: str = "the JSON-RPC endpoint") -> T:
        """Run ``call`` (one or more RPC requests), retrying it while it fails transiently."""
        delay = self.backoff
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                last = exc
            if attempt < self.retries:
                log.warning("%s: %s unreachable (%s); retry %d/%d in %.2f s",
                            what, redact_url(endpoint), type(last).__name__, attempt + 1, self.retries, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise ChainUnavailable(
            f"{what}: {redact_url(endpoint)} unreachable after {self.retries + 1} attempts: "
            f"{redact_in(str(last), endpoint)}"
        ) from last


#: A policy that asks once: for callers that retry at another level, or must fail at once.
NO_RETRY: Final[RetryPolicy] = RetryPolicy(retries=0)


class _TransientResponse(TooManyRequests):
    """A JSON-RPC error response the policy retries (transient by its type); carries the response."""

    def __init__(self, response: RPCResponse) -> None:
        super().__init__(str(response.get("error")))
        self.response = response


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTPProvider with :class:`RetryPolicy` applied to each request instead of web3's own retry.

    It counts the HTTP requests it makes (``calls``, by JSON-RPC method; a batch counts once, as
    ``batch``), so a bench can report the calls an agent makes per epoch. The chain id is asked once:
    web3's validation asks for it before every ``eth_call`` and ``eth_estimateGas``, which doubled an
    agent's calls, and an endpoint does not change chains under a running process.
    """

    def __init__(self, endpoint_uri: str, *, timeout: float = DEFAULT_TIMEOUT, policy: RetryPolicy = NO_RETRY) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.policy = policy
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._chain_id: RPCResponse | None = None

    def _count(self, method: str) -> None:
        with self._count_lock:
            self.calls[method] += 1

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        if self.policy.retries == 0:
            return call()
        return self.policy.run(what, call, endpoint=str(self.endpoint_uri))

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if method == "eth_chainId" and self._chain_id is not None:
            return self._chain_id
        if method in _NEVER_REPEATED:
            self._count(str(method))
            return super().make_request(method, params)

        def attempt() -> RPCResponse:
            self._count(str(method))
            response = super(RetryingHTTPProvider, self).make_request(method, params)
            if is_transient_response(response):
                raise _TransientResponse(response)
            return response

        response = self._retrying(str(method), attempt)
        if method == "eth_chainId" and "result" in response and "error" not in response:
            self._chain_id = response
        return response

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        def attempt() -> list[RPCResponse] | RPCResponse:
            self._count("batch")
            response = super(RetryingHTTPProvider, self).make_batch_request(batch_requests)
            if not isinstance(response, list) and is_transient_response(response):
                raise _TransientResponse(response)
            return response

        return self._retrying("batch", attempt)


def http_web3(rpc_url: str, *, timeout: float = DEFAULT_TIMEOUT, policy: RetryPolicy = NO_RETRY) -> Web3:
    """A Web3 on ``rpc_url`` over HTTP whose requests follow ``policy`` (default: asked once)."""
    return Web3(RetryingHTTPProvider(rpc_url, timeout=timeout, policy=policy))


def connect(rpc_url: str, *, timeout: float = DEFAULT_TIMEOUT, policy: RetryPolicy = RetryPolicy()) -> Web3:
    """A Web3 on ``rpc_url`` that has answered ``eth_chainId``; ChainUnavailable with the URL otherwise.

    The first request is asked once: a user typing a wrong port wants one clear line at once, not a
    backoff. Later requests follow ``policy``, so a long-lived reader rides out a flaky endpoint.
    """
    w3 = http_web3(rpc_url, timeout=timeout, policy=NO_RETRY)
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # connection refused, DNS, timeout, not JSON-RPC: all mean "no chain here"
        raise ChainUnavailable(
            f"cannot reach a JSON-RPC endpoint at {redact_url(rpc_url)}: {type(exc).__name__}: "
            f"{redact_in(str(exc), rpc_url)}"
        ) from exc
    provider = w3.provider
    assert isinstance(provider, RetryingHTTPProvider)
    provider.policy = policy
    log.debug("connected to %s (chain id %d)", redact_url(rpc_url), chain_id)
    return w3
