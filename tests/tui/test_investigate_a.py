"""Breakpoints (x), knobs while paused (k) and saving the session (s), through the pilot."""

from __future__ import annotations

from tui_support import explode_config, make_app, make_replay, screen_text

from core.engine.stepper import Stepper
from core.inspect.breakpoints import BreakpointList
from core.model.config import Config
from core.store.trace import TraceReader
from tui_backprop.screens import MainScreen
from tui_backprop.screens.breakpoints import BreakpointsScreen
from tui_backprop.screens.knobs import KnobsScreen
from tui_backprop.screens.save import SaveScreen


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def type_in(pilot, text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text], "enter")
    await pilot.pause()


def flags_text(app) -> str:
    flags = app.screen.query_one("#flags")
    lines = screen_text(app).split("\n")
    return "\n".join(lines[flags.region.y:flags.region.bottom])


async def test_breakpoint_dialog_adds_refuses_toggles_and_removes() -> None:
    app = make_app(explode_config())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("x")
        assert isinstance(app.screen, BreakpointsScreen)
        text = screen_text(app)
        assert "no breakpoints yet" in text and "With none enabled, c stops on any" in text
        assert "grad2 > 10x median" in text and "loss rising 5" in text  # the examples
        await type_in(pilot, "grad9 > 5")
        assert "no layer 9: this net has layers 1..2" in screen_text(app)
        assert "rejected 'grad9 > 5'" in screen_text(app)  # quoted, and the box is cleared
        assert app.screen.query_one("#bp-input").value == ""
        assert app.screen.breakpoints.items == []  # nothing applied
        await type_in(pilot, "grad2 > 10x median")
        await type_in(pilot, "op dL/dW1")
        text = screen_text(app)
        assert "1 ● grad2 > 10x median" in text and "2 ● op dL/dW1" in text
        await pilot.press("tab", "space")  # the list, on the breakpoint just added
        assert "2 ○ op dL/dW1  (off)" in screen_text(app)
        await pilot.press("up", "d")
        text = screen_text(app)
        assert "removed grad2 > 10x median" in text and "1 ○ op dL/dW1" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert "1 breakpoint, 0 on" in screen_text(app)


async def test_continue_stops_at_the_breakpoint_and_says_why() -> None:
    app = make_app(explode_config())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("x")
        await type_in(pilot, "grad2 > 10x median")
        await pilot.press("escape", "c")
        await settle(pilot)
        # where the core stops (checked against its oracle in tests/core/test_breakpoints.py)
        ref = Stepper(explode_config())
        bl = BreakpointList()
        bl.add("grad2 > 10x median", ref)
        hit = ref.run_until(rule=bl.rule(ref), max_iters=3000)
        src = app.screen.source
        assert src.iteration == hit.iteration and src.op.name == "dL/dW2"
        text = screen_text(app)
        assert f" it {hit.iteration} │ backward │ op 9/20 dL/dW2 │ break: grad2 > 10x median" \
            in text
        op = "" if "dL/dW2" in hit.detail else "dL/dW2 · "  # a detail naming its op says it once
        assert f"● break     here · {op}{hit.detail}" in flags_text(app)
        await pilot.press("i")  # the hit line belongs to its iteration
        assert "● break" not in flags_text(app)


async def test_op_breakpoint_from_the_middle_of_an_iteration() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i", "n")  # iteration 0, h1
        await pilot.press("x")
        await type_in(pilot, "op dL/dW1")
        await pilot.press("escape", "c")
        await settle(pilot)
        assert " it 0 │ op 13/16 dL/dW1 │ break: op dL/dW1" in screen_text(app)
        await pilot.press("c")
        await settle(pilot)
        assert " it 1 │ op 13/16 dL/dW1 │ break: op dL/dW1" in screen_text(app)


async def test_knobs_dialog_refuses_a_bad_value_and_applies_nothing() -> None:
    app = make_app(explode_config())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g", "1", "2", "0", "enter")
        await settle(pilot)
        src = app.screen.source
        n = len(src.history)
        await pilot.press("k")
        assert isinstance(app.screen, KnobsScreen)
        text = screen_text(app)
        assert "Apply from iteration 121: iteration 120 (under the cursor) finishes" in text
        assert "learning rate" in text and "2.3" in text
        field = app.screen.query_one("#knob-lr")
        field.value = "-1"
        await pilot.press("enter")
        assert "lr must be > 0, got -1" in screen_text(app)
        field.value = "fast"
        await pilot.press("enter")
        assert "lr: 'fast' is not a number" in screen_text(app)
        assert isinstance(app.screen, KnobsScreen)
        assert src.knobs == [] and len(src.history) == n  # nothing applied
        await pilot.press("escape")
        assert src.knobs == [] and "◆ knob" not in screen_text(app)


async def test_knobs_apply_from_the_next_iteration_and_show_as_a_flag() -> None:
    app = make_app(explode_config())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g", "1", "2", "0", "enter")
        await settle(pilot)
        await pilot.press("k")
        app.screen.query_one("#knob-lr").value = "1.0"
        await pilot.press("tab", "tab")
        await type_in(pilot, "0.01")  # regularization λ, then enter applies everything
        assert isinstance(app.screen, MainScreen)
        src = app.screen.source
        assert [(t, c.lr, c.reg) for t, c in src.knobs] == [(121, 1.0, 0.01)]
        text = screen_text(app)
        assert "knobs from it 121: lr 2.3 → 1, reg 0 → 0.01" in text
        assert "◆ knob      it 121 · update · lr 2.3 → 1, reg 0 → 0.01" in text
        await pilot.press("r", "1", "0", "enter")
        await settle(pilot)
        assert src.history.view(0, 131).lr[121] == 1.0


async def test_a_replay_keeps_its_knobs() -> None:
    app = make_replay()
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.source.end = 50  # the stand-in poses as a 50-iteration trace
        await pilot.press("k")
        assert isinstance(app.screen, MainScreen)
        assert "a replay's knobs are fixed" in screen_text(app)
        app.screen.source.end = None


async def test_save_writes_a_trace_with_the_knobs_and_asks_before_overwriting(
        tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: messages fit on one line
    app = make_app(Config(hidden=(4,), lr=0.5, limit=40))
    path = tmp_path / "s.trace"
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("g", "3", "0", "enter")
        await settle(pilot)
        await pilot.press("k")
        app.screen.query_one("#knob-lr").value = "0.25"
        await pilot.press("enter")
        await pilot.press("i", "i", "s")
        assert isinstance(app.screen, SaveScreen)
        assert "1 knob change(s) and iterations 0..32" in screen_text(app)
        app.screen.query_one("#save-input").value = "."
        await pilot.press("enter")
        assert ". is a directory" in screen_text(app)
        app.screen.query_one("#save-input").value = "no/such/dir/s.trace"
        await pilot.press("enter")
        assert "no folder no/such/dir" in screen_text(app)
        path.write_text("keep me")
        app.screen.query_one("#save-input").value = "s.trace"
        await pilot.press("enter")
        assert "s.trace exists: enter again to overwrite it" in screen_text(app)
        assert path.read_text() == "keep me"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "saved s.trace (it 0..32)" in screen_text(app)
    with TraceReader(path) as tr:
        assert tr.n == 33 and [(t, c.lr) for t, c in tr.knobs] == [(31, 0.25)]
        assert any(e.kind == "knob" and e.iteration == 31 for e in tr.events)
