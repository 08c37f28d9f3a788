"""Investigation tools in the TUI: drill-down, gradcheck, decision boundary, diagram.

Renderables are printed to a Console; the keys are driven with Textual's pilot
at 80×24 and 120×40 and checked by what the screen shows.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from rich.console import Console
from tui_support import NAN_CONFIG, make_app, screen_text

from core.engine.stepper import Stepper
from core.inspect.explain import num
from core.model.config import Config
from core.model.datasets import Dataset
from core.model.presets import preset_config
from tui_backprop import investigate as inv
from tui_backprop import view
from tui_backprop.app import BackpropApp
from tui_backprop.renderables.diagram import NetworkDiagram
from tui_backprop.renderables.drill import DrillDown
from tui_backprop.renderables.gradcheck import GradcheckReport
from tui_backprop.screens import MainScreen
from tui_backprop.screens.gradcheck import GradcheckScreen
from tui_backprop.widgets import MatrixPanel
from tui_backprop.widgets.tools import BoundaryView, DrillPane


def render(renderable, width: int = 80, height: int = 12) -> str:
    console = Console(record=True, width=width, height=height, color_system=None,
                      file=io.StringIO())
    console.print(renderable, height=height)
    return console.export_text()


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


# --------------------------------------------------------------------------- renderables
def test_drill_down_keeps_the_numbers_and_the_value_when_short() -> None:
    s = Stepper(preset_config("xor-3"))
    s.jump(2, "dL/dW1")
    data = inv.drill(s, view.panel(s, view.OUT, "output"), (1, 2), 2)
    value = num(float(s.frame.value("dL_dW1")[1, 2]), 6)
    tall = render(DrillDown(data), 80, 12)
    assert "dL/dW1[1,2] = Σₙ X[n,1]·dL/dz1[n,2]" in tall and "(298 more terms)" in tall
    assert f"= {value}" in tall and "N = 300 rows" in tall
    short = render(DrillDown(data), 80, 4).rstrip("\n").split("\n")
    assert len(short) == 4 and short[-1].strip() == f"= {value}"
    assert short[2].lstrip().startswith("= (−1.305)·")  # the numbers outlive the Σ form


def test_diagram_lights_the_ops_arrays() -> None:
    s = Stepper(preset_config("xor-3"))
    s.jump(5, "dL/dW1")
    out = render(NetworkDiagram(inv.diagram(s)), 80, 16)
    assert "▶ dL/dW1 ← • X, • dL/dz1" in out
    assert "▶ dL/dW1" in out.split("\n", 2)[2] and "• dL/dz1" in out and "• X" in out
    assert "X · 2" in out and "h1 · 3" in out and "W2 3×2" in out
    assert "gradient flow, it 0–5: " in out and "W1  ‖∇‖ " in out  # the short head at 80
    assert "sat — (output layer)" in out


def test_diagram_of_a_deep_wide_net_fits_80_columns() -> None:
    ds = Dataset("wide", np.random.default_rng(0).standard_normal((64, 784)),
                 np.arange(64) % 10, 10)
    s = Stepper(Config(hidden=(50, 50, 50), bias=True, dataset="wide"), data=ds)
    s.jump(3, "dL/dW3")
    out = render(NetworkDiagram(inv.diagram(s)), 80, 20)
    assert all(len(line) <= 80 for line in out.split("\n"))
    assert "▶ dL/dW3" in out and "• dL/dz3" in out and "• h2" in out
    assert out.count("‖∇‖ ") == 4  # a flow line per weight layer


def test_gradcheck_report_in_words() -> None:
    fail = inv.GradcheckData("t", "", False, 0.3, 1e-5, "W1[0,0]", 6, 6, 0, 1e-5,
                             np.full((2, 3), 0.3), (("[0,0]", 1.0, 0.5, 0.3),))
    out = render(GradcheckReport(fail), 80, 16)
    assert "FAIL ✗" in out and "3.00e-01 > threshold 1e-05" in out and "[0,0]" in out
    sampled = np.full((2, 3), np.nan)
    sampled[0, 1] = 2e-9  # one entry checked, five not sampled
    part = inv.GradcheckData("t", "", True, 2e-9, 1e-5, "W1[0,1]", 1, 6, 0, 1e-5, sampled,
                             (("[0,1]", 1.0, 1.0, 2e-9),))
    out = render(GradcheckReport(part), 80, 16)
    assert "not sampled" in out and "NaN" not in out and "✗" not in out.split("FAIL")[0]
    na = render(GradcheckReport(inv.GradcheckData("t", "not applicable: z1 (forward)")))
    assert "not applicable: z1 (forward)" in na


# --------------------------------------------------------------------------- pilot
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_enter_drills_into_a_cell_and_escape_leaves(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.press("n", "n", "n", "enter")  # h1 of iteration 0, output panel
        h1 = app.screen.source.frame.value("h1")
        text = screen_text(app)
        assert "h1[0,0] = σ(z1[0,0])" in text and f"= {num(float(h1[0, 0]), 6)}" in text
        assert "▸" in text and "◂" in text
        await pilot.press("down", "right")
        text = screen_text(app)
        assert "h1[1,1] = σ(z1[1,1])" in text and f"= {num(float(h1[1, 1]), 6)}" in text
        assert app.screen.source.index == 1  # → moved the cell, not the op
        await pilot.press("n")  # a step re-explains the same cell of the new output
        assert "z2[1,1]" in screen_text(app) and "h1[1,0]·W2[0,1] + " in screen_text(app)
        await pilot.press("escape")
        assert not app.screen.query_one(DrillPane).display
        await pilot.press("right")  # without a cursor → steps again
        assert app.screen.source.op.name == "h2"


async def test_the_cursor_scrolls_the_panel_to_stay_visible() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "n", "n", "enter", "pagedown", "pagedown", "down")
        panel = next(p for p in app.screen.query(MatrixPanel) if p.cursor is not None)
        assert panel.data.output
        r, _ = panel.cursor
        assert r > 2 and panel.row <= r and panel.row > 0  # two pages of a 2-row panel
        assert f"h1[{r},0] = σ(z1[{r},0])" in screen_text(app)
        await pilot.press("end")
        assert panel.cursor[0] == 299 and "h1[299,0]" in screen_text(app)


async def test_drill_shows_where_a_nan_came_from() -> None:
    ref = Stepper(NAN_CONFIG)  # where the first NaN appears depends on the CPU's rounding
    nan = ref.run_until(lambda evs: next((e for e in evs if e.kind == "nan"), None))
    assert nan is not None and nan.op == "z2"
    at = nan.iteration
    app = make_app(NAN_CONFIG)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g", *str(at), "enter")
        await settle(pilot)
        app.screen.source.jump(at, "dL/dW1")
        app.screen.refresh_view()
        await pilot.press("enter")
        text = screen_text(app)
        assert "why: dL/dW1[0,0] = NaN ← X[0,0]·dL/dz1[0,0]" in text and "= NaN" in text
        assert "← dL/dz1[0,0] = NaN ← dL/dh1[0,0] = NaN ← " in text  # the chain, one line
        assert "← z2[0,0] = inf ← h1[0,0]·W2[0,0]" in text
        assert "z2 made it from finite inputs" in text
        assert f"first NaN/Inf of iteration {at}: z2" in text


async def test_gradcheck_passes_on_xor3_and_refuses_a_forward_op() -> None:
    app = make_app(preset_config("xor-3"))
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.source.jump(3, "dL/dW1")
        app.screen.refresh_view()
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, GradcheckScreen)
        text = screen_text(app)
        assert "PASS ✓" in text and "threshold 1e-05" in text
        assert "checked 6 of 6 entries" in text and "W1[" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("i", "f")  # z1 of iteration 4
        await settle(pilot)
        assert "not applicable: z1 (forward)" in screen_text(app)


async def test_boundary_view_follows_the_iteration() -> None:
    app = make_app(preset_config("xor-3"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i", "o")
        text = screen_text(app)
        assert "colour = prediction, digits = points (true class)" in text
        assert "start of it 0 · acc " in text
        view_ = app.screen.query_one(BoundaryView)
        assert view_.display and not app.screen.query_one("#panels").display
        lines = text.split("\n")[view_.region.y:view_.region.bottom]
        assert sum(line.count("0") + line.count("1") for line in lines) > 100  # the points
        await pilot.press("i", "i")
        assert "start of it 2 · acc " in screen_text(app)
        await pilot.press("o")
        assert app.screen.query_one("#panels").display and not view_.display


async def test_boundary_without_colour_uses_glyphs() -> None:
    os.environ["NO_COLOR"] = "1"
    try:
        app = make_app(preset_config("xor-3"))
    finally:
        del os.environ["NO_COLOR"]
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.source.jump(400, 0)
        app.screen.refresh_view()
        await pilot.press("o")
        text = screen_text(app)
        assert "[ ]0 [█]1 start of it 400 · acc " in text and "fill = predicted" in text
        assert "▀" in text or "▄" in text  # half-block pixels without colour


async def test_boundary_says_when_inputs_are_not_2d() -> None:
    ds = Dataset("digits", np.random.default_rng(0).standard_normal((32, 784)),
                 np.arange(32) % 10, 10)
    app = BackpropApp(Stepper(Config(hidden=(16,), dataset="digits"), data=ds), label="t")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        assert "decision boundary needs 2-D inputs; this dataset has 784" in screen_text(app)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_diagram_view_highlights_the_current_op(size: tuple[int, int]) -> None:
    app = make_app(preset_config("xor-3"))
    async with app.run_test(size=size) as pilot:
        app.screen.source.jump(2, "dL/dW1")
        app.screen.refresh_view()
        await pilot.press("w")
        text = screen_text(app)
        assert "▶ dL/dW1 ← • X, • dL/dz1" in text and "gradient flow" in text
        await pilot.press("n")  # dL/db1
        assert "▶ dL/db1 ← • dL/dz1" in screen_text(app)
        await pilot.press("escape")
        assert app.screen.query_one("#panels").display
