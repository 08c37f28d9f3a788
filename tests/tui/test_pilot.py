"""Drive every key with Textual's pilot and check what the screen shows."""

from __future__ import annotations

import asyncio

from textual.events import Key
from tui_support import NAN_CONFIG, explode_config, make_app, make_replay, screen_text

from core.model.config import Config
from tui_backprop.screens import HelpScreen, MainScreen, PromptScreen
from tui_backprop.widgets import MatrixPanel, PlotextPlot


def card_line(app) -> str:
    """The op card's formula line."""
    return screen_text(app).split("\n")[1]


def chart_text(app) -> str:
    chart = app.screen.query_one(PlotextPlot)
    lines = screen_text(app).split("\n")
    return "\n".join(lines[chart.region.y:chart.region.bottom])


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_start_shows_the_init_ops_and_the_footer(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "live xor 2-3-2" in text and " init │ op 1/2 init W1" in text
        assert "W1 ~ U(−1,1)/√2" in text
        assert "n: step one op" in text  # the first screen says what to press
        for name in ("z1", "h1", "z2", "h2", "dL/dW2", "dL/dW1"):  # the overview, pending
            assert f"{name:<7} · not computed yet ·" in text
        footer = text.split("\n")[-1]
        for key in ("n step", "b back", "p phase", "i iter", "c cont", "r run N", "g goto",
                    "t chart", "? help", "q quit"):
            assert key in footer


async def test_step_walks_the_ops_in_order_and_back_restores(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        seen = []
        for _ in range(8):
            await pilot.press("n")
            seen.append(card_line(app))
        assert "init W2" in seen[0] or "W2 ~" in seen[0]
        for want, line in zip(["z1 = X·W1", "h1 = σ(z1)", "z2 = h1·W2", "h2 = σ(z2)",
                               "L = Σ(y−h2)²/2N", "dL/dh2 = −(y−h2)/N", "dh2/dz2 = h2(1−h2)"],
                              seen[1:], strict=True):
            assert want in line
        await pilot.press("b")
        assert "dL/dh2 = −(y−h2)/N" in card_line(app)
        await pilot.press("left", "left")
        assert "h2 = σ(z2)" in card_line(app)
        await pilot.press("right")
        assert "L = Σ(y−h2)²/2N" in card_line(app)


async def test_back_at_the_first_op_says_so(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        assert "at the first op" in screen_text(app)


async def test_values_after_the_cursor_are_pending_until_computed(app) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n", "n")  # z1 of iteration 0
        text = screen_text(app)
        assert "dL/dW1" in text and text.count("· not computed yet ·") == 5
        await pilot.press("p", "p")  # loss, then the backward phase
        assert text.count("· not computed yet ·") > screen_text(app).count(
            "· not computed yet ·")


async def test_next_phase_and_next_iteration(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "n")
        assert " it 0 │ op 1/16 z1" in screen_text(app)  # 80 columns: the card has the phase
        await pilot.press("p")
        assert " LOSS " in card_line(app)
        await pilot.press("p")
        assert " BACKWARD " in card_line(app)
        await pilot.press("p")
        assert " UPDATE " in card_line(app)
        await pilot.press("i")
        assert " it 1 │ op 1/16 z1" in screen_text(app)


async def test_continue_stops_on_the_first_flag() -> None:
    app = make_app(explode_config())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await settle(pilot)
        src = app.screen.source
        first = min(src.events, key=lambda e: e.iteration)
        assert src.iteration == first.iteration and src.op.name == first.op
        text = screen_text(app)
        assert f"stopped on {first.kind}" in text
        assert f"it {first.iteration} · " in text and first.op in text  # the flags strip
        # the status line's loss is the cursor's iteration, not the history run ahead
        assert len(src.history) > src.iteration + 1
        assert f"loss {src.history.view().loss[src.iteration]:.4g} " in text
        assert f"loss {src.history.view().loss[-1]:.4g} " not in text


async def test_space_pauses_a_running_continue_and_moves_wait_meanwhile(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")  # xor-3 raises no flag: this would run for a long time
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "it/s" in screen_text(app):
                break
        text = screen_text(app)
        assert "continue… space: pause" in text and "it/s" in text
        assert app.screen.check_action("step", ()) is False  # hidden: pause and quit show
        assert "q quit" in text.split("\n")[-1] and "space pause" in text.split("\n")[-1]
        await pilot.press("n")  # ignored while the worker owns the stepper
        await pilot.press("space")
        await settle(pilot)
        assert "paused at it" in screen_text(app)
        it = app.screen.source.iteration
        await pilot.press("n")
        assert " it " in screen_text(app) and app.screen.source.iteration >= it


async def test_run_n_iterations_through_the_prompt(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("0", "enter")
        assert "must be ≥ 1" in screen_text(app)
        await pilot.press("backspace", "x")
        await pilot.press("5", "enter")
        await settle(pilot)
        text = screen_text(app)
        assert isinstance(app.screen, MainScreen)
        assert " it 5 │ op 1/16 z1 │ ran 5 iterations" in text


async def test_jump_to_iteration_and_cancel(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g", "1", "2", "enter")
        await settle(pilot)
        assert " it 12 │ op 1/16 z1" in screen_text(app)
        await pilot.press("g", "3", "escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert " it 12 │" in screen_text(app)
        await pilot.press("g", "minus", "1", "enter")
        await settle(pilot)
        assert " init │ op 1/2" in screen_text(app)


async def test_chart_series_cycle_and_hide(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i", "i", "i")
        assert "│ history 3" in screen_text(app)
        assert "loss" in chart_text(app)
        await pilot.press("t")
        assert "accuracy" in chart_text(app)
        await pilot.press("t")
        assert "grad norms" in chart_text(app)
        await pilot.press("t")
        assert app.screen.series == 0
        await pilot.press("l")
        assert not app.screen.query_one(PlotextPlot).display
        await pilot.press("l")
        assert app.screen.query_one(PlotextPlot).display


async def test_v_rotates_the_inputs_when_they_outnumber_the_panels() -> None:
    """The loss of an L2 run reads y, h2, W1, W2: five factors, four panels at 64 columns."""
    app = make_app(Config(reg=0.1))
    async with app.run_test(size=(64, 24)) as pilot:
        await pilot.press("n", "n", "n", "n", "n", "n")  # L of iteration 0
        assert app.screen.source.op.name == "L"
        shown = [p.border_title.split()[0] for p in app.screen.query(MatrixPanel) if p.display]
        assert len(shown) == 4 and shown[-1] == "="  # the output stays last: "= L scalar"
        await pilot.press("v")
        again = [p.border_title.split()[0] for p in app.screen.query(MatrixPanel) if p.display]
        assert again != shown and again[-1] == "="
        assert set(shown[:-1]) | set(again[:-1]) == {"y", "h2", "W1", "W2"}


async def test_focused_panel_scrolls_rows_and_columns() -> None:
    app = make_app(Config(hidden=(10,)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "n", "n")  # output panel: z1, 300×10
        panel = app.screen.query(MatrixPanel).first()
        panel.focus()
        await pilot.press("down", "down", "pagedown")
        assert panel.row > 2 and "↑" in screen_text(app)
        await pilot.press("right_square_bracket")
        assert panel.col > 0 and panel.border_subtitle.startswith(f"r{panel.row} c")
        await pilot.press("home")
        assert (panel.row, panel.col) == (0, 0)


async def test_nan_cells_are_marked_not_raised() -> None:
    app = make_app(NAN_CONFIG)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g", "2", "1", "enter")
        await settle(pilot)
        await pilot.press("n", "n")  # z2: the op that overflows
        text = screen_text(app)
        assert "NaN/Inf" in text and "here · z2" in text
        assert "▲" in text or "✗" in text


async def test_help_screen_lists_every_key(app) -> None:
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for title, _, _ in MainScreen.PALETTE:
            assert title in text
        assert "--mouse" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_runs_actions(app) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Next iteration")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert " it 0 │ forward │ op 1/16 z1" in screen_text(app)


async def test_quit(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
    assert app.return_code == 0


async def test_too_small_notice_and_resizing_back(app) -> None:
    async with app.run_test(size=(50, 14)) as pilot:
        await pilot.pause()
        assert "Terminal too small: 50×14" in screen_text(app)
        await pilot.press("n")  # keys do nothing behind the notice
        assert app.screen.source.position == (-1, 0)
        for size in ((80, 24), (60, 16), (200, 60), (30, 8), (120, 40)):
            await pilot.resize_terminal(*size)
            await pilot.press("n")  # four of these five sizes show the screen
        text = screen_text(app)
        assert "too small" not in text and " it 0 │ forward │ op 3/16 z2" in text


async def test_replay_uses_the_same_screens() -> None:
    app = make_replay()
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.title == "replay: demo.trace"
        await pilot.press("n", "n")
        text = screen_text(app)
        assert "replay: demo.trace" in text and "z1 = X·W1" in text
        await pilot.press("b")
        assert "init W2" in screen_text(app) or "W2 ~" in screen_text(app)


async def test_keys_typed_fast_after_g_reach_the_prompt(app) -> None:
    """Over SSH keys arrive in bursts: "g 1 2 enter" must jump even before the modal is up."""
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for key, char in (("g", "g"), ("1", "1"), ("2", "2"), ("enter", "\r")):
            app._driver.send_message(Key(key, char))
        await pilot.pause()
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert " it 12 │ op 1/16 z1 │ jumped to it 12" in screen_text(app)


async def test_quit_while_running_stops_the_worker(app) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "it/s" in screen_text(app):
                break
        (worker,) = list(app.workers)
        await pilot.press("q")
    assert app.return_code == 0
    for _ in range(100):  # the thread stops at its next block instead of running on
        if not worker.is_running:
            break
        await asyncio.sleep(0.05)
    assert not worker.is_running
