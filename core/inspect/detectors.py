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

import math
from collections import OrderedDict
from collections.abc import Callable
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
        meds = np.median(rows, axis=1)
        for k in np.flatnonzero(~finite):
            seg = rows[k][np.isfinite(rows[k])]
            meds[k] = np.median(seg) if len(seg) else np.nan
    a = max(w_first, start)  # iteration i takes the median of the window before its own
    ref[a - start:] = meds[(np.arange(a, stop) - w_first) // window]
    return ref


def _reference_at(values: np.ndarray, i: int, window: int) -> float:
    """_reference(values, i, i + 1, window)[0], without its set-up for one row past the
    first window: the previous aligned window's memoized median, as _reference takes."""
    if i >= window:
        row = values[i // window * window - window:i // window * window]
        if np.isfinite(row).all():
            return _window_median(row)
    with np.errstate(invalid="ignore", over="ignore"):
        return float(_reference(values, i, i + 1, window)[0])


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
    """min(values[i-window:i]) over finite values, for i in [start, stop) (inf if none).

    Van Herk / Gil-Werman: with the rows cut into blocks of `window`, a window ending
    before i spans the tail of one block and the head of the next, so its minimum is
    that of a suffix-minimum and a prefix-minimum: three passes whatever the window
    (a sliding view costs window × rows).  Minima are exact: the same values."""
    lo = max(0, start - window)
    seg = values[lo:stop]
    n = len(seg)
    blocks = -(-(n + window) // window)
    x = np.full(blocks * window, np.inf)  # [window × inf | seg | inf padding]
    np.copyto(x[window:window + n], seg, where=np.isfinite(seg))
    x = x.reshape(blocks, window)
    prefix = np.minimum.accumulate(x, axis=1).reshape(-1)
    suffix = np.minimum.accumulate(x[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    j = np.arange(start - lo, n)  # window [j, j + window) of x ends before row lo + j
    return np.minimum(suffix[j], prefix[j + window - 1])


NAN_DETAIL = "loss or gradient is NaN/Inf"
NEVER = -(1 << 62)  # "last on" of a condition that has not been on


def _spike_detail(loss: float, det: Detect, low: float) -> str:
    return f"loss {loss:.4g} > {det.spike_factor:g}× its recent minimum {low:.4g}"


def _explode_detail(l: int, g: float, det: Detect, ref: float) -> str:
    if g > det.explode_norm:
        return f"‖dL/dW{l + 1}‖ = {g:.4g} > {det.explode_norm:g}"
    return f"‖dL/dW{l + 1}‖ = {g:.4g} > {det.explode_factor:g}× median {ref:.3g}"


def _vanish_detail(l: int, g: float, det: Detect) -> str:
    return f"‖dL/dW{l + 1}‖ = {g:.3g} < {det.vanish_norm:g}"


def _saturated_detail(l: int, held: float) -> str:
    return f"{held:.0%} of h{l + 1} saturated or dead"


def _held(sat: np.ndarray, lo: int, stop: int, window: int) -> np.ndarray:
    """Saturation of iterations [lo, stop): the latest sample in (i − window, i], else 0.

    Saturation is sampled every 32 iterations (a window is at least 32 long), so this
    carries each sample forward to the next one; it looks before `lo` for the sample
    in force there, so the answer does not depend on where a scan starts."""
    lo2 = max(0, lo - window)
    s = sat[lo2:stop]
    sampled = np.isfinite(s)
    pos = np.arange(len(s))
    idx = np.where(sampled, pos, -1)
    np.maximum.accumulate(idx, out=idx)
    held = np.where((idx >= 0) & (idx > pos - window), s[idx], 0.0)
    return held[lo - lo2:]


def scan(hist: History, start: int, stop: int, det: Detect, layer_ops: list[str],
         last: dict[tuple[str, str], int] | None = None) -> list[Event]:
    """Events that start within iterations [start, stop) of `hist`.

    A condition fires where it turns on after at least `window` iterations off,
    so one episode is one event however its reference moves.  `layer_ops[l]`
    names the dL/dW op of layer l+1 (where gradient events attach).  `last`, if
    given, receives for each condition the last iteration < stop it was on
    (NEVER if not within the window before stop): what Scanner needs to judge
    the next rows alone.
    """
    if stop <= start:
        return []
    w = det.window
    lo = max(0, start - w)  # earlier rows tell whether the condition was already on
    m = hist.view(lo, stop)
    full = hist.view(0, stop)
    events: list[Event] = []

    def add(mask: np.ndarray, kind: str, op: str, detail: Callable[[int], str]) -> None:
        on = np.flatnonzero(mask)
        if last is not None:
            last[(kind, op)] = lo + int(on[-1]) if len(on) else NEVER
        on = on[on >= start - lo]
        if not len(on):  # the usual case: nothing turned on, no look-back needed
            return
        before = np.concatenate(([0], np.cumsum(mask)))
        for k in on:
            if before[k] - before[max(0, k - w)] == 0:
                i = lo + int(k)
                events.append(Event(i, op, kind, detail(i)))

    loss = m.loss
    finite = np.isfinite(loss) & np.isfinite(m.grad_norm).all(axis=1)
    add(~finite, "nan", "L", lambda i: NAN_DETAIL)
    with np.errstate(invalid="ignore", over="ignore"):
        low = _running_min(full.loss, lo, stop, w)
        add(loss > det.spike_factor * low, "spike", "L",
            lambda i: _spike_detail(full.loss[i], det, low[i - lo]))
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
            big = (g > det.explode_norm) | (g > det.explode_factor * ref)
            add(big & np.isfinite(g), "explode", layer_ops[l],
                lambda i, l=l, ref=ref: _explode_detail(l, full.grad_norm[i, l], det,
                                                        ref[i - lo]))
            add(g < det.vanish_norm, "vanish", layer_ops[l],
                lambda i, l=l: _vanish_detail(l, full.grad_norm[i, l], det))
        for l in range(m.saturation.shape[1]):
            held = _held(full.saturation[:, l], lo, stop, w)
            add(held >= det.saturation_share, "saturated", f"h{l + 1}",
                lambda i, l=l, held=held: _saturated_detail(l, held[i - lo]))
    events.sort(key=lambda e: e.iteration)
    return events


def scan_row(hist: History, i: int, det: Detect, layer_ops: list[str],
             last: dict[tuple[str, str], int]) -> list[Event]:
    """scan(hist, i, i + 1) for the row after the ones `last` describes, from that row's
    values alone: the same conditions and events, in the same order, as scan() finds
    (tests/core/test_detectors.py checks it row by row against whole-history scans).

    scan() re-derives the conditions of the window before i to know whether each was
    already on; here `last` says so.  A step past the frontier scans one row, and
    scan()'s ~60 NumPy calls cost ~0.25 ms; this costs a few dozen µs.
    """
    w = det.window
    full = hist.view(0, i + 1)
    loss = full.loss
    events: list[Event] = []

    def add(cond: bool, kind: str, op: str, detail: Callable[[], str]) -> None:
        if not cond:
            return
        key = (kind, op)
        if last.get(key, NEVER) < i - w:
            events.append(Event(i, op, kind, detail()))
        last[key] = i

    li = float(loss[i])
    gi = full.grad_norm[i].tolist()
    add(not (math.isfinite(li) and all(map(math.isfinite, gi))), "nan", "L",
        lambda: NAN_DETAIL)
    seg = loss[max(0, i - w):i]
    low = float(seg.min()) if len(seg) else math.inf  # exact; NaN or −inf: drop non-finite
    if math.isnan(low) or low == -math.inf:
        low = min((v for v in seg.tolist() if math.isfinite(v)), default=math.inf)
    add(li > det.spike_factor * low, "spike", "L", lambda: _spike_detail(li, det, low))
    k = det.rise_iters
    run = loss[max(0, i - k):i + 1].tolist()
    add(i >= k and all(b - a > 0 for a, b in zip(run[:-1], run[1:], strict=True)), "rising", "L",
        lambda: f"loss rose {k} iterations in a row")
    for l, g in enumerate(gi):
        ref = _reference_at(full.grad_norm[:, l], i, w)
        big = g > det.explode_norm or g > det.explode_factor * ref
        add(big and math.isfinite(g), "explode", layer_ops[l],
            lambda l=l, g=g, ref=ref: _explode_detail(l, g, det, ref))
        add(g < det.vanish_norm, "vanish", layer_ops[l],
            lambda l=l, g=g: _vanish_detail(l, g, det))
    for l in range(full.saturation.shape[1]):
        recent = full.saturation[max(0, i - w + 1):i + 1, l].tolist()
        held = next((v for v in reversed(recent) if math.isfinite(v)), 0.0)
        add(held >= det.saturation_share, "saturated", f"h{l + 1}",
            lambda l=l, held=held: _saturated_detail(l, held))
    return events


class Scanner:
    """Scans a history that grows at its end, remembering where each condition was last
    on: rows appended one at a time (steps past the frontier) take scan_row; blocks,
    another history, or the same one after a truncation (History.cuts) take scan()."""

    ROWS = 4  # appends up to this many rows are scanned row by row

    def __init__(self, det: Detect, layer_ops: list[str]) -> None:
        self.det, self.layer_ops = det, layer_ops
        self.last: dict[tuple[str, str], int] = {}
        self._hist: History | None = None  # the history `last` describes,
        self._seen = (-1, -1)  # at (cuts, rows)

    def scan(self, hist: History, start: int, stop: int) -> list[Event]:
        if hist is self._hist and self._seen == (hist.cuts, start) and stop - start <= self.ROWS:
            events = [e for i in range(start, stop)
                      for e in scan_row(hist, i, self.det, self.layer_ops, self.last)]
        else:
            events = scan(hist, start, stop, self.det, self.layer_ops, self.last)
        self._hist, self._seen = hist, (hist.cuts, stop)
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
