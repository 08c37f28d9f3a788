"""The contract loader: constants, init's result, and the time limit in any thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from core.user.loader import UserError, load
from tests.core.user_variants import source

LOOP = {"    N = len(X)": "    N = len(X)\n    while True:\n        N += 1"}


def write(tmp: Path, **replace: str) -> Path:
    path = tmp / "mynet.py"
    path.write_text(source(**replace))
    return path


def test_constants_are_read_and_checked(tmp_path: Path) -> None:
    prog = load(str(write(tmp_path)))
    assert (prog.lr, prog.iterations, prog.seed) == (0.5, 2000, 0)
    with pytest.raises(UserError, match="LR must be a positive number"):
        load(str(write(tmp_path, **{"LR = 0.5": "LR = -1"})))
    with pytest.raises(UserError, match="SEED must be a non-negative integer"):
        load(str(write(tmp_path, **{"SEED = 0": "SEED = 1.5"})))


def test_init_must_return_named_float_arrays(tmp_path: Path) -> None:
    from core.user.session import init_params

    prog = load(str(write(tmp_path, **{'"b2": np.zeros(2),': '"b2": [0.0, 0.0],'})))
    with pytest.raises(UserError, match="'b2' must be a floating NumPy array, got list"):
        init_params(prog, 0)


@pytest.mark.parametrize("in_thread", [False, True])
def test_an_endless_loop_is_stopped_in_any_thread(tmp_path: Path, in_thread: bool) -> None:
    prog = load(str(write(tmp_path, **LOOP)), time_limit=0.3)
    params = prog.call("init", np.random.default_rng(0))
    X, y = np.zeros((4, 2)), np.eye(2)[[0, 1, 0, 1]]
    caught: list[BaseException] = []

    def run() -> None:
        try:
            prog.call("backward", params, X, y)
        except UserError as exc:
            caught.append(exc)

    if in_thread:  # the app's workers: no signals there, the watchdog raises instead
        t = threading.Thread(target=run)
        t.start()
        t.join(10)
        assert not t.is_alive()
    else:
        run()
    assert len(caught) == 1
    assert "TimeoutError: backward() ran longer than 0.3 s" in str(caught[0])
    line = 1 + source(**LOOP).splitlines().index("        N += 1")
    assert f"mynet.py:{line}:" in str(caught[0]) or f"mynet.py:{line - 1}:" in str(caught[0])


@pytest.mark.parametrize("y, word", [("np.ones((4, 2), bool)", "dtype bool"),
                                     ("[[1.0, 0.0]] * 4", "y is list")])
def test_data_must_return_numeric_arrays(tmp_path: Path, y: str, word: str) -> None:
    from core.user.session import resolve_data

    path = write(tmp_path)
    path.write_text(path.read_text() + f"\n\ndef data():\n    return np.zeros((4, 2)), {y}\n")
    with pytest.raises(UserError, match=word):
        resolve_data(load(str(path)), None, 0)
