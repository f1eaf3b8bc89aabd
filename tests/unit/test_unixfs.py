"""unixfs: the CIDv0 that `ipfs add` gives with Kubo's defaults, computed without Kubo.

Vectors marked "boxo" were produced by boxo v0.43.0's own importer (balanced.Layout, size
splitter, dag-pb leaves, CIDv0 prefix) -- the code Kubo 0.43 runs for `ipfs add` -- through a
throwaway Go program; those with Kubo's default chunker and link limit were also checked
against a live Kubo 0.43.1 `ipfs add`, and the integration tests compare against Kubo again.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from colearn_chain.store.unixfs import (
    CHUNK_SIZE,
    EMPTY_FILE_CID,
    MAX_LINKS,
    b58encode,
    cid_v0,
    is_cid_v0,
)


def _seq(n: int) -> bytes:
    """Bytes i % 251: no two adjacent chunks equal, so swapped or repeated leaves change the CID."""
    return bytes(i % 251 for i in range(n))


def test_kubo_defaults_are_the_documented_ones() -> None:
    assert (CHUNK_SIZE, MAX_LINKS) == (262_144, 174)


def test_empty_file_cid() -> None:
    # Execute
    cid = cid_v0(b"")
    # Assert
    assert cid == EMPTY_FILE_CID == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # `echo "hello world" | ipfs add`, the canonical IPFS example
        (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
        # ipfshttpclient's add_bytes docstring
        (b"Mary had a little lamb", "QmZfF6C9j4VtoCsTp4KSrhYH47QMd3DNXVZBKaxJdhaPab"),
        (b"\0", "QmS9JArPwa55ePgDnyg6TzX24mYTS1b1vLqWNebyVotKxQ"),  # boxo
        (_seq(12), "QmebaVP2bwpoZK9XEV6QWrjmHXodxS3fdL1SypEYDb8vGx"),  # boxo
    ],
)
def test_single_leaf_blobs(data: bytes, expected: str) -> None:
    # Execute
    cid = cid_v0(data)
    # Assert
    assert cid == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # exactly one chunk: a single leaf, no parent
        (bytes(CHUNK_SIZE), "QmRk1rduJvo5DfEYAaLobS2za9tDszk35hzaNSDCJ74DA7"),
        (_seq(CHUNK_SIZE), "QmeqfRyS3vkku7n6krqC3DgGMex3x2sCpSeKMDmrG13QQq"),
        # one byte over: a root with a full leaf and a 1-byte leaf
        (bytes(CHUNK_SIZE + 1), "QmbVuw4C4vcmVKqxoWtgDVobvcHrSn51qsmQmyxjk4sB2Q"),
        (_seq(CHUNK_SIZE + 1), "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB"),
        (_seq(2 * CHUNK_SIZE), "QmX9AxjaxS7HCFKUdcQRgNKmfEj9hhjTsE57CB5iPe8zus"),
    ],
)
def test_chunk_boundaries_with_kubo_defaults(data: bytes, expected: str) -> None:  # boxo
    # Execute
    cid = cid_v0(data)
    # Assert
    assert cid == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # 174 chunks: a full root of depth 1
        (MAX_LINKS * CHUNK_SIZE, "QmY4HSz1oVGdUzb8poVYPLsoqBZjH6LZrtgnme9wWn2Qko"),
        # one byte more: depth 2, the full depth-1 tree as the first child
        (MAX_LINKS * CHUNK_SIZE + 1, "QmehMASWcBsX7VcEQqs6rpR5AHoBfKyBVEgmkJHjpPg8jq"),
    ],
)
def test_link_limit_boundary_with_kubo_defaults(size: int, expected: str) -> None:  # boxo
    # Prepare
    data = bytes(size)
    # Execute
    cid = cid_v0(data)
    # Assert
    assert cid == expected


@pytest.mark.parametrize(
    ("chunk_size", "max_links", "size", "expected"),
    [
        (4, 2, 8, "Qmaswtt9vggAeybxo2ezk5GTZyxv9poDAYeoMrCTpXzmio"),  # 2 leaves, depth 1 full
        (4, 2, 9, "QmQJhHiZMn5Q4Vof94473o8UzRdDDu4fGn5gQFeB1Wbtg9"),  # 3 leaves, depth 2
        (3, 3, 81, "QmQWkczv5wbt4x7kz9fprAqLwHk3NSUxWyeJHYMBzgZrQX"),  # 27 leaves, depth 3 full
        (3, 3, 82, "QmR7U9YgW8aTXknLRhJH54qhTFKLzkbaQRzcxAhGKxEC4X"),  # 28 leaves, depth 4
        (1, 5, 1000, "QmenJGBZXcViaLCFu914pWhE37GUM8xTHUVwEAa4zR3Mkr"),  # depth 5, ragged
    ],
)
def test_deep_balanced_trees(chunk_size: int, max_links: int, size: int, expected: str) -> None:  # boxo
    # Prepare
    data = _seq(size)
    # Execute
    cid = cid_v0(data, chunk_size=chunk_size, max_links=max_links)
    # Assert
    assert cid == expected


def test_accepts_bytearray_and_memoryview_alike() -> None:
    # Prepare
    data = _seq(CHUNK_SIZE + 1)
    # Execute
    cids = {cid_v0(data), cid_v0(bytearray(data)), cid_v0(memoryview(data))}
    # Assert
    assert cids == {"QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB"}


@pytest.mark.parametrize(("chunk_size", "max_links"), [(0, 174), (262144, 1)])
def test_rejects_parameters_that_cannot_make_a_tree(chunk_size: int, max_links: int) -> None:
    with pytest.raises(ValueError):
        cid_v0(b"abc", chunk_size=chunk_size, max_links=max_links)


def test_b58encode_matches_bitcoin_alphabet_and_keeps_leading_zeros() -> None:
    # Prepare
    multihash = b"\x12\x20" + hashlib.sha256(b"").digest()
    # Execute / Assert
    assert b58encode(b"") == ""
    assert b58encode(b"\0\0\x01") == "112"
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58encode(multihash) == "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"


def test_is_cid_v0_accepts_real_cids_and_rejects_paths_and_junk() -> None:
    # Prepare
    real = [cid_v0(os.urandom(n)) for n in (0, 10, 1000)]
    junk = [
        "",
        "../../etc/passwd",
        EMPTY_FILE_CID + "/x",
        EMPTY_FILE_CID[:-1],
        EMPTY_FILE_CID + "a",
        EMPTY_FILE_CID.replace("b", "0"),  # 0 is not in the base58 alphabet
        "bafkqaaa",  # a CIDv1 (empty raw block), not produced by this store
    ]
    # Execute / Assert
    assert all(is_cid_v0(cid) for cid in real)
    assert not any(is_cid_v0(text) for text in junk)
