"""Element drill-down: one matrix entry as the scalar sum or product that made it.

`explain(machine, frame, key, index)` writes an entry the way the article does
backprop by hand: the op's formula for that one element, then the same with
the real numbers plugged in, then the value.  Long sums (a fan-in of 784, a
dL/dW over 300 rows) show their first terms, "… (n more terms)" and the exact
total.  Each entry is also recomputed from its inputs in float64 with the
catalog's element forms (`recomputed`), so a shown formula that is not what
the kernel did cannot go unnoticed.  A NaN/Inf entry carries its provenance:
the non-finite input it came from, followed back through the frame to the op
that produced a non-finite value from finite inputs.

Everything here runs on demand, for one entry: never on the fast path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.engine.machine import Frame, Machine
from core.inspect import explain_ops as ops
from core.inspect.detectors import hint
from core.inspect.explain_terms import Ctx, Index, Ref, Result, idx_text, num

MAX_CHAIN = 24  # provenance steps before giving up (a chain is at most one iteration long)

__all__ = ["Explanation", "Ref", "explain", "grid_index", "idx_text", "num"]


@dataclass(frozen=True)
class Explanation:
    """One entry's computation: `target = lines[0] = lines[1] = … = lines[-1]`."""

    target: str  # "dL/dW2[2,0]"
    op: str  # the op that wrote it ("" for data and parameters)
    formula: str  # the op's matrix formula, or what the array is
    arrow: str  # "=" or "←" (an update)
    lines: tuple[str, ...]  # symbolic, then with numbers, then the stored value
    notes: tuple[str, ...]
    value: float  # the stored entry
    recomputed: float  # the entry recomputed from the shown inputs in float64
    scale: float  # Σ|terms|: roundoff in `recomputed` is relative to this
    tol: float  # relative roundoff allowed by the run's dtype
    shown: tuple[Ref, ...]  # every stored number printed in `lines`
    bad: tuple[Ref, ...] = ()  # non-finite inputs
    culprit: str = ""  # the first non-finite term, "symbols = numbers"
    provenance: tuple[str, ...] = field(default=())

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    @property
    def agrees(self) -> bool:
        """Whether the recomputation matches the stored entry up to roundoff."""
        v, r = self.value, self.recomputed
        if not (math.isfinite(v) and math.isfinite(r)):
            return (math.isnan(v) and math.isnan(r)) or v == r
        return abs(v - r) <= self.tol * max(self.scale, abs(v), 1e-300)


def grid_index(shape: tuple[int, ...], row: int, col: int) -> Index:
    """The array index of cell (row, col) of the 2-D view a heatmap shows.

    Matrices are shown as they are, vectors as one row, scalars as 1×1 and
    (N, K, K) arrays as N·K rows of K (see `renderables.matrix.as_2d`).
    """
    if not shape:
        return ()
    cols = shape[-1]
    return tuple(int(i) for i in np.unravel_index(row * cols + col, shape))


def explain(machine: Machine, frame: Frame, key: str, index: Index, *,
            terms: int = 3) -> Explanation:
    """Explain entry `index` of array `key` (an op output, a parameter or batch data)."""
    ctx = Ctx(machine, frame, terms)
    index = tuple(int(i) for i in index)
    with np.errstate(all="ignore"):  # NaN/Inf here is what is being explained
        e = _explain(ctx, key, index)
        if e.finite:
            return e
        return Explanation(**{**e.__dict__,
                              "provenance": _provenance(machine, frame, key, index)})


def _explain(ctx: Ctx, key: str, index: Index) -> Explanation:
    frame = ctx.frame
    pos = ctx.position(key)
    if pos is None:
        res = _leaf(ctx, key, index)
        name, formula = "", res.notes[0] if res.notes else ""
        notes = res.notes[1:]
    else:
        op = frame.ops[pos]
        res = ops.KINDS[ops.kind(op)](ctx, op, index)
        name, formula, notes = op.name, op.formula, res.notes
    value = float(ctx.arr(key)[index])
    eps = 1e-6 if np.dtype(ctx.cfg.dtype) == np.float32 else 1e-11
    lines = (*res.lines, num(value, 6))
    return Explanation(res.target or ctx.label(key, index), name, formula, res.arrow, lines,
                       tuple(notes), value, res.value, res.scale, eps, tuple(ctx.shown),
                       tuple(res.bad), res.culprit)


def _leaf(ctx: Ctx, key: str, index: Index) -> Result:
    """Parameters at the start of the iteration and batch data: no op wrote them here."""
    frame, label = ctx.frame, ctx.label(key, index)
    value = float(ctx.arr(key)[index])
    if key in frame.params:
        it = frame.iteration
        who = f"init {key}" if it == 0 else f"update {key} of iteration {it - 1}"
        what = f"{key}: parameter at the start of iteration {it}, written by {who}"
    elif key in ("X", "y", "labels"):
        what = {"X": "X: input data", "y": "y: one-hot targets",
                "labels": "labels: class of each row"}[key]
        what += f", row {index[0]} of this iteration's batch"
    else:
        what = key
    return Result((), value, abs(value), notes=(what,), target=label)


def _provenance(machine: Machine, frame: Frame, key: str, index: Index) -> tuple[str, ...]:
    """Follow a non-finite entry back to the op that made it from finite inputs."""
    ctx = Ctx(machine, frame, 2)
    lines: list[str] = []
    for _ in range(MAX_CHAIN):
        pos = ctx.position(key)
        label = ctx.label(key, index)
        value = float(ctx.arr(key)[index])
        if pos is None:
            if key in frame.params:
                lines.append(f"{label} = {num(value)} was already non-finite at the start of "
                             f"iteration {frame.iteration}: an earlier iteration produced it")
            else:
                lines.append(f"{label} = {num(value)} is non-finite input data")
            break
        e = _explain(ctx, key, index)
        head = f"{label} = {num(value)}" + (f" ← {e.culprit}" if e.culprit else "")
        follow = [r for r in e.bad if not math.isfinite(r.value)]
        if not follow:
            kinds = frame.fp_warnings.get(pos, [])
            why = "; ".join(f"{k}: {hint(k, frame.ops[pos].family)}" for k in kinds)
            lines.append(f"{head}: {frame.ops[pos].name} made it from finite inputs"
                         + (f" ({why})" if why else ""))
            break
        lines.append(head)
        nxt = min(follow, key=lambda r: ctx.position(r.key) if ctx.position(r.key) is not None
                  else -1)
        key, index = nxt.key, nxt.index
    if frame.origin is not None:
        lines.append(f"first NaN/Inf of iteration {frame.iteration}: "
                     f"{frame.ops[frame.origin].name}")
    return tuple(lines)
