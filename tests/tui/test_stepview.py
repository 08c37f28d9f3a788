"""The step view as the article's figure: every factor of the op, the overview, the marks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tui_support import make_app, screen_text

from core.model.config import Config
from tui_backprop.widgets import MatrixPanel


def _display(frame, key: str) -> str:
    """How the engine names an array it reads: an op's display name, else its key."""
    for op in frame.ops:
        if op.key == key:
            return op.name
    return {"labels": "y"}.get(key, key)


def _panels(app) -> list[MatrixPanel]:
    return [p for p in app.screen.query(MatrixPanel) if p.display]


@pytest.mark.parametrize("cfg", [Config(hidden=(3,), bias=True),
                                 Config(hidden=(5, 4), loss="ce", activation="relu",
                                        reg=0.1, batch_size=8)],
                         ids=["2-3-2", "2-5-4-2"])
async def test_every_input_of_every_op_is_on_screen_with_its_role(cfg: Config) -> None:
    app = make_app(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i")  # iteration 0, op 0
        src = app.screen.source
        count = len(src.ops)
        for _ in range(count):
            frame, op = src.frame, src.op
            titles = [p.border_title for p in _panels(app)]
            roles = [t.split()[0] if not t.startswith("= ") else t.split()[1] for t in titles]
            for key in op.inputs:
                name = _display(frame, key)
                if key == f"z{src.program.depth}" and op.name == "L":
                    continue  # the fused CE loss names h and y; z is its kernel's detail
                assert name in roles or f"{name}ᵀ" in roles, (op.name, name, titles)
            for name in re.findall(r"(\S+?)ᵀ·", op.formula):  # transposed factors are named so
                assert f"{name}ᵀ" in roles, (op.name, titles)
            assert titles[-1].startswith("= ")  # the output comes last, after its factors
            # each panel shows the frame's own array (transposed for a ᵀ role)
            for panel in _panels(app):
                d = panel.data
                if d.array is None or not d.key:
                    continue
                want = frame.value(d.key)
                want = want.T if d.transposed else want
                if d.output:
                    want = frame.outputs[src.index]
                assert np.array_equal(d.array, want, equal_nan=True), (op.name, d.title)
            await pilot.press("n")


async def test_update_ops_show_w_grad_eta_and_delta() -> None:
    cfg = Config(hidden=(3,), lr_decay=0.01)
    app = make_app(cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i", "i")  # iteration 1
        src = app.screen.source
        while not src.op.name.startswith("update W2"):
            await pilot.press("n")
        text = screen_text(app)
        lr = cfg.lr / (1 + cfg.lr_decay * 1)
        assert f"η = {lr:.4g}" in text
        titles = [p.border_title.split()[0] for p in _panels(app)]
        assert titles[:3] == ["W2", "dL/dW2", "ΔW2"]
        delta = next(p for p in _panels(app) if p.border_title.startswith("ΔW2")).data.array
        new = src.frame.outputs[src.index]
        grad = src.frame.value("dL_dW2")
        assert np.allclose(delta, -lr * grad, rtol=1e-9, atol=1e-15)
        assert np.allclose(new - src.frame.params["W2"], delta)


async def test_scalars_of_the_op_are_printed_in_the_card() -> None:
    app = make_app(Config(hidden=(3,), reg=0.2, clip=0.5))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i")
        src = app.screen.source
        while src.op.name != "dL/dW2":
            await pilot.press("n")
        text = screen_text(app)
        assert "λ = 0.2" in text and f"N = {src.program.n}" in text
        while not src.op.name.startswith("clip"):
            await pilot.press("n")
        norms = src.frame.value("grad_norm")
        total = float(np.sqrt(np.sum(norms ** 2)))
        assert f"‖g‖ = {total:.4g}" in screen_text(app)
        assert f"factor = {min(1.0, 0.5 / total):.4g}" in screen_text(app)


async def test_the_output_cursor_marks_the_row_and_column_it_reads() -> None:
    app = make_app(Config(hidden=(3,)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i")
        src = app.screen.source
        while src.op.name != "dL/dW2":
            await pilot.press("n")
        await pilot.press("enter", "down", "right")  # cell (1, 1) of dL/dW2
        panels = _panels(app)
        out = next(p for p in panels if p.data.output)
        assert out.cursor == (1, 1)
        marks = {p.border_title.split()[0]: p.mark for p in panels if p is not out}
        assert marks == {"h1ᵀ": ("row", 1, 0), "dL/dz2": ("col", 1, 0)}
        # the marked row times the marked column is the element: the marks are the right ones
        h1t = next(p for p in panels if p.border_title.startswith("h1ᵀ")).data.array
        g = next(p for p in panels if p.border_title.startswith("dL/dz2")).data.array
        dw = src.frame.outputs[src.index]
        assert np.isclose(h1t[1] @ g[:, 1], dw[1, 1], rtol=1e-12)
        text = screen_text(app)
        assert "1▶" in text and "▼1" in text  # visible without colour
        await pilot.press("n")  # next op (dL/dh1 = dL/dz2·W2ᵀ): the cursor follows the output
        panels = _panels(app)
        out = next(p for p in panels if p.data.output)
        assert out.cursor == (1, 1)
        marks = {p.border_title.split()[0]: p.mark for p in panels if p is not out}
        assert marks == {"dL/dz2": ("row", 1, 0), "W2ᵀ": ("col", 1, 0)}


async def test_overview_marks_reads_writes_and_previous_iteration_values() -> None:
    app = make_app(Config(hidden=(3,)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i", "i", "n")  # h1 of iteration 1
        src = app.screen.source
        lines = screen_text(app).split("\n")
        row = {ln[4:11].strip(): ln for ln in lines if ln[4:11].strip() in
               ("z1", "h1", "z2", "h2", "dL/dW2", "dL/dW1")}
        assert len(row) == 6
        assert row["h1"].startswith("out") and row["z1"].startswith(" in")
        assert row["z2"][3] == "↶" and row["dL/dW1"][3] == "↶"  # iteration 0's values
        assert row["h1"][3] == " "
        # the norms shown are the arrays' own: this iteration's h1, the previous one's z2
        h1 = src.frame.value("h1")
        assert f"‖{float(np.linalg.norm(h1)):.3g}‖" in row["h1"]
        src.jump(0, "z2")
        z2_prev = src.frame.value("z2")
        assert f"‖{float(np.linalg.norm(z2_prev)):.3g}‖" in row["z2"]


async def test_nothing_is_clipped_at_80_columns_on_the_main_screen() -> None:
    """The right edge: no line of the step view is cut by an ellipsis at 80 columns."""
    app = make_app(Config(hidden=(3,), reg=0.1, lr_decay=0.001))
    async with app.run_test(size=(80, 24)) as pilot:
        for keys in (["i", "i"], ["p"], ["p"], ["p"], ["n"] * 3):
            await pilot.press(*keys)
            for line in screen_text(app).split("\n"):
                assert not line.rstrip().endswith("…"), line


async def test_sample_view_shows_the_batch_row_and_its_share_of_dl_dw() -> None:
    from tui_backprop.renderables.matrix import fmt_value
    from tui_backprop.sample import sample
    from tui_backprop.widgets.tools import SampleView

    app = make_app(Config(hidden=(3,)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i", "i", "p", "p", "p")  # update phase of iteration 1
        await pilot.press("e", "7", "enter")
        await pilot.pause()
        src = app.screen.source
        view = app.screen.query_one(SampleView)
        assert view.display and view.data.n == 7
        text = screen_text(app)
        frame = src.frame
        x = frame.batch["X"][7]
        assert "x[n]      [" + " ".join(fmt_value(float(v)) for v in x) + "]" in text
        for row in view.data.forward:  # every vector is that row of the frame's array
            key = {"x": "X", "y": "y"}.get(row.name, row.name)
            assert np.array_equal(row.values, frame.value(key)[7])
        # the row's outer products over the whole batch sum to the batch gradient
        total = sum(sample(src, n).contributions[0].own
                    for n in range(frame.batch["X"].shape[0]))
        assert np.allclose(total, frame.value("dL_dW2"), rtol=1e-10, atol=1e-15)
        await pilot.press("escape")
        assert not view.display


def test_chart_ticks_are_even_round_steps_and_series_differ_without_colour() -> None:
    from rich.console import Console

    from tui_backprop import view
    from tui_backprop.renderables.chart import LineChart

    class H:  # a history of two layers' gradient norms and a loss with a bump at 60
        def __init__(self) -> None:
            x = np.arange(120, dtype=float)
            self.loss = 0.25 * np.exp(-x / 40) + np.where((x > 60) & (x < 70), 0.05, 0)
            self.acc = np.linspace(0.5, 1, 120)
            self.grad_norm = np.stack([1e-3 * (1 + x), 1e-1 / (1 + x)], axis=1)

        def __len__(self) -> int:
            return 120

        def view(self, a: int = 0, b: int | None = None):
            return self

    events = ((61, "^"), (90, "◆"))
    console = Console(width=80, no_color=True, record=True)
    for kind in ("loss", "grad norms"):
        lines = LineChart(view.chart(H(), kind, 70, None, events)).lines(80, 8)
        ticks = [ln.plain.split("┤")[0].strip() for ln in lines[1:-1] if "┤" in ln.plain]
        assert len(ticks) >= 2
        if kind == "loss":
            values = [float(t) for t in ticks]
            steps = np.diff(values)
            assert np.allclose(steps, steps[0]) and len(set(ticks)) == len(ticks)
        else:  # log axis: powers of ten
            assert all(t.startswith("1e") or t in ("0.1", "0.01", "1", "10") for t in ticks)
            assert "⣿ ‖dW1‖" in lines[0].plain and "x ‖dW2‖" in lines[0].plain
            assert any("x" in ln.plain for ln in lines[1:-1])  # the second series' marker
        top = lines[1].plain
        assert "^" in top and "◆" in top  # the markers, on the top row
        assert "markers: ^ ◆" in lines[0].plain
        for ln in lines:
            console.print(ln)
    assert "\x1b[" not in console.export_text(styles=False)


async def test_chart_marks_the_events_of_a_run() -> None:
    from tui_support import explode_config

    from tui_backprop.widgets import PlotextPlot

    app = make_app(explode_config())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        chart = app.screen.query_one(PlotextPlot)
        assert chart.display and chart.region.height >= 8
        lines = screen_text(app).split("\n")[chart.region.y:chart.region.bottom]
        glyphs = {view_glyph for e in app.screen.source.events
                  for view_glyph in [{"explode": "↑", "spike": "^", "rising": "↗"}.get(e.kind)]
                  if view_glyph}
        assert glyphs and all(g in lines[1] for g in glyphs)  # on the plot's top row
        assert "┆" in "\n".join(lines[2:])
        # the chart ends a little past the cursor, not at the history run ahead in blocks,
        # so the rise after the event is not flattened by what came later
        src = app.screen.source
        last = int(chart.series.x[-1])
        assert len(src.history) > last + 1 and src.iteration < last <= 1.5 * src.iteration
        y = chart.series.lines[0][1]
        after = y[int(np.searchsorted(chart.series.x, src.iteration)):]
        assert np.nanmax(after) > y[int(np.searchsorted(chart.series.x, src.iteration))]


async def test_status_at_the_init_ops_shows_no_loss() -> None:
    app = make_app(Config(hidden=(3,)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i", "i", "i")  # history exists for iterations 0..2
        await pilot.press("g", "-", "1", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = screen_text(app).split("\n")[0]
        assert app.screen.source.iteration == -1
        assert " init │" in status and "loss" not in status


def test_colourless_filter_keeps_attributes_and_drops_every_colour() -> None:
    from rich.segment import Segment
    from rich.style import Style
    from textual.color import Color

    from tui_backprop.colorless import Colorless

    segs = [Segment("a", Style(color="red", bgcolor="#123456", bold=True)), Segment("b")]
    out = Colorless().apply(segs, Color(0, 0, 0))
    assert out[0].style.color is None and out[0].style.bgcolor is None and out[0].style.bold
    assert out[1].style is None and [s.text for s in out] == ["a", "b"]


async def test_nan_and_inf_render_as_glyphs_in_overview_and_sample_view() -> None:
    from tui_support import NAN_CONFIG

    app = make_app(NAN_CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g", "2", "1", "enter")
        await app.workers.wait_for_complete()
        await pilot.press("n", "n", "n")  # past z2, whose entries overflow
        src = app.screen.source
        z2 = src.frame.value("z2")
        assert not np.isfinite(z2).all()
        lines = screen_text(app).split("\n")
        row = next(ln for ln in lines if ln[4:11].strip() == "z2")
        bad = int(np.count_nonzero(~np.isfinite(z2)))
        nan = int(np.count_nonzero(np.isnan(z2)))
        glyphs = (f"✗{nan}" if nan else "") + (f"▲{bad - nan}" if bad - nan else "")
        assert glyphs[:2] in row and len(row.rstrip()) <= 80
        n = int(np.flatnonzero(~np.isfinite(z2).all(axis=1))[0])  # a row with a bad value
        await pilot.press("e", *str(n), "enter")
        await pilot.pause()
        text = screen_text(app)
        assert f"row n = {n} of" in text and ("Inf" in text or "NaN" in text)
        assert all(len(ln.rstrip()) <= 80 for ln in text.split("\n"))


@pytest.mark.parametrize("keys", [["o"], ["w"], ["e", "3", "enter"], ["x"], ["k"], ["s"],
                                  ["f"], ["question_mark"], ["enter"]],
                         ids=["boundary", "diagram", "sample", "breakpoints", "knobs", "save",
                              "gradcheck", "help", "drill"])
async def test_no_screen_is_clipped_at_80_columns(keys: list[str]) -> None:
    from tui_support import explode_config

    app = make_app(explode_config())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press(*keys)
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        for line in screen_text(app).split("\n"):
            edge = line.rstrip().rstrip("│╮╯").rstrip()
            assert not edge.endswith("…"), line


async def test_narrow_footer_keeps_help_and_quit_in_sight() -> None:
    app = make_app()
    async with app.run_test(size=(60, 16)) as pilot:
        await pilot.pause()
        footer = screen_text(app).split("\n")[-1]
        assert "? help" in footer and "q quit" in footer and "n step" in footer
        await pilot.press("b")  # still bound, just not in the footer
        assert "at the first op" in screen_text(app)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        footer = screen_text(app).split("\n")[-1]
        assert "b back" in footer and "q quit" in footer


def test_overview_summary_counts_nan_inf_and_describes_the_finite_rest() -> None:
    from tui_backprop.overview import BINS, Summary

    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 7))
    a[0, 0], a[1, 1], a[2, 2] = np.nan, np.inf, -np.inf
    s = Summary.of(a)
    f = a[np.isfinite(a)]
    assert (s.nan, s.inf, s.shape) == (1, 2, (40, 7))
    assert (s.min, s.max) == (f.min(), f.max())
    assert np.isclose(s.mean, f.mean()) and np.isclose(s.std, f.std())
    assert np.isclose(s.norm, np.linalg.norm(f))
    assert sum(s.hist) == f.size and len(s.hist) == BINS
    empty = Summary.of(np.full((2, 2), np.nan))
    assert empty.nan == 4 and np.isnan(empty.mean) and sum(empty.hist) == 0
