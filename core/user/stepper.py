"""The Stepper over user code: the same cursor, checkpoints, history and detectors.

`UserStepper` is the built-in `Stepper` given a prebuilt `UserMachine`; it only
overrides what differs for user code: one machine for every learning rate (the
schedule is read per iteration), metrics of a traced iteration, the refusal of
non-deterministic code, the iteration where the user's code fails (the cursor
cannot pass it), detector texts that name parameters, and a gradient check at
iteration 0 whose failures are flagged for the whole session.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np

from core.engine.history import MetricsBlock
from core.engine.machine import Frame
from core.engine.stepper import INIT, Stepper
from core.inspect.detectors import Event
from core.model.config import Config, ConfigError
from core.user.check import Checker
from core.user.loader import UserError, UserProgram
from core.user.machine import UserCodeError, UserMachine

GRAD_KIND = "gradcheck"  # the Event kind of a gradient failing the check at iteration 0
USER_KNOBS = ("lr", "lr_decay")


class NotDeterministic(UserError):
    """Two runs of the same iteration from the same parameters differ."""


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> str | None:
    for k in a:
        if a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes():
            return k
    return None


class UserStepper(Stepper):
    """A Stepper whose machine runs the user's loss/backward/update."""

    def __init__(self, prog: UserProgram, X: np.ndarray, y: np.ndarray, *, seed: int,
                 lr: float, precheck: bool = True, checkpoint_every: int | None = None) -> None:
        cfg = Config(lr=lr, seed=seed, dataset="user")
        m = UserMachine(prog, X, y, cfg)
        self.prog = prog
        every = checkpoint_every or self._probe(m)
        m.restore(m.snapshot(), 0)
        start = m.snapshot()
        m.materialize()  # op list, panels and gradient keys of a first traced iteration
        m.restore(start, 0)
        m.error_at = None
        super().__init__(cfg, checkpoint_every=every, machine=m)
        self.user = m
        m.lr_at = lambda i: self.config_at(i).lr_at(i)
        self._layer_ops = [self.program.grad_name(p) for p in self.program.params]
        if precheck:
            self._precheck(X, y, start)

    # ------------------------------------------------------------------ set-up
    def _probe(self, m: UserMachine) -> int:
        """Refuse non-deterministic code; pick K so re-running K iterations is ~20 ms."""
        start = m.snapshot()
        try:
            t0 = time.perf_counter()
            a = m.run_fast(1)
            dt = time.perf_counter() - t0
            after = m.snapshot()
            m.restore(start, 0)
            b = m.run_fast(1)
        except UserCodeError:  # shown when the cursor reaches it
            m.restore(start, 0)
            return 1
        differ = _same(after, m.snapshot())
        m.restore(start, 0)
        if differ is not None or a.loss.tobytes() != b.loss.tobytes():
            what = f"parameter {differ!r}" if differ else "the loss"
            raise NotDeterministic(
                f"{self.prog.display}: not deterministic: two runs of iteration 0 from the "
                f"same parameters gave different {what}; stepping back re-executes, so it "
                f"needs the same numbers every time (seed any randomness, e.g. "
                f"np.random.default_rng(0) for dropout)")
        return max(1, min(1000, int(0.02 / max(dt, 1e-6))))

    def _precheck(self, X: np.ndarray, y: np.ndarray, start: dict[str, np.ndarray]) -> None:
        try:
            res = Checker(self.prog, X, y).check(start, 0)
        except UserError:
            return  # an error in the user's code: shown on its line when stepped to
        for p in res.params:
            if not p.passed:
                self.program.failing[p.name] = p.diagnosis
                self.events.append(Event(0, self.program.grad_name(p.name), GRAD_KIND,
                                            f"{p.name}: FAIL vs finite differences · "
                                            f"{p.diagnosis}"))

    # ------------------------------------------------------------------ overrides
    def machine_for(self, i: int) -> UserMachine:  # type: ignore[override]
        return self.user if hasattr(self, "user") else self._active

    def set_knobs(self, **changes: object):  # type: ignore[no-untyped-def]
        old = self.config_at(self.iteration)
        other = [k for k in changes if k not in USER_KNOBS and changes[k] != getattr(old, k)]
        if other:
            raise ConfigError(f"{other[0]} does not apply to your code; only "
                              f"{' and '.join(USER_KNOBS)} do")
        return super().set_knobs(**changes)

    def _observe(self, block: MetricsBlock) -> None:
        super()._observe(block)
        self._note_error()

    def _note_error(self) -> None:
        if self.user.error_at is not None:
            self.end = self.user.error_at + 1 if self.end is None else min(
                self.end, self.user.error_at + 1)

    def _observe_frame(self, frame: Frame) -> None:
        m = self.user
        if any(op.key == "error" for op in frame.ops):
            self._note_error()
            return
        i = frame.iteration
        if i < len(self.history):
            known = self.history.view(i, i + 1).loss
            if known.tobytes() != np.array([m.hp.loss]).tobytes():
                raise NotDeterministic(
                    f"{self.prog.display}: not deterministic: iteration {i} re-executed gave "
                    f"loss {m.hp.loss!r}, first {float(known[0])!r}")
            return
        if i != len(self.history):
            return
        block = MetricsBlock.empty(i, 1, self.program.depth)
        block.loss[0] = m.hp.loss
        block.acc[0] = math.nan
        block.lr[0] = m.lr_at(i)
        for l, p in enumerate(self.program.params):
            g = frame.value(self.program.grad_keys[p]) if p in self.program.grad_keys else \
                np.full(1, np.nan)
            block.grad_norm[0, l] = math.sqrt(float(np.vdot(g, g).real))
            w = frame.params[p]
            block.weight_norm[0, l] = math.sqrt(float(np.vdot(w, w).real))
        self._append(block)

    def _append(self, block: MetricsBlock) -> None:
        n = len(self.events)
        with np.errstate(all="ignore"):
            super()._append(block)
        names = self.program.params

        def name(mt: re.Match) -> str:
            l = int(mt.group(1)) - 1
            return f"grad {names[l]}" if 0 <= l < len(names) else mt.group(0)

        where = {op.name: op.formula.split("  ")[0] for op in self.program.ops}
        for j in range(n, len(self.events)):
            e = self.events[j]
            detail = re.sub(r"dL/dW(\d+)", name, e.detail)
            if e.kind == "nan" and e.op in where:
                detail += f" · {where[e.op]}"
            self.events[j] = Event(e.iteration, e.op, e.kind, detail)


__all__ = ["GRAD_KIND", "INIT", "NotDeterministic", "UserStepper"]
