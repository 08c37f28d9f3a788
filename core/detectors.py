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

from dataclasses import dataclass

import numpy as np

from core.config import Detect
from core.history import History

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


def _edges(mask: np.ndarray, before: bool) -> np.ndarray:
    """Indices where mask turns on (given whether it was on just before index 0)."""
    prev = np.concatenate(([before], mask[:-1]))
    return np.flatnonzero(mask & ~prev)


def _reference(values: np.ndarray, start: int, stop: int, window: int) -> np.ndarray:
    """Per-iteration running median over the previous aligned window (NaN when none)."""
    ref = np.full(stop - start, np.nan)
    for w0 in range((start // window) * window, stop, window):
        lo, hi = w0 - window, w0
        if lo < 0:
            continue
        seg = values[lo:hi]
        seg = seg[np.isfinite(seg)]
        if len(seg):
            a, b = max(w0, start), min(w0 + window, stop)
            ref[a - start:b - start] = np.median(seg)
    return ref


def scan(hist: History, start: int, stop: int, det: Detect, layer_ops: list[str]) -> list[Event]:
    """Events that start within iterations [start, stop) of `hist`.

    `layer_ops[l]` names the dL/dW op of layer l+1 (where gradient events attach).
    """
    if stop <= start:
        return []
    lo = max(0, start - 1)  # one earlier row tells whether a condition was already on
    m = hist.view(lo, stop)
    has_prev = start > 0
    events: list[Event] = []

    def add(mask: np.ndarray, kind: str, op: str, detail) -> None:
        cur, before = (mask[1:], bool(mask[0])) if has_prev else (mask, False)
        for k in _edges(cur, before):
            events.append(Event(start + int(k), op, kind, detail(start + int(k))))

    loss = m.loss
    finite = np.isfinite(loss) & np.isfinite(m.grad_norm).all(axis=1)
    add(~finite, "nan", "L", lambda i: "loss or gradient is NaN/Inf")
    full_loss = hist.view(0, stop).loss
    ref_loss = _reference(full_loss, lo, stop, det.window)
    with np.errstate(invalid="ignore"):
        add(loss > det.spike_factor * ref_loss, "spike", "L",
            lambda i: f"loss {full_loss[i]:.4g} > {det.spike_factor:g}× running median "
                      f"{ref_loss[i - lo]:.4g}")
        k = det.rise_iters
        base = max(0, lo - k)
        up = np.diff(full_loss[base:stop]) > 0  # up[p]: loss[base+p+1] > loss[base+p]
        csum = np.concatenate(([0], np.cumsum(up)))
        ps = np.arange(lo, stop) - base - 1
        ok = ps - k + 1 >= 0
        rising = np.zeros(stop - lo, bool)
        rising[ok] = (csum[ps[ok] + 1] - csum[ps[ok] + 1 - k]) == k
        add(rising, "rising", "L", lambda i: f"loss rose {k} iterations in a row")
        gn_all = hist.view(0, stop).grad_norm
        for l in range(m.grad_norm.shape[1]):
            g = m.grad_norm[:, l]
            ref = _reference(gn_all[:, l], lo, stop, det.window)
            big = (g > det.explode_norm) | (g > det.explode_factor * ref)
            def why(i: int, l: int = l, ref: np.ndarray = ref) -> str:
                g_i, r = gn_all[i, l], ref[i - lo]
                if g_i > det.explode_norm:
                    return f"‖dL/dW{l + 1}‖ = {g_i:.4g} > {det.explode_norm:g}"
                return f"‖dL/dW{l + 1}‖ = {g_i:.4g} > {det.explode_factor:g}× median {r:.3g}"

            add(big & np.isfinite(g), "explode", layer_ops[l], why)
            add(g < det.vanish_norm, "vanish", layer_ops[l],
                lambda i, l=l: f"‖dL/dW{l + 1}‖ = {gn_all[i, l]:.3g} < {det.vanish_norm:g}")
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
