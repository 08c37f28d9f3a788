"""The diff split view: the same op of two runs side by side, one cursor for both.

`tui-backprop diff A B --tui` opens it at the first differing op.  Three
heatmaps show A's output, B's output and A−B (NaN where exactly one side is
NaN); below, the loss of both runs on one chart with the first differing
iteration marked.  The cursor (iteration, op) is shared: n/b step ops, i/u step
iterations, d returns to the first difference, f jumps to the first differing
op of the current iteration.  Runs whose ops differ in shape show the chart only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import RenderableType
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Footer, Static

from core.store.diff import OpDiff, ScalarDiff, Side, comparable, differs, first_op_diff
from tui_backprop.renderables.matrix import MatrixHeatmap
from tui_backprop.view import Series, downsample
from tui_backprop.widgets.plot import PlotextPlot


class Heat(Widget):
    """A titled heatmap box (read-only)."""

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.heat: MatrixHeatmap | None = None
        self.note = ""

    def show(self, array: np.ndarray | None, note: str = "") -> None:
        self.heat = None if array is None else MatrixHeatmap(array)
        self.note = note
        self.refresh()

    def render(self) -> RenderableType:
        if self.heat is None:
            return Text(self.note, style="dim")
        return self.heat


class DiffApp(App[int]):
    """See the module docstring."""

    CSS = """
    #status { height: 3; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #panels { height: 1fr; }
    Heat { width: 1fr; border: round $secondary; }
    #chart { height: 12; }
    """
    BINDINGS = [
        Binding("n,right", "op(1)", "next op"),
        Binding("b,left", "op(-1)", "prev op"),
        Binding("i", "iteration(1)", "next it"),
        Binding("u", "iteration(-1)", "prev it"),
        Binding("d", "first", "first diff"),
        Binding("f", "first_op", "first op here"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, a: Side, b: Side, d: ScalarDiff, op: OpDiff | None) -> None:
        super().__init__()
        self.a, self.b, self.d = a, b, d
        self.sa, self.sb = a.open(), b.open()
        self.why = comparable(a, b, self.sa, self.sb)
        self.n = d.compared
        self.iteration = d.first if d.first is not None else 0
        self.index = op.position if op is not None and op.op is not None else 0
        self.title = "tui-backprop diff"

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="panels"):
            yield Heat("A", id="heat-a")
            yield Heat("B", id="heat-b")
            yield Heat("A − B", id="heat-d")
        yield PlotextPlot(id="chart")
        yield Footer()

    def on_mount(self) -> None:
        self._show()

    def on_resize(self) -> None:
        self._chart()

    # ------------------------------------------------------------------ actions
    def action_op(self, delta: int) -> None:
        count = len(self.sa.program.ops)
        k = self.index + delta
        if 0 <= k < count:
            self.index = k
        elif k >= count and self.iteration + 1 < self.n:
            self.iteration, self.index = self.iteration + 1, 0
        elif k < 0 and self.iteration > 0:
            self.iteration, self.index = self.iteration - 1, count - 1
        self._show()

    def action_iteration(self, delta: int) -> None:
        self.iteration = max(0, min(self.n - 1, self.iteration + delta))
        self._show()

    def action_first(self) -> None:
        self.iteration = self.d.first if self.d.first is not None else 0
        self.action_first_op()

    def action_first_op(self) -> None:
        if self.why is None:
            op = first_op_diff(self.sa, self.sb, self.iteration)
            self.index = op.position if op.op is not None else self.index
        self._show()

    # ------------------------------------------------------------------ drawing
    def _values(self) -> tuple[Any, np.ndarray, np.ndarray]:
        self.sa.jump(self.iteration, self.index)
        self.sb.jump(self.iteration, self.index)
        return self.sa.op, self.sa.value, self.sb.value

    def _show(self) -> None:
        d = self.d
        first = "none" if d.first is None else f"{d.first:,} ({', '.join(d.columns)})"
        head = f"{self.a.label}\n{self.b.label}\n"
        tail = f" · first difference {first}"
        if self.why is not None:
            self._status(f"{head}ops not compared: {self.why}{tail}")
            for key in ("a", "b", "d"):
                self.query_one(f"#heat-{key}", Heat).show(None, "ops not compared")
            self._chart()
            return
        op, x, y = self._values()
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        bad = differs(x64, y64, 0.0)
        with np.errstate(all="ignore"):
            gap = np.where(bad, x64 - y64, 0.0)  # NaN on both sides is equal: 0
        state = "equal" if not bad.any() else (
            f"differs in {int(bad.sum())} of {bad.size} · max |A−B| "
            f"{float(np.max(np.where(np.isnan(gap), np.inf, np.abs(gap)))):.3g}")
        self._status(
            f"{head}it {self.iteration:,} · op {self.index + 1}/{len(self.sa.program.ops)} "
            f"{op.name}: {state}{tail}")
        self.query_one("#heat-a", Heat).show(x)
        self.query_one("#heat-b", Heat).show(y)
        self.query_one("#heat-d", Heat).show(gap)
        for key, title in (("a", f"A {op.name}"), ("b", f"B {op.name}"), ("d", "A − B")):
            self.query_one(f"#heat-{key}", Heat).border_title = title
        self._chart()

    def _status(self, text: str) -> None:
        """Three lines, each cut with an ellipsis rather than wrapped (labels hold paths)."""
        lines = [Text(t, no_wrap=True, overflow="ellipsis") for t in text.split("\n")]
        self.query_one("#status", Static).update(Text("\n").join(lines))

    def _chart(self) -> None:
        plot = self.query_one("#chart", PlotextPlot)
        width = max(10, plot.content_size.width or 80)
        lines = []
        x = np.arange(0, dtype=float)
        skipped = 0
        for name, side in (("loss A", self.a), ("loss B", self.b)):
            y = side.history.view(0, self.n).loss.astype(float)
            bad = ~np.isfinite(y)
            skipped += int(np.count_nonzero(bad))
            x, yd = downsample(np.where(bad, np.nan, y), width)
            lines.append((name, yd))
        marker = self.d.first if self.d.first is not None else None
        plot.set_series(Series("loss (| = first difference)", x, tuple(lines), False, marker,
                               skipped))


def run_diff_app(a: Side, b: Side, d: ScalarDiff, op: OpDiff | None) -> int:
    """Open the split view; returns the exit status."""
    app = DiffApp(a, b, d, op)
    app.run()
    return app.return_code or 0
