"""Arrays as stored in a trace: (dtype, shape, data, crc) columns, validated, never pickled.

Every array in a trace is four columns: a dtype from an allow-list, a JSON
shape, the data and a CRC-32 of the stored bytes.  Dataset and checkpoint data
are raw little-endian bytes (`encode`/`decode`); metric blocks from format 3 on
are core/store/codec.py blobs (`encode_block`/`decode_block`).
"""

from __future__ import annotations

import json
import math
import zlib
from functools import lru_cache
from typing import Any

import numpy as np

from core.store.codec import CodecError, pack, unpack

DTYPES = frozenset({"<f8", "<f4", "|u1", "<u2", "<u4", "<i8"})


class TraceError(ValueError):
    """A trace that cannot be written or read; the message is one line."""


def encode(arr: np.ndarray) -> tuple[str, str, memoryview, int]:
    """(dtype, shape, data, crc) columns of an array, little-endian; data is a view."""
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    data = memoryview(a.reshape(-1)).cast("B")
    return a.dtype.str, json.dumps(list(a.shape)), data, zlib.crc32(data)


def check(what: str, dtype: Any, shape: Any, nbytes: Any, want_dtype: str | None = None,
          want_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The shape of stored array columns, after checking them against each other."""
    if type(dtype) is not str or dtype not in DTYPES:
        raise TraceError(f"{what}: unsupported dtype {dtype!r}")
    if type(shape) is not str or type(nbytes) is not int:
        raise TraceError(f"{what}: malformed shape or data column")
    dims = _shape(what, shape)
    if math.prod(dims) * np.dtype(dtype).itemsize != nbytes:
        raise TraceError(f"{what}: {nbytes} bytes do not hold a {dtype} array of shape "
                         f"{tuple(dims)}")
    if want_dtype is not None and dtype != want_dtype:
        raise TraceError(f"{what}: dtype {dtype}, expected {want_dtype}")
    if want_shape is not None and tuple(dims) != want_shape:
        raise TraceError(f"{what}: shape {tuple(dims)}, expected {want_shape}")
    return tuple(dims)


@lru_cache(maxsize=256)
def _dims(shape: str) -> tuple[int, ...] | None:
    """A stored shape, parsed once: a 1M-iteration trace repeats a few shapes 17,000 times."""
    dims = _json("shape", shape)
    if (not isinstance(dims, list) or len(dims) > 3
            or not all(type(d) is int and d >= 0 for d in dims)):
        return None
    return tuple(dims)


def _shape(what: str, shape: str) -> tuple[int, ...]:
    try:
        dims = _dims(shape)
    except TraceError:
        dims = None
    if dims is None:
        raise TraceError(f"{what}: bad shape {shape!r}")
    return dims


def decode(what: str, dtype: Any, shape: Any, data: Any, crc: Any,
           want_dtype: str | None = None, want_shape: tuple[int, ...] | None = None
           ) -> np.ndarray:
    """The array of stored (dtype, shape, data, crc) columns, validated; never unpickles."""
    if type(data) is not bytes:
        raise TraceError(f"{what}: data is not a blob")
    dims = check(what, dtype, shape, len(data), want_dtype, want_shape)
    if crc != zlib.crc32(data):  # a flipped bit in stored values
        raise TraceError(f"{what}: data does not match its checksum")
    return np.frombuffer(data, dtype).reshape(dims)


def decode_block(what: str, dtype: Any, shape: Any, data: Any, crc: Any,
                 want_dtype: str | None = None, want_shape: tuple[int, ...] | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
    """A format-3 metrics column: checksum of the stored blob, then core/store/codec.py
    (into `out` when given: it must be C-contiguous of want_dtype and want_shape)."""
    if type(data) is not bytes:
        raise TraceError(f"{what}: data is not a blob")
    if type(dtype) is not str or dtype not in DTYPES or type(shape) is not str:
        raise TraceError(f"{what}: unsupported dtype {dtype!r} or malformed shape")
    dims = _shape(what, shape)
    if want_dtype is not None and dtype != want_dtype:
        raise TraceError(f"{what}: dtype {dtype}, expected {want_dtype}")
    if want_shape is not None and dims != want_shape:
        raise TraceError(f"{what}: shape {dims}, expected {want_shape}")
    if crc != zlib.crc32(data):
        raise TraceError(f"{what}: data does not match its checksum")
    try:
        return unpack(data, dtype, dims, out)
    except CodecError as exc:
        raise TraceError(f"{what}: {exc}") from None


def encode_block(arr: np.ndarray) -> tuple[str, str, bytes, int]:
    """(dtype, shape, data, crc) columns of a format-3 metrics column."""
    blob = pack(arr)
    return arr.dtype.newbyteorder("<").str, json.dumps(list(arr.shape)), blob, zlib.crc32(blob)


def _json(what: str, text: str) -> Any:
    def no_constants(name: str) -> Any:
        raise TraceError(f"{what}: {name} is not allowed")
    try:
        return json.loads(text, parse_constant=no_constants)
    except (json.JSONDecodeError, RecursionError):
        raise TraceError(f"{what}: not valid JSON") from None
