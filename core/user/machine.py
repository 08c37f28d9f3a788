"""The user's code as a machine with the interface the Stepper drives.

One iteration = `loss(params, X, y)`, `backward(params, X, y)` and `update`
(the user's, or params[k] -= lr·grads[k]).  The fast path calls them plainly;
`materialize` calls the very same functions under the line tracer and turns
each recorded binding into an `Op` (core/model/op.py) with its output, so a stepped
iteration is bit-identical to a fast one (tracing only reads names).  The
parameters dict is the whole state: checkpoints are copies of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine.history import MetricsBlock
from core.engine.machine import Frame
from core.model.config import Config
from core.model.op import Buffers, Hyper, Op
from core.user.loader import UserError, UserProgram, check_grads, check_loss
from core.user.session import apply_update, copy_params, init_params, labels_of
from core.user.tracer import LineTracer, Record, parse_lines


class UserCodeError(ValueError):
    """The user's code failed at an iteration: the cursor cannot pass it."""


def _no_kernel(b: Buffers, hp: Hyper) -> Callable[[], None]:
    raise TypeError("ops of user code are re-executed by tracing, not bound to buffers")


@dataclass
class TracedProgram:
    """What the Stepper and the UI read of a program: ops, parameters, panels."""

    cfg: Config
    params: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    n: int
    ops: tuple[Op, ...] = ()
    init_ops: tuple[Op, ...] = ()
    grad_keys: dict[str, str] = field(default_factory=dict)  # param -> op key of its gradient
    failing: dict[str, str] = field(default_factory=dict)  # param -> diagnosis (check at 0)

    @property
    def depth(self) -> int:  # "layers" of the history's per-layer columns: one per parameter
        return len(self.params)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (1,) * (len(self.params) + 1)

    def param_shape(self, key: str) -> tuple[int, ...]:
        return self.shapes[key]

    def index(self, key: str) -> int:
        for i, op in enumerate(self.ops):
            if key in (op.key, op.name):
                return i
        raise KeyError(key)

    def grad_name(self, param: str) -> str:
        key = self.grad_keys.get(param, "")
        return next((op.name for op in self.ops if op.key == key), f"grads[{param!r}]")

    @property
    def panels(self) -> tuple[tuple[str, str], ...]:
        """Fixed panels: the gradient backward returns for each parameter (✗ if it fails)."""
        out = []
        for p in self.params:
            if p in self.grad_keys:
                mark = " ✗ FAIL" if p in self.failing else ""
                out.append((self.grad_keys[p], f"grad {p}{mark}"))
        return tuple(out)


class UserMachine:
    """Parameters, data and the traced/untraced execution of one user program."""

    def __init__(self, prog: UserProgram, X: np.ndarray, y: np.ndarray, cfg: Config) -> None:
        self.prog, self.cfg = prog, cfg
        self.X, self.y = X, y
        self.labels = labels_of(y)
        self.data = None
        self.lr_at: Callable[[int], float] = cfg.lr_at  # the Stepper swaps in its schedule
        self.hp = Hyper()
        self.lines = parse_lines(prog.source, prog.filename)
        self.params: dict[str, np.ndarray] = init_params(prog, cfg.seed)
        names = tuple(self.params)
        self.program = TracedProgram(cfg, names, {k: v.shape for k, v in self.params.items()},
                                     len(X))
        self.pos = 0
        self.error_at: int | None = None  # first iteration the user's code failed in
        self.error_text = ""

    # ------------------------------------------------------------------ state
    def init(self) -> None:
        self.params = init_params(self.prog, self.cfg.seed)
        self.pos = 0

    def snapshot(self) -> dict[str, np.ndarray]:
        return copy_params(self.params)

    def restore(self, params: dict[str, np.ndarray], pos: int) -> None:
        self.params = copy_params(params)
        self.pos = pos

    # ------------------------------------------------------------------ fast path
    def _step(self, i: int) -> tuple[float, dict[str, np.ndarray], list[float]]:
        p = self.params
        loss = check_loss(self.prog, self.prog.call("loss", p, self.X, self.y), i, True)
        _, grads = check_grads(self.prog, self.prog.call("backward", p, self.X, self.y), p)
        wn = [math.sqrt(float(np.vdot(v, v).real)) for v in p.values()]
        apply_update(self.prog, p, grads, self.lr_at(i))
        return loss, grads, wn

    def run_fast(self, count: int) -> MetricsBlock:
        """`count` iterations untraced; stops early (and records where) if the code fails."""
        depth = self.program.depth
        block = MetricsBlock.empty(self.pos, count, depth)
        block.acc[:] = np.nan
        done = 0
        with np.errstate(all="ignore"):
            for j in range(count):
                i = self.pos
                try:
                    loss, grads, wn = self._step(i)
                except UserError as exc:
                    self.error_at = i if self.error_at is None else min(self.error_at, i)
                    self.error_text = str(exc)
                    if done == 0:
                        raise UserCodeError(f"{exc} (iteration {i}: g {i} shows it line by "
                                            f"line)") from None
                    break
                block.loss[j] = loss
                block.lr[j] = self.lr_at(i)
                block.grad_norm[j] = [math.sqrt(float(np.vdot(g, g).real))
                                      for g in grads.values()]
                block.weight_norm[j] = wn
                self.pos = i + 1
                done += 1
        return block if done == count else block.head(done)

    # ------------------------------------------------------------------ op by op
    def _tracer(self, params: dict[str, np.ndarray], batch: dict[str, np.ndarray]
                ) -> LineTracer:
        known = {id(v): k for k, v in params.items()}
        known.update({id(v): k for k, v in batch.items()})
        return LineTracer(self.prog.filename, self.lines, known)

    def materialize(self) -> Frame:
        """Iteration `pos` under the tracer: every array-binding line is an op."""
        i = self.pos
        before = self.snapshot()
        p = self.params
        batch = {"X": self.X, "y": self.y, "labels": self.labels}
        tr = self._tracer(p, batch)
        tr.keep.extend(p.values())
        frame_batch = {k: np.array(v, copy=True) for k, v in batch.items()}
        frame = Frame(i, (), [], before, frame_batch)
        extra: list[tuple[Op, np.ndarray]] = []
        error = ""
        lr = self.lr_at(i)
        caught = tr.caught

        def on_error(kind: str, flag: int) -> None:
            caught.append(kind.split()[0])

        old = np.seterrcall(on_error)
        try:
            with np.errstate(all="call", under="ignore"):
                raw = tr.run("loss", self.prog.call, "loss", p, self.X, self.y)
                self.hp.loss = check_loss(self.prog, raw, i, True)
                res = tr.run("backward", self.prog.call, "backward", p, self.X, self.y)
                _, grads = check_grads(self.prog, res, p)
                self._grad_ops(tr, grads, extra)
                if self.prog.has_update:
                    tr.run("update", self.prog.call, "update", p, grads, lr)
                else:
                    apply_update(self.prog, p, grads, lr)
                    for k in p:
                        extra.append((self._op(f"{k}@update", f"{k} ←", "update",
                                               f"(default update) params[{k!r}] -= lr · "
                                               f"grads[{k!r}]   lr = {lr:g}",
                                               (k, self.program.grad_keys.get(k, "")), p[k]),
                                      np.array(p[k], copy=True)))
        except UserError as exc:
            error = str(exc)
        finally:
            np.seterrcall(old)
        self._fill(frame, tr.records, extra, error)
        self.pos = i + 1
        if error:
            self.error_at = i if self.error_at is None else min(self.error_at, i)
        return frame

    def materialize_init(self) -> Frame:
        frame = Frame(-1, (), [], {}, {"X": np.array(self.X, copy=True),
                                       "y": np.array(self.y, copy=True),
                                       "labels": self.labels.copy()})
        tr = self._tracer({}, {})
        extra: list[tuple[Op, np.ndarray]] = []
        error = ""
        try:
            with np.errstate(all="ignore"):
                out = tr.run("init", self.prog.call, "init", np.random.default_rng(self.cfg.seed))
            self.params = init_params(self.prog, self.cfg.seed) if not isinstance(out, dict) \
                else out
            for k, v in self.params.items():
                extra.append((self._op(f"{k}@init", k, "init",
                                       f"{self.prog.display}: init(rng)[{k!r}]", (), v),
                              np.array(v, copy=True)))
        except UserError as exc:
            error = str(exc)
        self._fill(frame, tr.records, extra, error)
        self.program.init_ops = frame.ops
        self.pos = 0
        return frame

    # ------------------------------------------------------------------ ops
    def _op(self, key: str, name: str, phase: str, formula: str, inputs: tuple[str, ...],
            value: Any) -> Op:
        return Op(key, name, phase, formula, tuple(k for k in inputs if k), np.shape(value), 0,
                  "user", _no_kernel)

    def _grad_ops(self, tr: LineTracer, grads: dict[str, np.ndarray],
                  extra: list[tuple[Op, np.ndarray]]) -> None:
        """Which op made each returned gradient (by identity); a returned expression that
        no line bound becomes an op of its own."""
        keys = {}
        for k, g in grads.items():
            key = tr.known.get(id(g))
            if key is None or key in (self.program.params):
                key = f"grads[{k}]"
                tr.records.append(Record(f"grads[{k!r}]", 0, "backward", "backward",
                                         np.array(g, copy=True), (), [], key))
            keys[k] = key
        self.program.grad_keys = keys

    def _phase(self, rec: Record) -> str:
        if rec.top == "L":
            return "loss"
        if rec.top == "loss":
            return "loss" if "loss" in rec.name.lower() else "forward"
        return rec.top or "forward"

    def _fill(self, frame: Frame, records: list[Record], extra: list[tuple[Op, np.ndarray]],
              error: str) -> None:
        ops: list[Op] = []
        outs: list[np.ndarray] = []
        short = Path(self.prog.display).name  # the op card is narrow: the file's name, no dirs
        for rec in records:
            where = f"{short}:{rec.line}" if rec.line else short
            text = self.lines[rec.line].text if rec.line in self.lines else "return value"
            if rec.func not in ("loss", "backward", "update", "init"):
                where += f" in {rec.func}()"
            name = rec.name if not rec.line else f"{rec.name} L{rec.line}"
            ops.append(self._op(rec.key, name, self._phase(rec), f"{where}  {text}",
                                rec.inputs, rec.value))
            outs.append(rec.value)
            if rec.warnings:
                frame.fp_warnings[len(ops) - 1] = sorted(set(rec.warnings))
        for op, out in extra:
            ops.append(op)
            outs.append(out)
        if error:
            ops.append(Op("error", "error", ops[-1].phase if ops else "forward",
                          error, (), (), 0, "user", _no_kernel))
            outs.append(np.array(0.0))
        bad = {k for k, v in frame.params.items() if not np.isfinite(v).all()}
        for idx, (op, out) in enumerate(zip(ops, outs, strict=True)):
            finite = not np.issubdtype(out.dtype, np.inexact) or bool(np.isfinite(out).all())
            frame.nonfinite.append(not finite)
            if not finite:
                if frame.origin is None and not (bad & set(op.inputs)) and not bad:
                    frame.origin = idx
                bad.add(op.key)
        frame.ops = tuple(ops)
        frame.outputs = outs
        if frame.iteration >= 0 and not error:
            self.program.ops = frame.ops
