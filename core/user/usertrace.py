"""Reading a trace of the user's own code: format 4, `kind = user` (see core/store/trace.py).

A user trace is a built-in trace's file kind and tables (meta, dataset, blocks,
checkpoints, events: the same application id, array columns, codec and
checksums) plus one table, `source`, holding the recorded file's text:

  meta        format_version 4, kind 'user', seed, lr, checkpoint_every, block_size,
              status, target, created, writer, numpy, machine,
              params (JSON [[name, dtype, shape], ...] in init()'s order),
              data (JSON {"X": [dtype, shape], "y": [dtype, shape]})
  source      (display, path, sha256, text): one row; sha256 is the file's bytes'
  dataset     X, y as flat arrays; blocks: loss (count,), grad_norm and weight_norm
              (count, P) per parameter, codec blobs (there is no accuracy: the contract
              has no predictions); checkpoints: each parameter flat; events as built-in
              plus kind 'gradcheck' (a gradient failing the check at iteration 0)

Arrays are stored flat (any rank) in a lossless dtype of the allow-list — int32
as int64, bool as uint8, float16 as float32 — and cast back to the dtype the
user's code made, which `params`/`data` record.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine.history import MetricsBlock
from core.inspect.detectors import Event
from core.store.columns import TraceError, _json, decode, decode_block
from core.store.trace import EVENT_KINDS, TABLES, TraceReader, open_ro

USER_FORMAT = 4
KIND = "user"
METRICS = ("loss", "grad_norm", "weight_norm")
USER_EVENT_KINDS = EVENT_KINDS | {"gradcheck"}
SOURCE_SCHEMA = """
CREATE TABLE source(display TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
                    text TEXT NOT NULL);
"""


@dataclass
class Recording:
    """A user run as stored: meta (display, path, sha256, seed, lr, checkpoint_every,
    params, status ...), its source, data, metrics, events and checkpoints."""

    meta: dict[str, Any]
    source: str
    X: np.ndarray
    y: np.ndarray
    history: MetricsBlock
    events: list[Event] = field(default_factory=list)
    checkpoints: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.history)


def storage_dtype(dt: np.dtype) -> str | None:
    """The allow-listed dtype that holds `dt` without loss, or None."""
    size, kind = dt.itemsize, dt.kind
    if kind == "f" and size <= 8:
        return "<f8" if size == 8 else "<f4"
    if kind == "b" or (kind == "u" and size == 1):
        return "|u1"
    if kind == "u" and size <= 4:
        return "<u2" if size == 2 else "<u4"
    if kind == "i":
        return "<i8"
    return None


def is_user_trace(path: str) -> bool:
    """Whether `path` is a trace whose meta says kind 'user' (False for anything else)."""
    try:
        with open(path, "rb") as fh:
            if not fh.read(16).startswith(b"SQLite format 3\0"):
                return False
        con = open_ro(Path(path))
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return False
    return row is not None and row[0] == KIND


class UserTrace(TraceReader):
    """A validated user trace, read whole (user runs are small): `.recording`.

    The built-in reader's file checks, one-line errors, snapshot read and
    file_bytes() apply as they are; what it builds from a Config (program,
    dataset, history) does not exist here: the recording holds it."""

    def _load(self) -> None:
        q = self.con.execute
        names = {r[0] for r in q("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in (*TABLES, "source") if t not in names]
        if missing:
            raise TraceError(f"not a complete user trace: missing table {missing[0]!r}")
        self.meta = meta = dict(q("SELECT key, value FROM meta").fetchall())
        if meta.get("kind") != KIND or self._int("format_version", 1) != USER_FORMAT:
            raise TraceError(f"not a user trace of format {USER_FORMAT}")
        self.every, self.block = self._int("checkpoint_every", 1), self._int("block_size", 1)
        self.status = meta.get("status", "")
        params = self._specs("params", _json("meta params", meta.get("params", "null")))
        data = _json("meta data", meta.get("data", "null"))
        if not isinstance(data, dict) or set(data) != {"X", "y"}:
            raise TraceError("meta data must describe X and y")
        specs = self._specs("data", [[k, *data[k]] for k in ("X", "y")])
        rows = q("SELECT display, path, sha256, text FROM source").fetchall()
        if len(rows) != 1 or not all(type(v) is str for v in rows[0]):
            raise TraceError("source table must hold one row of text")
        display, path, sha, text = rows[0]
        if hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != sha:
            raise TraceError("source text does not match its sha256")
        arrays = {r[0]: r[1:] for r in q("SELECT name, dtype, shape, data, crc FROM dataset")}
        if set(arrays) != {"X", "y"}:
            raise TraceError("dataset table must hold exactly X and y")
        X, y = (self._array(f"dataset {k}", arrays[k], specs[k]) for k in ("X", "y"))
        if X.ndim == 0 or y.ndim == 0 or len(X) != len(y) or not len(X):
            raise TraceError(f"dataset X {X.shape} and y {y.shape} do not pair up")
        seed, lr = (_json(f"meta {k}", meta.get(k, "null")) for k in ("seed", "lr"))
        if type(seed) is not int or type(lr) is not float or not 0 < lr < float("inf"):
            raise TraceError(f"meta seed {seed!r:.40} or lr {lr!r:.40} is not valid")
        history = self._blocks(len(params), lr)
        self.n = n = len(history)
        ckpts: dict[int, dict[str, np.ndarray]] = {}
        for it, name, *cols in q("SELECT iteration, name, dtype, shape, data, crc "
                                 "FROM checkpoints ORDER BY iteration"):
            if type(it) is not int or not 0 <= it <= n or name not in params:
                raise TraceError(f"checkpoint ({it!r}, {name!r}) is outside the recorded run")
            ckpts.setdefault(it, {})[name] = self._array(f"checkpoint {it} {name}", cols,
                                                         params[name])
        if 0 not in ckpts or any(c.keys() != params.keys() for c in ckpts.values()):
            raise TraceError("checkpoints are missing (need every parameter, from iteration 0)")
        ckpts = {k: {p: c[p] for p in params} for k, c in ckpts.items()}  # init()'s order
        events = [self._user_event(*r) for r in q(
            "SELECT iteration, op, kind, detail FROM events ORDER BY iteration, rowid")]
        info = {"display": display, "path": path, "sha256": sha, "seed": seed, "lr": lr,
                "checkpoint_every": self.every, "params": list(params), "status": self.status}
        self.recording = Recording({**meta, **info}, text, X, y, history, events, ckpts)
        self.events, self.checkpoints = events, sorted(ckpts)

    def _specs(self, what: str, items: Any) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """{name: (dtype, shape)} from [[name, dtype, shape], ...], each checked."""
        out: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        for item in items if isinstance(items, list) else [None]:
            if (not isinstance(item, list) or len(item) != 3 or type(item[0]) is not str
                    or type(item[1]) is not str or not isinstance(item[2], list)
                    or not all(type(d) is int and d >= 0 for d in item[2])):
                raise TraceError(f"meta {what}: malformed entry {item!r:.80}")
            try:
                dt = np.dtype(item[1])
            except TypeError:
                dt = np.dtype(object)
            if storage_dtype(dt) is None:
                raise TraceError(f"meta {what}: unsupported dtype {item[1]!r:.40}")
            out[item[0]] = (dt, tuple(item[2]))
        if not out or len(out) != len(items):
            raise TraceError(f"meta {what}: no entries, or a name twice")
        return out

    def _array(self, what: str, cols: Any, spec: tuple[np.dtype, tuple[int, ...]]
               ) -> np.ndarray:
        dt, shape = spec
        size = int(np.prod(shape, dtype=np.int64))
        flat = decode(what, *cols, storage_dtype(dt), (size,))
        return flat.astype(dt).reshape(shape)

    def _blocks(self, depth: int, lr: float) -> MetricsBlock:
        rows, n = self._block_rows(METRICS)
        b = MetricsBlock.empty(0, n, depth)
        for start, cols in rows.items():
            count = cols["loss"][0]
            stop, what = start + count, f"block {start}"
            decode_block(what, *cols["loss"][1:], "<f8", (count,), b.loss[start:stop])
            for name in ("grad_norm", "weight_norm"):
                decode_block(what, *cols[name][1:], "<f8", (count, depth),
                             getattr(b, name)[start:stop])
        b.acc[:] = np.nan
        b.lr[:] = lr
        return b

    def checkpoint(self, k: int) -> dict[str, np.ndarray]:
        """Parameters at the start of iteration k (a stored checkpoint)."""
        return self.recording.checkpoints[k]

    def _user_event(self, it: Any, op: Any, kind: Any, detail: Any) -> Event:
        if type(it) is not int or not 0 <= it < max(self.n, 1) or kind not in USER_EVENT_KINDS \
                or type(op) is not str or type(detail) is not str:
            raise TraceError(f"bad event row ({it!r}, {op!r}, {kind!r})")
        return Event(it, op, kind, detail)


def read(path: str) -> Recording:
    """The recording in a user trace; a damaged file is one TraceError line."""
    with UserTrace(path) as tr:
        return tr.recording
