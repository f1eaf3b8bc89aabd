"""The CIDv0 that `ipfs add` gives for a blob with Kubo's defaults, computed without Kubo.

Why: the embedded store must name blobs exactly as IPFS would, so a CID recorded on chain by an
agent using the local store can later be fetched from (or pinned on) a Kubo node unchanged.

Kubo's defaults (boxo importer, Kubo 0.43 `Import.*`): fixed-size chunker `size-262144`,
balanced DAG layout, at most 174 links per node, dag-pb leaves (no raw leaves) holding UnixFS
`File` data, CIDv0 = base58btc(sha2-256 multihash of the dag-pb block).

Layout, as boxo's `balanced.Layout`: the first chunk is the root leaf; while data remains, the
current root becomes the first child of a new root one level deeper, which is then filled up
to 174 children with full subtrees of the level below.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from colearn_chain.typing import Cid

__all__ = [
    "CHUNK_SIZE",
    "CIDV0_PATTERN",
    "EMPTY_FILE_CID",
    "MAX_LINKS",
    "b58encode",
    "cid_v0",
    "is_cid_v0",
]

#: Kubo's default chunker, `size-262144`.
CHUNK_SIZE: Final[int] = 262_144
#: Kubo's default maximum links per node (boxo `helpers.DefaultLinksPerBlock`).
MAX_LINKS: Final[int] = 174
#: `ipfs add` of zero bytes.
EMPTY_FILE_CID: Final[Cid] = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"

_B58_ALPHABET: Final[str] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: A CIDv0: base58btc of 0x12 0x20 + 32 digest bytes, always 46 characters starting 'Qm'.
CIDV0_PATTERN: Final[re.Pattern[str]] = re.compile(r"Qm[1-9A-HJ-NP-Za-km-z]{44}")

_SHA2_256_PREFIX: Final[bytes] = b"\x12\x20"  # multihash code sha2-256, length 32
_UNIXFS_FILE: Final[int] = 2  # unixfs.proto Data.DataType.File


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes_header(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited field; the caller appends the payload."""
    return _varint((number << 3) | 2) + _varint(length)


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (multibase base58btc without its 'z' prefix), as CIDv0 uses."""
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rem = divmod(number, 58)
        chars.append(_B58_ALPHABET[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(chars))


def is_cid_v0(text: str) -> bool:
    """True if `text` has the shape of a CIDv0 (the only kind this module produces)."""
    return CIDV0_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class _Node:
    """What a parent needs from a child: its multihash, cumulative DAG size and file bytes."""

    multihash: bytes
    tsize: int  # dag-pb Tsize: this block's length plus its children's Tsize
    filesize: int


def _leaf(chunk: memoryview) -> _Node:
    """A dag-pb node whose UnixFS Data carries the chunk (Kubo's non-raw leaf).

    The empty file is the one leaf without a Data field: Kubo sets it from a nil slice.
    """
    unixfs = bytearray(_field_varint(1, _UNIXFS_FILE))
    if len(chunk):
        unixfs += _field_bytes_header(2, len(chunk))
    unixfs_suffix = _field_varint(3, len(chunk))
    unixfs_len = len(unixfs) + len(chunk) + len(unixfs_suffix)
    # PBNode with no links: field 1 (Data) only. Hash it in pieces to avoid copying the chunk.
    prefix = _field_bytes_header(1, unixfs_len) + bytes(unixfs)
    hasher = hashlib.sha256(prefix)
    hasher.update(chunk)
    hasher.update(unixfs_suffix)
    block_len = len(prefix) + len(chunk) + len(unixfs_suffix)
    return _Node(_SHA2_256_PREFIX + hasher.digest(), block_len, len(chunk))


def _branch(children: list[_Node]) -> _Node:
    """A dag-pb node linking `children` in order, its UnixFS Data listing their file sizes."""
    block = bytearray()
    for child in children:
        # PBLink: Hash (1), Name (2, always written, empty), Tsize (3).
        link = (
            _field_bytes_header(1, len(child.multihash))
            + child.multihash
            + _field_bytes_header(2, 0)
            + _field_varint(3, child.tsize)
        )
        block += _field_bytes_header(2, len(link)) + link
    filesize = sum(child.filesize for child in children)
    unixfs = bytearray(_field_varint(1, _UNIXFS_FILE) + _field_varint(3, filesize))
    for child in children:
        unixfs += _field_varint(4, child.filesize)  # blocksizes: repeated, not packed (proto2)
    block += _field_bytes_header(1, len(unixfs)) + unixfs
    tsize = len(block) + sum(child.tsize for child in children)
    return _Node(_SHA2_256_PREFIX + hashlib.sha256(block).digest(), tsize, filesize)


class _Chunks:
    """Fixed-size chunks of a buffer with a `done` test, mirroring boxo's DagBuilderHelper."""

    def __init__(self, data: memoryview, size: int) -> None:
        self._data = data
        self._size = size
        self._offset = 0

    @property
    def done(self) -> bool:
        return self._offset >= len(self._data)

    def next_leaf(self) -> _Node:
        chunk = self._data[self._offset : self._offset + self._size]
        self._offset += self._size
        return _leaf(chunk)


def _fill(chunks: _Chunks, depth: int, max_links: int, first: _Node | None = None) -> _Node:
    """boxo `fillNodeRec`: a node at `depth` with up to `max_links` children, leaves at depth 1."""
    children = [first] if first is not None else []
    while len(children) < max_links and not chunks.done:
        if depth == 1:
            children.append(chunks.next_leaf())
        else:
            children.append(_fill(chunks, depth - 1, max_links))
    return _branch(children)


def _root(data: memoryview, chunk_size: int, max_links: int) -> _Node:
    chunks = _Chunks(data, chunk_size)
    if chunks.done:
        return _leaf(memoryview(b""))
    root = chunks.next_leaf()
    depth = 1
    while not chunks.done:
        root = _fill(chunks, depth, max_links, first=root)
        depth += 1
    return root


def cid_v0(
    data: bytes | bytearray | memoryview,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> Cid:
    """The CIDv0 `ipfs add --cid-version=0 --chunker=size-<chunk_size> --raw-leaves=false` gives.

    `max_links` is Kubo's `Import.UnixFSFileMaxLinks`; tests lower it to build deep trees cheaply.
    """
    if chunk_size < 1 or max_links < 2:
        raise ValueError(f"chunk_size must be >= 1 and max_links >= 2, got {chunk_size}, {max_links}")
    view = memoryview(data).cast("B")
    return b58encode(_root(view, chunk_size, max_links).multihash)

