"""The main screen's investigation tools: drill-down, gradcheck, boundary, diagram.

A mixin of `MainScreen`, so its wiring there stays a few lines: the four
actions, the panel cursor's message, and two hooks — `layout_tools` (from
`apply_plan`) and `refresh_tools` (from `refresh_view`).  Each tool computes
only while it is open and only when the cursor or its cell changes, so the
fast path and `continue` never pay for it.

- enter: a cell cursor on the focused matrix panel (the output panel if none);
  the drill pane replaces the chart and explains the cell.
- f: finite-difference check of the current backward op, in a modal.
- o / w: the decision boundary / network diagram in place of the panels
  (pressing the key again, or escape, brings the panels back).
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.containers import Grid

from tui_backprop.screens.layout import Plan
from tui_backprop.screens.prompt import PromptScreen
from tui_backprop.widgets import MatrixPanel, PlotextPlot
from tui_backprop.widgets.tools import BoundaryView, DiagramView, DrillPane, SampleView

TOOL_ACTIONS = {"drill", "gradcheck", "boundary", "diagram", "sample", "close_tool"}
BINDINGS = [
    Binding("enter", "drill", "cell", show=False),
    Binding("f", "gradcheck", "gradcheck", show=False),
    Binding("o", "boundary", "boundary", show=False),
    Binding("w", "diagram", "diagram", show=False),
    Binding("e", "sample", "one sample", show=False),
    Binding("escape", "close_tool", "Close the boundary / diagram view", show=False),
]
PALETTE = [
    ("Drill into a cell", "enter: cell cursor on the focused panel, its computation below",
     "drill"),
    ("Gradient check of this op", "f: finite differences vs dL/dW, dL/db or dL/dz", "gradcheck"),
    ("Decision boundary", "o: predicted class over the data plane (2-D inputs)", "boundary"),
    ("Network diagram and gradient flow", "w: layers, the op's arrays, ‖∇W‖ sparklines",
     "diagram"),
    ("Follow one sample", "e: row n of the batch through the network, its share of dL/dW",
     "sample"),
]
DRILL_HEIGHT = 8  # rows of the drill pane at least (it takes the chart's place)


class ToolsMixin:
    """Mixed into MainScreen: expects `source`, `plan`, `running` and the widgets."""

    tool: str = ""  # "", "boundary", "diagram" or "sample": what replaces the panels
    sample_row: int = 0
    source: Any
    plan: Plan
    running: str

    def mark_inputs(self, panel: MatrixPanel, cell: tuple[int, int] | None) -> None: ...

    def compose_tool_views(self):  # inside #body, after #panels
        yield BoundaryView(id="boundary")
        yield DiagramView(id="diagram")
        yield SampleView(id="sample")

    def compose_drill(self):  # inside #body, before #chart
        yield DrillPane(id="drill")

    # ------------------------------------------------------------------ state
    def _cursor_panel(self) -> MatrixPanel | None:
        for panel in self.query(MatrixPanel):
            if panel.cursor is not None and panel.display:
                return panel
        return None

    def check_tool(self, action: str) -> bool | None:
        """Tools wait while a job runs (greyed); escape only closes an open view."""
        if self.running:
            return None if action != "close_tool" else False
        if action == "close_tool":
            return bool(self.tool)
        return True

    def layout_tools(self, p: Plan) -> None:
        """After the plan: which of panels / boundary / diagram shows, and the drill pane."""
        if p.too_small:
            return
        self.query_one("#panels", Grid).display = not self.tool
        self.query_one(BoundaryView).display = self.tool == "boundary"
        self.query_one(DiagramView).display = self.tool == "diagram"
        self.query_one(SampleView).display = self.tool == "sample"
        drilling = self._cursor_panel() is not None
        drill = self.query_one(DrillPane)
        drill.display = drilling
        drill.styles.height = max(p.chart, DRILL_HEIGHT + (2 if self.size.height >= 32 else 0))
        chart = self.query_one(PlotextPlot)
        # the drill pane takes the chart's place; a tool view takes it on short terminals
        if drilling or (self.tool and self.size.height < 32):
            chart.display = False
        else:
            chart.display = p.chart > 0

    def refresh_tools(self) -> None:
        """Push fresh data to whichever tool is open (called after every move)."""
        if self.running:  # the worker owns the source until it returns
            return
        src = self.source
        panel = self._cursor_panel()
        drill = self.query_one(DrillPane)
        if panel is not None and panel.data is not None and panel.cursor is not None:
            from tui_backprop import investigate as inv  # tools load on first use

            terms = 2 if self.size.width < 110 else (3 if self.size.width < 160 else 4)
            drill.show(inv.drill(src, panel.data, panel.cursor, terms))
        if self.tool in ("boundary", "diagram"):
            from tui_backprop import investigate as inv

            if self.tool == "boundary":
                self.query_one(BoundaryView).show(inv.boundary_spec(src))
            else:
                self.query_one(DiagramView).show(inv.diagram(src))
        elif self.tool == "sample":
            from tui_backprop.sample import sample

            self.query_one(SampleView).show(sample(src, self.sample_row))

    def _relayout(self) -> None:
        self.layout_tools(self.plan)
        self.refresh_tools()

    # ------------------------------------------------------------------ actions
    def on_matrix_panel_cursor_moved(self, event: MatrixPanel.CursorMoved) -> None:
        if self.running and event.cell is not None:  # explained once the job returns
            event.panel.clear_cursor(notify=False)
            self.app.bell()
            return
        if event.cell is not None:  # one cursor at a time
            for other in self.query(MatrixPanel):
                if other is not event.panel:
                    other.clear_cursor(notify=False)
        self.mark_inputs(event.panel, event.cell)
        self._relayout()

    def action_drill(self) -> None:
        """Enter with no panel focused: a cursor on the output panel."""
        if self.tool:
            self.tool = ""
            self.layout_tools(self.plan)
        shown = [p for p in self.query(MatrixPanel) if p.display and p.heat is not None]
        panel = next((p for p in shown if p.data is not None and p.data.output),
                     shown[0] if shown else None)
        if panel is None:
            self.app.bell()
            return
        panel.focus()
        panel.action_toggle_cursor()

    def action_gradcheck(self) -> None:
        from tui_backprop.screens.gradcheck import GradcheckScreen

        self.app.push_screen(GradcheckScreen(self.source))

    def _toggle(self, tool: str) -> None:
        self.tool = "" if self.tool == tool else tool
        if self.tool:
            for panel in self.query(MatrixPanel):
                panel.clear_cursor(notify=False)
            self.set_focus(None)  # panels are hidden: nothing to scroll
        self._relayout()

    def action_boundary(self) -> None:
        self._toggle("boundary")

    def action_diagram(self) -> None:
        self._toggle("diagram")

    def action_sample(self) -> None:
        """Ask for a row of the batch, then follow it through the network."""
        rows = self.source.frame.batch["X"].shape[0]

        def chosen(value: int | None) -> None:
            if value is None:
                return
            self.sample_row = min(value, rows - 1)
            if self.tool != "sample":
                self._toggle("sample")
            else:
                self._relayout()

        self.app.push_screen(PromptScreen(f"Follow which row of the batch? (0..{rows - 1})",
                                          "e.g. 0", minimum=0), chosen)

    def action_close_tool(self) -> None:
        self._toggle(self.tool)
