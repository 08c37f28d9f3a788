"""The term machinery of the drill-down: stored numbers, printed terms, exact sums.

`_sum` prints the first few terms of a sum and computes the exact total (and
finds non-finite terms) vectorized, so a 60 000-row dL/dW costs one NumPy pass;
`_compose` adds parts the way the kernels add them.  `Ctx` records every stored
number it prints (`shown`), which is what the tests check against the frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.engine.machine import Frame, Machine

Index = tuple[int, ...]
At = Callable[[int], list[tuple[str, Index]]]  # term number -> (key, index) of its factors


@dataclass(frozen=True)
class Ref:
    """One stored number an explanation reads: which array, which entry, its value."""

    key: str
    index: Index
    value: float


@dataclass(frozen=True)
class Result:
    """What an op kind returns: the lines before the stored value, and the recomputation."""

    lines: tuple[str, ...]
    value: float  # recomputed
    scale: float
    notes: tuple[str, ...] = ()
    target: str = ""
    arrow: str = "="
    bad: tuple[Ref, ...] = ()
    culprit: str = ""


def num(v: float, digits: int = 4) -> str:
    """A number as the drill-down prints it: 4 significant digits, a real minus sign."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "−inf"
    if v == 0:
        return "0"  # −0.0 too: its sign carries no information here
    s = f"{v:.{digits}g}"
    return "−" + s[1:] if s.startswith("-") else s


def par(v: float) -> str:
    """A number inside a product: negative ones in parentheses."""
    s = num(v)
    return f"({s})" if s.startswith("−") else s


def idx_text(index: tuple) -> str:
    return "[" + ",".join(str(i) for i in index) + "]" if index else ""


class Ctx:
    """The frame, the constants of the run, and the stored numbers printed so far."""

    def __init__(self, machine: Machine, frame: Frame, terms: int) -> None:
        self.frame = frame
        self.program = machine.program
        self.cfg = self.program.cfg
        self.lr = machine.cfg.lr_at(max(frame.iteration, 0))
        self.n = self.program.n
        self.terms = max(1, terms)
        self.shown: list[Ref] = []
        self._pos = {op.key: i for i, op in enumerate(frame.ops)}

    def position(self, key: str) -> int | None:
        """Index of the op that wrote `key` in this frame (None: parameter or data)."""
        return self._pos.get(key)

    def arr(self, key: str) -> np.ndarray:
        return self.frame.value(key)

    def name(self, key: str) -> str:
        if key.endswith("_clip"):
            return f"clip({self.name(key[:-5])})"
        if key.endswith(("_new", "_init")):
            return key.rsplit("_", 1)[0]
        pos = self._pos.get(key)
        return self.frame.ops[pos].name if pos is not None else key.replace("_", "/")

    def label(self, key: str, index: tuple) -> str:
        if key == "grad_norm" and index and isinstance(index[0], int):
            return f"‖dL/dW{index[0] + 1}‖"
        return self.name(key) + idx_text(index)

    def peek(self, key: str, index: Index) -> float:
        return float(self.arr(key)[index])

    def get(self, key: str, index: Index) -> float:
        """A stored number that will be printed (recorded in `shown`)."""
        v = self.peek(key, index)
        self.shown.append(Ref(key, index, v))
        return v


@dataclass(frozen=True)
class Part:
    """A sum of terms or one term: general form, shown form, numbers, exact total."""

    general: str
    sym: str
    num: str
    total: float
    scale: float
    truncated: bool = False
    bad: tuple[Ref, ...] = ()
    culprit: str = ""


def one(ctx: Ctx, sym: str, numbers: str, value: float, refs: list[Ref]) -> Part:
    bad = tuple(r for r in refs if not math.isfinite(r.value))
    culprit = f"{sym} = {numbers}" if not math.isfinite(value) else ""
    return Part(sym, sym, numbers, value, abs(value), False, bad, culprit)


def sum_of(ctx: Ctx, general: str, terms: np.ndarray, factors: list[np.ndarray], at: At,
           sym: Callable[..., str], numf: Callable[..., str] | None) -> Part:
    """Σ terms: the first ctx.terms printed, "… (n more terms)", the float64 total.

    `numf` prints a term from its factors' values; None prints the term's own value
    (terms derived from stored numbers, e.g. exp(z − m)).
    """
    with np.errstate(all="ignore"):
        total, scale = float(terms.sum()), float(np.abs(terms).sum())
    m = len(terms)
    k = m if m <= ctx.terms + 1 else ctx.terms  # "… (1 more term)" would be longer than it
    syms, nums = [], []
    for i in range(k):
        refs = at(i)
        syms.append(sym(*[ctx.label(key, ix) for key, ix in refs]))
        nums.append(numf(*[ctx.get(key, ix) for key, ix in refs]) if numf
                    else num(float(terms[i])))
    more = f" + … ({m - k} more terms)" if m > k else ""
    bad: list[Ref] = []
    culprit = ""
    broken = np.zeros(m, bool)
    for f in factors:
        broken |= ~np.isfinite(f)
    odd = broken if broken.any() else ~np.isfinite(terms)
    if odd.any():
        first = int(np.flatnonzero(odd)[0])
        refs = at(first)
        shown = (numf(*[ctx.peek(key, ix) for key, ix in refs]) if numf
                 else num(float(terms[first])))
        culprit = f"{sym(*[ctx.label(key, ix) for key, ix in refs])} = {shown}"
        for pos in np.flatnonzero(broken)[:8]:
            bad += [Ref(key, ix, v) for key, ix in at(int(pos))
                    if not math.isfinite(v := ctx.peek(key, ix))]
    elif not math.isfinite(total):
        culprit = f"the sum of {m} finite terms overflowed"
    return Part(general, " + ".join(syms) + more, " + ".join(nums) + more, total, scale,
                m > k, tuple(bad), culprit)


def compose(parts: list[Part], notes: tuple[str, ...] = (), target: str = "") -> Result:
    """Parts added left to right, as the kernels add them."""
    lines = []
    truncated = any(p.truncated for p in parts)
    if truncated:
        lines.append(" + ".join(p.general for p in parts))
    lines += [" + ".join(p.sym for p in parts), " + ".join(p.num for p in parts)]
    if truncated and len(parts) > 1:
        lines.append(" + ".join(num(p.total) if i == 0 else par(p.total)
                                for i, p in enumerate(parts)))
    total = 0.0
    with np.errstate(all="ignore"):
        for p in parts:
            total = float(np.float64(total) + p.total)
    bad = tuple(r for p in parts for r in p.bad)
    culprit = next((p.culprit for p in parts if p.culprit), "")
    return Result(tuple(lines), total, sum(p.scale for p in parts), notes, target, "=", bad,
                  culprit)


def products(ctx: Ctx, general: str, a: str, av: np.ndarray, a_at: Callable[[int], Index],
             b: str, bv: np.ndarray, b_at: Callable[[int], Index]) -> Part:
    """Σᵢ a[a_at(i)]·b[b_at(i)] over two stored vectors."""
    a64, b64 = av.astype(np.float64), bv.astype(np.float64)
    with np.errstate(all="ignore"):
        terms = a64 * b64
    return sum_of(ctx, general, terms, [a64, b64], lambda i: [(a, a_at(i)), (b, b_at(i))],
                  lambda x, y: f"{x}·{y}", lambda x, y: f"{par(x)}·{par(y)}")
