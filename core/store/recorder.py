"""Recording a run headless into a trace (see core/store/trace.py for the format).

Memory stays flat: only the current block of metrics and the window the
detectors read live in RAM; everything else goes to SQLite as it is made.
A knob schedule (core/engine/knobs.py) is recorded with the run: each config segment
runs on its own Machine, with a checkpoint and a "knob" event where it starts.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import knobs as kn
from core.engine.history import History
from core.engine.machine import Machine
from core.engine.reexec import locate_nan
from core.inspect.detectors import scan
from core.model.config import Config, Detect
from core.model.datasets import BUILTIN, Dataset, make_dataset
from core.model.limits import kind_of
from core.store import metrics_table
from core.store.trace import (
    APPLICATION_ID,
    BLOCK,
    FORMAT_VERSION,
    SCHEMA,
    TraceError,
    _reason,
    choose_every,
    dataset_digest,
    decode,
    encode,
    metrics_rows,
)


class Recorder:
    """Trains a run headless into a trace, with flat memory.

    Only the current block of metrics and the window the detectors read stay in
    RAM; blocks, checkpoints and events go to SQLite (WAL) and are committed at
    least every `commit_s` seconds, so a killed recorder loses under a second.
    The new file is built under a temporary name and moved into place once its
    config, dataset and first checkpoint are written: a failed start, or one
    with --force, never destroys an existing trace.
    """

    def __init__(self, path: str | Path, cfg: Config, data: Dataset | None = None, *,
                 force: bool = False, every: int | None = None, block: int = BLOCK,
                 target: int = 0, commit_s: float = 1.0,
                 knobs: kn.Schedule | None = None, sql_metrics: bool = False) -> None:
        self.path, self.cfg, self.commit_s = Path(path), cfg, commit_s
        self.sql_metrics, self.sql_done = sql_metrics, 0  # rows of the SQL table written
        self.knobs: kn.Schedule = list(knobs or [])
        kn.check(cfg, self.knobs)
        data = data or make_dataset(cfg.dataset, cfg.seed, cfg.outputs)
        rows = len(data.labels) if cfg.limit == 0 else min(cfg.limit, len(data.labels))
        data = Dataset(data.name, data.X[:rows], data.labels[:rows], data.n_classes)
        self.rows = rows
        self.m = Machine(cfg, data)  # the active machine: the one of the current segment
        self._machines = {cfg: self.m}
        self.m.init()
        prog = self.m.program
        self.every, self.block = every or choose_every(prog), block
        self.layer_ops = [f"dL/dW{l}" for l in range(1, prog.depth + 1)]
        self.rows_kept = block + 8 * cfg.detect.window + cfg.detect.rise_iters
        self.hist, self.base, self.scanned = History(prog.depth, self.rows_kept), 0, 0
        self.flags: Counter[str] = Counter()
        self.loss = math.nan
        self.committed = 0
        self.discarded = False
        self._pending: Path | None = None
        meta = {"format_version": FORMAT_VERSION, "config": json.dumps(cfg.to_dict()),
                "dataset": "builtin" if cfg.dataset in BUILTIN else "arrays", "rows": rows,
                "inputs": data.X.shape[1], "n_classes": data.n_classes,
                "dataset_sha256": dataset_digest(data), "checkpoint_every": self.every,
                "block_size": block, "status": "recording", "target": target,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "writer": "tui-backprop", "numpy": np.__version__,
                "machine": f"{platform.system()} {platform.machine()}"}
        if self.knobs:
            meta["knobs"] = kn.to_json(cfg, self.knobs)
        self.db = self._create(force, meta, None if meta["dataset"] == "builtin" else data)
        self.last_commit = time.monotonic()

    @property
    def pos(self) -> int:
        """Iterations recorded so far (the next one to run)."""
        return self.m.pos

    def _machine(self, i: int) -> Machine:
        """The machine of iteration i's config (built on first use)."""
        cfg = kn.config_at(self.cfg, self.knobs, i)
        if cfg not in self._machines:
            self._machines[cfg] = Machine(cfg, self.m.data)
        return self._machines[cfg]

    def _enter_segment(self) -> None:
        """At a knob change: move the state to its machine and log the change."""
        new = self._machine(self.pos)
        if new is not self.m:
            new.restore(self.m.snapshot(), self.m.pos)
            ev = kn.event(self.pos, self.m.cfg, new.cfg)
            self.m = new
            self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                            (ev.iteration, ev.op, ev.kind, ev.detail))
            self.flags[kn.KIND] += 1

    def _create(self, force: bool, meta: dict[str, Any], data: Dataset | None
                ) -> sqlite3.Connection:
        """Build the new file under a temporary name, then put it at `path`.

        A new path gets it at once (hard link: atomic create-if-absent, so a file
        that appeared meanwhile is never clobbered).  An existing trace (--force)
        is replaced only at the first commit that holds iterations (`_publish`):
        a run that fails or stops before that leaves the old file untouched.
        """
        target = self.path
        exists = existing(target, force)
        tmp = None
        try:
            tmp, con = temp_trace(target, SCHEMA, meta)
            try:
                if data is not None:
                    con.executemany("INSERT INTO dataset VALUES (?, ?, ?, ?, ?)",
                                    [("X", *encode(data.X.astype("<f8"))),
                                     ("labels", *encode(data.labels.astype("<i8")))])
                if self.sql_metrics:
                    metrics_table.create(con, self.m.program.depth)
                self._checkpoint(con)
                con.commit()
            except BaseException:
                con.close()
                raise
            if exists:  # keep recording privately (rollback journal: names of its own)
                self._pending, self._ident = Path(tmp), _identity(tmp)
                return con
            con.close()
            _clear_logs(target)
            _link_new(tmp, target)
            tmp = None
            return self._open_published()
        except (sqlite3.Error, OSError) as exc:
            if tmp is not None:
                for suffix in ("", "-journal"):
                    Path(f"{tmp}{suffix}").unlink(missing_ok=True)
            kept = "; the existing file is unchanged" if exists else ""
            raise TraceError(f"cannot write {target}: {_reason(exc)}{kept}") from None

    def _open_published(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a killed process
        self._ident = _identity(self.path)
        return con

    def _publish(self) -> None:
        """--force: the private file now holds iterations; move it over the old trace."""
        self.db.close()
        _clear_logs(self.path)
        os.replace(self._pending, self.path)  # fails: _writing removes it, the old file stays
        self._pending = None
        self.db = self._open_published()

    def _check_ours(self) -> None:
        """Another recording replaced (or someone removed) our file: stop, and say so."""
        try:
            ours = _identity(self.path) == self._ident
        except OSError:
            ours = False
        if not ours:
            with suppress(sqlite3.Error):
                self.db.close()
            n = self.pos
            raise TraceError(f"{self.path} was replaced by another recording (or removed) while "
                             f"this one ran: its {n:,} iteration{'s' * (n != 1)} are not in it")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (full disk, vanished folder) ends recording; commits stay."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            with suppress(sqlite3.Error):
                self.db.rollback()
                self.db.close()
            if self._pending is not None:  # --force, nothing published: the old file stays
                for suffix in ("", "-journal"):
                    Path(f"{self._pending}{suffix}").unlink(missing_ok=True)
                raise TraceError(f"cannot write {self.path}: {_reason(exc)}; the existing "
                                 "file is unchanged") from None
            kept = (f"kept iterations 0..{self.committed - 1}" if self.committed
                    else "no iterations were committed")
            raise TraceError(f"cannot write {self.path}: {_reason(exc)}; {kept}") from None

    def run(self, count: int, should_stop: Callable[[], bool] | None = None,
            progress: Callable[[Recorder], None] | None = None) -> None:
        """Record `count` more iterations, or until should_stop() (polled every ~50 ms)."""
        end, chunk = self.pos + count, 16
        starts = [s for s, _ in self.knobs]
        while self.pos < end and not (should_stop is not None and should_stop()):
            a = self.pos
            if a in starts:
                with self._writing():
                    self._enter_segment()
            b = min(end, a + chunk, (a // self.every + 1) * self.every,
                    (a // self.block + 1) * self.block, next((s for s in starts if s > a), end))
            t0 = time.perf_counter()
            metrics = self.m.run_fast(b - a)
            chunk = max(1, min(1 << 16, int((b - a) * 0.05 / max(time.perf_counter() - t0,
                                                                    1e-6))))
            self.loss = float(metrics.loss[-1])
            self.hist.append(replace(metrics, start=a - self.base))
            with self._writing():
                if b % self.every == 0 or b in starts:  # a segment re-runs from its start
                    self._checkpoint(self.db)
                if b % self.block == 0:
                    self._flush()
                    self._trim()
                if time.monotonic() - self.last_commit >= self.commit_s:
                    self.commit()
            if progress is not None:
                progress(self)

    def _checkpoint(self, con: sqlite3.Connection) -> None:
        con.executemany("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                        [(self.pos, k, *encode(v)) for k, v in self.m.snapshot().items()])

    def _saved(self, i: int) -> tuple[int, dict[str, np.ndarray]]:
        """The latest checkpoint at or before iteration i, read back (to locate a NaN)."""
        rows = self.db.execute("SELECT iteration, name, dtype, shape, data, crc FROM checkpoints "
                               "WHERE iteration = (SELECT max(iteration) FROM checkpoints "
                               "WHERE iteration <= ?)", (i,)).fetchall()
        return rows[0][0], {r[1]: decode("checkpoint", *r[2:]).astype(self.cfg.dtype)
                            for r in rows}

    def _flush(self) -> None:
        """Scan new rows for events and (re)write the current block, full or partial."""
        det, base = self.cfg.detect, self.base
        for e in scan(self.hist, self.scanned - base, self.pos - base, det, self.layer_ops):
            e = replace(e, iteration=e.iteration + base)
            if e.kind == "nan":  # the saved state is in e's segment: one is kept at each start
                e = locate_nan(self._machine(e.iteration), *self._saved(e.iteration), e)
            self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                            (e.iteration, e.op, e.kind, e.detail))
            self.flags[e.kind] += 1
        self.scanned = self.pos
        start = self.pos - 1 - (self.pos - 1) % self.block
        per = (kn.batch_rows_column(self.cfg, self.knobs, self.rows, start, self.pos - start)
               if self.knobs else self.m.program.n)
        rows = metrics_rows(replace(self.hist.view(start - base), start=start), per)
        self.db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [(start, self.pos - start, *r) for r in rows])
        if self.sql_metrics and self.pos > self.sql_done:
            new = self.hist.view(self.sql_done - base, self.pos - base)
            metrics_table.insert(self.db, replace(new, start=self.sql_done))
            self.sql_done = self.pos

    def _trim(self) -> None:
        """Drop rows the detectors will not read again."""
        keep = scan_tail(self.pos, self.cfg.detect)
        tail = self.hist.view(keep - self.base)
        self.hist = History(self.hist.depth, self.rows_kept)
        self.hist.append(replace(tail, start=0))
        self.base = keep

    def commit(self) -> None:
        if self._pending is None:
            self._check_ours()
        if self.pos > self.committed and self.pos % self.block:
            self._flush()
        self.db.commit()
        self.committed, self.last_commit = self.pos, time.monotonic()
        if self._pending is not None and self.committed > 0:
            self._publish()
        elif not os.path.exists(f"{self.path}-wal"):  # a replaced recorder, closing, removed
            self._relog()  # our log by name (SQLite does): write it through, start a new one

    def _relog(self) -> None:
        with suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.execute("PRAGMA journal_mode=DELETE")
            self.db.execute("PRAGMA journal_mode=WAL")

    def discard(self) -> None:
        """Give up a --force recording that never published: the old file stays."""
        self.discarded = True
        if self._pending is not None:
            with suppress(sqlite3.Error):
                self.db.close()
            for suffix in ("", "-journal"):
                Path(f"{self._pending}{suffix}").unlink(missing_ok=True)

    def close(self, status: str = "complete") -> None:
        """Write the tail, a checkpoint at the end and the status; leave one plain file.

        A --force recording with no iteration is discarded instead: the old file stays.
        """
        if self._pending is not None and self.pos == 0:
            return self.discard()
        with self._writing():
            if self.pos % self.every:
                self._checkpoint(self.db)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'status'", (status,))
            self.commit()
            with suppress(sqlite3.Error):  # fold the WAL in: one plain file (unless a reader
                self.db.execute("PRAGMA journal_mode=DELETE")  # holds it open: then WAL stays)
            self.db.close()
        self._check_ours()  # replaced at the last moment: this run must not report success


def _identity(path: str | Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def temp_trace(target: Path, schema: str, meta: dict[str, Any]
               ) -> tuple[str, sqlite3.Connection]:
    """A private temporary trace beside `target` (mode from the umask): application id,
    tables and meta written; the caller fills it, then links or renames it into place.
    On failure nothing is left behind."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        con = sqlite3.connect(tmp)
        try:
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.executescript(schema)
            con.executemany("INSERT INTO meta VALUES (?, ?)",
                            [(k, str(v)) for k, v in meta.items()])
        except BaseException:
            con.close()
            raise
    except BaseException:
        for suffix in ("", "-journal"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        raise
    return tmp, con


def place(tmp: str, target: Path, replacing: bool) -> None:
    """Move a finished temporary trace to `target`: over the old file when replacing
    (already checked by `existing`), else only if nothing appeared there meanwhile."""
    _clear_logs(target)
    if replacing:
        os.replace(tmp, target)
    else:
        _link_new(tmp, target)


def existing(target: Path, force: bool) -> bool:
    """Whether `target` is a trace to replace; refuses folders, FIFOs, devices, bad names."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return False
    except OSError as exc:  # ENAMETOOLONG, EACCES, ELOOP
        raise TraceError(f"cannot write {target}: {_reason(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TraceError(f"{target} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise TraceError(f"{target} is a {kind_of(st.st_mode)}, not a regular file; "
                         "refusing to replace it")
    if not force:
        raise TraceError(f"{target} exists; pass --force to overwrite it")
    return True


def _clear_logs(target: Path) -> None:
    """An old write-ahead log must never replay into a new file of the same name."""
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


def _link_new(tmp: str, target: Path) -> None:
    """Put tmp at target only if nothing is there (a hard link fails if it exists)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise TraceError(f"{target} exists; pass --force to overwrite it") from None
    except OSError:  # no hard links on this filesystem: the check above must do
        if os.path.lexists(target):
            Path(tmp).unlink(missing_ok=True)
            raise TraceError(f"{target} exists; pass --force to overwrite it") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def scan_tail(start: int, det: Detect) -> int:
    """The first row scan() needs to find the events from `start` on, as on the full history.

    scan() looks back two windows (a window of edges before `start`, each with a
    window of reference) plus rise_iters, and aligns its medians to the window;
    four windows, aligned, leave a margin.  tests/core/test_trace.py checks this.
    """
    w = det.window
    return max(0, (start - 4 * w - det.rise_iters) // w * w)
