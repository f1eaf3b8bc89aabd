"""Weights <-> bytes with safetensors, the only format that crosses the network.

Never pickle: a blob comes from another learner (or anyone who can write to the store), so
decoding must only ever produce plain numeric arrays, and must fail with `WeightsMismatch`
(a reject vote) rather than crash on anything else.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

from colearn_chain.exceptions import BlobTooLarge, WeightsMismatch
from colearn_chain.typing import HexDigest, Weights

__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "SUPPORTED_DTYPES",
    "check_fits",
    "decode_weights",
    "digest",
    "digest_hex",
    "encode_weights",
]

#: Largest blob decode_weights (and the stores, by default) will accept: 256 MiB.
DEFAULT_MAX_BLOB_BYTES: Final[int] = 256 * 1024 * 1024

#: numpy dtypes that round-trip through safetensors.numpy (its loader knows no others).
SUPPORTED_DTYPES: Final[frozenset[str]] = frozenset(
    {
        "bool",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
    }
)

#: safetensors keeps this key for its own header metadata; a tensor cannot use it.
_RESERVED_NAME: Final[str] = "__metadata__"

MSG_NOT_SAFETENSORS: Final[str] = "not a safetensors blob: {error}"
MSG_TOO_LARGE: Final[str] = "blob of {size} bytes exceeds the limit of {limit} bytes"
MSG_NAMES_DIFFER: Final[str] = "tensor names differ: missing {missing}, unexpected {unexpected}"
MSG_SHAPE_DIFFERS: Final[str] = "tensor {name!r}: shape {got}, expected {expected}"
MSG_DTYPE_DIFFERS: Final[str] = "tensor {name!r}: dtype {got}, expected {expected}"
MSG_BAD_NAME: Final[str] = "cannot encode tensor name {name!r}: names must be non-empty str, not {reserved!r}"
MSG_NOT_ARRAY: Final[str] = "cannot encode tensor {name!r}: expected numpy.ndarray, got {kind}"
MSG_BAD_DTYPE: Final[str] = "cannot encode tensor {name!r} with dtype {dtype}: supported dtypes are {supported}"


def encode_weights(weights: Weights) -> bytes:
    """Encode weights as safetensors bytes; equal dicts give equal bytes (the chain stores a digest).

    Raises TypeError for anything safetensors cannot carry faithfully (object or string dtypes,
    non-arrays, bad names), because silently coercing would change what the proposer proposes.
    """
    prepared: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        if not isinstance(name, str) or not name or name == _RESERVED_NAME:
            raise TypeError(MSG_BAD_NAME.format(name=name, reserved=_RESERVED_NAME))
        if not isinstance(value, np.ndarray):
            raise TypeError(MSG_NOT_ARRAY.format(name=name, kind=type(value).__name__))
        if value.dtype.name not in SUPPORTED_DTYPES:
            raise TypeError(
                MSG_BAD_DTYPE.format(
                    name=name, dtype=value.dtype, supported=", ".join(sorted(SUPPORTED_DTYPES))
                )
            )
        # safetensors.numpy reads raw memory from the data pointer: it must be C-contiguous.
        # (np.ascontiguousarray would turn 0-d arrays into 1-d ones, so copy explicitly.)
        prepared[name] = value if value.flags.c_contiguous else value.copy(order="C")
    return _st_save(prepared)


def decode_weights(
    blob: bytes,
    *,
    expected: Weights | None = None,
    max_bytes: int = DEFAULT_MAX_BLOB_BYTES,
) -> Weights:
    """Decode safetensors bytes into writable arrays, checked against `expected` when given.

    `expected` is the receiving model's current weights: only names, shapes and dtypes are
    compared, so a blob that would not fit the model is rejected before a learner sees it.
    """
    if len(blob) > max_bytes:
        raise BlobTooLarge(MSG_TOO_LARGE.format(size=len(blob), limit=max_bytes))
    try:
        # Untrusted input: any parser failure (SafetensorError, unknown dtype KeyError, bad
        # shape ValueError, ...) means the same thing to the caller.
        loaded = _st_load(bytes(blob))
    except KeyError as error:  # safetensors.numpy knows no numpy type for this dtype tag
        raise WeightsMismatch(
            MSG_NOT_SAFETENSORS.format(error=f"unsupported dtype {error.args[0]!r}")
        ) from error
    except Exception as error:
        raise WeightsMismatch(MSG_NOT_SAFETENSORS.format(error=error)) from error
    # frombuffer arrays are read-only views of the blob; learners expect to own their arrays.
    weights: Weights = {name: np.array(array, copy=True) for name, array in loaded.items()}
    if expected is not None:
        check_fits(weights, expected)
    return weights


def check_fits(weights: Weights, expected: Weights) -> None:
    """Raise WeightsMismatch unless `weights` has exactly the names, shapes and dtypes of `expected`."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise WeightsMismatch(MSG_NAMES_DIFFER.format(missing=missing, unexpected=unexpected))
    for name in sorted(expected):
        got, want = weights[name], expected[name]
        if tuple(got.shape) != tuple(want.shape):
            raise WeightsMismatch(
                MSG_SHAPE_DIFFERS.format(name=name, got=tuple(got.shape), expected=tuple(want.shape))
            )
        # Compare by name so byte order (safetensors is always little-endian) does not count.
        if got.dtype.name != want.dtype.name:
            raise WeightsMismatch(
                MSG_DTYPE_DIFFERS.format(name=name, got=got.dtype.name, expected=want.dtype.name)
            )


def digest(blob: bytes) -> bytes:
    """SHA-256 of the encoded blob: what the proposer records on chain and voters check."""
    return hashlib.sha256(blob).digest()


def digest_hex(blob: bytes) -> HexDigest:
    """The digest as the chain shows a bytes32: '0x' followed by 64 lowercase hex digits."""
    return "0x" + digest(blob).hex()
