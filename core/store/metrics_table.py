"""The optional `metrics` table of a trace: one plain SQL row per iteration.

The compressed metric blocks are the trace's source of truth (about 6 bytes an
iteration at the seed config); this table repeats the scalars as ordinary REAL
columns so that any SQL tool reads them without our code:

    sqlite3 run.db "select iteration, loss from metrics where loss > 0.3"

It costs about 73 bytes an iteration at the seed config (SQLite stores each REAL
in 8 bytes plus a record header), so it is opt-in: `record --sql-metrics` writes
it while recording, `metrics RUN --sql` adds it to an existing trace.  NaN is
stored as NULL (SQLite has no NaN), and so is saturation on the iterations where
it is not sampled.  Layers count from 1, as W1, W2, ... do.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from core.engine.history import MetricsBlock

TABLE = "metrics"


def column_names(depth: int) -> list[str]:
    """Columns of the table for a net of `depth` weight layers, in order."""
    return (["iteration", "loss", "acc", "lr"]
            + [f"grad_norm{l}" for l in range(1, depth + 1)]
            + [f"weight_norm{l}" for l in range(1, depth + 1)]
            + [f"saturation{l}" for l in range(1, depth)])


def create(con: sqlite3.Connection, depth: int) -> None:
    """Create the table (a no-op when it exists)."""
    cols = ", ".join(f"{c} REAL" for c in column_names(depth)[1:])
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE}(iteration INTEGER PRIMARY KEY, {cols})")


def rows(block: MetricsBlock) -> list[list[float | int | None]]:
    """One list per iteration of the block; NaN becomes None (SQL NULL)."""
    n = len(block)
    table = np.column_stack([np.arange(block.start, block.start + n, dtype=np.float64),
                             block.loss, block.acc, block.lr, block.grad_norm,
                             block.weight_norm, block.saturation])
    out = np.empty(table.shape, dtype=object)
    out[:] = table  # Python floats, made in C
    out[np.isnan(table)] = None
    out[:, 0] = range(block.start, block.start + n)
    return out.tolist()


def insert(con: sqlite3.Connection, block: MetricsBlock) -> None:
    """Write (or rewrite) the rows of a block."""
    if len(block):
        marks = ", ".join("?" * (4 + 2 * block.grad_norm.shape[1] + block.saturation.shape[1]))
        con.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES ({marks})", rows(block))


def exists(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (TABLE,)).fetchone() is not None
