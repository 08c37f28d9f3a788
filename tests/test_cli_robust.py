"""Regression tests for the bad-input tail a fuzzing pass found (issue 11).

Each case gives one `error: ...` line on stderr, exit status 2, no traceback, and
nothing written or replaced — or it works.  Most run `cli.main` in-process (fast);
the ones about real processes, FIFOs, signals and concurrent writers run the CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.store.trace import TraceError, TraceReader
from tui_backprop import cli

MAIN = "import sys; from tui_backprop.cli import main; sys.exit(main())"


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True,
                          timeout=120, **kw)


def main_err(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(args)
    return code, capsys.readouterr().err


def one_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def export(tmp_path: Path, *args: str) -> list[str]:
    return ["export", *args, "--iteration", "0", "--out", str(tmp_path / "o.npz")]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ flags and TOML
@pytest.mark.parametrize("args, words", [
    (["--outputs", "1000000"], ["outputs", "<= 1024"]),
    (["--outputs", "1000000000"], ["outputs", "<= 1024"]),
    (["--outputs", "9223372036854775808"], ["outputs"]),
    (["--outputs", str(10**23)], ["outputs"]),
    (["--hidden", "100000,100000"], ["needs about", "GiB", "available"]),
    (["--hidden", ",".join(["3"] * 40)], ["at most 32"]),
    (["--preset", ""], ["unknown preset ''"]),
    (["--config", ""], ["--config needs a file name"]),
    (["--lr-decay", "1e308"], ["lr_decay", "<= 1e+100"]),
    (["--lr", "1e300"], ["lr", "<= 1e+100"]),
    (["--seed", str(2**63)], ["seed"]),
    (["--batch-size", str(10**12)], ["batch_size"]),
])
def test_bad_flags_are_one_line(args: list[str], words: list[str], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    one_line(*main_err(export(tmp_path, *args), capsys), *words)
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("toml, words", [
    ("seed = 1.0\n", ["seed must be an integer", "float 1.0", "write 1"]),
    ("outputs = 2.0\n", ["outputs must be an integer"]),
    ("limit = 10.0\n", ["limit must be an integer"]),
    ("batch_size = 2.0\n", ["batch_size must be an integer"]),
    ("hidden = [true]\n", ["hidden width True"]),
    ("hidden = [3.0]\n", ["hidden width 3.0"]),
    ("[detect]\nwindow = 4611686018427387904\n", ["window must be <="]),
    ("[detect]\nwindow = 1e12\n", ["window must be an integer"]),
    ("[detect]\nrise_iters = 1e12\n", ["rise_iters"]),
    ("a = " + "[" * 3000 + "]" * 3000 + "\n", ["nested deeper"]),
    ("".join(f"[{'.'.join(['t'] * k)}]\n" for k in range(1, 12)), ["nested deeper"]),
    ("detect = 3\n", ["detect must be a table"]),
])
def test_bad_toml_is_one_line(toml: str, words: list[str], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "run.toml", toml)
    one_line(*main_err(export(tmp_path, "--config", str(path)), capsys), "run.toml", *words)


def test_huge_toml_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "big.toml", "# padding\n" * 200_000)
    one_line(*main_err(export(tmp_path, "--config", str(path)), capsys), "MiB", "at most")


def test_integral_floats_are_refused_everywhere_alike() -> None:
    """The decision: int settings take ints only (TOML, JSON, knobs, trace configs)."""
    from core.model.config import Config, ConfigError

    for field in ("seed", "outputs", "limit", "batch_size"):
        with pytest.raises(ConfigError, match=f"{field} must be an integer"):
            Config.build(Config(), {field: 2.0})
        Config.build(Config(), {field: 2})  # the int itself is fine
    for field in ("window", "rise_iters"):
        with pytest.raises(ConfigError, match=f"{field} must be an integer"):
            Config.build(Config(), {"detect": {field: 64.0}})


# ------------------------------------------------------------------ files
def test_fifo_as_config_or_dataset_is_refused_without_blocking(tmp_path: Path) -> None:
    for name in ("run.toml", "d.csv", "d.npz"):
        os.mkfifo(tmp_path / name)
    for args in (["--config", "run.toml"], ["--dataset", "d.csv"], ["--dataset", "d.npz"]):
        res = run("export", *args, "--iteration", "0", "--out", "o.npz", cwd=tmp_path)
        one_line(res.returncode, res.stderr, "FIFO", "not a regular file")
    res = run("export", "--config", "/dev/zero", "--iteration", "0", "--out", "o.npz",
              cwd=tmp_path)
    one_line(res.returncode, res.stderr, "character device")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("labels", [[1, 1, 1], [7, 7, 7]])
def test_csv_with_one_distinct_class_is_refused(labels: list[int], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "one.csv", "".join(f"{i},{i * 2},{k}\n"
                                               for i, k in enumerate(labels)))
    one_line(*main_err(export(tmp_path, "--dataset", str(path)), capsys),
             "only one class", f"every label is {labels[0]}")


def test_output_path_with_a_300_character_name(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    long = "x" * 300
    for out in (tmp_path / f"{long}.npz", tmp_path / long / "o.npz"):
        one_line(*main_err(["export", "--iteration", "0", "--out", str(out)], capsys),
                 "File name too long")
        one_line(*main_err(["record", "--iterations", "5", "--out", str(out)], capsys),
                 "File name too long")
    one_line(*main_err(["info", str(tmp_path / f"{long}.trace")], capsys), "too long")


@pytest.mark.parametrize("command", ["export", "record"])
def test_force_never_replaces_a_fifo_or_a_device(command: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    count = "--iteration" if command == "export" else "--iterations"
    for target, kind in ((fifo, "FIFO"), (Path("/dev/null"), "character device")):
        one_line(*main_err([command, count, "3", "--out", str(target), "--force"], capsys),
                 kind, "refusing to replace")
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()


# ------------------------------------------------------------------ warnings
def test_no_numpy_warning_text_reaches_the_terminal(tmp_path: Path) -> None:
    """--lr-decay 1e308 is refused before NumPy sees it; the largest allowed decay runs
    without an overflow warning in record, info and export (real processes, no -W)."""
    trace = tmp_path / "r.trace"
    res = run("record", "--iterations", "50", "--lr-decay", "1e100", "--out", str(trace))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    for args in (["info", str(trace)], ["export", str(trace), "--iteration", "40", "--out",
                                        str(tmp_path / "a.npz")],
                 ["export", "--lr-decay", "1e100", "--iteration", "40", "--out",
                  str(tmp_path / "b.npz")]):
        res = run(*args)
        assert res.returncode == 0 and res.stderr == "", res.stderr
    for cmd in (["record", "--iterations", "5", "--out", str(tmp_path / "x.trace")],
                ["export", "--iteration", "3", "--out", str(tmp_path / "x.npz")]):
        res = run(*cmd, "--lr-decay", "1e308")
        one_line(res.returncode, res.stderr, "lr_decay")
        assert "RuntimeWarning" not in res.stderr


# ------------------------------------------------------------------ replay / verify
@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t") / "run.trace"
    assert cli.main(["record", "--iterations", "700", "--checkpoint-every", "64",
                     "--out", str(path)]) == 0
    return path


def test_replay_with_a_bogus_op_is_an_error(trace: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    one_line(*main_err(["replay", str(trace), "--op", "bogus"], capsys), "unknown op 'bogus'")
    one_line(*main_err(["replay", str(trace), "--iteration", "3", "--op", "bogus"], capsys),
             "unknown op")


def test_verify_reports_the_first_damaged_checkpoint(trace: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    import sqlite3

    capsys.readouterr()
    assert cli.main(["verify", str(trace)]) == 0
    out = capsys.readouterr().out
    with TraceReader(trace) as tr:
        assert f"{tr.n:,} iterations" in out and f"{len(tr.checkpoints)} checkpoints" in out
        later, first = tr.checkpoints[-2], tr.checkpoints[3]
    bad = tmp_path / "bad.trace"
    shutil.copy(trace, bad)
    con = sqlite3.connect(bad)
    con.execute("UPDATE checkpoints SET data = zeroblob(length(data)) "
                "WHERE iteration IN (?, ?) AND name = 'W1'", (first, later))
    con.commit()
    con.close()
    assert cli.main(["info", str(bad)]) == 0  # opening alone does not read checkpoints
    capsys.readouterr()
    one_line(*main_err(["verify", str(bad)], capsys), f"checkpoint {first} W1", "checksum")


@pytest.mark.parametrize("update, words", [
    ("UPDATE meta SET value = 'abc' WHERE key = 'target'", ["meta target = 'abc'"]),
    ("UPDATE meta SET value = '[1, 2]' WHERE key = 'config'", ["not a list"]),
    ("UPDATE meta SET value = replace(value, '\"seed\": 0', '\"seed\": 0.0') "
     "WHERE key = 'config'", ["seed must be an integer"]),
    ("UPDATE meta SET value = replace(value, '\"outputs\": 0', '\"outputs\": 2.0') "
     "WHERE key = 'config'", ["outputs must be an integer"]),
    ("UPDATE meta SET value = 'done' WHERE key = 'status'", ["meta status"]),
    ("UPDATE meta SET value = replace(value, '\"hidden\": [3]', '\"hidden\": [100000, 100000]')"
     " WHERE key = 'config'", ["needs about", "GiB", "available"]),
    ("UPDATE meta SET value = 'xyz' WHERE key = 'dataset_sha256'", ["dataset_sha256"]),
    ("UPDATE meta SET value = x'05' WHERE key = 'created'", ["meta entry"]),
])
def test_stored_fields_are_validated_on_open(update: str, words: list[str], trace: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    import sqlite3

    bad = tmp_path / "bad.trace"
    shutil.copy(trace, bad)
    con = sqlite3.connect(bad)
    con.execute(update)
    con.commit()
    con.close()
    capsys.readouterr()
    for args in (["info", str(bad)], ["verify", str(bad)], ["replay", str(bad)],
                 ["export", str(bad), "--iteration", "1", "--out", str(tmp_path / "o.npz")]):
        one_line(*main_err(args, capsys), str(bad), *words)


def test_unreadable_trace_is_one_line(trace: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Permission denied (as root chmod cannot deny, so the open itself is made to fail)."""
    import builtins

    real_open = builtins.open

    def denied(file, *args, **kw):
        if str(file) == str(trace):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", denied)
    for args in (["info", str(trace)], ["verify", str(trace)], ["replay", str(trace)]):
        one_line(*main_err(args, capsys), "Permission denied")
    if os.geteuid() != 0:  # a real unreadable file, where the OS can deny it
        monkeypatch.undo()
        locked = trace.parent / "locked.trace"
        locked.write_bytes(trace.read_bytes())
        locked.chmod(0)
        one_line(*main_err(["info", str(locked)], capsys), "Permission denied")


# ------------------------------------------------------------------ record --force
def limit_file_size() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_force_on_a_full_disk_keeps_the_old_trace(trace: Path, tmp_path: Path) -> None:
    """The new file fails before it holds an iteration: the old one is untouched."""
    path = tmp_path / "run.trace"
    path.write_bytes(trace.read_bytes())
    before = path.read_bytes()
    res = run("record", "--iterations", "100000000", "--out", str(path), "--force",
              "--seed", "3", preexec_fn=limit_file_size)
    one_line(res.returncode, res.stderr, "cannot write", "unchanged")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]


def test_force_interrupted_before_any_iteration_keeps_the_old_trace(trace: Path,
                                                                    tmp_path: Path) -> None:
    from core.model.config import Config
    from core.store.recorder import Recorder

    path = tmp_path / "run.trace"
    path.write_bytes(trace.read_bytes())
    before = path.read_bytes()
    rec = Recorder(path, Config(hidden=(3,), seed=9), force=True)
    rec.run(10, should_stop=lambda: True)
    rec.close("interrupted")
    assert rec.discarded and path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]


def test_force_replaces_at_the_first_commit(trace: Path, tmp_path: Path) -> None:
    from core.model.config import Config
    from core.store.recorder import Recorder

    path = tmp_path / "run.trace"
    path.write_bytes(trace.read_bytes())
    before = path.read_bytes()
    rec = Recorder(path, Config(hidden=(3,), seed=9), force=True, commit_s=3600)
    rec.run(40)
    assert path.read_bytes() == before  # nothing committed yet: the old trace is intact
    rec.commit()
    with TraceReader(path) as tr:
        assert tr.cfg.seed == 9 and tr.n == 40
    rec.run(10)
    rec.close()
    with TraceReader(path) as tr:
        assert tr.n == 50 and tr.status == "complete"


def test_two_recordings_on_one_path_the_later_wins(tmp_path: Path) -> None:
    """A records; B --force replaces it.  A says so (one error line), the file is B's,
    whole, and never a mix of the two runs."""
    path = tmp_path / "run.trace"
    a = subprocess.Popen([sys.executable, "-c", MAIN, "record", "--iterations", "100000000",
                          "--out", str(path), "--seed", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with TraceReader(path) as tr:
                if tr.n:
                    break
        except TraceError:
            pass
        assert a.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    b = run("record", "--iterations", "3000", "--out", str(path), "--force", "--seed", "2")
    assert b.returncode == 0, b.stderr
    try:
        _, a_err = a.communicate(timeout=60)  # A notices at its next commit (~1 s)
    finally:
        if a.poll() is None:
            a.send_signal(signal.SIGINT)
            a.communicate(timeout=60)
    one_line(a.returncode, a_err, "replaced by another recording", "are not in it")
    with TraceReader(path) as tr:
        assert tr.cfg.seed == 2 and tr.n == 3000 and tr.status == "complete"
    assert cli.main(["verify", str(path)]) == 0
    from tui_backprop.cli import live_export
    from tui_backprop.trace_cli import trace_export

    got = trace_export(str(path), 2999)
    from core.model.presets import preset_config

    want = live_export(preset_config("xor-3").replace(seed=2), 2999)
    assert all(np.array_equal(got[k], want[k]) for k in want)  # wholly B's run
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]


def test_two_forced_recordings_interleaved_never_mix(trace: Path, tmp_path: Path) -> None:
    """A and B both replace an existing trace, interleaved by hand: B puts its file in
    place last and wins whole; A learns it at its next commit and at close."""
    from core.model.config import Config
    from core.store.recorder import Recorder
    from core.store.replay import Replay

    path = tmp_path / "run.trace"
    path.write_bytes(trace.read_bytes())
    a = Recorder(path, Config(hidden=(3,), seed=11), force=True, commit_s=3600)
    b = Recorder(path, Config(hidden=(3,), seed=12), force=True, commit_s=3600)
    a.run(100)
    a.commit()  # A's file is in place
    b.run(100)
    b.commit()  # B's replaces it
    a.run(100)
    with pytest.raises(TraceError, match="replaced by another recording.*200 iterations"):
        a.commit()
    b.run(200)
    b.close()
    with TraceReader(path) as tr:
        assert tr.cfg.seed == 12 and tr.n == 300 and tr.status == "complete"
    rp = Replay(path)
    rp.jump(299, 0)  # re-executes from B's checkpoints against B's metrics: a mix diverges
    assert not rp.divergence
    rp.close()
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]


# ------------------------------------------------------------------ export progress
def test_export_far_shows_progress_on_a_tty_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """export --iteration 10**12 on a terminal: a bar with an ETA, and Ctrl-C stops it."""
    import pty

    out = tmp_path / "far.npz"
    main_fd, sub_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "export", "--iteration",
                             str(10**12), "--out", str(out)], stdin=sub_fd, stdout=sub_fd,
                            stderr=sub_fd, env={**os.environ, "COLUMNS": "120"})
    os.close(sub_fd)
    seen = b""
    deadline = time.monotonic() + 60
    while b"it/s" not in seen or b"training to iteration" not in seen:
        assert proc.poll() is None and time.monotonic() < deadline, seen
        try:
            seen += os.read(main_fd, 4096)
        except OSError:
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    rest = b""
    try:
        while chunk := os.read(main_fd, 4096):
            rest += chunk
    except OSError:
        pass
    os.close(main_fd)
    assert b"Traceback" not in seen + rest and b"interrupted" in rest
    assert b"1,000,000,000,000" in seen  # the bar's total; the ETA column sits beside it
    assert not out.exists()
