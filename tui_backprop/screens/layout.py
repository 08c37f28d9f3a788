"""How the main screen divides a terminal: pure arithmetic, no Textual.

Top to bottom: status line, op card, the op's factor panels (every input of
the current op and its output, side by side in formula order), the headline
overview (z_l, h_l, dL/dW_l: one line each, with mini heatmaps from 32 rows
and 100 columns), flags, chart, footer.  The chart takes 8 rows once the run
has 2 iterations (before that the rows go to the panels); the overview never
leaves the screen; the panels get what is left, at least `MIN_PANEL` rows.
Below 60×16 nothing useful fits: a notice instead.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_WIDTH, MIN_HEIGHT = 60, 16
MAX_SLOTS = 8  # factor panels at most (the widest op, a fused loss with penalty, has 7)
PANEL_WIDTH = 16  # narrowest factor panel: border, row labels, one value column
MIN_PANEL = 5  # a factor panel: border, column header, two rows
CHART = 8
TILE_HEAT = 2  # rows of mini heatmap under each overview line when there is room


@dataclass(frozen=True)
class Plan:
    too_small: bool
    cols: int = 2  # factor panels side by side
    rows: int = 1
    card: int = 2  # op card lines
    overview: int = 6  # overview rows
    tiles: bool = False  # overview entries with mini heatmaps, two per row
    flags: int = 1
    chart: int = 0  # chart height; 0 = hidden
    panels: int = 0  # rows for the factor panels

    @property
    def slots(self) -> int:
        return self.cols * self.rows


def plan(width: int, height: int, panels: int, chart_on: bool = True, entries: int = 6,
         chart_ready: bool = True) -> Plan:
    """The layout for width × height: `panels` factors, `entries` overview lines."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        return Plan(True)
    tall = height >= 32
    card = 3 if tall else 2
    flags = 3 if tall else (2 if height >= 28 else 1)
    cols = max(2, min(panels, width // PANEL_WIDTH, 8))
    two = width >= 124 and entries > 6  # deep nets on wide terminals: two columns of lines
    overview = -(-entries // 2) if two else entries
    tiles = tall and width >= 100
    if tiles:
        overview = -(-entries // 2) * (1 + TILE_HEAT)
    fixed = 1 + card + flags + 1  # status, card, flags, footer
    chart = 0
    if chart_on and chart_ready and height >= 22:
        chart = CHART if not tall else max(CHART, min(16, height // 5))
    rest = height - fixed - overview - chart
    if rest < MIN_PANEL and tiles:  # mini heatmaps go first
        tiles = False
        overview = -(-entries // 2) if two else entries
        rest = height - fixed - overview - chart
    if rest < MIN_PANEL and chart:  # then the chart shrinks, down to 5 rows
        chart = max(5, chart - (MIN_PANEL - rest))
        rest = height - fixed - overview - chart
    if rest < MIN_PANEL:  # then the overview gives up lines (it scrolls)
        overview = max(2, overview - (MIN_PANEL - rest))
        rest = height - fixed - overview - chart
    return Plan(False, cols, 1, card, overview, tiles, flags, chart, max(3, rest))
