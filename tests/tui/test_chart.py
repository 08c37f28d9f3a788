"""The plotext-drawn LineChart: any data, any size, a readable layout."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from tui_backprop.renderables.chart import LineChart, y_axis
from tui_backprop.view import Series


def _ticks(lines: list) -> list[tuple[int, str]]:
    return [(i, ln.plain.split("┤")[0].strip()) for i, ln in enumerate(lines)
            if "┤" in ln.plain]


values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=40, deadline=None)
@given(st.lists(values, min_size=2, max_size=60), st.integers(6, 60), st.integers(30, 300),
       st.booleans())
def test_any_series_keeps_the_layout(ys: list[float], height: int, width: int,
                                     log: bool) -> None:
    """NaN, Inf, zeros, huge and tiny values: exactly `height` rows (also past the size of
    the terminal running the tests), none wider than the chart, the tick rows evenly
    spaced with distinct labels."""
    y = np.array(ys)
    s = Series("m", np.arange(len(y), dtype=float), (("m", y), ("n", y[::-1].copy())), log,
               len(y) // 2, 0, ((1, "^"),))
    lines = LineChart(s).lines(width, height)
    assert len(lines) == height
    console = Console(width=1000)
    assert all(console.measure(ln).maximum <= width for ln in lines)
    if width >= 60:  # the plot spans the chart's width, not the (test) terminal's
        assert len(lines[-1].plain.rstrip()) >= width // 2
    ticks = _ticks(lines)
    assert len(ticks) >= 2 and len({t for _, t in ticks}) == len(ticks)
    rows = np.diff([i for i, _ in ticks])
    assert np.all(rows == rows[0])
    assert "^" in lines[1].plain or "x" in lines[1].plain or any(
        0x2800 <= ord(c) <= 0x28FF for c in lines[1].plain)  # the marker, unless data hides it


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e12, 1e12), st.floats(1e-6, 1e6), st.integers(2, 40), st.booleans())
def test_y_axis_holds_the_data_with_round_even_ticks(lo: float, span: float, rows: int,
                                                     log: bool) -> None:
    hi = lo + span * max(1.0, abs(lo)) * 1e-3  # well above float precision
    bottom, top, ticks = y_axis(lo, hi, rows, log)
    eps = 1e-9 * (hi - lo)
    assert bottom <= lo + eps and top >= hi - eps
    assert bottom <= ticks[0] and ticks[-1] <= top + eps and len(ticks) >= 2
    assert np.allclose(np.diff(ticks), ticks[1] - ticks[0])
    # each tick falls on a whole row of the axis
    pos = [(t - bottom) / (top - bottom) * (rows - 1) for t in ticks]
    assert all(abs(p - round(p)) < 1e-3 for p in pos)
    if log:
        assert all(t == math.floor(t) for t in ticks)  # whole powers of ten


def test_colour_only_when_asked_and_the_console_has_it() -> None:
    x = np.arange(30, dtype=float)
    s = Series("loss", x, (("loss", 1 / (1 + x)), ("b", x)), False, 10, 0, ((5, "↑"),))
    plain = Console(width=80, no_color=True, record=True, force_terminal=True)
    plain.print(LineChart(s, color=True))
    assert "\x1b[3" not in plain.export_text(styles=True)  # no colour escapes at all
    coloured = Console(width=80, color_system="256", record=True, force_terminal=True)
    coloured.print(LineChart(s, color=True))
    out = coloured.export_text(styles=True)
    assert "\x1b[3" in out or "\x1b[9" in out
    assert LineChart(s).lines(80, 8)[1].plain == LineChart(s, color=True).lines(80, 8)[1].plain
