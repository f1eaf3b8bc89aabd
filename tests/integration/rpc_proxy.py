"""A JSON-RPC proxy in front of a real node that can misbehave on request, for fault-injection tests.

Real nodes and gateways rate-limit (HTTP 429, JSON-RPC -32005), lag behind their peers ("header not
found") and now and then return incomplete answers; Anvil does none of that. The proxy forwards every
request to the node unless ``fault(request)`` returns a replacement: an ``int`` is sent as a bare HTTP
status, a ``dict`` as the JSON-RPC body (its ``id`` filled in). Batch requests are forwarded as they are.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

from loopback_proxy import LoopbackProxy, Reply

#: A replacement answer: a bare HTTP status or a JSON-RPC body.
Refusal = int | dict[str, Any]
Fault = Callable[[dict[str, Any]], Refusal | None]

#: What public nodes and gateways answer now and then, and a client must ride out: a rate limit as an
#: HTTP status and as a JSON-RPC error, and a load-balanced node behind its peers.
TRANSIENT_REFUSALS: tuple[Refusal, ...] = (
    {"error": {"code": -32005, "message": "limit exceeded"}},
    429,
    {"error": {"code": -32000, "message": "header not found"}},
)


class RpcProxy(LoopbackProxy):
    """``with RpcProxy(node_url) as proxy: proxy.fault = ...``; clients use ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.fault: Fault = lambda request: None
        self.counts: dict[str, int] = {}  # faults injected, by method
        self._lock = threading.Lock()

    def handle(self, path: str, headers: Any, body: bytes) -> Reply:
        request = json.loads(body)
        replacement = self.fault(request) if isinstance(request, dict) else None
        if replacement is None:
            upstream = urllib.request.Request(self.upstream, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(upstream, timeout=30) as response:
                return 200, "application/json", response.read()
        method = request.get("method", "?")
        with self._lock:
            self.counts[method] = self.counts.get(method, 0) + 1
        if isinstance(replacement, int):
            return replacement, "application/json", b"rate limited"
        return 200, "application/json", json.dumps({"jsonrpc": "2.0", "id": request.get("id"), **replacement}).encode()

    def injected(self) -> int:
        with self._lock:
            return sum(self.counts.values())
