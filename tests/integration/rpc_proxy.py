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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from colearn_chain.services.anvil import free_port

Fault = Callable[[dict[str, Any]], int | dict[str, Any] | None]


class RpcProxy:
    """``with RpcProxy(node_url) as proxy: proxy.fault = ...``; clients use ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.fault: Fault = lambda request: None
        self.counts: dict[str, int] = {}  # faults injected, by method
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body)
                replacement = proxy.fault(request) if isinstance(request, dict) else None
                if replacement is None:
                    upstream = urllib.request.Request(
                        proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(upstream, timeout=30) as response:
                        self._reply(200, response.read())
                    return
                with proxy._lock:
                    proxy.counts[request.get("method", "?")] = proxy.counts.get(request.get("method", "?"), 0) + 1
                if isinstance(replacement, int):
                    self._reply(replacement, b"rate limited")
                else:
                    self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request.get("id"), **replacement}).encode())

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def injected(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def __enter__(self) -> RpcProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
