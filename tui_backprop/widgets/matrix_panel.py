"""MatrixPanel: one Static-like box per matrix, with keyboard scrolling of big ones.

The panel repaints only when what it shows changes: `show()` compares the
view model's cache key (iteration, array, computed-or-pending) and returns
early otherwise, and heatmaps are built once per key in a shared LRU cache, so
stepping back and forth never recomputes statistics.
"""

from __future__ import annotations

from collections import OrderedDict

from rich.console import RenderableType
from textual.binding import Binding
from textual.widget import Widget

from tui_backprop.renderables.matrix import MatrixHeatmap, PendingMatrix, shape_text
from tui_backprop.view import PanelData


class HeatmapCache:
    """Heatmaps (with their whole-matrix statistics) by view-model cache key."""

    def __init__(self, size: int = 96) -> None:
        self.size = size
        self._items: OrderedDict[tuple, MatrixHeatmap] = OrderedDict()

    def get(self, data: PanelData) -> MatrixHeatmap:
        heat = self._items.get(data.cache_key)
        if heat is None:
            assert data.array is not None
            heat = self._items[data.cache_key] = MatrixHeatmap(data.array)
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(data.cache_key)
        return heat


class MatrixPanel(Widget, can_focus=True):
    """A bordered heatmap; arrows/pages scroll rows, [ and ] scroll columns when focused."""

    BINDINGS = [
        Binding("up,k", "scroll_rows(-1)", "row up", show=False),
        Binding("down,j", "scroll_rows(1)", "row down", show=False),
        Binding("pageup", "scroll_rows(-10000)", "page up", show=False),
        Binding("pagedown", "scroll_rows(10000)", "page down", show=False),
        Binding("home", "home", "top left", show=False),
        Binding("end", "end", "bottom", show=False),
        Binding("left_square_bracket,shift+left", "scroll_cols(-1)", "cols left", show=False),
        Binding("right_square_bracket,shift+right", "scroll_cols(1)", "cols right", show=False),
    ]

    def __init__(self, cache: HeatmapCache, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cache = cache
        self.data: PanelData | None = None
        self.heat: MatrixHeatmap | None = None
        self.row = self.col = 0

    def show(self, data: PanelData) -> None:
        """Display `data`; a no-op when its cache key is the one already shown."""
        if self.data is not None and data.cache_key == self.data.cache_key \
                and data.title == self.data.title:
            return
        self.data = data
        self.heat = None if data.array is None else self.cache.get(data)
        shown = data.array is not None or data.shape
        self.border_title = f"{data.title} {shape_text(data.shape)}" if shown else data.title
        self.set_class(data.array is None, "-pending")
        self._update_subtitle()
        self.refresh()

    def render(self) -> RenderableType:
        if self.data is None:
            return ""
        if self.heat is None:
            return PendingMatrix(self.data.note, self.data.shape)
        return self.heat.at(self.row, self.col)

    # ------------------------------------------------------------------ scrolling
    def _box(self) -> tuple[int, int]:
        size = self.content_size
        return max(1, size.width), max(1, size.height)

    def _move(self, row: int, col: int) -> None:
        if self.heat is None:
            return
        self.row, self.col = self.heat.at(row, col).clamp(*self._box())
        self._update_subtitle()
        self.refresh()

    def _update_subtitle(self) -> None:
        self.border_subtitle = f"r{self.row} c{self.col}" if (self.row or self.col) else ""

    def action_scroll_rows(self, delta: int) -> None:
        if self.heat is None:
            return
        _, rows, _ = self.heat.fit(*self._box())
        step = delta if abs(delta) < 10000 else (rows if delta > 0 else -rows)
        self._move(self.row + step, self.col)

    def action_scroll_cols(self, delta: int) -> None:
        if self.heat is None:
            return
        _, _, cols = self.heat.fit(*self._box())
        self._move(self.row, self.col + delta * cols)

    def action_home(self) -> None:
        self._move(0, 0)

    def action_end(self) -> None:
        self._move(1 << 40, self.col)
