"""The app survives what users do to it: key bursts, NaN runs, quitting mid-run.

Bursts are posted straight into the app's queue, the way a terminal delivers
keys batched over SSH: no pause between keys, so bindings, dialogs and the g/r
type-ahead race each other.  After every burst the app must be alive, its keys
must still work, and `q` must still quit.
"""

from __future__ import annotations

import itertools

import numpy as np
from textual.events import Key
from tui_support import make_app, screen_text

from core.model.config import Config
from tui_backprop.app import BackpropApp
from tui_backprop.screens import MainScreen
from tui_backprop.widgets import MatrixPanel

NAN_RUN = Config(hidden=(3,), activation="relu", loss="ce", lr=1e10, bias=True)


def bound_keys() -> list[str]:
    """Every key a binding of the app, the main screen or a matrix panel names (but q)."""
    keys = ["tab", "ctrl+p"]
    for b in (*BackpropApp.BINDINGS, *MainScreen.BINDINGS, *MatrixPanel.BINDINGS):
        keys += b.key.split(",")
    return [k for k in dict.fromkeys(keys) if k != "q"]


def post(app: BackpropApp, *keys: str) -> None:
    for k in keys:
        char = k if len(k) == 1 else {"space": " ", "question_mark": "?",
                                      "left_square_bracket": "[",
                                      "right_square_bracket": "]"}.get(k)
        app.post_message(Key(k, char))


async def back_to_main(pilot) -> None:
    """Close whatever dialogs the burst opened and wait for running jobs to pause."""
    app = pilot.app
    for _ in range(8):
        await pilot.pause()
        if isinstance(app.screen, MainScreen) and not app.screen.running:
            return
        await pilot.press("escape")
        await app.workers.wait_for_complete()
    raise AssertionError(f"stuck on {app.screen!r} (running={app.screen.running!r})")


async def assert_keys_alive(pilot) -> None:
    """n moves the cursor (or says why not), and the screen still draws."""
    main = pilot.app.screen
    assert isinstance(main, MainScreen)
    before = main.source.position
    await pilot.press("n")
    await pilot.pause()
    assert main.source.position != before or main.note, "n is dead"
    assert main._prompt is None and not main._awaiting_prompt and not main._typeahead


async def test_every_pair_of_bound_keys_in_one_burst(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # `s` + enter may save session.trace here
    keys = bound_keys()
    pairs = list(itertools.product(keys, keys))
    assert len(pairs) > 500
    app = make_app(Config(hidden=(3,), lr=0.5))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for start in range(0, len(pairs), 60):
            for a, b in pairs[start:start + 60]:
                post(app, a, b, "escape", "escape")
            await back_to_main(pilot)
            assert app.return_code is None  # nothing crashed the app
            await assert_keys_alive(pilot)
        for a, b in [("r", "k"), ("g", "t"), ("f", "r"), ("question_mark", "g"),
                     ("ctrl+p", "pagedown"), ("ctrl+p", "pageup"), ("x", "g")]:
            post(app, a, b)  # the bursts that used to kill keys or crash, one at a time
            await back_to_main(pilot)
            await assert_keys_alive(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_q_during_a_long_run_stops_the_engine() -> None:
    """q while `r 1000000` runs: the worker stops within a chunk, not after 10**6 iterations."""
    app = make_app(Config(hidden=(3,), lr=0.5))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", *"1000000", "enter")
        main = app.screen
        while not len(main.source.history):  # the job is under way
            await pilot.pause(0.05)
        await pilot.press("q")
        await app.workers.wait_for_complete()
    assert app.return_code == 0
    assert main.source.interrupted
    assert len(main.source.history) < 1_000_000


async def test_q_right_after_a_prompt_answer_still_stops() -> None:
    """r N enter q in one burst: the job may start after q; it must stop all the same."""
    app = make_app(Config(hidden=(3,), lr=0.5))
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.screen
        post(app, "r", *"1000000", "enter", "q")
        await pilot.pause()
        await app.workers.wait_for_complete()
    assert app.return_code == 0
    assert len(main.source.history) < 1_000_000


async def test_a_nan_run_with_every_key(tmp_path, monkeypatch) -> None:
    """Step across the NaN, continue, gradcheck, boundary, diagram, drill into a NaN cell."""
    monkeypatch.chdir(tmp_path)
    app = make_app(NAN_RUN)
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.screen
        for _ in range(20):  # continue until the NaN flag is among the events found
            await pilot.press("c")
            await app.workers.wait_for_complete()
            await back_to_main(pilot)
            if any(e.kind == "nan" for e in main.source.events):
                break
        nan_at = next(e.iteration for e in main.source.events if e.kind == "nan")
        assert all(np.isfinite(main.source.history.view(0, nan_at).loss))
        await pilot.press("g", *str(nan_at + 2), "enter")
        await app.workers.wait_for_complete()
        await back_to_main(pilot)
        for _ in range(len(main.source.ops) + 2):  # step op by op across NaN values
            await pilot.press("n")
            assert app.return_code is None
        text = screen_text(app)
        assert "NaN" in text or "✗" in text or "▲" in text
        # drill-down on a cell of a NaN matrix
        await pilot.press("tab", "enter", "right", "down", "enter")
        await pilot.pause()
        for key in bound_keys():
            await pilot.press(key)
            await pilot.pause()
            await back_to_main(pilot)
            assert app.return_code is None, key
        for key in ("f", "o", "w", "t", "t", "t", "v", "l", "l", "b", "b", "p", "i", "k", "x"):
            await pilot.press(key)
            await pilot.pause()
            assert "Traceback" not in screen_text(app)
            await back_to_main(pilot)
        # the worker never raised: the status line would say "error:"
        assert "error:" not in main.note
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
