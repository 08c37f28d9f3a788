"""Recording a user file to a trace and replaying it: the stored source re-executes exactly."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.store.columns import decode_block, encode_block
from core.store.trace import TraceError
from core.user.loader import load
from core.user.replay import UserReplay
from core.user.session import resolve_data
from core.user.stepper import UserStepper
from core.user.usertrace import read
from tests.core.user_variants import source

EXE = [sys.executable, "-m", "tui_backprop.cli"]


def record(tmp: Path, iterations: int = 120) -> tuple[Path, Path]:
    mynet = tmp / "mynet.py"
    mynet.write_text(source())
    run = tmp / "run.db"
    res = subprocess.run([*EXE, "record", str(mynet), "--iterations", str(iterations),
                          "--out", str(run), "--checkpoint-every", "16"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return mynet, run


def test_replay_equals_a_live_run_of_the_file(tmp_path: Path) -> None:
    mynet, run = record(tmp_path)
    rep = UserReplay(str(run))
    assert rep.end == 120 and len(rep.history) == 120 and rep.changed == ""
    prog = load(str(mynet))
    X, y = resolve_data(prog, None, 0)
    live = UserStepper(prog, X, y, seed=0, lr=prog.lr, precheck=False)
    live.run(120)
    assert rep.history.view(0, 120).loss.tobytes() == live.history.view(0, 120).loss.tobytes()
    for it, op in ((97, 3), (5, 0), (119, -1)):
        rep.jump(it, op)
        live.jump(it, op)
        assert rep.op.name.split()[0] == live.op.name.split()[0]
        assert rep.value.tobytes() == live.value.tobytes()
    assert rep.diverged is None
    with pytest.raises(ValueError):
        rep.jump(120, 0)  # past the recorded range


def test_a_changed_file_is_said_plainly_and_the_recorded_source_replays(tmp_path: Path) -> None:
    mynet, run = record(tmp_path)
    mynet.write_text(source("sign_flip_w2"))
    rep = UserReplay(str(run))
    assert "changed since it was recorded" in rep.changed
    rep.jump(50, 0)
    assert rep.diverged is None  # the recorded source, not the changed file, re-executed
    mynet.unlink()
    assert "no longer exists" in UserReplay(str(run)).changed


def test_a_tampered_metric_is_reported_as_divergence(tmp_path: Path) -> None:
    _, run = record(tmp_path)
    con = sqlite3.connect(run)
    row = con.execute("SELECT dtype, shape, data, crc FROM blocks WHERE name = 'loss'").fetchone()
    loss = decode_block("loss", *row).copy()
    loss[70] = np.nextafter(loss[70], 1.0)  # one ulp
    con.execute("UPDATE blocks SET dtype = ?, shape = ?, data = ?, crc = ? WHERE name = 'loss'",
                encode_block(loss))
    con.commit()
    con.close()
    rep = UserReplay(str(run))
    rep.jump(75, 0)  # re-executes from the checkpoint at 64 across iteration 70
    assert rep.diverged is not None and rep.diverged.iteration == 70


def test_a_damaged_recording_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a trace")
    with pytest.raises(TraceError, match="not a tui-backprop trace"):
        read(str(bad))
