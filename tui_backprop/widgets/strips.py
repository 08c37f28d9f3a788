"""The one-line-ish widgets: status line, op card and flags strip.

Each is a thin Widget over a renderable; `show()` ignores data equal to what is
already on screen, so a step repaints only the strips that changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import RenderableType
from rich.text import Text
from textual.geometry import Region
from textual.widget import Widget

from tui_backprop.overview import Entry
from tui_backprop.renderables.flags import FlagsStrip
from tui_backprop.renderables.opcard import OpCard
from tui_backprop.renderables.overview import OverviewLines
from tui_backprop.renderables.sparkline import spark_text
from tui_backprop.view import FlagLine, OpCardData, StatusData


class _Strip(Widget):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: Any = None

    def _changed(self, data: Any) -> bool:
        if data == self.data:
            return False
        self.data = data
        self.refresh()
        return True


class OpCardView(_Strip):
    def show(self, data: OpCardData) -> None:
        self._changed(data)

    def render(self) -> RenderableType:
        return OpCard(self.data) if self.data else ""


class OverviewView(_Strip):
    """The headline matrices; repaints only when an entry's summary, role or mark changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: tuple[Entry, ...] = ()
        self.tiles = False
        self.columns = 1

    def show(self, entries: tuple[Entry, ...], tiles: bool = False, columns: int = 1) -> None:
        """Repaint only the rows whose entry changed (a step changes two or three roles)."""
        keys = tuple((e.name, id(e.summary), e.role, e.from_iteration, e.live)
                     for e in entries)
        key = (keys, tiles, columns)
        if key == self.data:
            return
        old = self.data
        self.data = key
        self.entries, self.tiles, self.columns = entries, tiles, columns
        if old is None or old[1:] != key[1:] or len(old[0]) != len(keys):
            self.refresh()
            return
        cols = 2 if tiles else columns
        per = 3 if tiles else 1  # rows per entry group: the line, then its heatmap rows
        width = self.size.width
        regions = []
        for i, (a, b) in enumerate(zip(old[0], keys, strict=True)):
            if a != b:
                heat_same = a[1] == b[1]  # same summary: the mini heatmap did not change
                rows = 1 if heat_same else per
                regions.append(Region(0, (i // cols) * per, width, rows))
        if regions:
            self.refresh(*regions)

    def render(self) -> RenderableType:
        return OverviewLines(self.entries, self.tiles, columns=self.columns)


class FlagsView(_Strip):
    def show(self, lines: list[FlagLine], scanned: int) -> None:
        self._changed((tuple(lines), scanned))

    def render(self) -> RenderableType:
        if self.data is None:
            return ""
        lines, scanned = self.data
        return FlagsStrip(list(lines), scanned)


class StatusLine(_Strip):
    """Where the cursor is; while a worker runs, its progress and speed instead."""

    def show(self, data: StatusData, loss: np.ndarray | None = None, note: str = "",
             running: str = "", acc: np.ndarray | None = None) -> None:
        if loss is not None:  # the loss *at the cursor*, not ahead; none before iteration 0
            loss = loss[: max(0, data.iteration + 1)]
        tail = None if loss is None else (len(loss), float(loss[-1]) if len(loss) else 0.0)
        a = None
        if acc is not None and data.iteration >= 0 and len(acc) > data.iteration:
            a = float(acc[data.iteration])
        if self._changed((data, tail, note, running, a)):
            self._loss = loss

    def render(self) -> RenderableType:
        if self.data is None:
            return ""
        d, tail, note, running, acc = self.data
        width = self.size.width or 80
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {d.label} ", "reverse")
        if running:
            t.append(f" {running}", "bold")
            return t
        it = "init" if d.iteration < 0 else f"it {d.iteration}"
        phase = f"{d.phase} │ " if width >= 100 else ""  # the op card's badge has it too
        t.append(f" {it} │ {phase}op {d.index + 1}/{d.count} {d.op} │ ")
        if note:  # before the loss: at 80 columns the tail is what gets cut
            t.append(note, "bold")
            t.append(" │ ")
        if tail and tail[0]:  # the most telling parts first, each only if it fits whole
            parts = [Text(f"loss {tail[1]:.4g}")]
            if acc is not None:
                parts.append(Text(f" acc {acc:.3g}"))
            spark = Text(" ")
            spark.append_text(spark_text(self._loss[-240:], 12))
            parts += [spark, Text(f" │ history {d.frontier}")]
            for part in parts:
                if t.cell_len + part.cell_len > width:
                    break
                t.append_text(part)
        return t
