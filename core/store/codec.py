"""Metric blocks as stored: delta-coded, split into planes, each deflated or raw.

Per-iteration metrics change slowly, so the raw float64 bits of consecutive
iterations share their sign, exponent and leading mantissa bits.  The difference
of the bit patterns (as integers, wrapping) leaves small numbers whose high bytes
are all 0 (or all 1 when negative); splitting the values into planes (plane j =
bytes [j·g, (j+1)·g) of every value, as Blosc/HDF5 shuffle) turns those bytes into
long runs that deflate squeezes to almost nothing.  Lossless by construction:
every step is a bijection on the bit patterns.

Since trace format 7 the blob is *planar* (tag 3), shaped by what opening a
1M-iteration trace costs (inflate, un-shuffle, prefix sum: 41 MB of metrics):
- first-order deltas of float columns: each order is one `cumsum`, ~2.6 ns per
  value here (a dependency chain through memory); the second order saved 2-3
  B/iteration but cost 13 ms per 1M iterations.  Integer columns (accuracy counts)
  are stored as they are: their deltas deflate no smaller;
- no zig-zag: the sign-extended high bytes still deflate to runs, and undoing
  zig-zag was four passes over the array;
- few, wide planes (bytes 0-1, 2-3 and 4-7 of a float64): every plane is one
  strided write when decoding; a byte shuffle made eight;
- a plane that deflate cannot shrink below RAW_ABOVE of its size is stored raw:
  the low mantissa bytes are noise, and inflating them cost most of the decode.
Measured at the seed config on 1M iterations (loss and both norms): 4.0 B/iteration
decoding in ~90 ms before, 13.5 B/iteration in ~37 ms now.

Planar blob: tag 3, the delta order (0-2), the plane count, then per plane its
width in bytes (1, 2, 4 or 8, at an offset it divides; the widths sum to the item
size), its kind (0 raw, 1 raw deflate stream with no zlib header: the trace keeps
a CRC-32 of the blob) and its 4-byte little-endian length; then the planes' bytes
in order.  Legacy blobs (formats 3-6, and user traces written before format 7):
tag = the delta order (0-2), then one deflate stream of the byte-shuffled,
zig-zag coded deltas; still read.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

PLANAR = 3  # tag of a planar blob; tags 0..MAX_ORDER are legacy blobs
ORDER = 1  # what the writer uses for floats; the reader accepts 0..MAX_ORDER
MAX_ORDER = 2
WIDTHS = {8: (2, 2, 4), 4: (2, 2), 2: (2,), 1: (1,)}  # the writer's planes per item size
RAW_ABOVE = 0.15  # keep a plane raw when deflate leaves more than this share of it
LEVEL = 1  # inflates twice as fast as level 6 for 5% more bytes; deflates faster
WBITS = -15  # raw deflate
RAW, DEFLATED = 0, 1


class CodecError(ValueError):
    """A blob that does not decode to the array its columns describe."""


def _deflate(data: bytes) -> bytes:
    z = zlib.compressobj(LEVEL, zlib.DEFLATED, WBITS)
    return z.compress(data) + z.flush()


def pack(arr: np.ndarray, order: int | None = None,
         widths: tuple[int, ...] | None = None) -> bytes:
    """The stored (planar) blob of a 1-D or 2-D array of any dtype of the allow-list."""
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    k = a.dtype.itemsize
    if order is None:
        order = ORDER if a.dtype.kind == "f" else 0
    ncols = math.prod(a.shape[1:])
    u = a.reshape(len(a), ncols).view(f"<u{k}")  # each column is delta-coded down its rows
    for _ in range(order):
        d = u.copy()
        np.subtract(u[1:], u[:-1], out=d[1:])  # unsigned: wraps, never warns
        u = d
    flat = u.reshape(-1)
    widths = widths or WIDTHS[k]  # each at an offset it divides, summing to k
    head, body, offset = bytearray([PLANAR, order, len(widths)]), [], 0
    for w in widths:
        raw = np.ascontiguousarray(flat.view(f"<u{w}").reshape(-1, k // w)[:, offset // w]
                                   ).tobytes()
        offset += w
        packed = _deflate(raw)
        kind, data = (DEFLATED, packed) if len(packed) <= RAW_ABOVE * len(raw) else (RAW, raw)
        head += bytes([w, kind]) + len(data).to_bytes(4, "little")
        body.append(data)
    return bytes(head) + b"".join(body)


def unpack(blob: bytes, dtype: str, shape: tuple[int, ...], out: np.ndarray | None = None
           ) -> np.ndarray:
    """Inverse of pack (and of the legacy packing); never inflates more than the declared
    array's bytes.

    `out` (C-contiguous, of that shape and dtype) receives the values in place:
    a reader can fill one big array block by block without a copy per block.
    """
    if len(blob) < 2 or blob[0] > PLANAR:
        raise CodecError("not a compressed metrics block")
    dt = np.dtype(dtype).newbyteorder("<")
    count = shape[0] if shape else 1
    ncols = math.prod(shape[1:])  # not np.prod: a few µs per block, ~1 ms per 1M-it open
    if out is None:
        out = np.empty(shape, dt)
    dest = out.reshape(count, ncols).view(f"<u{dt.itemsize}")
    if blob[0] == PLANAR:
        order = _planes(blob, dest)
    else:
        order = blob[0]
        _legacy(blob, dest)
    for _ in range(order):
        np.cumsum(dest, axis=0, dtype=dest.dtype, out=dest)  # unsigned: wraps back exactly
    return out


def _planes(blob: bytes, dest: np.ndarray) -> int:
    """Fill dest with a planar blob's deltas; return their order."""
    if len(blob) < 3:
        raise CodecError("truncated block header")
    order, p, k = blob[1], blob[2], dest.dtype.itemsize
    pos = 3 + 6 * p
    if order > MAX_ORDER or not 0 < p <= k:
        raise CodecError(f"unknown block layout (order {order}, {p} planes)")
    if len(blob) < pos:
        raise CodecError("truncated block header")
    flat, view, offset = dest.reshape(-1), memoryview(blob), 0
    for j in range(p):
        w, kind = blob[3 + 6 * j], blob[4 + 6 * j]
        length = int.from_bytes(blob[5 + 6 * j: 9 + 6 * j], "little")
        if w not in (1, 2, 4, 8) or offset % w or offset + w > k:
            raise CodecError(f"a plane of {w} bytes at byte {offset} of a {k}-byte value")
        size = flat.size * w
        part = view[pos: pos + length]
        pos += length
        if kind == RAW:
            data = part
        elif kind == DEFLATED:
            data = _inflate(part, size)
        else:
            raise CodecError(f"unknown plane kind {kind}")
        if len(data) != size:
            raise CodecError(f"a plane of {len(data)} bytes, expected {size}")
        flat.view(f"<u{w}").reshape(-1, k // w)[:, offset // w] = np.frombuffer(data, f"<u{w}")
        offset += w
    if offset != k:
        raise CodecError(f"planes of {offset} bytes for {k}-byte values")
    if pos != len(blob):
        raise CodecError(f"{len(blob)} bytes where the planes take {pos}")
    return order


def _inflate(data: memoryview, size: int) -> bytes:
    z = zlib.decompressobj(WBITS)
    try:
        raw = z.decompress(data, size)
    except zlib.error as exc:
        raise CodecError(f"compressed data is damaged ({exc})") from None
    if len(raw) != size or z.unconsumed_tail or not z.eof:
        got = len(raw) if len(raw) < size else f"more than {size}"
        raise CodecError(f"{got} bytes do not hold a plane of {size}")
    return raw


def _legacy(blob: bytes, dest: np.ndarray) -> None:
    """Fill dest with a legacy blob's deltas (one stream, byte-shuffled, zig-zag)."""
    k = dest.dtype.itemsize
    nbytes = dest.size * k
    z = zlib.decompressobj(WBITS)
    try:
        raw = z.decompress(blob[1:], nbytes)
    except zlib.error as exc:
        raise CodecError(f"compressed data is damaged ({exc})") from None
    if len(raw) != nbytes or z.unconsumed_tail or not z.eof:
        size = len(raw) if len(raw) < nbytes else f"more than {nbytes}"
        raise CodecError(f"{size} bytes do not hold {dest.size} values of {k} bytes")
    src = np.frombuffer(raw, np.uint8).reshape(k, dest.size)
    flat = dest.reshape(-1).view(np.uint8).reshape(-1, k)
    for j in range(k):  # un-shuffle a plane at a time: contiguous reads, strided writes
        flat[:, j] = src[j]
    if blob[0] and k > 1:  # undo zig-zag: 2m -> m, 2m+1 -> ~m
        one = (dest & 1).view(f"<i{k}")
        np.negative(one, out=one)
        np.right_shift(dest, 1, out=dest)
        np.bitwise_xor(dest, one.view(dest.dtype), out=dest)
