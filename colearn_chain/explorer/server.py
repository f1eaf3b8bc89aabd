"""The explorer's HTTP server: a JSON API over a live :class:`~colearn_chain.history.History`, and the page.

Why the standard library's ThreadingHTTPServer: the page is served to one person on their own machine,
so a dependency-free server that binds 127.0.0.1 only is enough; every request is answered from the
in-memory index (no RPC on the request path), which is what keeps 1,000 epochs x 10 learners fast.

A poller thread updates the index from the chain and wakes long-polling clients (``/api/events``),
so the page updates without reloads. API (all GET, JSON):

- ``/api/summary``: the contract's parameters and state, outcome counts, the public explorer if known.
- ``/api/epochs?offset=O&limit=L``: epochs at positions O..O+L, oldest first (L <= 1000).
- ``/api/epochs/<n>``: one epoch.
- ``/api/scores``: every vote score as per-learner columns (the chart).
- ``/api/events?since=SEQ&wait=S``: waits up to S seconds (<= 30) for changes after SEQ; returns the
  new seq, the summary, the epochs that changed and the decoded events.
- ``/api/history``: everything, as ``History.to_json()`` (results.json's shape).

Every query parameter is checked before use (:func:`_parse_query`): only the names a path takes, each
once, plain decimal digits within bounds; anything else (``wait=nan``, ``limit=10**9``, ``offset=-1``, an
unknown name) is a 400 with a JSON message, never a clamp or a float that could spin a thread. At most
``MAX_CONNECTIONS`` connections are served at once (one more gets a 503 at once), and a connection idle for
``IDLE_TIMEOUT`` seconds is closed, so no page in the browser can make the server start threads without end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from ..chain.connection import connect
from ..exceptions import ColearnChainError
from ..history import History, Source
from ..text import printable
from .links import explorer_for

__all__ = ["ExplorerServer", "serve_in_background", "start_server"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_PAGE = 1000
MAX_WAIT = 30.0
#: The largest ``offset`` / ``since`` taken: far beyond any real history, small enough for any arithmetic.
MAX_INDEX = 10**12
#: Query parameters a request may carry at most (more is refused before parsing them).
MAX_FIELDS = 8
#: Receipts fetched per poll, so a first load of 11k transactions still lets events through every tick.
GAS_PER_TICK = 2000
#: Connections served at once (a thread each); one more is answered 503 and closed at once. Why a cap:
#: any page open in the user's browser can open connections to 127.0.0.1, and each long-poll holds a
#: thread for up to ``MAX_WAIT`` seconds; a few tabs of the explorer need a handful.
MAX_CONNECTIONS = 64
#: Seconds a connection may sit without sending a request before it is closed (keep-alive included),
#: so idle sockets cannot hold every slot.
IDLE_TIMEOUT = 60.0
_BUSY = json.dumps({"error": f"the explorer is serving {MAX_CONNECTIONS} connections already: close some "
                             "tabs or retry"}).encode()
_BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
                  b"Content-Length: " + str(len(_BUSY)).encode() + b"\r\nConnection: close\r\n\r\n" + _BUSY)

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: Everything the page loads comes from this server: no CDN, no external request of any kind.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _static(name: str) -> bytes:
    return (resources.files("colearn_chain.explorer") / "static" / name).read_bytes()


class ExplorerServer(ThreadingHTTPServer):
    """Serves one History on 127.0.0.1 and keeps it updated from the chain in a poller thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, history: History, *, port: int = 0, poll_interval: float = 0.5) -> None:
        super().__init__((HOST, port), _Handler)
        self.history = history
        self.poll_interval = poll_interval
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.poll_error: str | None = None
        self.explorer = explorer_for(history.summary.chain_id)
        self._static_cache = {name: _static(name) for name, _ in set(_STATIC.values())}
        self._poller = threading.Thread(target=self._poll_loop, name="explorer-poller", daemon=True)
        self._serve_thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection while a slot is free; otherwise a 503 at once, and the socket closed."""
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):  # a fresh socket's buffer takes these few bytes at once
                request.sendall(_BUSY_RESPONSE)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: its slot is not taken
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    # ───────────────────────────── lifecycle

    def start(self) -> ExplorerServer:
        """Serve and poll in background threads; returns at once."""
        self._poller.start()
        self._serve_thread = threading.Thread(target=self.serve_forever, name="explorer-http", daemon=True)
        self._serve_thread.start()
        log.debug("explorer serving %s on %s", self.history.address, self.url)
        return self

    def shutdown(self) -> None:
        """Stop polling and serving and wake every long-poll (socketserver's ``shutdown``, plus the poller)."""
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()
        if self._serve_thread is not None:
            super().shutdown()

    def stop(self) -> None:
        """:meth:`shutdown`, then close the socket and wait for the poller."""
        self.shutdown()
        self.server_close()
        if self._poller.is_alive():
            self._poller.join(timeout=10)

    def _poll_loop(self) -> None:
        while not self.stopping.is_set():
            before = self.history.seq
            try:
                self.history.update(gas=False)
                if self.history.gas:
                    self.history.fill_gas(GAS_PER_TICK)
                if self.poll_error:
                    log.info("chain reachable again")
                self.poll_error = None
            except Exception as exc:  # noqa: BLE001 - a flaky RPC must not kill the page; it shows the error and retries
                if self.poll_error is None:
                    log.warning("explorer cannot update from the chain: %s", printable(exc))
                self.poll_error = printable(f"{type(exc).__name__}: {exc}")
            if self.history.seq != before:
                with self.changed:
                    self.changed.notify_all()
            self.stopping.wait(self.poll_interval)

    # ───────────────────────────── API bodies

    def summary(self) -> dict[str, Any]:
        out = self.history.summary_json()
        out.update(explorer=self.explorer, poll_error=self.poll_error, server_time=int(time.time()))
        return out

    def wait_for_change(self, since: int, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.history.seq > since or self.stopping.is_set(), timeout=timeout)


class _Param:
    """One query parameter's rule: decimal digits only (an optional fraction when ``fraction``), 0..``maximum``."""

    def __init__(self, maximum: float, *, fraction: bool = False) -> None:
        self.maximum = maximum
        self.pattern = re.compile(r"[0-9]{1,13}(\.[0-9]{1,6})?" if fraction else r"[0-9]{1,13}")

    def parse(self, name: str, text: str) -> float:
        """The value of ``text``, or _BadRequest naming the rule: no sign, exponent, nan or inf can pass."""
        if not self.pattern.fullmatch(text):
            kind = "a decimal number" if "." in self.pattern.pattern else "a whole number"
            raise _BadRequest(f"{name} must be {kind} between 0 and {self.maximum:g}")
        value = float(text) if "." in text else int(text)
        if value > self.maximum:
            raise _BadRequest(f"{name} must be at most {self.maximum:g}")
        return value


#: The parameters each API path takes; a path not listed takes none.
_PARAMS: Final[dict[str, dict[str, _Param]]] = {
    "/api/epochs": {"offset": _Param(MAX_INDEX), "limit": _Param(MAX_PAGE)},
    "/api/events": {"since": _Param(MAX_INDEX), "wait": _Param(MAX_WAIT, fraction=True)},
}


def _parse_query(path: str, query: str) -> dict[str, float]:
    """The checked parameters of an API request; _BadRequest for an unknown, repeated or out-of-rule one."""
    allowed = _PARAMS.get(path, {})
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise _BadRequest(f"at most {MAX_FIELDS} query parameters") from None
    out: dict[str, float] = {}
    for name, text in pairs:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise _BadRequest(f"unknown query parameter {printable(name, limit=40)!r} (this path takes: {known})")
        if name in out:
            raise _BadRequest(f"query parameter {name} given twice")
        out[name] = allowed[name].parse(name, text)
    return out


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _host_ok(self) -> bool:
        """Refuse other Host names, so a web page elsewhere cannot reach this server by DNS rebinding."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            self._json({"error": "forbidden host"}, HTTPStatus.FORBIDDEN)
            return
        parts = urlsplit(self.path)
        path = parts.path
        try:
            query = _parse_query(path, parts.query) if path.startswith("/api/") else {}
            if path in _STATIC:
                name, content_type = _STATIC[path]
                self._send(HTTPStatus.OK, self.server._static_cache[name], content_type)
            elif path == "/api/summary":
                self._json(self.server.summary())
            elif path == "/api/epochs":
                self._epochs(query)
            elif path.startswith("/api/epochs/"):
                self._one_epoch(path.rsplit("/", 1)[1])
            elif path == "/api/scores":
                self._json(self.server.history.scores_json())
            elif path == "/api/events":
                self._events(query)
            elif path == "/api/history":
                self._json(self.server.history.to_json())
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", cache=True)
            else:
                self._json({"error": f"no such path {printable(path, limit=100)}"}, HTTPStatus.NOT_FOUND)
        except _BadRequest as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a page reload during a long-poll)

    def _epochs(self, query: dict[str, float]) -> None:
        history = self.server.history
        offset = int(query.get("offset", 0))
        limit = int(query.get("limit", 50))
        epochs = history.epochs_json(offset, limit)
        self._json(
            {
                "total": len(history),
                "first_epoch": history.first_epoch,
                "offset": offset,
                "limit": limit,
                "seq": history.seq,
                "epochs": epochs,
            }
        )

    def _one_epoch(self, text: str) -> None:
        try:
            self._json(self.server.history.epoch_json(int(text)))
        except (ValueError, KeyError):
            self._json({"error": f"no epoch {printable(text, limit=40)}"}, HTTPStatus.NOT_FOUND)

    def _events(self, query: dict[str, float]) -> None:
        history = self.server.history
        since = int(query.get("since", 0))
        wait = float(query.get("wait", 0.0))
        if wait and history.seq <= since:
            self.server.wait_for_change(since, wait)
        changed = history.changed_since(since)
        self._json(
            {
                "seq": history.seq,
                "summary": self.server.summary(),
                "changed": changed[-MAX_PAGE:],
                "events": history.events_since(since)[-200:],
            }
        )


def start_server(history: History, *, port: int = 0, poll_interval: float = 0.5) -> ExplorerServer:
    """Start an ExplorerServer over ``history`` (already read once) in background threads."""
    return ExplorerServer(history, port=port, poll_interval=poll_interval).start()


def serve_in_background(
    rpc_url: str,
    deployment: Source,
    port: int = 0,
    *,
    start_block: int | None = None,
    gas: bool = True,
    poll_interval: float = 0.5,
) -> tuple[ExplorerServer, str]:
    """Read the history of ``deployment`` (a Deployment or an address), serve it, return (server, url).

    What `colearn-chain run --explorer` calls to show a run as it happens. The events are read before
    this returns (so the first page is complete); receipts for gas are fetched by the server's poller
    afterwards. Stop it with ``server.stop()``.
    """
    try:
        history = History.open(connect(rpc_url), deployment, start_block, gas=gas)
    except ValueError as exc:
        raise ColearnChainError(str(exc)) from exc
    history.update(gas=False)
    server = start_server(history, port=port, poll_interval=poll_interval)
    return server, server.url
