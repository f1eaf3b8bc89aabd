"""An HTTP proxy in front of a real Kubo node's RPC API that holds chosen fetches, for fault-injection tests.

A Kubo node asked for a CID that no reachable peer has does not say "not found": it keeps looking until
its request timeout (tens of seconds). The tests' Kubo is offline and answers at once, so this proxy
plays the slow network: a ``cat`` of a CID in ``stalled`` is held until the CID leaves the set or ``hold``
seconds pass, then forwarded to Kubo as it is. Every other request is forwarded at once.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from colearn_chain.services.anvil import free_port


class StallingStoreProxy:
    """``with StallingStoreProxy(kubo_url, hold=40) as proxy: proxy.stalled.add(cid)``; agents use ``proxy.url``."""

    def __init__(self, upstream: str, *, hold: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold = hold
        self.port = free_port()
        self.stalled: set[str] = set()
        self.held: list[str] = []  # CIDs of the fetches held, in order
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self._body()
                parts = urlsplit(self.path)
                cid = (parse_qs(parts.query).get("arg") or [""])[0]
                if parts.path.endswith("/cat") and cid in proxy.stalled:
                    with proxy._lock:
                        proxy.held.append(cid)
                    deadline = time.monotonic() + proxy.hold
                    while cid in proxy.stalled and time.monotonic() < deadline:
                        time.sleep(0.05)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type",)}
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._reply(response.status, response.headers.get("Content-Type", ""), response.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, error.headers.get("Content-Type", ""), error.read())

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length", 0)))
                chunks = []
                while (size := int(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)

            def _reply(self, status: int, content_type: str, payload: bytes) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stalled.clear()
        self._server.shutdown()
        self._server.server_close()
