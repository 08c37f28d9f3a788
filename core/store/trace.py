"""Saved traces: one SQLite file that records a run cheaply and replays it exactly.

Like rr, a trace keeps only what re-execution cannot recompute cheaply: the
config, the dataset (arrays, or name + seed for built-ins), per-iteration
metrics to check re-execution against, detector events, and the parameters
every K iterations.  RNG state: none needed — batch order is a pure function of
(seed, iteration), so a checkpoint is just the parameters.

Format version 7.  Version 1 stored metric blocks raw; version 2 added the meta
entry `knobs`; version 3 compresses metric blocks (core/store/codec.py: second-order
delta, byte shuffle, zlib; 43.7 -> ~6 bytes/iteration at the seed config) and
may hold the optional `metrics` table.  Version 4 is a trace of the user's own code
(meta kind = 'user' and a `source` table, read by core/user/usertrace.py):
TraceReader refuses it in one line.  Versions 5 and 6 have version 3's layout, but
their metrics and parameters come from newer arithmetic (ARITHMETIC_CHANGES below):
replaying an older trace of such a run re-executes today's arithmetic and reports the
divergence, naming the change (core/store/replay.py).  Version 7 has version 6's
arithmetic and stores metric blocks as planar codec blobs (~15 bytes/iteration at the
seed config, decoded twice as fast); older versions cannot read them, so it is a new
number.
Versions 1, 2, 3, 5, 6 and 7 are read.  Arrays are columns (dtype, shape, data, crc): a
dtype from an allow-list, a JSON shape and a CRC-32 of the stored bytes — never
pickle.  Dataset and checkpoint data are raw little-endian bytes.

  meta(key TEXT PRIMARY KEY, value TEXT)      format_version, config (JSON), dataset
      ('builtin' | 'arrays'), rows, inputs, n_classes, dataset_sha256, checkpoint_every,
      block_size, status ('recording' | 'complete' | 'interrupted'), target, created,
      writer, numpy, machine; optional knobs (JSON [[iteration, {knob: value}], ...], each
      change relative to the one before: see core/engine/knobs.py; absent = no changes)
  dataset(name, <array>)                      X (rows, inputs) <f8, labels (rows,) <i8;
      empty for a built-in, which is regenerated from (name, seed) and checked by sha256
  blocks(start, count, name, <array>)         metrics of iterations [start, start+count),
      start a multiple of block_size; data is a core/store/codec.py blob (raw bytes before
      version 3); dtype and shape describe the decoded array.  name: loss <f8 (count,);
      correct uint (count,), acc = correct·(1/N), N = rows per batch of the iteration's
      config; grad_norm, weight_norm <f8 (count, L); saturation <f8 for the rows
      i % SAT_EVERY == 0 (L-1 columns).  lr is derived: lr / (1 + lr_decay·i), with
      the lr and decay of the iteration's config.
  checkpoints(iteration, name, <array>)       parameters at the start of `iteration`
      (every K iterations, and at each knob change)
  events(iteration, op, kind, detail)         detector events (NaNs located to their op)
      and knob changes (kind 'knob')
  metrics(iteration, loss, acc, lr, grad_norm1.., weight_norm1.., saturation1..)
      optional (`record --sql-metrics`, `metrics RUN --sql`): one plain row per iteration
      for the sqlite3 shell, pandas or any SQL tool (core/store/metrics_table.py); never read
      back by this reader, the blocks stay the source of truth

The recorded range is iterations 0..n-1, n = Σ blocks.count; it grows one commit
(at most a second) at a time, so a killed recorder leaves a readable file.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import knobs as kn
from core.engine.history import History, MetricsBlock
from core.engine.machine import SAT_EVERY
from core.inspect.detectors import KINDS, Event
from core.model.config import Config, ConfigError
from core.model.datasets import BUILTIN, MAX_CLASSES, Dataset
from core.model.limits import LimitError, check_memory, footprint
from core.model.program import Program, build_program
from core.store.columns import (  # noqa: F401  (re-exported: the trace layer's public names)
    DTYPES,
    TraceError,
    _json,
    check,
    decode,
    decode_block,
    encode,
    encode_block,
)
from core.store.trace_check import CheckpointRows, MetaError, check_meta

FORMAT_VERSION = 7  # what built-in runs write, the newest read (1-3, 5, 6 still open; 4 = user)
# what each format changed in the arithmetic of a run (so in its last digits)
ARITHMETIC_CHANGES = {
    5: "full-batch MSE runs sum the loss and norms over arena rows (core/engine/rows.py), "
       "fold the 1/N into the output sigmoid and apply an L2 penalty as a weight decay; "
       "bias gradients are a ones-vector product",
    6: "float64 full-batch MSE runs form a sigmoid hidden layer's derivative h(1−h) as "
       "exp(−z)·h·h, as the output layer does (cat.sigmoid_factor); float32 runs no "
       "longer fold the 1/N into the output sigmoid (exp(−z) overflows float32 at z < −88)",
}
ARITHMETIC = max(ARITHMETIC_CHANGES)  # traces from this version on have today's arithmetic
COMPRESSED = 3  # metric blocks are core/store/codec.py blobs from this version on
APPLICATION_ID = 0x54425054  # "TBPT": tells a trace from any other SQLite file
BLOCK = 16384  # iterations per metrics block: fewer, larger blocks open faster
TABLES = ("meta", "dataset", "blocks", "checkpoints", "events")
METRICS = ("loss", "correct", "grad_norm", "weight_norm", "saturation")
EVENT_KINDS = frozenset(KINDS) | {"diverged", kn.KIND}

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE dataset(name TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL,
                     data BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE blocks(start INTEGER NOT NULL, count INTEGER NOT NULL, name TEXT NOT NULL,
                    dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL,
                    crc INTEGER NOT NULL, PRIMARY KEY (start, name));
CREATE TABLE checkpoints(iteration INTEGER NOT NULL, name TEXT NOT NULL, dtype TEXT NOT NULL,
                         shape TEXT NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,
                         PRIMARY KEY (iteration, name));
CREATE TABLE events(iteration INTEGER NOT NULL, op TEXT NOT NULL, kind TEXT NOT NULL,
                    detail TEXT NOT NULL);
"""


def dataset_digest(data: Dataset) -> str:
    """What replay checks a regenerated or stored dataset against."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(data.X, "<f8"), np.ascontiguousarray(data.labels, "<i8")):
        h.update(a.tobytes())
    h.update(str(data.n_classes).encode())
    return h.hexdigest()


def choose_every(program: Program, budget_s: float = 0.0125, cap: int = 2**20) -> int:
    """Checkpoint spacing K, a power of two, from the net's size (same config, same file).

    Re-executing K iterations should take about `budget_s` on the fast path, by a
    deliberately pessimistic cost model: 40 µs of Python per iteration, 16 ns per
    activation entry, matmuls at 10 GFLOP/s.  (Stepping back runs them one at a
    time, about twice as slow.)  Nets whose one iteration exceeds the budget also
    keep checkpoints under `cap` bytes per iteration: a trace is not a tensor dump.
    """
    s, n = program.sizes, program.n
    flops = 6 * n * sum(s[i] * s[i + 1] for i in range(len(s) - 1))
    per_iter = 40e-6 + 16e-9 * n * sum(s[1:]) + flops / 1e10
    fast = round(math.log2(max(1.0, budget_s / per_iter)))
    itemsize = np.dtype(program.cfg.dtype).itemsize
    size = sum(math.prod(program.param_shape(p)) for p in program.params) * itemsize
    small = math.ceil(math.log2(max(1.0, size / cap)))
    return 1 << min(16, max(fast, small))


def metrics_rows(block: MetricsBlock, n: int | np.ndarray) -> list[tuple[Any, ...]]:
    """(name, dtype, shape, data, crc) rows of a block of metrics; N = rows per batch
    (one number, or one per iteration when a knob changed the batch size)."""
    correct = np.rint(block.acc * n)
    top = int(np.max(n))
    ctype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    cols = {"loss": block.loss, "correct": correct.astype(ctype), "grad_norm": block.grad_norm,
            "weight_norm": block.weight_norm,
            "saturation": block.saturation[sampled(block.start, len(block))]}
    return [(name, *encode_block(arr)) for name, arr in cols.items()]


def sampled(start: int, count: int) -> slice:
    """Rows of a block starting at iteration `start` where saturation is sampled
    (iterations i % SAT_EVERY == 0)."""
    return slice(-start % SAT_EVERY, count, SAT_EVERY)


def open_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection: the file's bytes are never modified by reading it."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           check_same_thread=False)  # a UI may read from a worker thread


class TraceReader:
    """A validated trace: config, dataset, metrics and events at open, checkpoints on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.con: sqlite3.Connection | None = None
        with self._guard():
            self._check_file()
            self.con = open_ro(self.path)
            try:
                self.con.execute("BEGIN")  # one snapshot, even while a recorder commits
                self._load()
                self.con.rollback()
            except BaseException:
                self.close()
                raise

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Every failure of a damaged file becomes one TraceError line."""
        try:
            yield
        except TraceError as exc:
            raise TraceError(_line(f"{self.path}: {exc}")) from None
        except ConfigError as exc:
            raise TraceError(_line(f"{self.path}: bad config in trace: {exc}")) from None
        except sqlite3.Error as exc:
            msg = str(exc) or type(exc).__name__
            kind = "not a tui-backprop trace" if "not a database" in msg else "damaged trace"
            if "unable to open" in msg:  # an unclosed recording in a read-only folder
                kind = "cannot open read-only; a recording that was not closed needs its " \
                       "-wal file and a writable folder"
            raise TraceError(_line(f"{self.path}: {kind} ({msg})")) from None
        except LimitError as exc:
            raise TraceError(_line(f"{self.path}: {exc}")) from None
        except MetaError as exc:
            raise TraceError(_line(f"{self.path}: damaged trace: {exc}")) from None
        except OSError as exc:  # permission denied, a folder gone, an I/O error
            raise TraceError(_line(f"{self.path}: cannot read ({_reason(exc)})")) from None
        except (ValueError, TypeError, KeyError, OverflowError, MemoryError,
                RecursionError) as exc:
            raise TraceError(_line(f"{self.path}: damaged trace ({exc!s:.200})")) from None

    def _check_file(self) -> None:
        p = self.path
        if not p.exists():
            raise TraceError("no such file")
        if not p.is_file():
            raise TraceError("not a file")
        with open(p, "rb") as fh:
            head = fh.read(100)
        if not head:
            raise TraceError("empty file, not a trace")
        if not head.startswith(b"SQLite format 3\0"):
            raise TraceError("not a tui-backprop trace (not an SQLite database)")
        if len(head) < 100:
            raise TraceError("damaged trace (truncated inside its header)")
        if int.from_bytes(head[68:72], "big") != APPLICATION_ID:
            raise TraceError("not a tui-backprop trace (an SQLite file of something else)")

    def _load(self) -> None:
        q = self.con.execute
        names = {r[0] for r in q("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in TABLES if t not in names]
        if missing:
            raise TraceError(f"not a complete trace: missing table {missing[0]!r}")
        meta = dict(q("SELECT key, value FROM meta").fetchall())
        if meta.get("kind", "builtin") == "user":  # validated by core/user/usertrace.py
            raise TraceError("a trace of your own code (record FILE.py): this command reads "
                             "built-in runs only; replay, info and metrics read it")
        check_meta(meta)  # every entry by type and range (core/store/trace_check.py)
        self.meta = meta
        version = self._int("format_version", 1)
        if version > FORMAT_VERSION:
            raise TraceError(f"written by a newer tui-backprop (format {version}; this version "
                             f"reads up to {FORMAT_VERSION}): upgrade to open it")
        if type(meta.get("config")) is not str:
            raise TraceError("missing config")
        self.cfg = Config.from_dict(_json("config", meta["config"]))
        self.knobs: kn.Schedule = kn.from_json(self.cfg, meta.get("knobs", "[]"))
        self.every, self.block = self._int("checkpoint_every", 1), self._int("block_size", 1)
        rows, inputs = self._int("rows", 1), self._int("inputs", 1)
        self.n_classes = self._int("n_classes", 2, MAX_CLASSES)
        self.status = meta.get("status", "")
        self.builtin = meta.get("dataset") == "builtin"
        if self.builtin != (self.cfg.dataset in BUILTIN) or meta.get("dataset") not in (
                "builtin", "arrays"):
            raise TraceError(f"dataset kind {meta.get('dataset')!r} does not match the config")
        self.data: Dataset | None = None if self.builtin else self._dataset(rows, inputs)
        full = self.cfg.batch_size == 0 or self.cfg.batch_size >= rows
        self.program = build_program(self.cfg, inputs, self.n_classes,
                                     rows if full else self.cfg.batch_size)
        self.rows = rows
        check_memory(footprint(self.program, rows))  # a huge stored net: refused, named
        self._shapes = {p: self.program.param_shape(p) for p in self.program.params}
        self._dtype = np.dtype(self.cfg.dtype).newbyteorder("<").str
        self.version = version
        self._read_blocks()
        self._read_checkpoints()
        self.events = [self._event(*r) for r in q(
            "SELECT iteration, op, kind, detail FROM events ORDER BY iteration, rowid")]

    def _int(self, key: str, lo: int, hi: int = 2**62) -> int:
        text = self.meta.get(key)
        if type(text) is not str or not text.isdigit() or not lo <= int(text) <= hi:
            raise TraceError(f"meta {key} = {text!r} is not an integer in {lo}..{hi}")
        return int(text)

    def _dataset(self, rows: int, inputs: int) -> Dataset:
        arrays = {r[0]: r[1:] for r in self.con.execute(
            "SELECT name, dtype, shape, data, crc FROM dataset")}
        if set(arrays) != {"X", "labels"}:
            raise TraceError("dataset table must hold exactly X and labels")
        X = decode("dataset X", *arrays["X"], "<f8", (rows, inputs))
        labels = decode("dataset labels", *arrays["labels"], "<i8", (rows,))
        if not np.isfinite(X).all() or labels.min() < 0 or labels.max() >= self.n_classes:
            raise TraceError("dataset holds non-finite inputs or labels out of range")
        data = Dataset(self.cfg.dataset, X, labels, self.n_classes)
        if dataset_digest(data) != self.meta.get("dataset_sha256"):
            raise TraceError("dataset arrays do not match their checksum")
        return data

    def _block_rows(self, columns: tuple[str, ...]) -> tuple[dict[Any, dict[str, tuple]], int]:
        """The blocks table as {start: {column: (count, dtype, shape, data, crc)}} and the
        iterations it covers, its sequence checked first (then one array per metric)."""
        rows: dict[Any, dict[str, tuple]] = {}
        for start, count, name, *cols in self.con.execute(
                "SELECT start, count, name, dtype, shape, data, crc FROM blocks ORDER BY start"):
            rows.setdefault(start, {})[name] = (count, *cols)
        n = 0
        for start, cols in rows.items():
            counts = {c[0] for c in cols.values()}
            if set(cols) != set(columns) or len(counts) != 1:
                raise TraceError(f"block {start}: needs columns {', '.join(columns)} of one count")
            count = counts.pop()
            if (start != n or start % self.block or type(count) is not int
                    or not 0 < count <= self.block):
                raise TraceError(f"block at {start!r} of {count!r} iterations breaks the "
                                 f"sequence of {self.block}-iteration blocks")
            n += count
        return rows, n

    def _read_blocks(self) -> None:
        depth = self.program.depth
        rows, n = self._block_rows(METRICS)
        b = MetricsBlock.empty(0, n, depth)
        correct = np.empty(n, np.uint32)
        for start, cols in rows.items():
            count, what = cols["loss"][0], f"block {start}"
            stop = start + count
            if self.version >= COMPRESSED:  # inflated straight into the big arrays
                decode_block(what, *cols["loss"][1:], "<f8", (count,), b.loss[start:stop])
                for name in ("grad_norm", "weight_norm"):
                    decode_block(what, *cols[name][1:], "<f8", (count, depth),
                                 getattr(b, name)[start:stop])
                dec = decode_block
            else:
                dec = decode
                b.loss[start:stop] = decode(what, *cols["loss"][1:], "<f8", (count,))
                for name in ("grad_norm", "weight_norm"):
                    getattr(b, name)[start:stop] = decode(what, *cols[name][1:], "<f8",
                                                          (count, depth))
            c = dec(what, *cols["correct"][1:], None, (count,))
            if c.dtype.kind != "u" or c.dtype.itemsize > 4:
                raise TraceError(f"{what}: accuracy counts out of range")
            correct[start:stop] = c
            sat = b.saturation[start:stop][sampled(start, count)]
            sat[:] = dec(what, *cols["saturation"][1:], "<f8", sat.shape)
        per = self.batch_rows(0, n) if self.knobs else self.program.n
        if (correct > per).any():
            bad = int(np.flatnonzero(correct > per)[0])
            raise TraceError(f"block {bad - bad % self.block}: accuracy counts out of range")
        np.multiply(correct, 1.0 / per, out=b.acc)  # what the fast path computes, bit for bit
        if self.knobs or self.cfg.lr_decay:
            b.lr[:] = kn.lr_column(self.cfg, self.knobs, 0, n)
        else:  # lr / (1 + 0·i) is lr, bit for bit
            b.lr[:] = self.cfg.lr
        self.history = History.wrap(b)
        self.n = n

    def _read_checkpoints(self) -> None:
        self._ckpts = CheckpointRows(self.con, self.n, self._dtype, self._shapes)
        self.checkpoints = self._ckpts.iterations

    def _event(self, it: Any, op: Any, kind: Any, detail: Any) -> Event:
        if type(it) is not int or not 0 <= it < self.n or kind not in EVENT_KINDS \
                or type(op) is not str or type(detail) is not str:
            raise TraceError(f"bad event row ({it!r}, {op!r}, {kind!r})")
        return Event(it, op, kind, detail)

    # ------------------------------------------------------------------ queries
    def batch_rows(self, start: int, count: int) -> np.ndarray:
        """Rows per batch of each iteration in [start, start+count) (knobs may change it)."""
        return kn.batch_rows_column(self.cfg, self.knobs, self.rows, start, count)

    def dataset(self) -> Dataset | None:
        """The stored dataset, or None for a built-in (the Machine regenerates it)."""
        return self.data

    def base(self, i: int) -> int:
        """The latest checkpoint at or before iteration i."""
        return self.checkpoints[max(0, bisect_right(self.checkpoints, i) - 1)]

    def checkpoint(self, k: int) -> dict[str, np.ndarray]:
        """Parameters at the start of iteration k (a stored checkpoint), in native order."""
        out = {}
        with self._guard():
            for name, rowid in self._ckpts.rowids(k).items():
                row = self.con.execute("SELECT name, dtype, shape, data, crc FROM checkpoints "
                                       "WHERE rowid = ?", (rowid,)).fetchone()
                if row is None or row[0] != name:
                    raise TraceError(f"checkpoint {k} {name} has vanished")
                out[name] = decode(f"checkpoint {k} {name}", *row[1:], self._dtype,
                                   self._shapes[name]).astype(self.cfg.dtype)
        return out

    def file_bytes(self) -> int:
        """Size on disk, counting a write-ahead log left by a recorder that did not close."""
        wal = Path(f"{self.path}-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    return _line(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).rstrip(".")


def _line(text: str) -> str:
    """Messages from SQLite can span lines (a damaged schema): errors are one line."""
    return " ".join(text.split())
