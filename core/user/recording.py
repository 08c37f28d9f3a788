"""Record a user file's training run into a trace (format 4, kind 'user': core/user/usertrace.py).

The run is the debugger's own: a UserStepper (which refuses code that is not
deterministic — a replay re-executes it) fast-running the user's loss, backward
and update untraced, with its detectors, its gradient check at iteration 0 and
its checkpoints.  The file is written whole once the run ends, under a
temporary name in the target's folder and then renamed, so a failed run (an
exception in the user's code) or a refused --force leaves any old file as it was.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.engine.history import MetricsBlock
from core.store.columns import TraceError, encode, encode_block
from core.store.recorder import existing, place, temp_trace
from core.store.trace import BLOCK, SCHEMA, _reason
from core.user.loader import UserError, UserProgram
from core.user.machine import UserCodeError
from core.user.stepper import UserStepper
from core.user.usertrace import KIND, SOURCE_SCHEMA, USER_FORMAT, Recording, storage_dtype

CHUNK = 256  # iterations between polls of should_stop


def record(prog: UserProgram, X: np.ndarray, y: np.ndarray, *, seed: int, lr: float,
           iterations: int, every: int, should_stop: Callable[[], bool] | None = None
           ) -> Recording:
    """Run `iterations` from init; stops early (status 'interrupted') on should_stop()
    or Ctrl-C, keeping the iterations done.  An error in the user's code is a UserError."""
    for name, arr in (("X", X), ("y", y)):
        _storable(prog, f"data {name}", arr)
    s = UserStepper(prog, X, y, seed=seed, lr=lr, checkpoint_every=every)
    init = s.user.snapshot()  # the parameters init() made: the checkpoint at 0
    status = "complete"
    try:
        s.run_until(lambda ev: None, max_iters=iterations, should_stop=should_stop,
                    block=CHUNK)
        if s.user.error_at is not None:
            raise UserError(f"{s.user.error_text} (at iteration {s.user.error_at})")
    except UserCodeError as exc:
        raise UserError(str(exc).split(" (iteration")[0]) from None
    except KeyboardInterrupt:
        status = "interrupted"
    n = min(len(s.history), iterations)
    if n < iterations:
        status = "interrupted"
    ckpts = {0: init, **{k: v for k, v in s.checkpoints.items() if 0 < k <= n}}
    for name, arr in init.items():
        _storable(prog, f"parameter {name}", arr)
    for k, c in sorted(ckpts.items()):  # the trace keeps one dtype and shape per parameter
        for name, arr in c.items():
            if (arr.dtype, arr.shape) != (init[name].dtype, init[name].shape):
                raise UserError(f"{prog.display}: parameter {name!r} is {arr.dtype} "
                                f"{arr.shape} at iteration {k}, {init[name].dtype} "
                                f"{init[name].shape} after init(); a trace needs update() to "
                                f"keep each parameter's dtype and shape")
    meta = {"display": prog.display, "path": prog.filename, "sha256": prog.sha256,
            "seed": seed, "lr": float(lr), "checkpoint_every": s.every,
            "params": list(s.program.params), "status": status, "target": iterations}
    hist = s.history.view(0, n)
    block = MetricsBlock(0, hist.loss, hist.acc, hist.lr, hist.grad_norm, hist.weight_norm,
                         hist.saturation)
    return Recording(meta, prog.source, X, y, block, [e for e in s.events if e.iteration < max(
        n, 1)], ckpts)


def _storable(prog: UserProgram, what: str, arr: np.ndarray) -> None:
    if storage_dtype(np.asarray(arr).dtype) is None:
        raise UserError(f"{prog.display}: {what} has dtype {np.asarray(arr).dtype}, which a "
                        f"trace cannot store (floats up to 64 bits, integers, bools)")


def _flat(arr: np.ndarray) -> tuple[str, str, memoryview, int]:
    a = np.asarray(arr)
    return encode(a.reshape(-1).astype(storage_dtype(a.dtype)))


def _spec(name: str, arr: np.ndarray) -> list:
    a = np.asarray(arr)
    return [name, a.dtype.str, list(a.shape)]


def save(rec: Recording, path: str, force: bool) -> int:
    """Write the trace through a temporary file and a rename; returns its size in bytes."""
    target = Path(path)
    replacing = existing(target, force)  # folders, FIFOs, devices refused; --force needed
    m = rec.meta
    first = rec.checkpoints[0]
    meta = {"format_version": USER_FORMAT, "kind": KIND, "seed": json.dumps(m["seed"]),
            "lr": json.dumps(m["lr"]), "checkpoint_every": m["checkpoint_every"],
            "block_size": BLOCK, "status": m["status"], "target": m["target"],
            "params": json.dumps([_spec(k, first[k]) for k in m["params"]]),
            "data": json.dumps({k: _spec(k, a)[1:] for k, a in (("X", rec.X), ("y", rec.y))}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "writer": "tui-backprop", "numpy": np.__version__,
            "machine": f"{platform.system()} {platform.machine()}"}
    h = rec.history
    tmp = None
    try:
        tmp, con = temp_trace(target, SCHEMA + SOURCE_SCHEMA, meta)
        try:
            con.execute("INSERT INTO source VALUES (?, ?, ?, ?)",
                        (m["display"], m["path"], m["sha256"], rec.source))
            con.executemany("INSERT INTO dataset VALUES (?, ?, ?, ?, ?)",
                            [("X", *_flat(rec.X)), ("y", *_flat(rec.y))])
            for a in range(0, rec.n, BLOCK):
                b = min(rec.n, a + BLOCK)
                cols = {"loss": h.loss[a:b], "grad_norm": h.grad_norm[a:b],
                        "weight_norm": h.weight_norm[a:b]}
                con.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(a, b - a, k, *encode_block(np.ascontiguousarray(v)))
                                 for k, v in cols.items()])
            con.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                            [(it, k, *_flat(v)) for it, c in sorted(rec.checkpoints.items())
                             for k, v in c.items()])
            con.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                            [(e.iteration, e.op, e.kind, e.detail) for e in rec.events])
            con.commit()
        finally:
            con.close()
        place(tmp, target, replacing)
        tmp = None
        return target.stat().st_size
    except BaseException as exc:  # Ctrl-C included: no temporary file stays behind
        if tmp is not None:
            for suffix in ("", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error | OSError):
            raise TraceError(f"cannot write {target}: {_reason(exc)}") from None
        raise
