"""`tui-backprop check FILE.py` as a user meets it: real subprocesses, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core.user_variants import EXAMPLE, source, write

EXE = [sys.executable, "-m", "tui_backprop.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=120)


def assert_one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_correct_file_passes_with_exit_0() -> None:
    res = run("check", str(EXAMPLE))
    assert res.returncode == 0, res.stderr
    assert "iteration 0 " in res.stdout and "iteration 100 " in res.stdout
    assert res.stdout.count("PASS") == 8 + 1 and "FAIL" not in res.stdout
    assert "1e-05" in res.stdout  # the threshold is stated


def test_a_failing_file_exits_1_and_the_json_has_the_documented_shape(tmp_path: Path) -> None:
    res = run("check", str(write(tmp_path, "sign_flip_w2")), "--json", "--at", "0,5")
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"passed", "iterations"} and out["passed"] is False
    assert [it["iteration"] for it in out["iterations"]] == [0, 5]
    keys = {"name", "shape", "passed", "max_rel_error", "worst_index", "analytic", "numeric",
            "fit", "diagnosis"}
    for it in out["iterations"]:
        assert set(it) == {"iteration", "params"}
        by = {p["name"]: p for p in it["params"]}
        for p in it["params"]:
            assert set(p) == keys
        assert by["W2"]["passed"] is False and by["W2"]["shape"] == [10, 2]
        assert set(by["W2"]["fit"]) == {"scale", "offset"}
        assert by["W2"]["fit"]["scale"] == pytest.approx(-1, abs=1e-6)
        assert by["W2"]["analytic"] == pytest.approx(-by["W2"]["numeric"], rel=1e-4)
        assert by["W1"]["passed"] is True and by["W1"]["fit"] is None


def test_a_wrong_shape_is_a_fail_naming_both_shapes(tmp_path: Path) -> None:
    res = run("check", str(write(tmp_path, "transposed_w1")), "--at", "0")
    assert res.returncode == 1
    assert "(10, 2)" in res.stdout and "(2, 10)" in res.stdout


@pytest.mark.parametrize(("replace", "words"), [
    ({"def loss(params, X, y):": "def loss(params, X, y)"}, ["SyntaxError", ":"]),
    ({"def backward(": "def backward_("}, ["missing required function backward()"]),
    ({'"b2": db2}': '"b2": db2, "W3": db2}'}, ["unknown keys", "'W3'"]),
    ({', "b2": db2}': "}"}, ["missing gradients", "'b2'"]),
    ({'"b2": db2}': '"b2": db2.tolist()}'}, ["'b2'", "NumPy array", "list"]),
    ({"    return data_loss + reg": "    return data_loss + reg * np.nan"}, ["nan"]),
    ({"    return data_loss + reg": "    return data_loss + reg + np.zeros(3)"},
     ["scalar", "(3,)"]),
    ({"dz1 = dh1 * h1 * (1 - h1)": "dz1 = dh1 * h1 * (1 - h1)[:, :3]"},
     ["ValueError", "broadcast"]),
    ({"import numpy as np": "import numpy as np\nimport no_such_module_here"},
     ["ModuleNotFoundError"]),
])
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path, replace: dict[str, str],
                                                 words: list[str]) -> None:
    path = tmp_path / "mynet.py"
    path.write_text(source(**replace))
    res = run("check", str(path))
    assert_one_line_error(res, str(path), *words)


def test_an_exception_names_the_users_line(tmp_path: Path) -> None:
    path = tmp_path / "mynet.py"
    path.write_text(source(**{"dz1 = dh1 * h1 * (1 - h1)": "dz1 = dh1 * h1 * (1 - h1)[:, :3]"}))
    line = 1 + path.read_text().splitlines().index("    dz1 = dh1 * h1 * (1 - h1)[:, :3]")
    assert_one_line_error(run("check", str(path)), f"{path}:{line}: ValueError")


def test_no_such_file_and_bad_flags(tmp_path: Path) -> None:
    assert_one_line_error(run("check", str(tmp_path / "nope.py")), "no such file")
    assert_one_line_error(run("check", str(EXAMPLE), "--at", "0,-1"), "--at")
    assert_one_line_error(run("check", str(EXAMPLE), "--dataset", "nosuch"), "nosuch")


LOOP = {"    N = len(X)": "    N = len(X)\n    while True:\n        N += 1"}


def test_an_endless_loop_stops_at_the_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "loop.py"
    path.write_text(source(**LOOP))
    res = run("check", str(path), "--time-limit", "0.5")
    assert_one_line_error(res, "TimeoutError", "backward()", "0.5 s")


def test_ctrl_c_interrupts_an_endless_loop(tmp_path: Path) -> None:
    path = tmp_path / "loop.py"
    path.write_text(source(**LOOP))
    proc = subprocess.Popen([*EXE, "check", str(path), "--time-limit", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # imports, init, loss: then it spins inside backward()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["error: interrupted"]


def test_record_refuses_to_overwrite_and_writes_nothing_on_an_exception(tmp_path: Path) -> None:
    out = tmp_path / "run.db"
    out.write_bytes(b"keep me")
    res = run("record", str(EXAMPLE), "--iterations", "5", "--out", str(out))
    assert_one_line_error(res, "exists", "--force")
    assert out.read_bytes() == b"keep me"
    boom = tmp_path / "boom.py"
    boom.write_text(source(**{"    N = len(X)": "    N = len(X)\n    if params['b2'][0] != 0:"
                                               "\n        raise RuntimeError('boom')"}))
    res = run("record", str(boom), "--iterations", "5", "--out", str(tmp_path / "new.db"))
    assert_one_line_error(res, "boom.py:", "RuntimeError: boom")
    assert not (tmp_path / "new.db").exists()
