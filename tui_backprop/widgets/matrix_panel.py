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
from textual.message import Message
from textual.widget import Widget

from tui_backprop.investigate import cell_index, idx_text
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
    """A bordered heatmap; arrows/pages scroll rows, [ and ] scroll columns when focused.

    Enter toggles a cell cursor for the drill-down: then the arrows, pages, [ ]
    and home/end move the cursor (the view scrolls to keep it visible) and escape
    leaves.  Cursor moves are posted as `CursorMoved`; the screen explains the cell.
    """

    class CursorMoved(Message):
        """The cell cursor moved, appeared, or left (`cell` None)."""

        def __init__(self, panel: MatrixPanel, cell: tuple[int, int] | None) -> None:
            super().__init__()
            self.panel, self.cell = panel, cell

    BINDINGS = [
        Binding("up,k", "scroll_rows(-1)", "row up", show=False),
        Binding("down,j", "scroll_rows(1)", "row down", show=False),
        Binding("pageup", "scroll_rows(-10000)", "page up", show=False),
        Binding("pagedown", "scroll_rows(10000)", "page down", show=False),
        Binding("home", "home", "top left", show=False),
        Binding("end", "end", "bottom", show=False),
        Binding("left_square_bracket,shift+left", "scroll_cols(-1)", "cols left", show=False),
        Binding("right_square_bracket,shift+right", "scroll_cols(1)", "cols right", show=False),
        Binding("enter", "toggle_cursor", "cell cursor", show=False),
        Binding("left", "cursor_cols(-1)", "cell left", show=False),
        Binding("right", "cursor_cols(1)", "cell right", show=False),
        Binding("escape", "leave_cursor", "leave cell cursor", show=False),
    ]

    def __init__(self, cache: HeatmapCache, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cache = cache
        self.data: PanelData | None = None
        self.heat: MatrixHeatmap | None = None
        self.row = self.col = 0
        self.cursor: tuple[int, int] | None = None  # (row, col) in the 2-D view
        self.mark: tuple[str, int, int] | None = None  # what the output's cursor cell reads

    def show(self, data: PanelData) -> None:
        """Display `data`; a no-op when its cache key is the one already shown."""
        if self.data is not None and data.cache_key == self.data.cache_key \
                and data.title == self.data.title:
            return
        self.data = data
        self.mark = None
        self.heat = None if data.array is None else self.cache.get(data)
        shown = data.array is not None or data.shape
        self.border_title = f"{data.title} {shape_text(data.shape)}" if shown else data.title
        self.set_class(data.array is None, "-pending")
        if self.cursor is not None:  # a new array under the cursor: keep the cell if it exists
            self.cursor = None if self.heat is None else self._clamp_cell(*self.cursor)
        self._update_subtitle()
        self.refresh()

    def render(self) -> RenderableType:
        if self.data is None:
            return ""
        if self.heat is None:
            return PendingMatrix(self.data.note, self.data.shape)
        return self.heat.at(self.row, self.col, self.cursor, self.mark)

    def set_mark(self, mark: tuple[str, int, int] | None) -> None:
        """Highlight the row / column / cell the output's cursor element reads; scroll to it."""
        if mark == self.mark:
            return
        self.mark = mark
        if mark is not None and self.heat is not None:
            kind, a, b = mark
            rows, cols = self.heat.grid.shape
            _, vis_r, vis_c = self.heat.fit(*self._box())
            row, col = self.row, self.col
            if kind in ("row", "cell") and a < rows and not row <= a < row + vis_r:
                row = max(0, a - vis_r // 2)
            c = a if kind == "col" else b
            if kind in ("col", "cell") and c < cols and not col <= c < col + vis_c:
                col = max(0, c - vis_c + 1)
            self.row, self.col = self.heat.at(row, col).clamp(*self._box())
            self._update_subtitle()
        self.refresh()

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
        if self.cursor is not None and self.data is not None:
            r, c = self.cursor
            self.border_subtitle = f"▸ {idx_text(cell_index(self.data.shape, r, c))} · esc"
            return
        self.border_subtitle = f"r{self.row} c{self.col}" if (self.row or self.col) else ""

    def action_scroll_rows(self, delta: int) -> None:
        if self.heat is None:
            return
        _, rows, _ = self.heat.fit(*self._box())
        step = delta if abs(delta) < 10000 else (rows if delta > 0 else -rows)
        if self.cursor is not None:
            self.set_cursor(self.cursor[0] + step, self.cursor[1])
            return
        self._move(self.row + step, self.col)

    def action_scroll_cols(self, delta: int) -> None:
        if self.heat is None:
            return
        _, _, cols = self.heat.fit(*self._box())
        if self.cursor is not None:
            self.set_cursor(self.cursor[0], self.cursor[1] + delta * cols)
            return
        self._move(self.row, self.col + delta * cols)

    def action_home(self) -> None:
        if self.cursor is not None:
            self.set_cursor(0, 0)
            return
        self._move(0, 0)

    def action_end(self) -> None:
        if self.cursor is not None:
            self.set_cursor(1 << 40, self.cursor[1])
            return
        self._move(1 << 40, self.col)

    # ------------------------------------------------------------------ cell cursor
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Without a cursor, ← → and escape fall through to the screen (step, back, pause)."""
        if action in ("cursor_cols", "leave_cursor"):
            return self.cursor is not None
        return True

    def _clamp_cell(self, row: int, col: int) -> tuple[int, int]:
        assert self.heat is not None
        rows, cols = self.heat.grid.shape
        return max(0, min(row, rows - 1)), max(0, min(col, cols - 1))

    def set_cursor(self, row: int, col: int) -> None:
        """Put the cursor on a cell (clamped), scroll it into view and tell the screen."""
        if self.heat is None:
            self.app.bell()
            return
        self.cursor = r, c = self._clamp_cell(row, col)
        _, vis_r, vis_c = self.heat.fit(*self._box())
        top = max(min(self.row, r), r - vis_r + 1)
        left = max(min(self.col, c), c - vis_c + 1)
        self._move(top, left)
        self.post_message(self.CursorMoved(self, self.cursor))

    def clear_cursor(self, notify: bool = True) -> None:
        if self.cursor is None:
            return
        self.cursor = None
        self._update_subtitle()
        self.refresh()
        if notify:
            self.post_message(self.CursorMoved(self, None))

    def action_toggle_cursor(self) -> None:
        if self.cursor is not None:
            self.clear_cursor()
        else:  # start on the first visible cell
            self.set_cursor(self.row, self.col)

    def action_cursor_cols(self, delta: int) -> None:
        if self.cursor is not None:
            self.set_cursor(self.cursor[0], self.cursor[1] + delta)

    def action_leave_cursor(self) -> None:
        self.clear_cursor()
