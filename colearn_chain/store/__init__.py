"""Weight stores: where encoded weights live, named by the CID recorded on chain.

`from_url` picks the store from one configuration string, so agents, the CLI and tests all
spell a store the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from colearn_chain.store.base import WeightStore
from colearn_chain.store.kubo import DEFAULT_TIMEOUT, KuboStore
from colearn_chain.store.local import LocalStore
from colearn_chain.text import redact_url

__all__ = ["KuboStore", "LocalStore", "WeightStore", "from_url"]

#: Multiaddr prefixes that name a Kubo API rather than a filesystem path.
_MULTIADDR_PREFIXES: Final[tuple[str, ...]] = ("/ip4/", "/ip6/", "/dns/", "/dns4/", "/dns6/")


def from_url(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> WeightStore:
    """Build a store from a URL.

    - 'local:PATH', 'file://PATH' or a plain path: LocalStore(PATH)
    - 'kubo:ADDR', 'http(s)://host:port' or a multiaddr ('/ip4/127.0.0.1/tcp/5001/http'): KuboStore
    `timeout` applies to KuboStore only.
    """
    if url.startswith("local:"):
        return LocalStore(Path(url[len("local:") :]))
    if url.startswith("file://"):
        return LocalStore(Path(url[len("file://") :]))
    if url.startswith("kubo:"):
        return KuboStore(url[len("kubo:") :], timeout=timeout)
    if url.startswith(("http://", "https://")) or url.startswith(_MULTIADDR_PREFIXES):
        return KuboStore(url, timeout=timeout)
    if "://" in url:
        raise ValueError(f"unknown weight store URL scheme in {redact_url(url)}: use local:PATH or a Kubo API address")
    if not url:
        raise ValueError("empty weight store URL: use local:PATH or a Kubo API address")
    return LocalStore(Path(url))
