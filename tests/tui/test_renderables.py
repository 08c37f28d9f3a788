"""Pure-Rich renderables and the view model, printed to a recording Console."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rich.console import Console

from core.engine.stepper import Stepper
from core.model.config import Config
from tui_backprop import view
from tui_backprop.renderables.flags import FlagsStrip
from tui_backprop.renderables.matrix import MatrixHeatmap, PendingMatrix, fmt_value
from tui_backprop.renderables.opcard import OpCard
from tui_backprop.renderables.sparkline import spark_text
from tui_backprop.screens.layout import plan


def render(renderable, width: int = 40, height: int = 12, color: str | None = None) -> str:
    console = Console(record=True, width=width, height=height, color_system=color,
                      force_terminal=color is not None, file=open("/dev/null", "w"))
    console.print(renderable, height=height)
    return console.export_text()


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_values_always_take_six_characters_and_keep_their_sign(v: float) -> None:
    text = fmt_value(v)
    assert len(text) == 6
    if math.isfinite(v) and v != 0:
        assert ("+" if v > 0 else "-") in text


def test_nan_and_inf_are_marked_without_colour() -> None:
    a = np.array([[1.0, np.nan], [-np.inf, np.inf]])
    out = render(MatrixHeatmap(a))
    assert "✗   NaN" in out and "▲  +Inf" in out and "▼  -Inf" in out
    assert "✗1 NaN" in out and "▲1 +Inf" in out and "▼1 -Inf" in out  # header counts
    assert "+1.000" in out


def test_signs_and_magnitude_glyphs_survive_without_colour() -> None:
    out = render(MatrixHeatmap(np.array([[-2.0, -0.3, 0.0, 1.0]])), width=50)
    assert "█-2.000" in out and " -0.300" in out and "     0" in out and "▒+1.000" in out


def test_colour_terminals_get_a_diverging_background() -> None:
    a = np.array([[-1.0, 1.0]])
    console = Console(record=True, width=40, color_system="truecolor", force_terminal=True,
                      file=open("/dev/null", "w"))
    console.print(MatrixHeatmap(a))
    styles = {str(seg.style) for seg in console._record_buffer if seg.style}
    assert any("on #4a90d9" in s for s in styles) and any("on #d94a4a" in s for s in styles)
    console16 = Console(record=True, width=40, color_system="standard", force_terminal=True,
                        file=open("/dev/null", "w"))
    console16.print(MatrixHeatmap(a))
    styles16 = {str(seg.style) for seg in console16._record_buffer if seg.style}
    assert "bright_white on blue" in styles16 and "bright_white on red" in styles16


def test_large_matrices_show_a_window_with_markers() -> None:
    a = np.arange(1000 * 600, dtype=float).reshape(1000, 600)
    out = render(MatrixHeatmap(a), width=40, height=10)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) <= 10
    assert "more rows ↓" in lines[-1] and "more cols →" in lines[-1]
    moved = render(MatrixHeatmap(a, row=500, col=300), width=40, height=10)
    assert "↑500" in moved and "←300" in moved
    assert "\n500 " in moved


def test_offsets_are_clamped_to_the_matrix() -> None:
    heat = MatrixHeatmap(np.zeros((20, 3)), row=10**6, col=10**6)
    row, col = heat.clamp(40, 10)
    assert 0 < row < 20 and col == 0


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=30),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       st.integers(20, 120), st.integers(3, 30))
def test_any_array_renders_inside_its_box(a: np.ndarray, width: int, height: int) -> None:
    out = render(MatrixHeatmap(a), width=width, height=height)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines)


def test_pending_shows_the_note_and_shape() -> None:
    out = render(PendingMatrix("· not computed yet ·", (300, 3)), height=5)
    assert "· not computed yet ·" in out and "(300×3)" in out


def test_sparkline_marks_nan_and_fits_width() -> None:
    t = spark_text(np.array([0.0, 1.0, np.nan, 2.0] * 50), 10)
    assert len(t.plain) == 10 and "✗" in t.plain


def test_op_card_and_flags_fit_their_box() -> None:
    s = Stepper(Config())
    s.jump(0, "dL/dW1")
    out = render(OpCard(view.op_card(s)), width=80, height=3)
    assert "dL/dW1 = Xᵀ·dL/dz1" in out and "in: Xᵀ 2×300 dL/dz1 300×3  →  dL/dW1 2×3" in out
    assert "[backward]" in out and "[dL/dW1]" in out
    flags = [view.FlagLine("spike", i, "L", "loss jumped", 1, False) for i in range(6)]
    out = render(FlagsStrip(flags, 100), width=60, height=3)
    assert out.count("^ spike") == 2 and "+4 more: spike" in out


def test_downsampling_keeps_spikes_in_place() -> None:
    y = np.zeros(100_000)
    y[73_123] = 50.0
    y[10] = -7.0
    x, yd = view.downsample(y, 60)
    assert len(yd) <= 120 and yd.max() == 50.0 and yd.min() == -7.0
    assert abs(x[np.argmax(yd)] - 73_123) < 100_000 / 60


def test_panels_after_the_cursor_are_pending() -> None:
    s = Stepper(Config())
    assert view.panel(s, "z1", "z1").note == "· iteration 0 not started ·"
    s.jump(0, "h1")
    assert view.panel(s, "z1", "z1").array is not None
    later = view.panel(s, "dL_dW1", "dL/dW1")
    assert later.pending and later.array is None and later.shape == (2, 3)
    assert view.panel(s, view.IN, "input").title == "z1 (input)"


def test_layout_plans() -> None:
    assert plan(59, 30, 8).too_small and plan(100, 15, 8).too_small
    small = plan(80, 24, 8)
    # 80×24: status, 2 card lines, 6 overview lines, 1 flag line, 8 chart rows, footer
    assert (small.card, small.overview, small.flags, small.chart) == (2, 6, 1, 8)
    assert small.panels == 24 - 1 - 2 - 6 - 1 - 8 - 1 and small.cols == 5
    assert plan(80, 24, 8, chart_ready=False).chart == 0  # before 2 iterations
    assert plan(60, 16, 8).chart == 0 and not plan(60, 16, 8).too_small
    big = plan(120, 40, 8)
    assert big.tiles and big.chart >= 8 and big.panels >= 5
    assert plan(80, 24, 8, chart_on=False).chart == 0
    deep = plan(80, 24, 8, entries=9)  # 2-5-4-2: nine lines still fit, the chart gives way
    assert deep.overview == 9 and deep.panels >= 5 and deep.chart >= 5


def test_a_tiny_heatmap_keeps_its_unit() -> None:
    """Without room for the statistics line, the ×1e-3 unit moves to the column header."""
    heat = MatrixHeatmap(np.array([[-0.005767, -0.000175]]))
    out = render(heat, width=30, height=3)
    assert "×1e-3" in out and "-5.767" in out
