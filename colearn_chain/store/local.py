"""The embedded, default weight store: a content-addressed directory, one file per CID.

Why a directory: agents on one machine (tests, demos, a small consortium on a shared disk)
need no daemon. CIDs are Kubo's own (see unixfs.py), so a blob can move to IPFS unchanged.
Writes go to a temporary file and are renamed into place, so several agent processes can share
one directory and a reader never sees a half-written blob.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from colearn_chain._files import atomic_write
from colearn_chain.exceptions import BlobTooLarge, CidNotFound, StoreUnavailable
from colearn_chain.store.unixfs import cid_v0, is_cid_v0
from colearn_chain.typing import Cid

__all__ = ["LocalStore"]

log = logging.getLogger(__name__)


class LocalStore:
    """A WeightStore backed by files named by their CIDv0 under `root`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"local:{self.root}"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def put(self, data: bytes) -> Cid:
        """Store `data` under its CID; storing the same bytes twice is a no-op."""
        cid = cid_v0(data)
        target = self.root / cid
        if target.exists():
            log.debug("blob %s already in %s", cid, self.describe())
            return cid
        try:
            # Synced before the rename: a crash must not leave a short file under the CID's name.
            # 0644: other agents' users may read blobs.
            atomic_write(target, data, mode=0o644)
        except OSError as error:
            raise StoreUnavailable(f"cannot write {cid} to {self.describe()}: {error}") from error
        log.debug("stored %d bytes as %s in %s", len(data), cid, self.describe())
        return cid

    def get(self, cid: Cid, *, max_bytes: int) -> bytes:
        """Read the blob named `cid`, refusing before reading if it is longer than `max_bytes`."""
        # The CID comes from the chain, i.e. from anyone: never let it name another path.
        if not is_cid_v0(cid):
            raise CidNotFound(f"{cid!r} is not a CIDv0, so it is not in {self.describe()}")
        path = self.root / cid
        try:
            with open(path, "rb") as blob_file:
                size = os.fstat(blob_file.fileno()).st_size
                if size > max_bytes:
                    raise BlobTooLarge(f"blob {cid} has {size} bytes, limit is {max_bytes}")
                data = blob_file.read(max_bytes + 1)
        except FileNotFoundError as error:
            raise CidNotFound(f"{cid} not found in {self.describe()}") from error
        except OSError as error:
            raise StoreUnavailable(f"cannot read {cid} from {self.describe()}: {error}") from error
        if len(data) > max_bytes:  # cannot happen with atomic writes; cheap to be sure
            raise BlobTooLarge(f"blob {cid} has more than {max_bytes} bytes")
        return data
