"""The weight store interface: where proposers put encoded weights and voters fetch them by CID."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from colearn_chain.typing import Cid

__all__ = ["WeightStore"]


@runtime_checkable
class WeightStore(Protocol):
    """A content-addressed blob store; the CID it returns is what goes on chain.

    Implementations verify nothing about content against the chain: checking the digest is
    the agent's job, so every store is treated as untrusted the same way.
    """

    def put(self, data: bytes) -> Cid:
        """Store `data` and return its CID (the same CID every store gives for the same bytes).

        Raises StoreUnavailable when the backing service cannot be reached.
        """
        ...

    def get(self, cid: Cid, *, max_bytes: int) -> bytes:
        """Return the blob named `cid`, reading at most `max_bytes` of it.

        Raises CidNotFound when no such blob can be found (including a malformed CID),
        BlobTooLarge when it is longer than `max_bytes`, StoreUnavailable when the backing
        service cannot be reached.
        """
        ...

    def describe(self) -> str:
        """A short human description for logs, e.g. 'local:/var/colearn/blobs'."""
        ...
