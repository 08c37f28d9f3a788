"""Breakpoints: where "continue" stops, typed as short expressions.

    nan                    loss or a gradient norm becomes NaN/Inf
    grad > 5               some layer's ‖dL/dW‖ goes above 5      (grad2 > 5: layer 2)
    grad > 10x median      … above 10 × its running median        (grad2 > 10x median)
    loss > 0.5             the loss goes above 0.5
    loss rising 5          the loss has risen 5 iterations in a row
    it 500                 iteration 500 (its first op)
    op dL/dW1              every time the run reaches op dL/dW1
    event explode          a detector event: nan explode vanish spike rising saturated
                           (also knob, diverged, any)

Metric conditions fire where they *become* true (false the iteration before),
so continuing again goes to the next episode, not the next iteration.  They are
evaluated vectorized over each block of new history (see `Stepper.run_until`);
the running median is the explode detector's (`detectors._reference`), so
"10x median" means the same thing in a breakpoint and in a flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from core.engine.history import History, MetricsBlock
from core.engine.knobs import KIND as KNOB
from core.inspect.detectors import KINDS, Event, _reference

KIND = "break"  # the Event kind of a breakpoint hit
EVENT_NAMES = tuple(k for k in KINDS if k != "fp") + (KNOB, "diverged", "any")
EXAMPLES = ("nan", "grad > 5", "grad2 > 10x median", "loss > 0.5", "loss rising 5",
            "it 500", "op dL/dW1", "event explode")
_NUM = r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"
_GRAD = re.compile(rf"grad(\d*)\s*>\s*{_NUM}\s*([x×*])?\s*(median|med)?")


class BreakpointError(ValueError):
    """A breakpoint that does not parse or cannot apply; the message is one line."""


@dataclass(frozen=True)
class Breakpoint:
    """One parsed breakpoint; `text` is its normalized expression."""

    text: str
    kind: str  # nan | grad | grad_median | loss | rising | it | op | event
    value: float = 0.0  # threshold, factor, run length or iteration
    layer: int = 0  # 1-based layer of a grad breakpoint; 0 = any layer
    name: str = ""  # op name or event kind
    enabled: bool = True


def parse(text: str, depth: int, op_names: tuple[str, ...], end: int | None = None
          ) -> Breakpoint:
    """An expression (see the module docstring) -> Breakpoint, or BreakpointError."""
    src = " ".join(text.strip().split())
    low = src.lower()
    if not low:
        raise BreakpointError("type a breakpoint, e.g. " + ", ".join(EXAMPLES[:4]))
    if low in ("nan", "inf", "nan/inf"):
        return Breakpoint("nan", "nan")
    if m := _GRAD.fullmatch(low):
        layer = int(m[1]) if m[1] else 0
        if not 0 <= layer <= depth or m[1] == "0":
            raise BreakpointError(f"no layer {m[1]}: this net has layers 1..{depth}")
        value = float(m[2])
        name = f"grad{m[1]}"
        if m[3] and m[4]:
            if value <= 0:
                raise BreakpointError("the factor must be > 0, e.g. grad > 10x median")
            return Breakpoint(f"{name} > {value:g}x median", "grad_median", value, layer)
        if m[4]:
            raise BreakpointError("write the factor with x, e.g. grad > 10x median")
        if m[3]:
            raise BreakpointError(f"{value:g}x what? e.g. grad > {value:g}x median")
        return Breakpoint(f"{name} > {value:g}", "grad", value, layer)
    if m := re.fullmatch(rf"loss\s*>\s*{_NUM}", low):
        return Breakpoint(f"loss > {float(m[1]):g}", "loss", float(m[1]))
    if m := re.fullmatch(r"loss rising (\d+)", low):
        n = int(m[1])
        if not 1 <= n <= 100_000:
            raise BreakpointError("loss rising needs 1..100000 iterations")
        return Breakpoint(f"loss rising {n}", "rising", n)
    if m := re.fullmatch(r"(?:it|iteration) (-?\d+)", low):
        i = int(m[1])
        if i < 0:
            raise BreakpointError("iterations start at 0")
        if end is not None and i >= end:
            raise BreakpointError(f"iteration {i} is past the end of the trace (0..{end - 1})")
        return Breakpoint(f"it {i}", "it", i)
    if low.startswith("op "):
        name = src[3:].strip()
        found = [n for n in op_names if n.lower() == name.lower()]
        if not found:
            raise BreakpointError(f"no op {name!r}; ops: {', '.join(op_names)}")
        return Breakpoint(f"op {found[0]}", "op", name=found[0])
    if low.startswith("event "):
        kind = low[6:].strip()
        if kind not in EVENT_NAMES:
            raise BreakpointError(f"no event {kind!r}; events: {', '.join(EVENT_NAMES)}")
        return Breakpoint(f"event {kind}", "event", name=kind)
    raise BreakpointError(f"cannot read {src!r}; try " + ", ".join(EXAMPLES))


class Source(Protocol):
    """What evaluation reads from a Stepper or a Replay."""

    history: History
    program: Any

    def op_index(self, iteration: int, op: str) -> int | None: ...


Candidate = tuple[int, str, str]  # iteration, op display name, why


def first_hit(bps: list[Breakpoint], src: Source, events: list[Event], start: int, stop: int,
              after: tuple[int, int], window: int) -> Event | None:
    """The earliest (iteration, op) after `after` in [start, stop) where one fires.

    `events` are the detector events of [start, stop); the history must hold rows
    up to `stop`.  Returns an Event of kind "break" naming the breakpoint and why.
    """
    best: tuple[int, int, int] | None = None
    found: Event | None = None
    for order, bp in enumerate(bps):
        if not bp.enabled:
            continue
        first_it = None  # candidates come in iteration order; within one, take the first op
        for it, op, why in _candidates(bp, src, events, start, stop, window):
            if first_it is not None and it > first_it:
                break
            idx = src.op_index(it, op)
            if idx is None and bp.kind != "op":  # a knob event's "update": the iteration
                idx = 0
            if idx is None or (it, idx) <= after:  # an op this iteration's program lacks
                continue
            first_it = it
            if best is None or (it, idx, order) < best:
                best = (it, idx, order)
                found = Event(int(it), op, KIND, f"{bp.text} · {why}")
    return found


def _candidates(bp: Breakpoint, src: Source, events: list[Event], start: int, stop: int,
                window: int) -> Iterator[Candidate]:
    """Where bp fires in [start, stop), in order; the caller skips those before the cursor."""
    if bp.kind == "it":
        i = int(bp.value)
        if start <= i < stop:  # op 0 is z1 whatever the knobs
            yield i, src.program.ops[0].name, f"reached iteration {i}"
        return
    if bp.kind == "op":
        for i in range(start, min(stop, start + 2)):  # the cursor's iteration may be past it
            yield i, bp.name, f"reached {bp.name}"
        return
    if bp.kind == "event":
        for e in events:
            if e.kind == bp.name or (bp.name == "any" and e.kind != KNOB):
                yield e.iteration, e.op, f"{e.kind}: {e.detail}"
        return
    lo = max(0, start - 1)  # one row before: a condition fires where it turns on
    hist = src.history
    rows = hist.view(lo, stop)
    with np.errstate(invalid="ignore", over="ignore"):
        if bp.kind in ("grad", "grad_median"):
            yield from _grad(bp, hist, rows, lo, start, stop, window)
            return
        loss = rows.loss
        if bp.kind == "nan":
            cond = ~np.isfinite(loss) | ~np.isfinite(rows.grad_norm).all(axis=1)
            nan_at = {e.iteration: e for e in events if e.kind == "nan"}
            for i in _edges(cond, lo, start):
                e = nan_at.get(i)
                yield (i, e.op, e.detail) if e else (i, "L", "loss or a gradient norm is NaN/Inf")
            return
        if bp.kind == "loss":
            for i in _edges(loss > bp.value, lo, start):
                yield i, "L", f"loss {loss[i - lo]:.4g} > {bp.value:g}"
            return
        if bp.kind == "rising":  # as the rising detector counts: n ups ending at i
            n = int(bp.value)
            base = max(0, lo - n)
            up = np.diff(hist.view(base, stop).loss) > 0  # up[p]: loss[base+p+1] > loss[base+p]
            csum = np.concatenate(([0], np.cumsum(up)))
            ps = np.arange(lo, stop) - base - 1
            ok = ps - n + 1 >= 0
            cond = np.zeros(stop - lo, bool)
            cond[ok] = csum[ps[ok] + 1] - csum[ps[ok] + 1 - n] == n
            for i in _edges(cond, lo, start):
                yield i, "L", f"loss rose {n} iterations in a row, to {loss[i - lo]:.4g}"


def _grad(bp: Breakpoint, hist: History, rows: MetricsBlock, lo: int, start: int, stop: int,
          window: int) -> Iterator[Candidate]:
    layers = [bp.layer - 1] if bp.layer else range(rows.grad_norm.shape[1])
    hits = []
    for l in layers:
        g = rows.grad_norm[:, l]
        if bp.kind == "grad":
            limit = np.full(len(g), bp.value)
        else:  # the explode detector's reference, so "k x median" means the same in both
            limit = bp.value * _reference(hist.view(0, stop).grad_norm[:, l], lo, stop, window)
        for i in _edges(g > limit, lo, start)[:2]:  # the first may be before the cursor
            hits.append((i, -l, l, g[i - lo], limit[i - lo]))  # upper layers first: backprop order
    for i, _, l, g_i, lim in sorted(hits):
        why = (f"‖dL/dW{l + 1}‖ = {g_i:.4g} > {bp.value:g}" if bp.kind == "grad" else
               f"‖dL/dW{l + 1}‖ = {g_i:.4g} > {bp.value:g}× median {lim / bp.value:.3g}")
        yield i, f"dL/dW{l + 1}", why


def _edges(cond: np.ndarray, lo: int, start: int) -> np.ndarray:
    """Iterations >= start where cond turns on (cond[k] is iteration lo + k; lo >= start-1)."""
    on = cond & ~np.concatenate(([False], cond[:-1]))
    on[: start - lo] = False
    return np.flatnonzero(on) + lo


def toggled(bp: Breakpoint) -> Breakpoint:
    """The same breakpoint, enabled <-> disabled."""
    return replace(bp, enabled=not bp.enabled)


class BreakpointList:
    """The breakpoints of a session, in the order they were added."""

    def __init__(self) -> None:
        self.items: list[Breakpoint] = []

    def add(self, text: str, src: Any) -> Breakpoint:
        """Parse against `src` (its depth, op names, a replay's end) and append."""
        prog = src.program
        bp = parse(text, prog.depth, tuple(op.name for op in prog.ops), getattr(src, "end", None))
        if any(b.text == bp.text for b in self.items):
            raise BreakpointError(f"{bp.text!r} is already set")
        self.items.append(bp)
        return bp

    def remove(self, i: int) -> None:
        del self.items[i]

    def toggle(self, i: int) -> None:
        self.items[i] = toggled(self.items[i])

    @property
    def active(self) -> list[Breakpoint]:
        return [b for b in self.items if b.enabled]

    def rule(self, src: Any):
        """A `run_until` rule over the enabled breakpoints from src's cursor; None if none.

        Built when a continue starts: edits made while it runs apply to the next one.
        """
        bps = self.active
        if not bps:
            return None
        after, window = src.position, src.cfg.detect.window

        def rule(events: list[Event], start: int, stop: int) -> Event | None:
            return first_hit(bps, src, events, start, stop, after, window)

        return rule
