"""Validation of a trace's stored fields on open, and `verify`: every checksum, first damage.

The reader (core/store/trace.py) decodes arrays through `decode` (dtype allow-list,
shape, CRC-32); this module checks the rest of what a file can claim — every
meta entry by type and range, so nothing downstream (`info`, replay, the app)
meets a target of 'abc' or a status of 42 — and walks the checkpoints, which
the reader otherwise reads (and checks) only when one is needed.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from core.model.limits import MAX_CLASSES, MAX_ITERATION

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
