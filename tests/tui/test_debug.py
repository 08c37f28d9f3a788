"""`debug FILE.py` driven with Textual's pilot: the same screens over the user's own lines."""

from __future__ import annotations

from pathlib import Path

from tui_support import THEME, screen_text

from core.user.check import THRESHOLD
from tests.core.user_variants import EXAMPLE, source
from tui_backprop.screens import MainScreen
from tui_backprop.user_app import UserApp, user_app


def make(path: Path) -> UserApp:
    app = user_app(str(path))
    app.theme = THEME
    return app


def card_line(app) -> str:
    return screen_text(app).split("\n")[1]


def line_of(path: Path, text: str) -> int:
    hits = [i + 1 for i, ln in enumerate(path.read_text().splitlines()) if text in ln]
    assert len(hits) == 1
    return hits[0]


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_steps_the_users_lines_and_back_bit_identically() -> None:
    app = make(EXAMPLE)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        src = app.source
        seen = []
        for _ in range(60):  # init ops, all of iteration 0, into iteration 1
            await pilot.press("n")
            seen.append((src.position, src.value.tobytes(), card_line(app)))
        assert src.iteration == 1
        cards = [c for _, _, c in seen]
        z1 = line_of(EXAMPLE, 'z1 = affine_forward(X, params["W1"], params["b1"])')
        dz1 = line_of(EXAMPLE, "dz1 = dh1 * h1 * (1 - h1)")
        assert any(f"mlp.py:{z1}  z1 = affine_forward(X" in c for c in cards)
        assert any(f"mlp.py:{dz1}  dz1 = dh1 * h1 * (1 - h1)" in c for c in cards)
        # the lines come in the order the file runs them: z1 before dz1 in iteration 0
        first = [i for i, c in enumerate(cards) if f"mlp.py:{z1}" in c][0]
        assert first < [i for i, c in enumerate(cards) if f"mlp.py:{dz1}" in c][0]
        for pos, val, card in reversed(seen[:-1]):
            await pilot.press("b")
            assert src.position == pos and src.value.tobytes() == val
            assert card_line(app) == card


async def test_nan_origin_names_the_users_line(tmp_path: Path) -> None:
    path = tmp_path / "nanet.py"
    path.write_text(source(**{"    h1 = sigmoid(z1)\n    scores = affine_forward(h1, params":
                              "    h1 = np.log(z1)\n    scores = affine_forward(h1, params"}))
    line = line_of(path, "h1 = np.log(z1)")
    app = make(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await settle(pilot)
        text = screen_text(app)
        assert f"h1 L{line} produced the first NaN/Inf" in text
        assert f"nanet.py:{line}  h1 = np.log(z1)" in card_line(app)


async def test_f_checks_the_gradient_on_screen_and_names_the_bug(tmp_path: Path) -> None:
    path = tmp_path / "bug.py"
    path.write_text(source("missing_1_over_n"))
    app = make(path)
    async with app.run_test(size=(120, 40)) as pilot:
        src = app.source
        assert "grad W2 ✗ FAIL" in screen_text(app)  # flagged before any step
        await pilot.press("i")
        while src.op.key != src.program.grad_keys["W2"]:
            await pilot.press("n")
        assert "grad W2 ✗ FAIL" in screen_text(app)  # and still on every step
        await pilot.press("f")
        await settle(pilot)
        text = screen_text(app)
        assert "FAIL" in text and "missing 1/N" in text and f"{THRESHOLD:.0e}" in text
        await pilot.press("escape")
        await pilot.press("b", "b")
        await pilot.press("f")  # not a gradient backward returns: said so, nothing run
        await settle(pilot)
        assert "not applicable" in screen_text(app)


async def test_an_exception_stops_on_its_line_and_the_app_keeps_running(tmp_path: Path) -> None:
    path = tmp_path / "boom.py"
    path.write_text(source(**{"    N = len(X)": "    N = len(X)\n    if params['b2'][0] != 0:"
                                               "\n        raise RuntimeError('boom')"}))
    line = line_of(path, "raise RuntimeError('boom')")
    app = make(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i", "i")
        src = app.source
        assert src.iteration == 1
        for _ in range(len(src.ops) + 3):
            await pilot.press("n")
        text = screen_text(app)
        assert f"boom.py:{line}: RuntimeError: boom" in text
        assert isinstance(app.screen, MainScreen)
        await pilot.press("c")  # continue cannot pass it either; the app stays up
        await settle(pilot)
        await pilot.press("b")
        assert src.iteration == 1 and isinstance(app.screen, MainScreen)


async def test_replay_of_a_changed_file_says_so_and_steps(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tui_backprop.user_app import replay_app

    mynet = tmp_path / "mynet.py"
    mynet.write_text(source())
    run = tmp_path / "run.db"
    res = subprocess.run([sys.executable, "-m", "tui_backprop.cli", "record", str(mynet),
                          "--iterations", "40", "--out", str(run)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    mynet.write_text(source("sign_flip_w2"))
    app = replay_app(str(run))
    app.theme = THEME
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "FILE CHANGED" in screen_text(app)
        await pilot.press("i", "n", "n")
        assert app.source.position == (0, 2)
        # the recorded source's third line of loss(), shown under the recording's name
        recorded = tmp_path / "recorded.py"
        recorded.write_text(source())
        line = line_of(recorded, 'scores = affine_forward(h1, params["W2"], params["b2"])')
        # (a shorter prefix: the tmp path, whose length varies, comes first on the line)
        assert f"mynet.py (recorded):{line}  scores = affine_f" in card_line(app)
