"""Detectors: turn metrics and frames into events a user should look at.

They read only recorded metrics (and frames for NaN origins), so the same run
yields the same events whether it was stepped op by op, run in the fast path
or replayed from a trace.  Each condition is edge-triggered: an event marks the
iteration where it *starts*, not every iteration it persists.

Running medians use aligned windows: the reference for iteration i is the
median over the `window` iterations of the previous aligned window, so the
answer never depends on how iterations were grouped into blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from core.engine.history import History
from core.model.config import Detect

KINDS = ("nan", "fp", "explode", "vanish", "spike", "rising", "saturated")

HINTS = {
    "overflow": "a value passed the float range (~1.8e308 in float64, ~3.4e38 in float32)",
    "overflow-exp": "exp overflows above ~709 in float64 (~88.7 in float32)",
    "invalid": "0·inf, inf−inf or 0/0 (often the result of an earlier overflow)",
    "divide": "division by ~0 or log of 0",
}
EXP_FAMILIES = ("sigmoid", "softmax", "ce", "tanh")


def hint(kind: str, family: str) -> str:
    """A one-line explanation of a floating-point error in an op of this family."""
    if kind == "overflow" and family in EXP_FAMILIES:
        return HINTS["overflow-exp"]
    return HINTS.get(kind, kind)


@dataclass(frozen=True)
class Event:
    """Something that went wrong, where it first appeared."""

    iteration: int
    op: str  # display name of the op it belongs to
    kind: str  # one of KINDS
    detail: str

    def __str__(self) -> str:
        return f"it {self.iteration} · {self.op} · {self.kind}: {self.detail}"


def _reference(values: np.ndarray, start: int, stop: int, window: int) -> np.ndarray:
    """Per-iteration running median of `values[:stop]` for iterations [start, stop).

    Iteration i is compared with the median of the previous aligned window
    (i.e. the same reference for a whole window, whatever the block sizes); in the
    very first window, with the median of everything before i (from 8 values on).
    """
    ref = np.full(stop - start, np.nan)
    first = min(stop, window)
    for i in range(max(start, 8), first):
        seg = values[:i]
        seg = seg[np.isfinite(seg)]
        if len(seg):
            ref[i - start] = np.median(seg)
    w_first = max(window, (start // window) * window)
    starts = range(w_first, stop, window)
    if len(starts) == 0:
        return ref
    # all full windows at once (one partition call); windows holding NaN/inf alone
    # take the per-window path that drops them (same medians, bit for bit)
    rows = values[w_first - window:starts[-1]].reshape(len(starts), window)
    finite = np.isfinite(rows).all(axis=1)
    if len(starts) <= 4 and finite.all():  # a step's scan: each window's median, memoized
        meds = np.array([_window_median(r) for r in rows])
    else:
        meds = np.median(rows, axis=1) if finite.all() else np.full(len(starts), np.nan)
    for k, w0 in enumerate(starts):
        if finite.all():
            med = meds[k]
        else:
            seg = values[w0 - window:w0]
            seg = seg[np.isfinite(seg)]
            if not len(seg):
                continue
            med = np.median(seg)
        a, b = max(w0, start), min(w0 + window, stop)
        ref[a - start:b - start] = med
    return ref


_MEDIANS: OrderedDict[bytes, float] = OrderedDict()


def _window_median(row: np.ndarray) -> float:
    """np.median of one finite window, remembered by the window's bytes: stepping through
    an iteration's ops scans one row at a time, and every row of an aligned window has
    the same reference (the key is the content, so a truncated and re-run history can
    never get a stale median)."""
    key = row.tobytes()
    if key in _MEDIANS:
        _MEDIANS.move_to_end(key)
        return _MEDIANS[key]
    med = _MEDIANS[key] = float(np.median(row[None], axis=1)[0])  # as for a block
    if len(_MEDIANS) > 64:
        _MEDIANS.popitem(last=False)
    return med


def _running_min(values: np.ndarray, start: int, stop: int, window: int) -> np.ndarray:
    """min(values[i-window:i]) over finite values, for i in [start, stop) (inf if none)."""
    lo = max(0, start - window)
    seg = values[lo:stop]
    seg = np.where(np.isfinite(seg), seg, np.inf)
    padded = np.concatenate((np.full(window, np.inf), seg))
    mins = np.lib.stride_tricks.sliding_window_view(padded, window)[:-1].min(axis=1)
    return mins[start - lo:]


def scan(hist: History, start: int, stop: int, det: Detect, layer_ops: list[str]) -> list[Event]:
    """Events that start within iterations [start, stop) of `hist`.

    A condition fires where it turns on after at least `window` iterations off,
    so one episode is one event however its reference moves.  `layer_ops[l]`
    names the dL/dW op of layer l+1 (where gradient events attach).
    """
    if stop <= start:
        return []
    w = det.window
    lo = max(0, start - w)  # earlier rows tell whether the condition was already on
    m = hist.view(lo, stop)
    full = hist.view(0, stop)
    events: list[Event] = []

    def add(mask: np.ndarray, kind: str, op: str, detail) -> None:
        on = np.flatnonzero(mask[start - lo:])
        if not len(on):  # the usual case: nothing turned on, no look-back needed
            return
        before = np.concatenate(([0], np.cumsum(mask)))
        for k in on + (start - lo):
            if before[k] - before[max(0, k - w)] == 0:
                i = lo + int(k)
                events.append(Event(i, op, kind, detail(i)))

    loss = m.loss
    finite = np.isfinite(loss) & np.isfinite(m.grad_norm).all(axis=1)
    add(~finite, "nan", "L", lambda i: "loss or gradient is NaN/Inf")
    with np.errstate(invalid="ignore", over="ignore"):
        low = _running_min(full.loss, lo, stop, w)
        add(loss > det.spike_factor * low, "spike", "L",
            lambda i: f"loss {full.loss[i]:.4g} > {det.spike_factor:g}× its recent minimum "
                      f"{low[i - lo]:.4g}")
        k = det.rise_iters
        base = max(0, lo - k)
        up = np.diff(full.loss[base:stop]) > 0  # up[p]: loss[base+p+1] > loss[base+p]
        csum = np.concatenate(([0], np.cumsum(up)))
        ps = np.arange(lo, stop) - base - 1
        ok = ps - k + 1 >= 0
        rising = np.zeros(stop - lo, bool)
        rising[ok] = (csum[ps[ok] + 1] - csum[ps[ok] + 1 - k]) == k
        add(rising, "rising", "L", lambda i: f"loss rose {k} iterations in a row")
        for l in range(m.grad_norm.shape[1]):
            g = m.grad_norm[:, l]
            ref = _reference(full.grad_norm[:, l], lo, stop, w)

            def why(i: int, l: int = l, ref: np.ndarray = ref) -> str:
                g_i, r = full.grad_norm[i, l], ref[i - lo]
                if g_i > det.explode_norm:
                    return f"‖dL/dW{l + 1}‖ = {g_i:.4g} > {det.explode_norm:g}"
                return f"‖dL/dW{l + 1}‖ = {g_i:.4g} > {det.explode_factor:g}× median {r:.3g}"

            big = (g > det.explode_norm) | (g > det.explode_factor * ref)
            add(big & np.isfinite(g), "explode", layer_ops[l], why)
            add(g < det.vanish_norm, "vanish", layer_ops[l],
                lambda i, l=l: f"‖dL/dW{l + 1}‖ = {full.grad_norm[i, l]:.3g} "
                f"< {det.vanish_norm:g}")
        sat = m.saturation
        for l in range(sat.shape[1]):
            s = sat[:, l]
            sampled = np.isfinite(s)
            if not sampled.any():
                continue
            # saturation is sampled: carry the last sample forward between samples
            idx = np.where(sampled, np.arange(len(s)), 0)
            np.maximum.accumulate(idx, out=idx)
            held = np.where(sampled[idx], s[idx], 0.0)
            add(held >= det.saturation_share, "saturated", f"h{l + 1}",
                lambda i, l=l, held=held: f"{held[i - lo]:.0%} of h{l + 1} saturated or dead")
    events.sort(key=lambda e: e.iteration)
    return events


def frame_events(frame, cfg_detect: Detect | None = None) -> list[Event]:
    """NaN/Inf origin and floating-point warnings of one materialized iteration."""
    events: list[Event] = []
    if frame.origin is not None:
        op = frame.ops[frame.origin]
        kinds = frame.fp_warnings.get(frame.origin, [])
        why = "; ".join(hint(k, op.family) for k in kinds)
        events.append(Event(frame.iteration, op.name, "nan",
                            f"{op.name} produced the first NaN/Inf" + (f" ({why})" if why else "")))
    for idx, kinds in sorted(frame.fp_warnings.items()):
        if idx == frame.origin:
            continue
        op = frame.ops[idx]
        events.append(Event(frame.iteration, op.name, "fp",
                            ", ".join(f"{k}: {hint(k, op.family)}" for k in kinds)))
    return events
