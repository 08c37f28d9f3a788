"""ChartView: the metric chart (loss, accuracy or gradient norms) at the widget's size.

The series arrive already downsampled to the chart width (min/max per bucket,
see `view.downsample`); `renderables.chart.LineChart` draws them
(with plotext, in colour unless the app runs with NO_COLOR).  The widget
keeps the last built lines until the series or its size changes, so repaints
cost nothing and do not flicker.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual.widget import Widget

from tui_backprop.renderables.chart import LineChart
from tui_backprop.view import Series


class ChartView(Widget):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: Series | None = None
        self._built: tuple[tuple, Group] | None = None

    def set_series(self, series: Series) -> None:
        self.series = series
        self.refresh()

    def render(self) -> RenderableType:
        s, (w, h) = self.series, self.content_size
        if s is None or len(s.x) < 2:
            return Text("chart: needs 2 iterations — i: next iteration, c: continue",
                        style="dim")
        if w < 24 or h < 4:
            return Text(f"chart hidden: {w}×{h} is too small", style="dim")
        key = (id(s), w, h)
        if self._built is None or self._built[0] != key:
            self._built = (key, Group(*LineChart(s, color=not self.app.no_color).lines(w, h)))
        return self._built[1]


PlotextPlot = ChartView  # the name the screens and tests have used
