"""How the main screen divides a terminal: pure arithmetic, no Textual.

80×24 (the smallest comfortable size): one row of two matrix panels — the
current op's output and one more that `v` cycles — with a 7-row loss chart.
From 90 columns a panel is added per 30 columns; from 32 rows the panels take
two rows, so 120×40 shows the output, the op's input and all of z1 h1 z2 h2
dL/dW2 dL/dW1 at once.  Below 60×16 nothing useful fits: a notice instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_WIDTH, MIN_HEIGHT = 60, 16
PANEL_WIDTH = 30  # 3 value columns of a heatmap, with border and row labels


@dataclass(frozen=True)
class Plan:
    too_small: bool
    cols: int = 2
    rows: int = 1
    card: int = 3  # op card lines
    flags: int = 2
    chart: int = 0  # chart height; 0 = hidden

    @property
    def slots(self) -> int:
        return self.cols * self.rows


def plan(width: int, height: int, panels: int, chart_on: bool = True) -> Plan:
    """The layout for a terminal of width × height showing up to `panels` matrices."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        return Plan(True)
    tall = height >= 32
    flags = 3 if tall else 2
    if not chart_on or height < 22:
        chart = 0
    elif not tall:
        chart = 7
    else:
        chart = max(8, min(16, height // 5))
    rows = 1 if not tall else (2 if height < 60 else 3)
    cols = max(2, min(8, width // PANEL_WIDTH))
    rows = max(1, min(rows, math.ceil(panels / cols)))
    cols = max(2, min(cols, math.ceil(panels / rows)))
    return Plan(False, cols, rows, 3, flags, chart)
