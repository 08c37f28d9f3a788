"""The diff split view, checked by what it shows: one cursor drives both runs."""

from __future__ import annotations

import numpy as np
import tui_support  # noqa: F401  (fixes the colour environment before any app is built)

from core.engine.stepper import Stepper
from core.model.config import Config
from core.store.diff import Side, compare_scalars, first_op_diff
from tui_backprop.screens.diff import DiffApp, Heat

CFG = Config(hidden=(4,), lr=0.5, limit=40)


def live(cfg: Config, n: int, knobs: list | None = None) -> Side:
    s = Stepper(cfg, knobs=knobs)
    s.run_until(lambda ev: None, max_iters=n)
    return Side(f"live {cfg.dtype}", s.history, s.program.sizes, cfg.dtype, lambda: s)


def status(app: DiffApp) -> str:
    return str(app.query_one("#status").render())


def heat(app: DiffApp, key: str) -> Heat:
    return app.query_one(f"#heat-{key}", Heat)


async def test_opens_on_the_first_differing_op_and_steps_both_runs() -> None:
    a, b = live(CFG, 30), live(CFG, 30, [(12, CFG.replace(lr=0.25))])
    d = compare_scalars(a, b)
    op = first_op_diff(a.open(), b.open(), d.first)
    app = DiffApp(a, b, d, op)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = status(app)
        assert f"it 12 · op {op.position + 1}/" in text and op.op in text
        assert "differs in" in text and "first difference 12 (lr)" in text
        assert heat(app, "a").border_title == f"A {op.op}"
        shown = heat(app, "d").heat.array  # the difference panel holds A − B of that op
        sa, sb = a.open(), b.open()
        sa.jump(12, op.position)
        sb.jump(12, op.position)
        assert np.array_equal(shown, sa.value - sb.value)
        await pilot.press("b")  # the op before: computed before the lr was read
        assert f"op {op.position}/" in status(app) and ": equal" in status(app)
        await pilot.press("u")  # an iteration before the change: every op equal
        assert "it 11 ·" in status(app) and ": equal" in status(app)
        await pilot.press("d")
        assert f"it 12 · op {op.position + 1}/" in status(app)


async def test_runs_of_different_shapes_show_why_ops_are_not_compared() -> None:
    a, b = live(CFG, 20), live(CFG.replace(hidden=(3,)), 20)
    d = compare_scalars(a, b)
    app = DiffApp(a, b, d, None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "ops not compared: the networks differ (2-4-2 against 2-3-2)" in status(app)
        assert heat(app, "a").heat is None
