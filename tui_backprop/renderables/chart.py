"""LineChart: a metric over iterations in a few terminal rows, readable without colour.

Drawn here rather than by a plotting library so that every choice is ours:
y ticks are round values on evenly spaced rows (the axis is stretched to fit
them), gradient norms use a log axis with ticks at powers of ten, the first
series is a braille line (4 dots per row) and further series use their own
marker character (x, +, o) so a legend works with NO_COLOR, and events and
knob changes are vertical markers with the flag's glyph on the top row.
"""

from __future__ import annotations

import math

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.view import Series

MARKS = ("⣿", "x", "+", "o", "*")  # legend glyph per series; the first is the braille line
_AXIS = Style(dim=True)
_EVENT = Style(bold=True)
_CURSOR = Style(bold=True, reverse=True)
_SERIES = (Style(), Style(bold=True), Style(bold=True), Style(), Style())
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # braille bit by (row, col)


def fmt_tick(v: float, log: bool, step: float = 0.0) -> str:
    """A tick label with just the decimals its step needs, so neighbours always differ."""
    if log:
        return f"1e{round(v)}" if abs(round(v)) >= 3 else f"{10 ** v:g}"
    if abs(v) < 1e-12 * max(1.0, step):
        return "0"
    if step > 0:
        mag = math.floor(math.log10(step))
        extra = 1 if round(step / 10 ** mag, 6) == 2.5 else 0
        decimals = max(0, -mag + extra)
        if decimals <= 6 and abs(v) < 1e6:
            return f"{v:.{decimals}f}"
        sig = min(8, max(2, math.floor(math.log10(abs(v))) - mag + 2)) if v else 1
        return f"{v:.{sig}g}"
    return f"{v:.4g}"


def _divisors(n: int, most: int = 6) -> list[int]:
    return [k for k in range(1, min(n, most) + 1) if n % k == 0] or [1]


def y_axis(lo: float, hi: float, rows: int, log: bool) -> tuple[float, float, list[float]]:
    """(bottom, top, tick values) with ticks a round step apart on evenly spaced rows."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        pad = abs(lo) * 0.05 or (1.0 if not log else 0.5)
        lo, hi = lo - pad, hi + pad
    best: tuple[float, int, float, float] | None = None
    for k in _divisors(max(1, rows - 1)):
        raw = (hi - lo) / k
        if log:
            steps = [float(s) for s in range(1, 1000)]
        else:
            mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
            steps = [m * mag for m in (1, 2, 2.5, 5, 10, 20)]
        for s in steps:
            a = math.floor(lo / s + 1e-9) * s
            if a + k * s >= hi - 1e-12 * max(1.0, abs(hi)):
                span = k * s
                if best is None or span < best[0] - 1e-12 or (
                        abs(span - best[0]) <= 1e-12 and k > best[1]):
                    best = (span, k, a, s)
                break
    assert best is not None
    span, k, a, s = best
    return a, a + span, [a + i * s for i in range(k + 1)]


def x_ticks(top: float, cols: int) -> list[float]:
    """Round iteration numbers from 0 to `top`, about one per 12 columns."""
    if top <= 0:
        return [0.0]
    count = max(1, cols // 12)
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = max(1.0, next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw))
    return [float(v) for v in np.arange(0, top + step / 2, step) if v <= top]


def short(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


class LineChart:
    def __init__(self, series: Series) -> None:
        self.s = series

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width, options.height or 8)

    def lines(self, width: int, height: int) -> list[Text]:
        s = self.s
        rows = max(2, height - 2)  # title, plot rows, x labels
        ys = []
        for _, y in s.lines:
            y = np.asarray(y, dtype=float)
            with np.errstate(all="ignore"):
                ys.append(np.log10(np.where(y > 0, y, np.nan)) if s.log else y)
        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(0)
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        bottom, top, ticks = y_axis(lo, hi, rows, s.log)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.0
        labels = [fmt_tick(v, s.log, step) for v in ticks]
        lw = max(len(t) for t in labels) + 1
        cols = max(4, width - lw - 1)
        xmax = float(s.x[-1]) if len(s.x) else 1.0
        xmax = max(xmax, 1.0)
        grid = [[0] * cols for _ in range(rows)]  # braille bits of series 0
        marks: dict[tuple[int, int], int] = {}  # (row, col) -> series index >= 1

        def row_of(v: float, sub: int) -> float:
            return (top - v) / (top - bottom) * (rows * sub - 1) if top > bottom else 0.0

        for si, y in enumerate(ys):
            ok = np.isfinite(y)
            if not ok.any():
                continue
            xs = s.x[ok] / xmax * (cols * (2 if si == 0 else 1) - 1)
            vs = y[ok]
            if si == 0:
                prev = None
                for x, v in zip(np.rint(xs).astype(int), vs, strict=True):
                    r = int(round(row_of(float(v), 4)))
                    if prev is not None and x - prev[0] > 1:  # a gap: interpolate across it
                        x0, r0 = prev
                        for xx in range(x0 + 1, x):
                            rr = int(round(r0 + (r - r0) * (xx - x0) / (x - x0)))
                            grid[rr // 4][xx // 2] |= _DOTS[rr % 4][xx % 2]
                            prev = (xx, rr)
                    lo_r, hi_r = (r, r) if prev is None else (min(r, prev[1]), max(r, prev[1]))
                    for rr in range(lo_r, hi_r + 1):
                        grid[rr // 4][x // 2] |= _DOTS[rr % 4][x % 2]
                    prev = (x, r)
            else:
                for x, v in zip(np.rint(xs).astype(int), vs, strict=True):
                    marks[(int(round(row_of(float(v), 1))), int(x))] = si
        # vertical markers: events (glyph on top) and the cursor
        vmarks: dict[int, tuple[str, Style]] = {}
        for it, glyph in s.events:
            if 0 <= it <= xmax:
                vmarks.setdefault(int(round(it / xmax * (cols - 1))), (glyph, _EVENT))
        cursor = None
        if s.marker is not None and 0 <= s.marker <= xmax:
            cursor = int(round(s.marker / xmax * (cols - 1)))
        out = [self._title(width)]
        tick_rows = {round(i * (rows - 1) / max(1, len(ticks) - 1)): lab
                     for i, lab in enumerate(reversed(labels))}
        for r in range(rows):
            t = Text(no_wrap=True, overflow="crop")
            t.append(tick_rows.get(r, "").rjust(lw - 1) + " ┤" if r in tick_rows
                     else " " * lw + "│", _AXIS)
            for c in range(cols):
                bits = grid[r][c]
                if (r, c) in marks:
                    si = marks[(r, c)]
                    t.append(MARKS[si % len(MARKS)], _SERIES[si % len(_SERIES)])
                elif bits:
                    t.append(chr(0x2800 + bits), _SERIES[0])
                elif c in vmarks:
                    glyph, style = vmarks[c]
                    t.append(glyph if r == 0 else "┆", style if r == 0 else _AXIS)
                elif c == cursor:
                    t.append("│", _CURSOR)
                else:
                    t.append(" ")
            out.append(t)
        out.append(self._x_labels(lw, cols, xmax))
        return out[:height]

    def _title(self, width: int) -> Text:
        s = self.s
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {s.title}", Style(bold=True))
        if s.log:
            t.append(" (log)", _AXIS)
        if len(s.lines) > 1:
            for i, (name, _) in enumerate(s.lines):
                t.append("  ")
                t.append(MARKS[i % len(MARKS)], _SERIES[i % len(_SERIES)])
                t.append(f" {name}")
        if s.events:
            kinds = dict.fromkeys(g for _, g in s.events)
            t.append("   markers: " + " ".join(kinds), _AXIS)
        if s.skipped:
            t.append(f"  ({s.skipped} NaN/Inf left out)", _AXIS)
        return t

    @staticmethod
    def _x_labels(lw: int, cols: int, xmax: float) -> Text:
        line = [" "] * (lw + cols + 1)
        for v in x_ticks(xmax, cols):
            c = lw + 1 + int(round(v / xmax * (cols - 1)))
            label = short(v)
            start = min(max(lw, c - len(label) // 2), len(line) - len(label))
            if all(ch == " " for ch in line[max(0, start - 1):start + len(label) + 1]):
                line[start:start + len(label)] = list(label)
        return Text("".join(line).rstrip(), _AXIS, no_wrap=True, overflow="crop")
