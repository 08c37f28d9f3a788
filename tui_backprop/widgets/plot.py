"""PlotextPlot: a chart built by plotext at the widget's size.

plotext 6 keeps ONE global figure, so the figure is only ever built here, in
`render()`, on the UI thread.  The series arrive already downsampled to the
chart width (min/max per bucket, see `view.downsample`); the widget keeps the
last built text until the series or its size changes, so repaints do not flicker.
"""

from __future__ import annotations

import numpy as np
from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from tui_backprop.view import Series


class PlotextPlot(Widget):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: Series | None = None
        self._built: tuple[tuple, Text] | None = None

    def set_series(self, series: Series) -> None:
        self.series = series
        self.refresh()

    def render(self) -> RenderableType:
        s, (w, h) = self.series, self.content_size
        if s is None or len(s.x) < 2:
            return Text("chart: needs 2 iterations — i: next iteration, c: continue",
                        style="dim")
        if w < 24 or h < 5:
            return Text(f"chart hidden: {w}×{h} is too small", style="dim")
        key = (id(s), w, h)
        if self._built is None or self._built[0] != key:
            self._built = (key, Text.from_ansi(self._build(s, w, h), no_wrap=True))
        return self._built[1]

    @staticmethod
    def _build(s: Series, w: int, h: int) -> str:
        import plotext as plt  # ~0.25 s to import: paid after the first frame, not before

        plt.terminal.limit(False, False)  # the widget, not the terminal, sets the size
        fig = plt.figure
        fig.clear()
        fig.theme("simple")
        fig.plot_size(w, h)
        for name, y in s.lines:
            ok = np.isfinite(y)
            if not ok.any():
                continue
            sig = fig.signal(s.x[ok].tolist(), y[ok].tolist())
            sig.lines()
            if len(s.lines) > 1:
                sig.label(name)
            fig.draw(sig)
        positions = _ticks(float(s.x[-1]))
        fig.ruler("x").ticks(positions, [_short(v) for v in positions])
        if s.log:
            fig.ruler("y").scale("log")
        if s.marker is not None and len(s.x) and s.marker <= s.x[-1]:
            fig.line(s.marker, "vertical")
        skipped = f"  ({s.skipped} NaN/Inf left out)" if s.skipped else ""
        fig.title(f"{s.title}{skipped}")
        return str(fig.build())


def _ticks(top: float, count: int = 6) -> list[float]:
    """Round iteration numbers (1, 2, 2.5, 5 × 10^k steps) from 0 to about `top`."""
    if top <= 0:
        return [0.0]
    raw = top / count
    mag = 10 ** np.floor(np.log10(raw))
    step = max(1.0, next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw))
    return [float(v) for v in np.arange(0, top + step / 2, step) if v <= top]


def _short(v: float) -> str:
    """12000 → 12k, 2500000 → 2.5M: tick labels that fit between ticks."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"
