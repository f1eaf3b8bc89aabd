"""codec: safetensors encoding of weights, and the checks a voter relies on when decoding."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from colearn_chain.codec import (
    DEFAULT_MAX_BLOB_BYTES,
    SUPPORTED_DTYPES,
    decode_weights,
    digest,
    digest_hex,
    encode_weights,
)
from colearn_chain.exceptions import BlobTooLarge, WeightsMismatch


def _model() -> dict[str, np.ndarray]:
    return {
        "dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
        "dense/bias": np.array([0.5, -1.0, np.nan, np.inf], dtype=np.float64),
        "step": np.array(7, dtype=np.int64),
    }


def test_round_trip_keeps_names_shapes_dtypes_and_values() -> None:
    # Prepare
    weights = _model()
    # Execute
    decoded = decode_weights(encode_weights(weights), expected=weights)
    # Assert
    assert sorted(decoded) == sorted(weights)
    for name, array in weights.items():
        assert decoded[name].shape == array.shape
        assert decoded[name].dtype == array.dtype
        np.testing.assert_array_equal(decoded[name], array)


def test_decoded_arrays_are_writable_copies() -> None:
    # Prepare
    blob = encode_weights(_model())
    # Execute
    decoded = decode_weights(blob)
    decoded["dense/kernel"][0, 0] = 99.0
    # Assert
    assert decoded["dense/kernel"].flags.writeable
    assert decode_weights(blob)["dense/kernel"][0, 0] == 0.0


def test_encoding_is_deterministic_and_ignores_insertion_order() -> None:
    # Prepare
    weights = _model()
    reordered = dict(reversed(list(weights.items())))
    # Execute
    blobs = {encode_weights(weights), encode_weights(_model()), encode_weights(reordered)}
    # Assert
    assert len(blobs) == 1


def test_non_contiguous_and_big_endian_arrays_encode_their_values() -> None:
    # Prepare
    base = np.arange(6, dtype=">f4").reshape(2, 3)
    weights = {"t": base.T, "every_other": np.arange(10, dtype=np.int16)[::2]}
    # Execute
    decoded = decode_weights(encode_weights(weights))
    # Assert
    np.testing.assert_array_equal(decoded["t"], base.T)
    np.testing.assert_array_equal(decoded["every_other"], [0, 2, 4, 6, 8])
    assert decoded["t"].dtype == np.float32


def test_empty_zero_dim_and_zero_size_tensors_round_trip() -> None:
    # Prepare
    weights = {"scalar": np.array(3.5, dtype=np.float32), "none": np.zeros((0, 3), dtype=np.uint8)}
    # Execute
    decoded = decode_weights(encode_weights(weights), expected=weights)
    empty = decode_weights(encode_weights({}), expected={})
    # Assert
    assert decoded["scalar"].shape == () and decoded["scalar"] == 3.5
    assert decoded["none"].shape == (0, 3)
    assert empty == {}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (np.array([object()], dtype=object), "dtype object"),
        (np.array(["a"]), "dtype <U1"),
        (np.zeros(2, dtype=np.complex128), "dtype complex128"),
        ([1.0, 2.0], "expected numpy.ndarray, got list"),
        (np.float32(1.0), "expected numpy.ndarray, got float32"),
    ],
)
def test_encode_rejects_what_safetensors_cannot_carry(value: object, fragment: str) -> None:
    # Prepare
    weights = {"w": value}
    # Execute
    with pytest.raises(TypeError) as raised:
        encode_weights(weights)  # type: ignore[arg-type]
    # Assert
    assert "'w'" in str(raised.value) and fragment in str(raised.value)


@pytest.mark.parametrize("name", ["", "__metadata__", 3])
def test_encode_rejects_bad_names(name: object) -> None:
    # Prepare
    weights = {name: np.zeros(1)}
    # Execute
    with pytest.raises(TypeError) as raised:
        encode_weights(weights)  # type: ignore[arg-type]
    # Assert
    assert "cannot encode tensor name" in str(raised.value)


def test_decode_refuses_oversized_blob_before_parsing() -> None:
    # Prepare: garbage, so only a size check that runs first can give BlobTooLarge
    blob = b"\xff" * 101
    # Execute
    with pytest.raises(BlobTooLarge) as raised:
        decode_weights(blob, max_bytes=100)
    # Assert
    assert str(raised.value) == "blob of 101 bytes exceeds the limit of 100 bytes"


def test_decode_accepts_blob_of_exactly_max_bytes() -> None:
    # Prepare
    blob = encode_weights(_model())
    # Execute
    decoded = decode_weights(blob, max_bytes=len(blob))
    # Assert
    assert sorted(decoded) == sorted(_model())


def test_default_limit_is_256_mib() -> None:
    assert DEFAULT_MAX_BLOB_BYTES == 256 * 1024 * 1024


def _raw_safetensors(header: str, data: bytes) -> bytes:
    """A hand-made safetensors blob: 8-byte little-endian header length, JSON header, data."""
    encoded = header.encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"garbage",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ",
        b"\x00\x00\x00\x00\x00\x00\x00\xff",  # header length far beyond the blob
        # valid header, data offsets beyond the buffer
        _raw_safetensors('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 8),
        # data length does not match the shape
        _raw_safetensors('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}', b"\0" * 8),
        # a dtype numpy's loader does not know
        _raw_safetensors('{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}', b"\0" * 2),
    ],
)
def test_decode_reports_non_safetensors_input_as_mismatch(blob: bytes) -> None:
    # Execute
    with pytest.raises(WeightsMismatch) as raised:
        decode_weights(blob)
    # Assert
    assert str(raised.value).startswith("not a safetensors blob: ")
    assert len(str(raised.value)) > len("not a safetensors blob: ")


def test_decode_names_a_dtype_numpy_cannot_load() -> None:
    # Prepare
    blob = _raw_safetensors('{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}', b"\0" * 2)
    # Execute
    with pytest.raises(WeightsMismatch) as raised:
        decode_weights(blob)
    # Assert
    assert str(raised.value) == "not a safetensors blob: unsupported dtype 'BF16'"


def test_decode_names_missing_and_unexpected_tensors() -> None:
    # Prepare
    expected = _model()
    sent = dict(_model())
    del sent["step"]
    sent["extra"] = np.zeros(1)
    # Execute
    with pytest.raises(WeightsMismatch) as raised:
        decode_weights(encode_weights(sent), expected=expected)
    # Assert
    assert str(raised.value) == "tensor names differ: missing ['step'], unexpected ['extra']"


def test_decode_names_the_tensor_whose_shape_differs() -> None:
    # Prepare
    expected = _model()
    sent = dict(_model(), **{"dense/kernel": np.zeros((4, 3), dtype=np.float32)})
    # Execute
    with pytest.raises(WeightsMismatch) as raised:
        decode_weights(encode_weights(sent), expected=expected)
    # Assert
    assert str(raised.value) == "tensor 'dense/kernel': shape (4, 3), expected (3, 4)"


def test_decode_names_the_tensor_whose_dtype_differs() -> None:
    # Prepare
    expected = _model()
    sent = dict(_model(), step=np.array(7, dtype=np.int32))
    # Execute
    with pytest.raises(WeightsMismatch) as raised:
        decode_weights(encode_weights(sent), expected=expected)
    # Assert
    assert str(raised.value) == "tensor 'step': dtype int32, expected int64"


def test_digest_is_sha256_and_hex_has_0x_prefix() -> None:
    # Prepare
    blob = b"abc"
    # Execute
    raw, text = digest(blob), digest_hex(blob)
    # Assert
    assert raw == hashlib.sha256(b"abc").digest() and len(raw) == 32
    assert text == "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


_dtypes = st.sampled_from(sorted(SUPPORTED_DTYPES)).map(np.dtype)
_arrays = _dtypes.flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda s: s != "__metadata__"), _arrays, max_size=4))
def test_any_supported_weights_round_trip_bit_exactly(weights: dict[str, np.ndarray]) -> None:
    # Execute
    blob = encode_weights(weights)
    decoded = decode_weights(blob, expected=weights)
    # Assert: byte equality, so NaN payloads and -0.0 survive too
    assert {k: v.tobytes() for k, v in decoded.items()} == {k: v.tobytes() for k, v in weights.items()}
    assert encode_weights(decoded) == blob
