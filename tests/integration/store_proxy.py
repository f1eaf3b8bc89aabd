"""An HTTP proxy in front of a real Kubo node's RPC API that holds chosen fetches, for fault-injection tests.

A Kubo node asked for a CID that no reachable peer has does not say "not found": it keeps looking until
its request timeout (tens of seconds). The tests' Kubo is offline and answers at once, so this proxy
plays the slow network: a ``cat`` or ``files/stat`` (a fetch asks for the size first) of a CID in ``stalled``
is held until the CID leaves the set or ``hold`` seconds pass, then forwarded to Kubo as it is. Every other
request is forwarded at once.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loopback_proxy import LoopbackProxy, Reply


class StallingStoreProxy(LoopbackProxy):
    """``with StallingStoreProxy(kubo_url, hold=40) as proxy: proxy.stalled.add(cid)``; agents use ``proxy.url``."""

    def __init__(self, upstream: str, *, hold: float) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.hold = hold
        self.stalled: set[str] = set()
        self.held: list[str] = []  # CIDs of the fetches held, in order
        self._lock = threading.Lock()

    def handle(self, path: str, headers: Any, body: bytes) -> Reply:
        parts = urlsplit(path)
        cid = (parse_qs(parts.query).get("arg") or [""])[0].removeprefix("/ipfs/")
        if parts.path.endswith(("/cat", "/files/stat")) and cid in self.stalled:
            with self._lock:
                self.held.append(cid)
            deadline = time.monotonic() + self.hold
            while cid in self.stalled and time.monotonic() < deadline:
                time.sleep(0.05)
        forwarded = {k: v for k, v in headers.items() if k.lower() == "content-type"}
        request = urllib.request.Request(self.upstream + path, data=body, headers=forwarded, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stalled.clear()  # release held fetches before the server stops
        super().__exit__(exc_type, exc, tb)
