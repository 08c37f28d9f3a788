"""The main screen's showing half: which factor each panel shows, the overview, the marks,
the status line and the chart, and what a running job shows (read in its thread).

A mixin of `MainScreen` (screens/main.py), which owns the source and moves it; nothing
here moves the cursor.  Kept apart so each file stays about one thing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.containers import Grid

from tui_backprop import factors as fx
from tui_backprop import view
from tui_backprop.overview import Overview
from tui_backprop.screens.layout import MAX_SLOTS, Plan
from tui_backprop.widgets import (
    FlagsView,
    MatrixPanel,
    OpCardView,
    OverviewView,
    PlotextPlot,
    StatusLine,
)


class ShowingMixin:
    """Mixed into MainScreen: expects `source`, `plan`, `running`, `note` and the widgets."""

    source: Any
    plan: Plan
    running: str
    note: str
    chart_on: bool
    rotation: int
    series: int
    entries: int
    overview: Overview
    factors: tuple[view.PanelData, ...]
    shown: list[int]
    _entries: tuple
    _planned_ready: bool
    _planned_size: tuple[int, int]
    _chart_key: tuple | None

    def _chart_ready(self) -> bool:
        return len(self.source.history) >= 2

    def assignments(self) -> list[int]:
        """Which factor each visible panel shows: formula order, the output always last.

        When the factors outnumber the panels, `v` rotates the inputs shown.
        """
        n = len(self.factors)
        slots = min(self.plan.slots, MAX_SLOTS, n)
        if slots >= n:
            return list(range(n))
        ins = list(range(n - 1))
        k = self.rotation % len(ins)
        ins = ins[k:] + ins[:k]
        return sorted(ins[: slots - 1]) + [n - 1]

    def _layout_panels(self) -> None:
        self.shown = self.assignments()
        grid = self.query_one("#panels", Grid)
        grid.styles.grid_size_columns = max(1, len(self.shown))
        for i, panel in enumerate(self.query(MatrixPanel)):
            panel.display = i < len(self.shown)

    def refresh_view(self) -> None:
        """Push the view model of the cursor to every visible widget (each skips no-ops)."""
        if self.running or self.plan.too_small:
            return
        src = self.source
        if self._chart_ready() != self._planned_ready:  # the chart's rows appear once
            self.apply_plan(*self._planned_size)
            return
        self.query_one(OpCardView).show(view.op_card(src))
        self.factors = view.factor_panels(src)
        self._layout_panels()
        panels = list(self.query(MatrixPanel))
        follow = next(((p, p.cursor) for p in panels if p.cursor is not None and p.display
                       and p.data is not None and p.data.output), None)
        for panel, pos in zip(panels, self.shown, strict=False):
            panel.show(self.factors[pos])
        if follow is not None:  # the cell cursor stays on the output as the op changes
            here = next((p for p in panels if p.display and p.data is not None
                         and p.data.output), None)
            if here is not None and here is not follow[0]:
                follow[0].clear_cursor(notify=False)
                here.focus()
                here.set_cursor(*follow[1])
            elif here is not None:
                self.mark_inputs(here, here.cursor)
        self._show_overview()
        self.query_one(FlagsView).show(self.with_break(view.flags(src)), len(src.history))
        self._show_status()
        self._show_chart()
        self.refresh_tools()

    def _show_overview(self, live: dict[str, str] | None = None) -> None:
        if live:  # a job owns the source: the entries shown, with the newest norms
            entries = tuple(replace(e, live=live.get(e.key, "")) for e in self._entries)
        else:
            src, op = self.source, self.source.op
            text = fx.split_formula(op.formula)[2]
            reads = set(op.inputs) | {k for _, k, _ in fx.tokens(text, fx._names(src.frame))}
            writes = {op.key, op.target} - {""}
            entries = self._entries = self.overview.entries(src, reads, writes)
        columns = 2 if self.size.width >= 124 and self.entries > 6 else 1
        self.query_one(OverviewView).show(entries, self.plan.tiles, columns)

    def mark_inputs(self, panel: MatrixPanel, cell: tuple[int, int] | None) -> None:
        """The output's cursor cell: highlight the row / column / cell each input supplies."""
        panels = [p for p in self.query(MatrixPanel) if p.display]
        marks: dict[int, fx.Mark] = {}
        if cell is not None and panel.data is not None and panel.data.output:
            src = self.source
            facs = fx.factors(src.frame, src.index)
            marks = fx.marks(src.frame, src.index, facs, cell)
        for p, pos in zip(panels, self.shown, strict=False):
            if p is not panel:
                p.set_mark(marks.get(pos))

    def _show_status(self) -> None:
        src = self.source
        hist = src.history.view(0, len(src.history))
        self.query_one(StatusLine).show(view.status(src, self.label), hist.loss, self.note,
                                        self.running, hist.acc)

    def _show_chart(self) -> None:
        chart = self.query_one(PlotextPlot)
        if not chart.display:
            return
        src = self.source
        width = max(10, chart.size.width - 10)
        key = (len(src.history), src.iteration, self.series, width, len(src.events))
        if key != self._chart_key:
            self._chart_key = key
            marker = src.iteration if src.iteration >= 0 else None
            end = view.chart_end(len(src.history), src.iteration)
            chart.set_series(view.chart(src.history, view.SERIES[self.series], width, marker,
                                        view.chart_events(src.events), end))

    def live_view(self, src: Any, series: str, width: int | None) -> tuple:
        """What a running job shows, read in the worker thread from metrics already computed:
        the frontier, the chart, the flags and the newest ‖dL/dWₗ‖ per layer."""
        n = len(src.history)
        events = view.chart_events(src.events)
        chart = None if width is None else view.chart(src.history, series, width, None, events)
        flags = view.flags(src)
        live: dict[str, str] = {}
        if n:
            norms = src.history.view(n - 1, n).grad_norm[0]
            for l, v in enumerate(norms.tolist(), start=1):
                live[f"dL_dW{l}"] = f"now ‖{v:.3g}‖ it {n - 1}"
        return n, chart, flags, live

