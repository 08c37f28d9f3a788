"""Widgets of the investigation tools: drill-down pane, decision boundary, network diagram.

Thin wrappers over the pure-Rich renderables.  `show()` ignores data equal to
what is on screen.  The boundary is drawn at whatever size the widget has:
it keeps the captured `BoundarySpec` and classifies its grid in `render()`,
once per (spec, size), so a resize or a step re-draws it and nothing else does.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from tui_backprop.investigate import BoundarySpec, DiagramData, boundary_at
from tui_backprop.renderables.boundary import DecisionBoundary
from tui_backprop.renderables.diagram import NetworkDiagram
from tui_backprop.renderables.drill import DrillDown
from tui_backprop.renderables.sample import SampleCard
from tui_backprop.sample import SampleData


class _Shown(Widget):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: Any = None

    def show(self, data: Any) -> None:
        if data is not self.data:
            self.data = data
            self.refresh()


class DrillPane(_Shown):
    """The selected cell's computation, below the panels while a cell cursor is on."""

    def render(self) -> RenderableType:
        return DrillDown(self.data)


class DiagramView(_Shown):
    """The network diagram with the current op lit, in place of the panels (w)."""

    def render(self) -> RenderableType:
        return NetworkDiagram(self.data) if isinstance(self.data, DiagramData) else ""


class BoundaryView(_Shown):
    """The decision boundary, in place of the panels (o), re-drawn per iteration and size."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[tuple, RenderableType] | None = None

    def render(self) -> RenderableType:
        spec: BoundarySpec | None = self.data
        if spec is None:
            return ""
        w, h = self.content_size
        key = (spec.key, w, h, self.app.no_color)
        if self._drawn is None or self._drawn[0] != key:
            picture = boundary_at(spec, 2 * max(1, h - 1), max(1, w))
            drawn: RenderableType = (Text(picture, style="bold") if isinstance(picture, str)
                                     else DecisionBoundary(picture, mono=self.app.no_color,
                                                           caption=spec.caption))
            self._drawn = (key, drawn)
        return self._drawn[1]


class SampleView(_Shown):
    """One row of the batch through the network, in place of the panels (e)."""

    def render(self) -> RenderableType:
        return SampleCard(self.data) if isinstance(self.data, SampleData) else ""
