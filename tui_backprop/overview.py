"""The headline overview: z_l, h_l and dL/dW_l of every layer, one summary each.

lovely-numpy's one-line summary is the model: name, shape, range with a small
histogram, μ, σ, ‖·‖ and a NaN/Inf count.  An entry the cursor's iteration has
not computed yet shows the previous iteration's value, marked with the
iteration it comes from, so the overview never goes blank while stepping.
Summaries are cached per (iteration, key): stepping back and forth costs
nothing.  Pure NumPy.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from tui_backprop.renderables.matrix import Stats

BINS = 8


@dataclass(frozen=True)
class Summary:
    """Whole-array statistics over the finite entries, and counts of the others."""

    shape: tuple[int, ...]
    min: float
    max: float
    mean: float
    std: float
    norm: float
    nan: int
    inf: int
    hist: tuple[int, ...]  # BINS counts over [min, max]

    @staticmethod
    def of(a: np.ndarray) -> Summary:
        """The panel header's statistics (`Stats`), plus σ and a histogram of the range."""
        a = np.asarray(a, dtype=np.float64)
        st = Stats.of(a)
        inf = st.posinf + st.neginf
        if a.size == 0 or math.isnan(st.min):  # nothing finite
            return Summary(a.shape, math.nan, math.nan, math.nan, math.nan, math.nan, st.nan,
                           inf, (0,) * BINS)
        f = a.reshape(-1) if not (st.nan or inf) else a[np.isfinite(a)]
        with np.errstate(all="ignore"):
            std = float(f.std())
            span = st.max - st.min
            if span > 0 and math.isfinite(span):
                hist = np.histogram(f, bins=BINS, range=(st.min, st.max))[0]
            else:
                hist = np.zeros(BINS, np.int64)
                hist[BINS // 2] = f.size
        return Summary(a.shape, st.min, st.max, st.mean, std, st.norm, st.nan, inf,
                       tuple(int(h) for h in hist))


@dataclass(frozen=True)
class Entry:
    """One overview line."""

    name: str  # "z1", "dL/dW2"
    key: str
    summary: Summary | None  # None: nothing computed yet (iteration 0 before its op)
    array: np.ndarray | None  # for the mini heatmaps
    role: str  # "out" (the op writes it), "in" (reads it), ""
    from_iteration: int | None  # set when the value is the previous iteration's
    live: str = ""  # during a run: the newest metric for this entry


def headline(depth: int) -> tuple[tuple[str, str], ...]:
    """(key, name): z_l, h_l per layer, then dL/dW_l from the top layer down."""
    out = [(f"{p}{l}", f"{p}{l}") for l in range(1, depth + 1) for p in ("z", "h")]
    out += [(f"dL_dW{l}", f"dL/dW{l}") for l in range(depth, 0, -1)]
    return tuple(out)


def headline_for(program: Any) -> tuple[tuple[str, str], ...]:
    """The program's headline arrays: user code (core/user) names its own (`panels`)."""
    custom = getattr(program, "panels", None)
    return tuple(custom) if custom is not None else headline(program.depth)


class Overview:
    """Builds entries for a source's cursor, caching summaries per (iteration, key)."""

    def __init__(self, size: int = 256) -> None:
        self._cache: OrderedDict[tuple[int, str], tuple[Summary, np.ndarray]] = OrderedDict()
        self.size = size

    def _summary(self, it: int, key: str, arr: np.ndarray) -> tuple[Summary, np.ndarray]:
        k = (it, key)
        hit = self._cache.get(k)
        if hit is None:
            hit = self._cache[k] = (Summary.of(arr), arr)
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return hit

    def forget(self) -> None:
        """Knob changes rewrite the future: summaries of later iterations are stale."""
        self._cache.clear()

    def entries(self, src: Any, reads: set[str], writes: set[str]) -> tuple[Entry, ...]:
        frame, cur, it = src.frame, src.index, src.iteration
        pos = {op.key: i for i, op in enumerate(frame.ops)}
        prev = None
        out = []
        for key, name in headline_for(src.program):
            role = "out" if key in writes else ("in" if key in reads else "")
            i = pos.get(key)
            if i is not None and i <= cur:
                s, arr = self._summary(it, key, frame.outputs[i])
                out.append(Entry(name, key, s, arr, role, None))
                continue
            hit = self._cache.get((it - 1, key))
            if hit is None and it >= 1:
                if prev is None:
                    prev = previous_frame(src)
                if prev is not None:
                    j = {op.key: n for n, op in enumerate(prev.ops)}.get(key)
                    if j is not None:
                        hit = self._summary(it - 1, key, prev.outputs[j])
            if hit is None:
                out.append(Entry(name, key, None, None, role, None))
            else:
                out.append(Entry(name, key, hit[0], hit[1], role, it - 1))
        return tuple(out)


def previous_frame(src: Any) -> Any | None:
    """The frame of the iteration before the cursor's (re-executed if not cached)."""
    it = src.iteration
    if it < 1:
        return None
    frames = getattr(src, "_frames", None)
    if frames is not None and (it - 1) in frames:
        return frames[it - 1]
    make = getattr(src, "_frame", None)
    if make is None:
        return None
    try:
        return make(it - 1)
    except (ValueError, IndexError, KeyError):
        return None
