"""A weight store on a Kubo (IPFS) node, through its HTTP RPC API.

`put` fixes every import parameter explicitly, so the CID does not depend on the node's
`Import.*` configuration and equals the embedded store's (see unixfs.py). `get` asks the file's
size first and checks that every byte came: Kubo reports a fetch that breaks off after it started
sending (a peer left, its timeout ran out) only in an HTTP trailer the client library ignores, so a
short read is the only sign of it. A whole `get` ends by the store's timeout even if bytes keep
trickling in (see deadline_http.py): a fetch slot of an agent is never held longer. Every failure, of
Kubo or of the connection to it, maps onto the store's exceptions so an agent retries or votes reject
instead of crashing.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import ipfshttpclient
import ipfshttpclient.exceptions as ipfs_errors
import requests
from ipfshttpclient.http_common import multiaddr_to_url_data

from colearn_chain.exceptions import BlobTooLarge, CidNotFound, StoreUnavailable, WeightStoreError
from colearn_chain.store import deadline_http
from colearn_chain.store.unixfs import CHUNK_SIZE
from colearn_chain.text import redact_url
from colearn_chain.typing import Cid

__all__ = ["DEFAULT_TIMEOUT", "KuboStore", "to_multiaddr"]

log = logging.getLogger(__name__)

#: Seconds a whole fetch (`get`) may take, and each wait for data of a `put`.
DEFAULT_TIMEOUT: Final[float] = 30.0

#: Bytes of a `files/stat` answer or of an error answer read at most (a few hundred in practice).
_MAX_ANSWER: Final[int] = 64 * 1024

#: `ipfs add` parameters, all explicit: the CIDv0 Kubo's defaults give, with the blob pinned.
_ADD_OPTIONS: Final[dict[str, Any]] = {
    "cid-version": 0,
    "chunker": f"size-{CHUNK_SIZE}",
    "raw-leaves": False,
    "pin": True,
}

#: Fragments of Kubo error messages meaning "there is no such file to give you".
_NOT_FOUND_HINTS: Final[tuple[str, ...]] = (
    "not found",  # "block was not found locally (offline)", "ipld: could not find ..." variants
    "could not find",
    "does not exist",  # `files stat /ipfs/<not a CID>`
    "invalid path",
    "invalid cid",
    "failed to decode",
    "is a directory",
    "not a file",
    "unsupported",
)

#: Fragments of Kubo error messages meaning "I gave up waiting": the server-side timeout of a fetch from
#: peers. Not "there is no such file": the peers holding it may answer next time, so it is transient.
_TIMEOUT_HINTS: Final[tuple[str, ...]] = ("context deadline exceeded", "deadline exceeded", "context canceled")


def to_multiaddr(api: str) -> str:
    """Accept '/ip4/127.0.0.1/tcp/5001/http' or 'http://127.0.0.1:5001' and return a multiaddr."""
    if api.startswith("/"):
        return api
    parts = urlsplit(api)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        # Kubo's API takes no credentials in its address (its multiaddr has no place for them): they
        # would be dropped silently here, and written into logs and deployment records on the way.
        raise ValueError(f"Kubo API address must be plain http(s)://host:port, without user, password, query or "
                         f"fragment, got {redact_url(api)}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ValueError(f"Kubo API address must be a multiaddr or http(s)://host:port, got {redact_url(api)}")
    if parts.path not in ("", "/"):  # hosted services put API keys in the path: never quoted
        raise ValueError(f"Kubo API address must not carry a path, got {redact_url(api)}")
    host = parts.hostname
    try:
        ip = ipaddress.ip_address(host)
        host_part = f"/ip{ip.version}/{ip}"
    except ValueError:
        host_part = f"/dns/{host}"
    return f"{host_part}/tcp/{parts.port}/{parts.scheme}"


class KuboStore:
    """A WeightStore on a Kubo node's RPC API (every call a POST, with a timeout)."""

    def __init__(self, api: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.api = to_multiaddr(api)
        self.timeout = timeout
        try:
            # Client(), not connect(): connect() refuses every Kubo since 0.8 on its version check.
            self._client = ipfshttpclient.Client(self.api, timeout=timeout)
            self._base_url, unix_path, _, _ = multiaddr_to_url_data(self.api, "api/v0")
        except ipfs_errors.AddressError as error:
            raise ValueError(f"unusable Kubo API address {api!r}: {error}") from error
        if unix_path is not None:
            raise ValueError(f"unusable Kubo API address {api!r}: a Unix socket; give a TCP address")

    def describe(self) -> str:
        return f"kubo:{self.api}"

    def __repr__(self) -> str:
        return f"KuboStore({self.api!r}, timeout={self.timeout})"

    def put(self, data: bytes) -> Cid:
        """Add and pin `data` with fixed import parameters; return the CIDv0 Kubo reports."""
        try:
            cid = self._client.add_bytes(data, opts=dict(_ADD_OPTIONS))
        except (ipfs_errors.Error, requests.RequestException, OSError) as error:
            raise _map_error(error, what="add") from error
        log.debug("added %d bytes as %s on %s", len(data), cid, self.describe())
        return str(cid)

    def get(self, cid: Cid, *, max_bytes: int) -> bytes:
        """Fetch the file `cid` (at most `max_bytes`), all of it or an error: never a prefix."""
        # A CID from the chain may be anything; paths ('/ipns/...', 'Qm.../x') are not blobs.
        if not cid or "/" in cid or any(ch.isspace() for ch in cid):
            raise CidNotFound(f"{cid!r} is not a CID")
        deadline = time.monotonic() + self.timeout  # for the whole fetch: stat and cat
        stat = self._call("files/stat", {"arg": f"/ipfs/{cid}"}, cid, deadline=deadline, max_bytes=_MAX_ANSWER)
        size = _file_size(_json(stat, cid), cid)
        if size > max_bytes:
            raise BlobTooLarge(f"blob {cid} has {size} bytes, more than {max_bytes}")
        # Capped at one byte more than allowed: the stat may lie.
        data = self._call("cat", {"arg": cid, "length": str(max_bytes + 1)}, cid, deadline=deadline,
                          max_bytes=max_bytes)
        if len(data) > max_bytes:
            raise BlobTooLarge(f"blob {cid} has more than {max_bytes} bytes")
        if len(data) != size:
            raise StoreUnavailable(
                f"Kubo cat {cid} gave {len(data)} of its {size} bytes: the node's fetch broke off (a peer "
                "holding it left, or the node's timeout ran out); it may succeed on a retry")
        return bytes(data)

    def _call(self, command: str, params: dict[str, str], cid: Cid, *, deadline: float, max_bytes: int) -> bytes:
        """One RPC call of a fetch, answered in full by ``deadline`` (a monotonic time) or StoreUnavailable."""
        # Kubo's own request timeout, so a fetch from peers fails ("context deadline exceeded", mapped to
        # StoreUnavailable) just before our deadline, and Kubo stops working on it.
        left = deadline - time.monotonic()
        params["timeout"] = f"{max(left - 1.0, left / 2, 0.001):.3f}s"
        try:
            status, body = deadline_http.post(self._base_url + command, params, deadline=deadline,
                                              max_bytes=max_bytes)
        except TimeoutError as error:
            raise StoreUnavailable(
                f"Kubo {command} {cid}: no complete answer within the store's timeout of {self.timeout:g} s "
                f"({error})") from error
        except (OSError, http.client.HTTPException) as error:
            raise StoreUnavailable(
                f"Kubo {command} {cid}: the connection failed ({type(error).__name__}: {error})") from error
        except ValueError as error:  # e.g. a chunk size that is not a number
            raise StoreUnavailable(f"Kubo {command} {cid}: malformed answer ({error})") from error
        if status != 200:
            raise _from_message(_error_message(status, body), subject=f"{command} {cid}", cid=cid)
        return body


def _file_size(stat: object, cid: Cid) -> int:
    """The byte size in Kubo's `files stat` answer for a file; CidNotFound for anything else."""
    if not isinstance(stat, Mapping) or stat.get("Type") != "file":
        kind = stat.get("Type") if isinstance(stat, Mapping) else type(stat).__name__
        raise CidNotFound(f"{cid} is not a file (Kubo says {kind!r})")
    size = stat.get("Size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StoreUnavailable(f"Kubo's stat of {cid} gave no usable size ({size!r})")
    return size


def _json(answer: bytes, cid: Cid) -> object:
    """Kubo's JSON answer; StoreUnavailable for anything else (the node answered garbage: ask again)."""
    try:
        return json.loads(answer)
    except (ValueError, RecursionError) as error:  # RecursionError: hostile nesting
        raise StoreUnavailable(f"Kubo's stat of {cid} is not JSON: {answer[:200]!r}") from error


def _error_message(status: int, body: bytes) -> str:
    """The message of Kubo's error answer ({"Message": ..., "Type": "error"}), or what came instead."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        answer = None
    if isinstance(answer, Mapping) and isinstance(answer.get("Message"), str):
        return str(answer["Message"])[:500]  # a hostile node's message must not flood the logs
    return f"HTTP status {status}: {body[:200]!r}"


def _map_error(error: Exception, *, what: str) -> WeightStoreError:
    """Turn an ipfshttpclient error, or a connection's (cut mid-answer, reset), into the store's exception family."""
    if isinstance(error, (requests.RequestException, OSError)):
        return StoreUnavailable(f"Kubo {what}: the connection failed ({type(error).__name__}: {error})")
    if isinstance(error, ipfs_errors.ErrorResponse):
        return _from_message(str(error), subject=what, cid=None)
    if isinstance(error, (ipfs_errors.ConnectionError, ipfs_errors.TimeoutError, ipfs_errors.ProtocolError)):
        return StoreUnavailable(f"Kubo {what}: {error}")
    return WeightStoreError(f"Kubo {what} failed: {error}")


def _from_message(message: str, *, subject: str, cid: Cid | None) -> WeightStoreError:
    """The store's exception for an error message of Kubo's."""
    if any(hint in message.lower() for hint in _TIMEOUT_HINTS):
        return StoreUnavailable(f"Kubo {subject} timed out: {message}")
    if cid is not None and any(hint in message.lower() for hint in _NOT_FOUND_HINTS):
        return CidNotFound(f"Kubo {subject}: {message}")
    return WeightStoreError(f"Kubo {subject} failed: {message}")
