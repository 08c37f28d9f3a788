"""Executes a Program: the fast path, and op-by-op materialization of one iteration.

The Machine owns the buffers and the bound kernels.  Its parameters always
hold the state at the *start* of iteration `pos`; both execution modes run the
very same kernels, so a materialized iteration equals what the fast path
computed, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core import catalog as cat
from core.config import Config
from core.datasets import Dataset, make_dataset
from core.history import MetricsBlock
from core.program import Hyper, Op, Program, build_program

CHUNK = 256  # full batch: accuracy is computed for this many iterations at once
SAT_EVERY = 32  # fast path samples hidden-unit saturation on iterations i % 32 == 0


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
        self.kernels = [op.bind(self.buf, self.hp) for op in self.program.ops]
        self.init_kernels = [op.bind(self.buf, self.hp) for op in self.program.init_ops]
        live = set(self.program.live_ops())
        self.live = [k for op, k in zip(self.program.ops, self.kernels, strict=True)
                     if op in live]
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
        """Copies of all parameters (the whole training state: the RNG is stateless)."""
        return {p: self.buf[p].copy() for p in self.program.params}

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
    def run_fast(self, count: int) -> MetricsBlock:
        """Run `count` iterations from `pos`, keeping only metrics.

        NaN/Inf never raise here: floating-point errors are silenced and the
        per-layer gradient norm doubles as the finite check (a norm is finite
        only if every entry is).
        """
        prog, buf, hp, cfg = self.program, self.buf, self.hp, self.cfg
        depth = prog.depth
        block = MetricsBlock.empty(self.pos, count, depth)
        satb = block.saturation
        kernels = self.live
        out, labels = buf[f"h{depth}"], buf["labels"]
        eq = np.empty(prog.n, bool)
        pred = np.empty(prog.n, np.intp)
        preds = np.empty((min(count, CHUNK), prog.n), np.intp)
        rows = list(preds)  # row views, indexed from a list: cheaper than preds[c]
        inv_n = 1.0 / prog.n
        # ‖W‖² before the update: an l2 loss computes it anyway (w_sq), else one dot each
        free_wsq = cfg.reg > 0 and cfg.reg_kind == "l2"
        wflat = [buf[p].reshape(-1) for p in prog.params if p[0] == "W"]
        hidden = [(l - 1, buf[f"h{l}"]) for l in range(1, depth)]
        act = cat.ACTIVATIONS[cfg.activation]
        lr0, decay, full = cfg.lr, cfg.lr_decay, self.full
        # Python lists absorb per-iteration metrics (~40 ns an append against ~0.5 µs for a
        # NumPy item write); they become the block's arrays once, at the end.
        loss_l: list[float] = []
        acc_l: list[float] = []
        gn_l: list[float] = []
        wn_l: list[float] = []
        i0 = i = self.pos
        with np.errstate(all="ignore"):
            for j in range(count):
                if not full:
                    self.load_batch(i)
                hp.lr = lr0 / (1.0 + decay * i)
                if not free_wsq:
                    wn_l.extend([float(f.dot(f)) for f in wflat])
                for k in kernels:
                    k()
                if free_wsq:
                    wn_l.extend(hp.w_sq)
                loss_l.append(hp.loss)
                gn_l.extend(hp.grad_norm)
                if full:  # keep predictions; compare a chunk of them at once
                    c = j % CHUNK
                    out.argmax(1, out=rows[c])  # the method skips np.argmax's dispatch
                    if c == CHUNK - 1 or j == count - 1:
                        hits = np.count_nonzero(preds[:c + 1] == labels, axis=1)
                        acc_l.extend((hits * inv_n).tolist())
                else:
                    out.argmax(1, out=pred)
                    np.equal(pred, labels, out=eq)
                    acc_l.append(np.count_nonzero(eq) * inv_n)
                if i % SAT_EVERY == 0:
                    for l, h in hidden:
                        satb[j, l] = np.count_nonzero(act.saturated(h)) / h.size
                i += 1
        block.loss[:] = loss_l
        block.acc[:] = acc_l
        block.lr[:] = lr0 / (1.0 + decay * np.arange(i0, i))
        block.grad_norm[:] = np.reshape(gn_l, (count, depth))
        np.sqrt(np.reshape(wn_l, (count, depth)), out=block.weight_norm)
        self.pos = i
        return block

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
                out = np.array(buf[op.key], copy=True)
                frame.outputs.append(out)
                finite = bool(np.isfinite(out).all())
                frame.nonfinite.append(not finite)
                if caught:
                    frame.fp_warnings[idx] = sorted(set(caught))
                if not finite:
                    if frame.origin is None and not (bad & set(op.inputs)):
                        frame.origin = idx
                    bad.add(op.key)
                    if op.target:
                        bad.add(op.target)
    finally:
        np.seterrcall(old)
