"""The trace commands as a user runs them: real processes, real signals, real files."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.store.trace import TraceError, TraceReader
from tui_backprop.cli import live_export
from tui_backprop.options import config_from_args

MAIN = "import sys; from tui_backprop.cli import main; sys.exit(main())"


def cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True,
                          timeout=120, **kw)


def start(*args: str, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", MAIN, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def one_error_line(res: subprocess.CompletedProcess[str], expect: str) -> None:
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert expect in res.stderr and "Traceback" not in res.stderr


def recorded(path: Path) -> int:
    """Iterations a (possibly still running) recorder has committed; 0 until it exists."""
    try:
        with TraceReader(path) as tr:
            return tr.n
    except TraceError:
        return 0


def wait_for_commits(path: Path, proc: subprocess.Popen[str], least: int = 1) -> int:
    deadline = time.monotonic() + 60
    while (n := recorded(path)) < least:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    return n


def seed_export(iteration: int) -> dict[str, np.ndarray]:
    from tui_backprop.cli import build_parser

    return live_export(config_from_args(build_parser().parse_args(["export", "--iteration",
                                                                   "0", "--out", "x"])),
                       iteration)


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_record_then_export_equals_live_export(tmp_path: Path) -> None:
    run = tmp_path / "run.trace"
    res = cli("record", "--iterations", "600", "--out", str(run))
    assert res.returncode == 0, res.stderr
    assert "recorded 600 iterations" in res.stdout and "bytes/iteration" in res.stdout
    for args in ([str(run)], []):
        out = tmp_path / f"{len(args)}.npz"
        res = cli("export", *args, "--iteration", "555", "--out", str(out))
        assert res.returncode == 0, res.stderr
    with np.load(tmp_path / "1.npz") as a, np.load(tmp_path / "0.npz") as b:
        assert_same_arrays(dict(a), dict(b))
    info = json.loads(cli("info", str(run), "--json").stdout)
    assert info["iterations"] == 600 and info["status"] == "complete"
    assert info["bytes_per_iteration"] > 0 and info["final"]["iteration"] == 599
    text = cli("info", str(run)).stdout
    assert "600 of 600 requested" in text and "bytes/iteration" in text


def test_existing_trace_needs_force(tmp_path: Path) -> None:
    run = tmp_path / "run.trace"
    assert cli("record", "--iterations", "50", "--out", str(run)).returncode == 0
    before = run.read_bytes()
    one_error_line(cli("record", "--iterations", "70", "--out", str(run)),
                   "exists; pass --force")
    assert run.read_bytes() == before
    res = cli("record", "--iterations", "70", "--out", str(run), "--force", "--seed", "4")
    assert res.returncode == 0, res.stderr
    with TraceReader(run) as tr:
        assert tr.n == 70 and tr.cfg.seed == 4
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]


def test_kill_9_during_record_leaves_a_readable_trace(tmp_path: Path) -> None:
    run = tmp_path / "run.trace"
    proc = start("record", "--iterations", "100000000", "--out", str(run))
    seen = wait_for_commits(run, proc)
    proc.kill()  # SIGKILL: no cleanup of any kind
    proc.wait()
    info = json.loads(cli("info", str(run), "--json").stdout)
    n = info["iterations"]
    assert n >= seen and info["status"] == "recording"
    out = tmp_path / "last.npz"
    res = cli("export", str(run), "--iteration", str(n - 1), "--out", str(out))
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    with np.load(out) as a:
        assert_same_arrays(dict(a), seed_export(n - 1))
    one_error_line(cli("export", str(run), "--iteration", str(n), "--out", str(out), "--force"),
                   f"(0..{n - 1})")


def test_ctrl_c_stops_cleanly_and_keeps_everything(tmp_path: Path) -> None:
    run = tmp_path / "run.trace"
    proc = start("record", "--iterations", "100000000", "--out", str(run))
    wait_for_commits(run, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: kept iterations 0.." in err
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]  # closed: one plain file
    with TraceReader(run) as tr:
        assert tr.status == "interrupted" and f"0..{tr.n - 1} " in err
        assert tr.checkpoints[-1] == tr.n  # the end is a checkpoint too


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))


def test_full_disk_is_one_error_and_committed_data_stays(tmp_path: Path) -> None:
    run = tmp_path / "run.trace"
    res = cli("record", "--iterations", "100000000", "--out", str(run),
              preexec_fn=limit_file_size)
    one_error_line(res, f"cannot write {run}")
    kept = int(res.stderr.split("kept iterations 0..")[1].split()[0])
    with TraceReader(run) as tr:
        assert tr.n >= kept + 1 > 1


@pytest.mark.parametrize("where", ["missing/run.trace", "afile/run.trace", "."])
def test_unwritable_path_is_one_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "afile").write_text("x")
    one_error_line(cli("record", "--iterations", "10", "--out", where, cwd=tmp_path),
                   "")
    assert sorted(os.listdir(tmp_path)) == ["afile"]


@pytest.mark.parametrize("content,expect", [(None, "no such file"), (b"", "empty file"),
                                            (b"x,y\n1,2\n", "not an SQLite database")])
def test_bad_trace_files_are_one_error(tmp_path: Path, content: bytes | None,
                                       expect: str) -> None:
    run = tmp_path / "run.trace"
    if content is not None:
        run.write_bytes(content)
    one_error_line(cli("info", str(run)), expect)
    one_error_line(cli("export", str(run), "--iteration", "0", "--out", "o.npz", cwd=tmp_path),
                   expect)
    one_error_line(cli("replay", str(run)), expect)
    assert not (tmp_path / "o.npz").exists()
