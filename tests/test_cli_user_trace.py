"""`record FILE.py` then `info`, `metrics`, `export`, `diff`, `replay` on the trace it writes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.engine.history import MetricsBlock
from core.model.config import Config
from core.user.loader import load
from core.user.machine import UserMachine
from core.user.session import resolve_data
from core.user.stepper import UserStepper
from tests.core.user_variants import EXAMPLE
from tests.test_cli_check import assert_one_line_error, run

N = 300


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("usertrace")
    mynet = tmp / "mynet.py"
    shutil.copy(EXAMPLE, mynet)
    out = tmp / "run.db"
    res = run("record", str(mynet), "--iterations", str(N), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"recorded {N} iterations of {mynet}" in res.stdout and "bytes/iteration" in res.stdout
    return mynet, out


def live(path: Path) -> tuple[MetricsBlock, list]:
    """The same N iterations run here: metrics by the bare machine, events by a stepper."""
    prog = load(str(path))
    X, y = resolve_data(prog, None, prog.seed)
    m = UserMachine(prog, X, y, Config(lr=prog.lr, seed=prog.seed, dataset="user"))
    block = m.run_fast(N)
    s = UserStepper(prog, X, y, seed=prog.seed, lr=prog.lr)
    s.run_until(lambda ev: None, max_iters=N)
    return block, s.events


def test_info_summarises_a_user_trace(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    mynet, out = recorded
    res = run("info", str(out), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    block, events = live(mynet)
    assert info["kind"] == "user" and info["file"] == str(mynet)
    assert info["sha256"] == hashlib.sha256(mynet.read_bytes()).hexdigest()
    assert info["iterations"] == N and info["on_disk"] == "unchanged"
    assert info["final"]["loss"] == float(block.loss[-1])  # JSON floats round-trip exactly
    assert list(info["final"]["grad_norm"].values()) == [float(v) for v in block.grad_norm[-1]]
    assert info["events"]["count"] == len(events)
    assert info["bytes_per_iteration"] == out.stat().st_size / N
    text = run("info", str(out)).stdout
    assert "your own code" in text and f"sha256 {info['sha256'][:16]}" in text
    assert f"iterations  {N} of {N}" in text and f"loss {float(block.loss[-1]):.4g}" in text
    moved = tmp_path / "run.db"  # the file on disk changes: info says so
    shutil.copy(out, moved)
    original = mynet.read_text()
    try:
        mynet.write_text(original + "\n# edited\n")
        assert "changed since it was recorded" in run("info", str(moved)).stdout
    finally:
        mynet.write_text(original)


def test_metrics_exports_the_recorded_scalars(recorded: tuple[Path, Path]) -> None:
    mynet, out = recorded
    res = run("metrics", str(out))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    block, _ = live(mynet)
    assert [int(r["iteration"]) for r in rows] == list(range(N))
    assert np.array([float(r["loss"]) for r in rows]).tobytes() == block.loss.tobytes()
    for j in range(block.grad_norm.shape[1]):  # one column per parameter, in init()'s order
        got = np.array([float(r[f"grad_norm{j + 1}"]) for r in rows])
        assert got.tobytes() == block.grad_norm[:, j].tobytes()
    assert all(r["acc"] == "nan" for r in rows)  # the contract has no predictions
    res = run("metrics", str(out), "--every", "100", "--jsonl")
    assert [json.loads(line)["iteration"] for line in res.stdout.splitlines()] == [0, 100, 200,
                                                                                     N - 1]
    assert_one_line_error(run("metrics", str(out), "--sql"), "--sql")


def test_built_in_only_commands_refuse_in_one_line(recorded: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    _, out = recorded
    npz = tmp_path / "x.npz"
    assert_one_line_error(run("export", str(out), "--iteration", "3", "--out", str(npz)),
                          "your own code", "built-in runs only")
    assert not npz.exists()
    assert_one_line_error(run("diff", str(out), str(out)), "your own code")
    assert_one_line_error(run("replay", str(out), "--op", "dL/dW1"), "--op")
    assert_one_line_error(run("record", str(EXAMPLE), "--iterations", "5", "--out",
                              str(tmp_path / "y.db"), "--sql-metrics"), "--sql-metrics")


def test_a_damaged_user_trace_is_one_error_line(recorded: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    _, out = recorded
    bad = tmp_path / "bad.db"
    shutil.copy(out, bad)
    con = sqlite3.connect(bad)
    con.execute("UPDATE source SET text = replace(text, 'def ', 'def  ')")
    con.commit()
    con.close()
    for cmd in (["info", str(bad)], ["metrics", str(bad)], ["replay", str(bad)]):
        assert_one_line_error(run(*cmd), str(bad), "sha256")
    half = tmp_path / "half.db"
    half.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    assert_one_line_error(run("info", str(half)), str(half))


def test_force_replaces_a_user_trace(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    mynet, _ = recorded
    out = tmp_path / "run.db"
    assert run("record", str(mynet), "--iterations", "10", "--out", str(out)).returncode == 0
    res = run("record", str(mynet), "--iterations", "20", "--out", str(out), "--force")
    assert res.returncode == 0, res.stderr
    assert json.loads(run("info", str(out), "--json").stdout)["iterations"] == 20


def test_ctrl_c_in_the_users_code_keeps_the_iterations_done(tmp_path: Path) -> None:
    # KeyboardInterrupt raised from inside backward() on its 1000th call, as Ctrl-C would;
    # what is kept is the history up to the last block the stepper finished (of 256)
    mynet = tmp_path / "mynet.py"
    mynet.write_text(EXAMPLE.read_text().replace(
        "def backward(", "CALLS = [0]\n\n\ndef backward(", 1).replace(
        "    N = len(X)", "    N = len(X)\n    CALLS[0] += 1\n    if CALLS[0] == 1000:\n"
                         "        raise KeyboardInterrupt", 1))
    out = tmp_path / "run.db"
    res = run("record", str(mynet), "--iterations", "5000", "--out", str(out))
    assert res.returncode == 130, res.stderr
    info = json.loads(run("info", str(out), "--json").stdout)
    n = info["iterations"]
    assert info["status"] == "interrupted" and 0 < n < 1000
    assert res.stderr.strip().splitlines() == [
        f"interrupted: kept iterations 0..{n - 1} of 5,000 in {out}"]
    prog = load(str(mynet))  # a fresh copy: its counter starts again
    X, y = resolve_data(prog, None, prog.seed)
    m = UserMachine(prog, X, y, Config(lr=prog.lr, seed=prog.seed, dataset="user"))
    assert info["final"]["loss"] == float(m.run_fast(n).loss[-1])


def test_verify_checks_a_user_trace_and_names_a_damaged_checkpoint(
        recorded: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = recorded
    res = run("verify", str(out))
    assert res.returncode == 0 and "ok · your own code" in res.stdout, res.stderr
    bad = tmp_path / "bad.db"
    shutil.copy(out, bad)
    con = sqlite3.connect(bad)
    it, name, data = con.execute("SELECT iteration, name, data FROM checkpoints "
                                 "ORDER BY iteration DESC LIMIT 1").fetchone()
    flipped = bytes([data[0] ^ 1]) + bytes(data[1:])
    con.execute("UPDATE checkpoints SET data = ? WHERE iteration = ? AND name = ?",
                (flipped, it, name))
    con.commit()
    con.close()
    res = run("verify", str(bad))
    assert_one_line_error(res)
    assert "checkpoint" in res.stderr
