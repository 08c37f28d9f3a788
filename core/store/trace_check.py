"""Validation of a trace's stored fields on open, and `verify`: every checksum, first damage.

The reader (core/store/trace.py) decodes arrays through `decode` (dtype allow-list,
shape, CRC-32); this module checks the rest of what a file can claim — every
meta entry by type and range, so nothing downstream (`info`, replay, the app)
meets a target of 'abc' or a status of 42 — every checkpoint row's columns
(CheckpointRows, at open), and for `verify` every checkpoint's data, which the
reader otherwise reads (and checks by CRC) only when one is needed.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from typing import Any

import numpy as np

from core.model.limits import MAX_CLASSES, MAX_ITERATION
from core.store.columns import TraceError, check

STATUSES = frozenset({"recording", "complete", "interrupted"})
_INTS = {  # key: (lowest, highest); all required but target (older files may lack it)
    "format_version": (1, 10**6), "rows": (1, 10**9), "inputs": (1, 10**7),
    "n_classes": (2, MAX_CLASSES), "checkpoint_every": (1, 2**40), "block_size": (1, 2**24),
    "target": (0, MAX_ITERATION),
}
_TEXTS = ("created", "writer", "numpy", "machine")  # free text, shown by `info`
_SHA = re.compile(r"[0-9a-f]{64}")


class MetaError(ValueError):
    """A meta entry of the wrong type or out of range (the reader adds the path)."""


def meta_int(meta: dict[str, Any], key: str) -> int:
    """A meta entry that must be a decimal integer in its range."""
    lo, hi = _INTS[key]
    text = meta.get(key)
    if type(text) is not str or not text.isascii() or not text.isdigit() or len(text) > 20 \
            or not lo <= int(text) <= hi:
        raise MetaError(f"meta {key} = {text!r:.40} is not an integer in {lo}..{hi}")
    return int(text)


def check_meta(meta: dict[Any, Any]) -> None:
    """Every meta entry this version reads, by type and range."""
    for key, value in meta.items():
        if type(key) is not str or type(value) is not str:
            raise MetaError(f"meta entry {key!r:.40} is not text")
    for key in _INTS:
        if key != "target" or key in meta:
            meta_int(meta, key)
    if meta.get("status") not in STATUSES:
        raise MetaError(f"meta status = {meta.get('status')!r:.40} is not one of "
                        f"{', '.join(sorted(STATUSES))}")
    if meta.get("dataset") not in ("builtin", "arrays"):
        raise MetaError(f"meta dataset = {meta.get('dataset')!r:.40} is not builtin or arrays")
    if not _SHA.fullmatch(meta.get("dataset_sha256", "")):
        raise MetaError("meta dataset_sha256 is not a SHA-256 hex digest")
    for key in _TEXTS:
        if len(meta.get(key, "")) > 200:
            raise MetaError(f"meta {key} is longer than 200 characters")


class CheckpointRows:
    """Where each stored checkpoint's parameters are: rowids from a table scan (loading by
    rowid does not trust the damageable primary-key index), every row checked first.

    A 1M-iteration trace holds thousands of rows, so Python sees three group_concat
    texts of one scan (rowid, iteration, and the parameter's index, or -1 for a row
    unlike what the recorder writes); only then does the detailed per-group check run,
    to name the first bad row, or pass one written differently but valid.
    """

    def __init__(self, con: sqlite3.Connection, n: int, dtype: str,
                 shapes: dict[str, tuple[int, ...]]) -> None:
        self.names = tuple(shapes)
        size = np.dtype(dtype).itemsize
        like = " ".join(f"WHEN name = ? AND shape = ? AND length(data) = ? THEN {j}"
                        for j in range(len(shapes)))
        args: list[Any] = [n, dtype]
        for name, shape in shapes.items():
            args += [name, json.dumps(list(shape)), math.prod(shape) * size]
        texts = con.execute(  # -1: a row unlike what the recorder writes
            "SELECT group_concat(rowid), group_concat(iteration), group_concat(CASE WHEN "
            "typeof(iteration) = 'integer' AND iteration BETWEEN 0 AND ? AND dtype = ? THEN "
            f"CASE {like} ELSE -1 END ELSE -1 END) FROM checkpoints NOT INDEXED",
            args).fetchone()
        idx = _ints(texts[2])
        if (idx < 0).any():  # raises naming the first bad group, or passes (say "[2,10]")
            _check_groups(con, n, dtype, shapes)
            which = " ".join(f"WHEN ? THEN {j}" for j in range(len(shapes)))
            idx = _ints(con.execute(f"SELECT group_concat(CASE name {which} END) FROM "
                                    "checkpoints NOT INDEXED", self.names).fetchone()[0])
        rowid, it, p = _ints(texts[0]), _ints(texts[1]), len(shapes)
        key = it * p + idx
        order = np.argsort(key, kind="stable")
        key, rowid = key[order], rowid[order]
        last = np.append(key[1:] != key[:-1], True) if len(key) else key.astype(bool)
        key, rowid = key[last], rowid[last]  # a repeated (iteration, name): its last row
        its, counts = np.unique(key // p, return_counts=True)
        if not len(its) or its[0] != 0 or (counts != p).any():
            raise TraceError("checkpoints are missing (need every parameter, from iteration 0)")
        self.iterations: list[int] = its.tolist()
        self._row = dict(zip(self.iterations, range(len(its)), strict=True))
        self._rowids = rowid.reshape(len(its), p)

    def rowids(self, k: int) -> dict[str, int]:
        """{parameter: rowid} of checkpoint k in stored order; KeyError if k is none."""
        row = self._rowids[self._row[k]]
        return {self.names[j]: int(row[j]) for j in np.argsort(row)}


def _ints(text: str | None) -> np.ndarray:
    """A group_concat of integers (None: no rows)."""
    return np.fromstring(text, np.int64, sep=",") if text else np.zeros(0, np.int64)


def _check_groups(con: sqlite3.Connection, n: int, dtype: str,
                  shapes: dict[str, tuple[int, ...]]) -> None:
    """Every row's iteration, name, dtype, shape and size, per distinct combination
    (grouping is SQLite's work, not a Python loop's)."""
    for kind, lo, hi, name, *cols in con.execute(
            "SELECT typeof(iteration), min(iteration), max(iteration), name, dtype, shape,"
            " length(data) FROM checkpoints"
            " GROUP BY typeof(iteration), name, dtype, shape, length(data)"):
        if kind != "integer" or not 0 <= lo <= hi <= n or name not in shapes:
            it = lo if kind != "integer" or lo < 0 else hi
            raise TraceError(f"checkpoint ({it!r}, {name!r}) is outside the recorded run")
        check(f"checkpoint {lo} {name}", *cols, dtype, shapes[name])


def verify(tr: Any) -> str:
    """Check a whole open TraceReader; raise its TraceError at the first damaged part.

    Opening already checked meta, config, dataset, every metrics block (CRC) and
    every event; this adds SQLite's own page check and every checkpoint's CRC, in
    iteration order, so the first damaged one is the one reported.
    """
    from core.store.trace import TraceError

    con = tr.con
    try:
        problems = [r[0] for r in con.execute("PRAGMA quick_check(1)")]
    except sqlite3.Error as exc:
        raise TraceError(f"{tr.path}: damaged trace ({exc})") from None
    if problems != ["ok"]:
        raise TraceError(f"{tr.path}: damaged database pages ({' '.join(problems[0].split())})")
    for k in tr.checkpoints:
        tr.checkpoint(k)  # decodes every parameter of k: dtype, shape and CRC
    n = tr.n
    return (f"{tr.path}: ok · {n:,} iterations in blocks of {tr.block}, "
            f"{len(tr.checkpoints)} checkpoints, {len(tr.events)} events; every checksum "
            "matches")
