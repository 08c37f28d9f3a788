"""The view model: what the screens show, read from a Stepper-like source.

This is the only UI module that reads the engine.  It turns the cursor of a
live `Stepper` (or a replay source with the same interface) into small frozen
records — an op card, matrix panels, flags, a status line, chart series — that
the pure-Rich renderables draw.  No Textual or Rich import here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.inspect.detectors import Event, frame_events
from tui_backprop import factors as fx

INIT = -1
OUT, IN = "@out", "@in"  # the two panels that follow the cursor
SERIES = ("loss", "accuracy", "grad norms")
FLAG_ORDER = ("break", "diverged", "nan", "gradcheck", "fp", "explode", "vanish", "spike",
              "rising", "saturated", "knob")
FLAG_GLYPH = {"break": "●", "diverged": "≠", "nan": "✗", "fp": "!", "explode": "↑",
              "vanish": "↓", "spike": "^", "rising": "↗", "saturated": "▬", "knob": "◆",
              "gradcheck": "≉"}
FLAG_LABEL = {"break": "break", "diverged": "diverged", "nan": "NaN/Inf", "fp": "fp warn",
              "explode": "explode", "vanish": "vanish", "spike": "spike", "rising": "rising",
              "saturated": "saturated", "knob": "knob", "gradcheck": "gradient FAIL"}


def flag_rank(kind: str) -> int:
    """Severity order; kinds this UI does not know yet go last instead of failing."""
    return FLAG_ORDER.index(kind) if kind in FLAG_ORDER else len(FLAG_ORDER)


class Source(Protocol):
    """What the UI needs from a live Stepper or a replay source."""

    cfg: Any
    program: Any
    history: Any
    events: list[Event]
    iteration: int
    index: int
    frame: Any

    @property
    def ops(self) -> tuple: ...
    @property
    def op(self) -> Any: ...


@dataclass(frozen=True)
class PanelData:
    """One matrix panel: the array when computed, else why it is not."""

    key: str  # array key ("z1", "dL_dW2") or OUT / IN
    title: str
    array: np.ndarray | None
    shape: tuple[int, ...]
    pending: bool  # not computed yet in this iteration (or no op reads an input)
    note: str
    cache_key: tuple
    transposed: bool = False  # shown as the transpose of the frame's array (a ᵀ role)
    output: bool = False  # the op's output (the drill-down cursor starts here)


@dataclass(frozen=True)
class OpCardData:
    phase: str
    phases: tuple[str, ...]
    name: str
    formula: str
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # (role, shape) in formula order
    shape: tuple[int, ...]
    index: int
    count: int
    names: tuple[str, ...]  # every op name of the frame, for the op strip
    scalars: tuple[str, ...] = ()  # "η = 2.3", "N = 300 (1/N = 0.003333)"
    hint: str = ""  # what to press, on the first screen


@dataclass(frozen=True)
class FlagLine:
    kind: str
    iteration: int
    op: str
    detail: str
    count: int
    here: bool  # found in the frame under the cursor (fp warnings, NaN origin)


@dataclass(frozen=True)
class StatusData:
    label: str
    iteration: int
    phase: str
    index: int
    count: int
    op: str
    frontier: int  # iterations with metrics


def panel_specs(program: Any) -> tuple[tuple[str, str], ...]:
    """(key, title) of the fixed panels: z, h per layer, then dL/dW from the top."""
    custom = getattr(program, "panels", None)  # user code (core/user) names its own
    if custom is not None:
        return tuple(custom)
    depth = program.depth
    specs = [(f"{p}{l}", f"{p}{l}") for l in range(1, depth + 1) for p in ("z", "h")]
    specs += [(f"dL_dW{l}", f"dL/dW{l}") for l in range(depth, 0, -1)]
    return tuple(specs)


def slot_keys(program: Any) -> tuple[tuple[str, str], ...]:
    """Every panel a screen can show, in slot order: output, input, then the fixed ones."""
    return ((OUT, "output"), (IN, "input")) + panel_specs(program)


def _op_index(frame: Any, key: str) -> int | None:
    for i, op in enumerate(frame.ops):
        if op.key == key:
            return i
    return None


def _display(frame: Any, key: str) -> str:
    for op in frame.ops:
        if op.key == key:
            return op.name
    return key


def _lookup(frame: Any, key: str) -> np.ndarray | None:
    """An input array by key: op output, parameter before the iteration, or batch data."""
    idx = _op_index(frame, key)
    if idx is not None:
        return frame.outputs[idx]
    if key in frame.params:
        return frame.params[key]
    return frame.batch.get(key)


def has_input(src: Source) -> bool:
    """Whether the op under the cursor reads any array (init ops read none)."""
    frame = src.frame
    for k in frame.ops[src.index].inputs:
        arr = _lookup(frame, k)
        if arr is not None and arr.ndim >= 1:
            return True
    return False


def panel(src: Source, key: str, title: str) -> PanelData:
    """What panel `key` shows at the cursor; values after the cursor are pending."""
    frame, it, cur = src.frame, src.iteration, src.index
    if key == OUT:
        op = frame.ops[cur]
        arr = frame.outputs[cur]
        return PanelData(key, f"{op.name} (output)", arr, arr.shape, False, "",
                         (it, op.key, "out"))
    if key == IN:
        op = frame.ops[cur]
        arrays = [(k, _lookup(frame, k)) for k in op.inputs]
        arrays = [(k, a) for k, a in arrays if a is not None and a.ndim >= 1]
        if not arrays:
            return PanelData(key, "input", None, (), True, "· no array input ·",
                             (it, op.key, "in-none"))
        k, arr = max(arrays, key=lambda ka: ka[1].size)  # the biggest: the data, not a bias
        return PanelData(key, f"{_display(frame, k)} (input)", arr, arr.shape, False, "",
                         (it, k, "in"))
    idx = _op_index(frame, key)
    if idx is None:  # the init frame has no iteration ops yet
        return PanelData(key, title, None, (), True, "· iteration 0 not started ·",
                         (it, key, "absent"))
    shape = tuple(frame.ops[idx].shape)
    if idx > cur:
        return PanelData(key, title, None, shape, True, "· not computed yet ·",
                         (it, key, "pending"))
    arr = frame.outputs[idx]
    return PanelData(key, title, arr, arr.shape, False, "", (it, key, "value"))


HINT = "n: step one op · i: next iteration · c: run to the first flag · ?: all keys"


def op_card(src: Source) -> OpCardData:
    """The op under the cursor: formula, every factor's role and shape, the scalars used."""
    frame, cur = src.frame, src.index
    op = frame.ops[cur]
    facs = fx.factors(frame, cur)
    inputs = tuple((f.role, tuple(f.array.shape) if f.array is not None else ())
                   for f in facs if not f.output)
    machine = getattr(src, "machine", None)
    cfg = machine.cfg if machine is not None else src.cfg
    scal = tuple(s.text for s in fx.scalars(frame, cur, cfg, src.program.n))
    phases = tuple(dict.fromkeys(o.phase for o in frame.ops))
    hint = HINT if src.iteration < 0 else ""
    return OpCardData(op.phase, phases, op.name, op.formula, inputs,
                      tuple(frame.outputs[cur].shape), cur, len(frame.ops),
                      tuple(o.name for o in frame.ops), scal, hint)


def factor_panels(src: Source) -> tuple[PanelData, ...]:
    """One panel per factor of the op under the cursor: inputs in formula order, output last."""
    frame, cur, it = src.frame, src.index, src.iteration
    out = []
    for f in fx.factors(frame, cur):
        title = f.role if not f.output else f"= {f.role}"
        if f.array is None:
            out.append(PanelData(f.key, title, None, (), True, "· not computed ·",
                                 (it, f.key, "missing", f.role)))
            continue
        key = f.key if not f.note.startswith("new") else ""  # ΔW: no single array to explain
        out.append(PanelData(key, title, f.array, tuple(f.array.shape), False, f.note,
                             (it, key or f.role, "factor", f.role), f.transposed, f.output))
    return tuple(out)


def flags(src: Source) -> list[FlagLine]:
    """First appearance of each kind of event in the run, then this frame's warnings."""
    first: dict[str, Event] = {}
    counts: dict[str, int] = {}
    for e in src.events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
        if e.kind not in first or e.iteration < first[e.kind].iteration:
            first[e.kind] = e
    lines = [FlagLine(k, first[k].iteration, first[k].op, first[k].detail, counts[k], False)
             for k in sorted(first, key=flag_rank)]
    frame = src.frame
    if frame.fp_warnings or frame.origin is not None:
        seen = {o.name: i for i, o in enumerate(frame.ops)}
        for e in frame_events(frame):
            if seen.get(e.op, 0) <= src.index:
                lines.append(FlagLine(e.kind, e.iteration, e.op, e.detail, 1, True))
    here = sorted((f for f in lines if f.here), key=lambda f: flag_rank(f.kind))
    shown = {(f.kind, f.iteration, f.op) for f in here}
    return here + [f for f in lines if not f.here and (f.kind, f.iteration, f.op) not in shown]


def status(src: Source, label: str) -> StatusData:
    op = src.op
    return StatusData(label, src.iteration, op.phase, src.index, len(src.ops), op.name,
                      len(src.history))


@dataclass(frozen=True)
class Series:
    """A chart: x positions and named y lines, already cut to the chart width."""

    title: str
    x: np.ndarray
    lines: tuple[tuple[str, np.ndarray], ...]
    log: bool
    marker: int | None  # the cursor's iteration, drawn as a vertical line
    skipped: int  # non-finite points left out
    events: tuple[tuple[int, str], ...] = ()  # (iteration, flag glyph): vertical markers


def downsample(y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with at most ~2·width points: min and max of each bucket, so spikes survive.

    NaN/Inf are kept as NaN (the caller drops them); an all-NaN bucket stays NaN.
    """
    n = len(y)
    if n <= 2 * max(width, 1):
        return np.arange(n, dtype=float), y.astype(float)
    buckets = max(1, width)
    size = -(-n // buckets)
    pad = buckets * size - n
    yy = np.concatenate([y.astype(float), np.full(pad, np.nan)]).reshape(buckets, size)
    lo = np.fmin.reduce(yy, axis=1)
    hi = np.fmax.reduce(yy, axis=1)
    x0 = np.arange(buckets) * size
    x = np.stack([x0, np.minimum(x0 + size - 1, n - 1)], axis=1).reshape(-1).astype(float)
    # order each bucket's pair as it occurs, so a spike keeps its place
    nan = np.isnan(yy)
    first_min = np.argmin(np.where(nan, np.inf, yy), 1) <= np.argmax(np.where(nan, -np.inf, yy), 1)
    pair = np.where(first_min[:, None], np.stack([lo, hi], 1), np.stack([hi, lo], 1))
    return x, pair.reshape(-1)


def chart_events(events: list[Event]) -> tuple[tuple[int, str], ...]:
    """First iteration of each episode as (iteration, glyph), for the chart's markers."""
    return tuple(sorted({(e.iteration, FLAG_GLYPH.get(e.kind, "?")) for e in events}))


def chart_end(frontier: int, cursor: int) -> int:
    """Iterations [0, end) the chart shows: up to a little past the cursor.

    The fast path runs ahead in blocks, so the history often reaches far beyond the
    cursor; showing all of it would flatten what happens around the cursor (the
    xor-50-explode bump is 3% of the loss at iteration 127 but 0.6% of the whole
    range once the run has converged).  Before iteration 0, everything is shown.
    """
    if cursor < 0:
        return frontier
    return min(frontier, cursor + max(16, cursor // 4) + 1)


def chart(history: Any, kind: str, width: int, marker: int | None,
          events: tuple[tuple[int, str], ...] = (), end: int | None = None) -> Series:
    """The chosen series (loss, accuracy or per-layer gradient norms) at `width` columns,
    over iterations [0, end) (all of the history by default)."""
    n = len(history) if end is None else min(end, len(history))
    view = history.view(0, n)
    if kind == "accuracy":
        cols = [("acc", view.acc)]
    elif kind == "grad norms":
        cols = [(f"‖dW{l + 1}‖", view.grad_norm[:, l]) for l in range(view.grad_norm.shape[1])]
    else:
        cols = [("loss", view.loss)]
    lines = []
    skipped = 0
    x = np.arange(0, dtype=float)
    for name, y in cols:
        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y) | ((y <= 0) if kind == "grad norms" else False)
        skipped += int(np.count_nonzero(bad))
        y = np.where(bad, np.nan, y)
        x, yd = downsample(y, width)
        lines.append((name, yd))
    return Series(kind, x, tuple(lines), kind == "grad norms", marker, skipped,
                  tuple(e for e in events if e[0] < n))
