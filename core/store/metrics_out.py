"""Per-iteration metrics as CSV or JSON Lines, for pandas, spreadsheets and plots.

One row per kept iteration: iteration, loss, acc, lr, per layer ‖∇W‖, ‖W‖ and the
update/weight ratio η‖∇W‖/‖W‖, hidden saturation where it was sampled (empty /
null elsewhere), and the events since the previous row.  Floats are written so
that parsing them gives back the very same float64 (what `info` and a live run
hold, bit for bit).  A million rows take seconds, not minutes, because no float
is formatted by Python: 17 significant digits are computed for a whole column
at once in extended precision, exact to well under half an ulp, so they round-
trip; columns with few distinct values (accuracy, a constant lr) use the short
`repr` of each distinct value instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

from core.engine.history import History
from core.inspect.detectors import Event

LD = np.longdouble
EXACT = np.finfo(LD).nmant >= 63  # 80-bit or wider: 17 digits in one multiply, vectorized
_POW10 = np.array([LD(10) ** k for k in range(-400, 401)]) if EXACT else None
_EXPB = np.array([f"e{e:+03d}".encode() for e in range(-400, 401)], "S5").view(
    np.uint8).reshape(801, 5)
_GROUPS = np.array([f"{g:04d}".encode() for g in range(10000)]  # whole
                   + [f"{g:04d}".rstrip("0").encode() or b"0" for g in range(10000)]  # last
                   + [b""], "S4").view(np.uint8).reshape(20001, 4)  # after the last


def column_names(depth: int) -> list[str]:
    """The columns written for a net of `depth` weight layers (layers count from 1)."""
    per = [f"{name}{l}" for name in ("grad_norm", "weight_norm", "update_ratio")
           for l in range(1, depth + 1)]
    return ["iteration", "loss", "acc", "lr", *per,
            *[f"saturation{l}" for l in range(1, depth)], "events"]


def kept_rows(n: int, every: int) -> np.ndarray:
    """Iterations 0, K, 2K, ... and always the last one (so the last row is `info`'s)."""
    rows = np.arange(0, n, every)
    if n and rows[-1] != n - 1:
        rows = np.append(rows, n - 1)
    return rows


def floats_text(x: np.ndarray, nan: bytes = b"nan", inf: bytes | None = None) -> np.ndarray:
    """Bytes that parse back to exactly x (an S array): see the module docstring."""
    x = np.ascontiguousarray(x, np.float64)
    out: np.ndarray
    bits = x.view(np.int64)  # distinct bit patterns: 0.0 and -0.0 are two values here
    few = len(np.unique(bits[:: max(1, len(x) // 512)])) <= 64  # a cheap look first
    small = len(x) <= 4096 or not EXACT
    uniq, inverse = np.unique(bits, return_inverse=True) if few or small else ((), None)
    if len(uniq) and (small or len(uniq) <= min(4096, len(x) // 16)):
        values = np.asarray(uniq).view(np.float64)
        out = np.array([repr(float(v)).encode() for v in values], dtype="S32")[inverse]
    else:
        out = _digits17(x)
    bad = ~np.isfinite(x)
    if bad.any():
        out = out.astype("S32")
        out[np.isnan(x)] = nan
        out[x == np.inf] = b"inf" if inf is None else inf
        out[x == -np.inf] = b"-inf" if inf is None else inf
    return out


def _digits17(x: np.ndarray) -> np.ndarray:
    """[-]d.ddd…e±XX for finite x, as an S24 array whose unused bytes are NUL (dropped
    when lines are written); placeholders where x is 0 or not finite."""
    a = np.abs(x)
    ok = np.isfinite(a) & (a > 0)
    a = np.where(ok, a, 1.0)
    e = np.floor(np.log10(a)).astype(np.int64)
    q = np.rint(a.astype(LD) * _POW10[16 - e + 400])
    for wrong, step in ((q >= LD(1e17), 1), (q < LD(1e16), -1)):  # log10 off by one
        if wrong.any():
            e[wrong] += step
            q[wrong] = np.rint(a[wrong].astype(LD) * _POW10[16 - e[wrong] + 400])
    hi, lo = np.divmod(q.astype(np.uint64), np.uint64(10**8))  # q < 1e17: hi < 1e9
    hi, lo = hi.astype(np.float64), lo.astype(np.float64)  # exact below 2**53
    lead = np.floor(hi / 1e8)
    hi -= lead * 1e8
    groups = []
    for part in (hi, lo):  # floor(x / 1e4) is exact for integers x < 2**53
        top = np.floor(part / 1e4)
        groups += [top, part - top * 1e4]
    g = np.stack(groups).astype(np.intp)  # (4, n): digits 1-4, 5-8, 9-12, 13-16
    last = np.select([g[3] > 0, g[2] > 0, g[1] > 0], [3, 2, 1], 0)  # last nonzero group
    n = len(x)
    m = np.zeros((n, 24), np.uint8)  # sign, d, '.', 16 digits, e, ±, up to 3 digits
    m[:, 0] = np.where(np.signbit(x), ord("-"), 0)
    m[:, 1] = lead.astype(np.uint8) + ord("0")
    m[:, 2] = ord(".")
    for k in range(4):  # whole groups before the last, trailing zeros cut from it, then NUL
        which = np.where(k < last, 0, np.where(k == last, 10000, 20000))
        m[:, 3 + 4 * k:7 + 4 * k] = _GROUPS[g[k] + which]
    m[:, 19:24] = _EXPB[e + 400]
    s = m.view("S24").reshape(n)
    zero = x == 0
    if zero.any():
        s[zero] = np.where(np.signbit(x[zero]), b"-0.0", b"0.0")
    return s


def _events_text(events: Sequence[Event], rows: np.ndarray, jsonl: bool) -> list[bytes]:
    """Per row: the events after the previous row, up to and including this one."""
    out = [b"[]" if jsonl else b""] * len(rows)
    slots: dict[int, list[Event]] = {}
    for e in events:
        k = int(np.searchsorted(rows, e.iteration))
        if k < len(rows):
            slots.setdefault(k, []).append(e)
    for k, evs in slots.items():
        if jsonl:
            out[k] = json.dumps([{"iteration": e.iteration, "op": e.op, "kind": e.kind,
                                  "detail": e.detail} for e in evs],
                                ensure_ascii=False).encode()
        else:
            text = ";".join(f"{e.kind}:{e.op}@{e.iteration}" for e in evs)
            out[k] = text.replace(",", ";").replace('"', "'").encode()  # never quoted in CSV
    return out


def columns(history: History, events: Sequence[Event], every: int = 1, jsonl: bool = False
            ) -> tuple[list[str], list[np.ndarray | list[bytes]]]:
    """(names, formatted columns) of the kept rows; JSON gets null for NaN/Inf."""
    rows = kept_rows(len(history), every)
    v = history.view()
    null = b"null" if jsonl else b"nan"
    cols: list[np.ndarray | list[bytes]] = [
        rows.astype("S20"), floats_text(v.loss[rows], null, null if jsonl else None),
        floats_text(v.acc[rows], null), floats_text(v.lr[rows], null)]
    ratio = v.update_ratio
    for table in (v.grad_norm, v.weight_norm, ratio):
        for l in range(table.shape[1]):
            cols.append(floats_text(table[rows, l], null, null if jsonl else None))
    for l in range(v.saturation.shape[1]):  # not sampled: NaN -> empty / null
        cols.append(floats_text(v.saturation[rows, l], null if jsonl else b""))
    cols.append(_events_text(events, rows, jsonl))
    return column_names(history.depth), cols


def write_csv(fh: BinaryIO, history: History, events: Sequence[Event], every: int = 1) -> int:
    """Header + one line per kept iteration; returns the number of rows."""
    names, cols = columns(history, events, every)
    fh.write((",".join(names) + "\n").encode())
    return _write_lines(fh, cols)


def write_jsonl(fh: BinaryIO, history: History, events: Sequence[Event], every: int = 1
                ) -> int:
    """One JSON object per kept iteration; returns the number of rows."""
    names, cols = columns(history, events, every, jsonl=True)
    keyed: list[np.ndarray | list[bytes]] = []
    for k, (name, col) in enumerate(zip(names, cols, strict=True)):
        key = (b"{" if k == 0 else b"") + f'"{name}":'.encode()
        if isinstance(col, list):
            keyed.append([key + v + (b"}" if k == len(cols) - 1 else b"") for v in col])
        else:
            keyed.append(np.strings.add(key, col))
    return _write_lines(fh, keyed)


def _write_lines(fh: BinaryIO, cols: list[np.ndarray | list[bytes]], chunk: int = 1 << 15
                 ) -> int:
    """Comma-join the columns into lines, vectorized: each column is a fixed-width bytes
    array padded with NULs; side by side they make one byte matrix per chunk of rows,
    and dropping the NULs leaves the lines (no value ever holds a NUL byte)."""
    arrays = [np.asarray(c, dtype="S") for c in cols]
    n = len(arrays[0])
    comma, newline = np.full((1, 1), ord(","), np.uint8), np.full((1, 1), ord("\n"), np.uint8)
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        parts: list[np.ndarray] = []
        for k, col in enumerate(arrays):
            width = col.dtype.itemsize
            parts.append(np.ascontiguousarray(col[a:a + m]).view(np.uint8).reshape(m, width))
            parts.append(np.broadcast_to(newline if k == len(arrays) - 1 else comma, (m, 1)))
        flat = np.concatenate(parts, axis=1).reshape(-1)
        fh.write(flat[flat != 0].tobytes())
    return n
