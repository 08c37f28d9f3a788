"""Executes a Program: the fast path, and op-by-op materialization of one iteration.

The Machine owns the buffers and the bound kernels.  Its parameters always
hold the state at the *start* of iteration `pos`; both execution modes run the
very same kernels, so a materialized iteration equals what the fast path
computed, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.engine.fused import CHUNK, SAT_EVERY, build_bare_loop, build_loop  # noqa: F401
from core.engine.history import MetricsBlock
from core.model.code import Code
from core.model.config import Config
from core.model.datasets import Dataset, make_dataset
from core.model.program import Hyper, Op, Program, build_program


@dataclass
class Frame:
    """Every op output of one iteration (or of init, iteration −1), with its flags."""

    iteration: int
    ops: tuple[Op, ...]
    outputs: list[np.ndarray]
    params: dict[str, np.ndarray]  # parameters before this iteration
    batch: dict[str, np.ndarray]  # X, y, labels used in this iteration
    nonfinite: list[bool] = field(default_factory=list)
    origin: int | None = None  # first op that *produced* NaN/Inf from finite inputs
    fp_warnings: dict[int, list[str]] = field(default_factory=dict)

    def value(self, key: str) -> np.ndarray:
        """An array by key: an op output, a parameter (before update) or batch data."""
        for op, out in zip(self.ops, self.outputs, strict=False):
            if op.key == key:
                return out
        if key in self.params:
            return self.params[key]
        return self.batch[key]

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything by key, as written by `export`."""
        d = dict(self.batch)
        d.update(self.params)
        d.update({op.key: out for op, out in zip(self.ops, self.outputs, strict=False)})
        return d


class Machine:
    """Buffers + bound kernels for one config; stepping state lives in the Stepper."""

    def __init__(self, cfg: Config, data: Dataset | None = None) -> None:
        self.cfg = cfg
        data = data or make_dataset(cfg.dataset, cfg.seed, cfg.outputs)
        n_all = len(data.labels) if cfg.limit == 0 else min(cfg.limit, len(data.labels))
        dt = np.dtype(cfg.dtype)
        self.data = data
        self.X = np.ascontiguousarray(data.X[:n_all], dtype=dt)
        self.labels = np.ascontiguousarray(data.labels[:n_all], dtype=np.int64)
        self.Y = np.ascontiguousarray(data.onehot(dt)[:n_all])
        self.full = cfg.batch_size == 0 or cfg.batch_size >= n_all
        rows = n_all if self.full else cfg.batch_size
        self.per_epoch = n_all // rows
        self.program: Program = build_program(cfg, self.X.shape[1], data.n_classes, rows)
        self.hp = Hyper()
        self.buf = self.program.allocate()
        if self.full:  # the batch never changes: point the buffers at the data
            self.buf["X"], self.buf["y"], self.buf["labels"] = self.X, self.Y, self.labels
        self.kernels: list[Code] = [op.bind(self.buf, self.hp) for op in self.program.ops]
        self.init_kernels = [op.bind(self.buf, self.hp) for op in self.program.init_ops]
        live = set(self.program.live_ops())
        self.live = [k for op, k in zip(self.program.ops, self.kernels, strict=True)
                     if op in live]
        self.params_flat = self.buf["params"]  # every parameter, as one vector
        base = self.params_flat.__array_interface__["data"][0]
        self._offsets = {p: (self.buf[p].__array_interface__["data"][0] - base)
                         // self.params_flat.itemsize for p in self.program.params}
        self.snaps: list[tuple[int, np.ndarray]] = []  # see run_fast
        self.snap_every = 0
        self._loop: Callable[..., None] | None = None  # the generated fast loop
        self._bare: Callable[..., None] | None = None  # the same step without metrics
        self._epoch = -1
        self._perm = np.arange(n_all)
        self.pos = 0  # parameters are the state at the start of this iteration

    # ------------------------------------------------------------------ state
    def init(self) -> None:
        """Run the init ops: parameters at the start of iteration 0."""
        for k in self.init_kernels:
            k()
        self.pos = 0

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of all parameters (the whole training state: the RNG is stateless),
        as views of one flat copy."""
        return self.state_of(self.params_flat.copy())

    def restore(self, params: dict[str, np.ndarray], pos: int) -> None:
        for p, arr in params.items():
            self.buf[p][...] = arr
        self.pos = pos

    def batch_rows(self, i: int) -> np.ndarray | None:
        """Rows of iteration i: a seeded permutation per epoch, derived, not stored."""
        if self.full:
            return None
        epoch, j = divmod(i, self.per_epoch)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.cfg.seed, 0xBA7C, epoch]).permutation(
                len(self.labels))
            self._epoch = epoch
        n = self.program.n
        return self._perm[j * n:(j + 1) * n]

    def load_batch(self, i: int) -> None:
        rows = self.batch_rows(i)
        if rows is not None:
            np.take(self.X, rows, axis=0, out=self.buf["X"])
            np.take(self.Y, rows, axis=0, out=self.buf["y"])
            np.take(self.labels, rows, out=self.buf["labels"])

    # ------------------------------------------------------------------ fast path
    def run_fast(self, count: int, metrics: bool = True) -> MetricsBlock | None:
        """Run `count` iterations from `pos`, keeping only metrics.

        NaN/Inf never raise here: floating-point errors are silenced and the
        per-layer gradient norm doubles as the finite check (a norm is finite
        only if every entry is).  The loop is generated once from the live ops
        (`core/engine/fused.py`): the same statements the stepper runs one op at a time.

        `self.snaps` receives (iteration, parameters) at the start of the last
        iteration run and, with `self.snap_every` > 0, of every multiple of it (the
        stepper sets it): stepping back
        or landing near the end then re-executes a few iterations at most.

        `metrics=False` (iterations whose metrics are known, a row-metrics run): the step
        alone, returning None.
        """
        depth = self.program.depth
        if not metrics and self.program.row_metrics:
            if self._bare is None:
                self._bare = build_bare_loop(self)
            self.snaps = []
            with np.errstate(all="ignore"):
                self._bare(count, self.pos, iter(sorted(self._marks(count))), self.snaps.append)
            self.pos += count
            return None
        if self._loop is None:
            self._loop = build_loop(self)
            if self.program.row_metrics:  # built now, so no landing pays for it later
                self._bare = build_bare_loop(self)
        block = MetricsBlock.empty(self.pos, count, depth)
        lists: tuple[list[float], ...] = ([], [], [], [])
        i0 = self.pos
        end = i0 + count
        marks = self._marks(count)
        self.snaps = []
        if self.program.row_metrics:  # written a chunk at a time into the block
            w_sq = np.empty((count, depth))
            with np.errstate(all="ignore"):
                self._loop(count, i0, 0, block.loss, block.acc, block.grad_norm, w_sq,
                           block.saturation, iter(sorted(marks)), self.snaps.append)
            block.lr[:] = self.cfg.lr / (1.0 + self.cfg.lr_decay * np.arange(i0, end))
            np.sqrt(w_sq, out=block.weight_norm)
            self.pos = end
            return block
        with np.errstate(all="ignore"):
            self._loop(count, i0, 0, *lists, block.saturation, iter(sorted(marks)),
                       self.snaps.append)
        loss_l, acc_l, gn_l, wn_l = lists
        block.loss[:] = loss_l
        block.acc[:] = acc_l
        block.lr[:] = self.cfg.lr / (1.0 + self.cfg.lr_decay * np.arange(i0, end))
        block.grad_norm[:] = np.reshape(gn_l, (count, depth))
        np.sqrt(np.reshape(wn_l, (count, depth)), out=block.weight_norm)
        self.pos = end
        return block

    def _marks(self, count: int) -> set[int]:
        """Iterations whose starting parameters a run of `count` keeps (see run_fast)."""
        i0, end, every = self.pos, self.pos + count, self.snap_every
        marks = set(range(-(-i0 // every) * every, end, every)) if every else set()
        if count:
            marks.add(end - 1)
        return marks

    def state_of(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """A flat parameter copy as {name: view}, the form snapshots take."""
        return {p: flat[self._offsets[p]:self._offsets[p] + self.buf[p].size].reshape(
            self.buf[p].shape) for p in self.program.params}

    # ------------------------------------------------------------------ op by op
    def materialize(self) -> Frame:
        """Run iteration `pos` op by op, copying every output and locating NaN origins."""
        i = self.pos
        params = self.snapshot()
        self.load_batch(i)
        self.hp.lr = self.cfg.lr_at(i)
        batch = {k: self.buf[k].copy() for k in ("X", "y", "labels")}
        frame = Frame(i, self.program.ops, [], params, batch)
        bad = {k for k, v in params.items() if not np.isfinite(v).all()}
        _run_recorded(self.program.ops, self.kernels, self.buf, frame, bad)
        self.pos = i + 1
        return frame

    def materialize_init(self) -> Frame:
        """Run the init ops recorded: the frame shown before iteration 0."""
        frame = Frame(-1, self.program.init_ops, [], {}, {k: self.buf[k].copy()
                                                         for k in ("X", "y", "labels")})
        _run_recorded(self.program.init_ops, self.init_kernels, self.buf, frame, set())
        self.pos = 0
        return frame


def _run_recorded(ops: tuple[Op, ...], kernels: list, buf: dict, frame: Frame,
                  bad: set[str]) -> None:
    """Run kernels one by one; record outputs, FP warnings and the first NaN producer."""
    caught: list[str] = []

    def on_error(kind: str, flag: int) -> None:
        caught.append(kind.split()[0])  # "divide by zero" -> "divide", "invalid value" -> "invalid"

    old = np.seterrcall(on_error)
    try:
        with np.errstate(all="call", under="ignore"):
            for idx, (op, k) in enumerate(zip(ops, kernels, strict=True)):
                caught.clear()
                k()
                frame.outputs.append(np.array(buf[op.key], copy=True))
                if caught:
                    frame.fp_warnings[idx] = sorted(set(caught))
    finally:
        np.seterrcall(old)
    outs = frame.outputs
    if sum(o.size for o in outs) <= SMALL and (not outs or np.isfinite(
            np.concatenate([o.reshape(-1) for o in outs])).all()):
        frame.nonfinite.extend([False] * len(outs))  # the usual case: three calls, not 2 per op
        return
    for op, out in zip(ops, outs, strict=True):
        finite = bool(np.isfinite(out).all())
        frame.nonfinite.append(not finite)
        if not finite:
            if frame.origin is None and not (bad & set(op.inputs)):
                frame.origin = len(frame.nonfinite) - 1
            bad.add(op.key)
            if op.target:
                bad.add(op.target)


SMALL = 1 << 16  # entries of all outputs of an iteration checked in one pass when at most this
