"""Finite-difference check of a user's `backward` against central differences of `loss`.

Everything runs in float64 (parameters and data are cast on the way in).  A
parameter with more than `max_entries` entries is sampled with a fixed stride
so the sample is easy to state ("flat index 7 + 1567·k, row-major") and spreads
over rows and columns; the stride is chosen coprime with the column count so a
sample never sits in one column.  Errors are relative to each entry with the
same floor as the built-in gradcheck (core/inspect/gradcheck.py): roundoff of the
difference quotient maps to the threshold, so near-zero entries do not fail on
noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.inspect.gradcheck import error_floor, relative_errors
from core.user import diagnose as dg
from core.user.limits import MAX_ENTRIES, THRESHOLD  # noqa: F401  (re-exported)
from core.user.loader import UserError, UserProgram, check_grads, check_loss
from core.user.session import copy_params, init_params, train_step

EPS = 1e-5
FULL = 64  # parameters up to this size are checked entry by entry


@dataclass(frozen=True)
class Sample:
    """Which entries of a parameter were checked: start + stride·k, k < count (flat)."""

    size: int
    start: int = 0
    stride: int = 1
    count: int = 0

    @property
    def full(self) -> bool:
        return self.count == self.size

    def indices(self) -> np.ndarray:
        return self.start + self.stride * np.arange(self.count)

    def __str__(self) -> str:
        if self.full:
            return f"all {self.size} entries"
        return (f"{self.count} of {self.size} entries: flat index {self.start} + "
                f"{self.stride}·k, k = 0…{self.count - 1} (row-major)")


def choose_sample(shape: tuple[int, ...], max_entries: int, seed: int) -> Sample:
    size = math.prod(shape)
    if size <= max(max_entries, FULL):
        return Sample(size, 0, 1, size)
    cols = shape[-1] if len(shape) > 1 else 1
    stride = max(1, size // max_entries)
    while cols > 1 and math.gcd(stride, cols) != 1:
        stride -= 1
    start = seed % max(1, size - stride * (max_entries - 1))
    return Sample(size, start, stride, max_entries)


@dataclass
class ParamResult:
    name: str
    shape: tuple[int, ...]  # the parameter's
    grad_shape: tuple[int, ...]  # what backward returned
    passed: bool
    max_rel_error: float | None
    worst_index: tuple[int, ...] | None
    analytic: float | None
    numeric: float | None
    fit: dg.Fit | None
    diagnosis: str
    sample: Sample
    threshold: float = THRESHOLD
    rel_error: np.ndarray | None = field(default=None, repr=False)  # full shape, NaN unchecked
    checked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    # (flat indices, analytic, numeric) of the checked entries

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "passed": self.passed,
                "max_rel_error": self.max_rel_error,
                "worst_index": None if self.worst_index is None else list(self.worst_index),
                "analytic": self.analytic, "numeric": self.numeric,
                "fit": None if self.fit is None else {"scale": self.fit.scale,
                                                      "offset": self.fit.offset},
                "diagnosis": self.diagnosis}


@dataclass
class IterationResult:
    iteration: int
    params: list[ParamResult]
    loss: float

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.params)


class Checker:
    """Central differences of the user's loss at a given parameter state."""

    def __init__(self, prog: UserProgram, X: np.ndarray, y: np.ndarray, *, eps: float = EPS,
                 threshold: float = THRESHOLD, max_entries: int = MAX_ENTRIES,
                 seed: int = 0) -> None:
        self.prog, self.eps, self.threshold = prog, eps, threshold
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64) if np.issubdtype(y.dtype, np.floating) else y
        self.max_entries, self.seed = max_entries, seed

    def loss(self, params: dict[str, np.ndarray], iteration: int) -> float:
        with np.errstate(all="ignore"):
            return check_loss(self.prog, self.prog.call("loss", params, self.X, self.y),
                              iteration)

    def check(self, params: dict[str, np.ndarray], iteration: int,
              only: str | None = None) -> IterationResult:
        """Check every gradient backward returns at `params` (or just `only`)."""
        p64 = {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}
        base = self.loss(p64, iteration)
        with np.errstate(all="ignore"):
            _, grads = check_grads(self.prog, self.prog.call(
                "backward", copy_params(p64), self.X, self.y), p64)
        names = [only] if only is not None else list(p64)
        results = [self.check_one(p64, name, grads[name], base, iteration) for name in names]
        return IterationResult(iteration, results, base)

    def numeric(self, params: dict[str, np.ndarray], name: str, flat: np.ndarray,
                iteration: int) -> np.ndarray:
        target = params[name]
        view = target.reshape(-1)  # a view: params are contiguous float64 copies
        out = np.empty(len(flat))
        for j, idx in enumerate(flat):
            old = view[idx]
            view[idx] = old + self.eps
            lp = self.loss(params, iteration)
            view[idx] = old - self.eps
            lm = self.loss(params, iteration)
            view[idx] = old
            out[j] = (lp - lm) / (2 * self.eps)
        return out

    def check_one(self, params: dict[str, np.ndarray], name: str, grad: np.ndarray,
                  base: float, iteration: int) -> ParamResult:
        shape = params[name].shape
        sample = choose_sample(shape, self.max_entries, self.seed)
        flat = sample.indices()
        num = self.numeric(params, name, flat, iteration)
        ga = np.asarray(grad, dtype=np.float64)
        if ga.shape != shape:
            return self._misshaped(name, shape, ga, num, flat, sample,
                                   error_floor(base, self.eps, 0.0, self.threshold))
        ana = ga.reshape(-1)[flat]
        if not np.isfinite(ga).all():
            return ParamResult(name, shape, ga.shape, False, None, None, None, None, None,
                               "the gradient contains NaN/Inf", sample, self.threshold)
        scale = max(float(np.abs(ana).max()), float(np.abs(num).max()))
        floor = error_floor(base, self.eps, scale, self.threshold)  # as the built-in check
        err = relative_errors(ana, num, floor)
        worst = int(np.argmax(err))
        rel = np.full(shape, np.nan)
        rel.reshape(-1)[flat] = err
        failed = err > self.threshold
        passed = not failed.any()
        fit, text = (None, "matches the finite differences") if passed else dg.describe(
            ana, num, flat, shape, failed, len(self.X), ga, floor,
            params[name].reshape(-1)[flat], self.y.shape[1] if self.y.ndim == 2 else 0)
        if passed:
            fit = None
        widx = tuple(int(i) for i in np.unravel_index(int(flat[worst]), shape))
        return ParamResult(name, shape, ga.shape, passed, float(err[worst]), widx,
                           float(ana[worst]), float(num[worst]), fit, text, sample,
                           self.threshold, rel, (flat, ana, num))

    def _misshaped(self, name: str, shape: tuple[int, ...], ga: np.ndarray, num: np.ndarray,
                   flat: np.ndarray, sample: Sample, floor: float) -> ParamResult:
        text = (f"mis-shaped gradient: backward returned shape {ga.shape} for a parameter of "
                f"shape {shape}")
        if ga.size == math.prod(shape):
            tol = 1e-4 * np.maximum(np.abs(num), floor)
            if len(shape) == 2 and ga.shape == shape[::-1]:
                if np.all(np.abs(ga.T.reshape(-1)[flat] - num) <= tol):
                    text = (f"transposed gradient: backward returned shape {ga.shape} for a "
                            f"parameter of shape {shape}, and its transpose matches")
            elif np.all(np.abs(ga.reshape(-1)[flat] - num) <= tol):
                text += " (the values match once reshaped)"
        return ParamResult(name, shape, ga.shape, False, None, None, None, None, None, text,
                           sample, self.threshold)


@dataclass
class CheckReport:
    iterations: list[IterationResult]
    skipped: list[tuple[int, str]]  # iterations that could not be reached, and why

    @property
    def passed(self) -> bool:
        return all(it.passed for it in self.iterations)

    def to_json(self) -> dict:
        return {"passed": self.passed,
                "iterations": [{"iteration": it.iteration,
                                "params": [p.to_json() for p in it.params]}
                               for it in self.iterations]}


def run_check(prog: UserProgram, X: np.ndarray, y: np.ndarray, at: list[int], *, seed: int,
              lr: float | None = None, max_entries: int = MAX_ENTRIES,
              threshold: float = THRESHOLD) -> CheckReport:
    """Check at each requested iteration, training in between with the user's own step.

    Training problems after a first check (NaN loss, a gradient too mis-shaped
    to apply) skip the later iterations when a FAIL already explains them;
    otherwise they are an error.
    """
    checker = Checker(prog, X, y, threshold=threshold, max_entries=max_entries, seed=seed)
    params = init_params(prog, seed)
    lr = prog.lr if lr is None else lr
    report = CheckReport([], [])
    pos = 0
    for target in sorted(set(at)):
        try:
            with np.errstate(all="ignore"):
                while pos < target:
                    train_step(prog, params, X, y, lr)
                    pos += 1
            report.iterations.append(checker.check(params, target))
        except UserError as exc:
            if not report.iterations or report.passed:
                raise
            report.skipped.append((target, f"{exc} (after training with the failing "
                                           f"gradients)"))
            break
    return report
