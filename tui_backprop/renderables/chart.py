"""LineChart: a metric over iterations in a few terminal rows, readable without colour.

plotext draws the plot; the choices that make it readable are made here:
y ticks are round values on evenly spaced rows (the limits are stretched to fit
them), gradient norms are drawn as log10 with ticks at powers of ten, the first
series is a braille line and further series use their own marker character
(x, +, o) so the legend in the title works with NO_COLOR, and events and knob
changes are vertical markers (┆) with the flag's glyph on the top row.
plotext 6 keeps one global figure, so every build clears it under a lock.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.view import Series

MARKS = ("⣿", "x", "+", "o", "*")  # legend glyph per series; the first is the braille line
_PLOTEXT_MARKS = ("braille", "x", "+", "o", "*")
_AXIS = Style(dim=True)
_EVENT = Style(bold=True)
_SERIES = (Style(), Style(bold=True), Style(bold=True), Style(), Style())
_COLORS = ("blue", "green", "magenta", "cyan", "yellow")  # per series, when in colour
_EVENT_COLOR = "red"
_LOCK = threading.Lock()  # plotext 6 has a single global figure


def fmt_tick(v: float, log: bool, step: float = 0.0) -> str:
    """A tick label with just the decimals its step needs, so neighbours always differ."""
    if log:
        return f"1e{round(v)}" if abs(round(v)) >= 3 else f"{10 ** v:g}"
    if abs(v) < 1e-9 * step or v == 0:
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


def y_axis(lo: float, hi: float, rows: int, log: bool) -> tuple[float, float, list[float]]:
    """(bottom, top, tick values): ticks a round step apart, `d` rows apart from the bottom row.

    The axis runs from the first tick to (rows - 1) / d steps above it, so the ticks sit
    exactly on evenly spaced rows whatever the number of rows; of the layouts that hold
    the data, the one with the shortest axis wins (weighed a little towards more ticks).
    """
    if not math.isfinite(lo) or not math.isfinite(hi):
        lo, hi = 0.0, 1.0
    lo, hi = (min(max(v, -1e300), 1e300) for v in (lo, hi))  # so hi - lo stays finite
    if hi - lo <= max(1e-9 * max(abs(lo), abs(hi)), 1e-250):  # flat (to float precision)
        pad = abs(lo) * 0.05 or (1.0 if not log else 0.5)
        lo, hi = lo - pad, hi + pad
    n = max(1, rows - 1)
    tol = 1e-9 * (hi - lo)
    best: tuple[float, int, float, float, int] | None = None
    for k in range(1, min(n, 8 if log else 6) + 1):
        d = n // k
        if log:  # whole decades from the one below the data
            steps = [float(max(1, math.ceil((hi - math.floor(lo + 1e-9)) * d / n - 1e-9)))]
        else:
            raw = (hi - lo) / k
            mag = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
            steps = [m * mag for m in (0.5, 1, 2, 2.5, 5, 10, 20, 50)]
        for s in steps:
            a = float(math.floor(lo + 1e-9)) if log else math.floor(lo / s + 1e-9) * s
            top = a + n * s / d
            if top >= hi - tol and a + k * s <= top + tol:
                # shortest axis, a little in favour of more ticks and (log) of whole decades
                score = (top - a) / (1 + 0.08 * min(k, 5)) * (s if log else 1.0)
                if best is None or score < best[0] * (1 - 1e-9) or (
                        score <= best[0] * (1 + 1e-9) and k > best[1]):
                    best = (score, k, a, s, d)
                break
    if best is None:  # cannot happen for finite input; keep a usable axis anyway
        return lo, hi, [lo, hi]
    _, k, a, s, d = best
    return float(a), float(a + n * s / d), [float(a + i * s) for i in range(k + 1)]


def x_ticks(top: float, cols: int) -> list[float]:
    """Round iteration numbers from 0 to `top`, about one per 12 columns."""
    if top <= 0:
        return [0.0]
    count = max(1, cols // 12)
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    steps = (m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    step = max(1.0, next((v for v in steps if float(v).is_integer()), 1.0))  # whole iterations
    return [float(v) for v in np.arange(0, top + step / 2, step) if v <= top]


def short(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"



class LineChart:
    """A Rich renderable; `lines(width, height)` gives exactly the rows the widget shows."""

    def __init__(self, series: Series, color: bool = False) -> None:
        self.s = series
        self.color = color

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        plain = console.no_color or console.color_system is None
        chart = LineChart(self.s) if plain and self.color else self
        yield from chart.lines(options.max_width, options.height or 8)

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
        xmax = max(float(s.x[-1]) if len(s.x) else 1.0, 1.0)
        cols = max(4, width - lw)
        with _LOCK:
            text = self._build(width, rows, ys, (bottom, top, ticks, labels), xmax, cols)
        plot = text.split("\n")[:rows + 1]
        out = [self._title(width)]
        out[0].truncate(width, overflow="ellipsis")
        for r, row in enumerate(plot):
            t = Text.from_ansi(row, no_wrap=True, overflow="crop") if self.color else Text(row)
            t.no_wrap, t.overflow = True, "crop"
            t.rstrip()
            if not self.color:
                t.stylize(_AXIS, 0, lw) if r < rows else t.stylize(_AXIS)
                for c, ch in enumerate(row[lw:] if r == 0 else ""):
                    if ch in self._glyphs:
                        t.stylize(_EVENT, lw + c, lw + 1 + c)
            out.append(t)
        return out[:height]

    @property
    def _glyphs(self) -> set[str]:
        return {g for _, g in self.s.events}

    def _build(self, width: int, rows: int, ys: list[np.ndarray],
               axis: tuple[float, float, list[float], list[str]], xmax: float,
               cols: int) -> str:
        """The plot rows and x labels as plotext draws them (ANSI when in colour)."""
        import plotext as plt  # imported on first draw: keeps the app's start-up light

        s, f = self.s, plt.figure

        def mark(symbol: str, color: str | None = None, bold: bool = False) -> object:
            if not self.color:
                return symbol
            return plt.marker(symbol, plt.pixel(foreground=color, style="bold" if bold else None))
        bottom, top, ticks, labels = axis
        plt.terminal.limit(False, False)  # the widget's size, not the terminal's, is the limit
        f.clear()
        f.plot_size(width, rows + 1)
        f.theme("simple" if self.color else "colorless")
        f.axes(False, axis="x", side="both")
        f.axes(False, axis="y", side="right")
        level = list(np.linspace(bottom, top, rows))
        if s.marker is not None and 0 <= s.marker <= xmax:  # the cursor, under everything
            f.draw(f.signal([float(s.marker)] * rows, level, marker=mark("│", "gray", True)))
        seen: set[int] = set()
        for it, glyph in s.events:
            col = round(it / xmax * (cols - 1))
            if 0 <= it <= xmax and col not in seen:
                seen.add(col)
                line = mark("┆", _EVENT_COLOR)
                f.draw(f.signal([float(it)] * (rows - 1), level[:-1], marker=line))
                f.draw(f.signal([float(it)], [top], marker=mark(glyph, _EVENT_COLOR, True)))
        for si, y in enumerate(ys):
            ok = np.isfinite(y)
            if not ok.any():
                continue
            x, v = s.x[ok], np.clip(y[ok], bottom, top)  # beyond ±1e300 plotext gives up
            sig = f.signal(x.tolist(), v.tolist(), marker=mark(
                _PLOTEXT_MARKS[si % len(_PLOTEXT_MARKS)], _COLORS[si % len(_COLORS)], si > 0))
            if si == 0 and len(x) > 1:
                sig.lines()
                sig.density("full")  # no gaps on steep segments
            f.draw(sig)
        f.ruler("y").lim(bottom, top)
        f.ruler("y").ticks(ticks, labels)
        f.ruler("x").lim(0, xmax)
        xt = x_ticks(xmax, cols)
        f.ruler("x").ticks(xt, [short(v) for v in xt])
        return f.build().string(colorless=not self.color)

    def _title(self, width: int) -> Text:
        s = self.s
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {s.title}", Style(bold=True))
        if s.log:
            t.append(" (log)", _AXIS)
        if len(s.lines) > 1:
            for i, (name, _) in enumerate(s.lines):
                t.append("  ")
                style = _SERIES[i % len(_SERIES)]
                if self.color:
                    style += Style(color=_COLORS[i % len(_COLORS)])
                t.append(MARKS[i % len(MARKS)], style)
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
