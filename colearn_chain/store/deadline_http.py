"""One HTTP POST whose whole exchange ends by a deadline, however slowly the server sends.

Why: a socket timeout bounds each wait for data, not a request: a server that trickles a byte now and
then keeps a request going for ever (in an agent, holding one of its few fetch slots, so that it can
neither judge a proposal nor fetch an accepted model). Here every read of the answer, headers and body,
waits at most until the deadline, and none starts after it. Standard library only: the client library
used for the rest of the Kubo API gives no hold on its socket.
"""

from __future__ import annotations

import http.client
import io
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["post"]


def post(url: str, params: Mapping[str, str], *, deadline: float, max_bytes: int) -> tuple[int, bytes]:
    """POST to ``url`` (http or https) with ``params`` in its query; return the status and the body.

    The body is read up to ``max_bytes + 1`` bytes (more than ``max_bytes``: the caller refuses it).
    ``deadline`` is a :func:`time.monotonic` time. Raises :class:`TimeoutError` once it passes,
    :class:`http.client.IncompleteRead` when the connection ends before the promised body did, and
    other :class:`OSError`, :class:`http.client.HTTPException` or :class:`ValueError` (a malformed
    answer) as they come.
    """
    parts = urlsplit(url)
    if parts.hostname is None or parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=_left(deadline))
    connection.response_class = _response_class(deadline)
    try:
        connection.request("POST", f"{parts.path or '/'}?{urlencode(params)}")
        with connection.getresponse() as response:
            body = response.read(max_bytes + 1)
            if len(body) <= max_bytes and response.length:  # Content-Length promised more than came
                raise http.client.IncompleteRead(body, response.length)
            return response.status, body
    finally:
        connection.close()


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; TimeoutError if none are left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed before the answer was complete")
    return left


def _response_class(deadline: float) -> type[http.client.HTTPResponse]:
    """An HTTPResponse whose every read of the socket waits at most until ``deadline``."""

    class Response(http.client.HTTPResponse):
        def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            self.fp = io.BufferedReader(_DeadlineReader(self.fp, sock, deadline))

    return Response


class _DeadlineReader(io.RawIOBase):
    """The raw stream under a response: each read gets the time left until the deadline as its timeout."""

    def __init__(self, inner: io.BufferedReader, sock: Any, deadline: float) -> None:
        super().__init__()
        self._inner = inner  # the response's own reader over the socket: kept open (it holds the socket) until closed
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(_left(self._deadline))
        return self._inner.raw.readinto(buffer)

    def close(self) -> None:
        self._inner.close()
        super().close()
