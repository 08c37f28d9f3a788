"""The user trace as stored: SQLite of the built-in kind, exact round trips, one-line damage."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.store.trace import APPLICATION_ID, TraceError, TraceReader
from core.user.loader import UserError, load
from core.user.machine import UserMachine
from core.user.recording import record, save
from core.user.replay import UserReplay
from core.user.session import resolve_data
from core.user.usertrace import is_user_trace, read
from tests.core.user_variants import EXAMPLE

# any rank, dtypes a trace's allow-list lacks (int32, int16, float16): all must come back as made
ODD = '''
import numpy as np

def data():
    X = (np.arange(48, dtype=np.int32).reshape(12, 2, 2, 1) % 5) - 2
    y = (np.arange(12) % 3 == 0).astype(np.int16)
    return X, y

def init(rng):
    return {"W": (0.1 * rng.standard_normal((1, 2, 2, 1))).astype(np.float32),
            "c": np.zeros(1, np.float16)}

def _z(params, X):
    return (X * params["W"]).sum(axis=(1, 2, 3)) + params["c"][0]

def loss(params, X, y):
    return float(np.mean((_z(params, X) - y) ** 2))

def backward(params, X, y):
    d = 2 * (_z(params, X) - y) / len(y)
    return {"W": (d[:, None, None, None] * X).sum(0, keepdims=True).astype(np.float32),
            "c": np.array([d.sum()], np.float16)}

LR = 0.05
'''


def _record(path: Path, out: Path, iterations: int, every: int = 16,
            should_stop: Callable[[], bool] | None = None) -> None:
    prog = load(str(path))
    X, y = resolve_data(prog, None, prog.seed)
    rec = record(prog, X, y, seed=prog.seed, lr=prog.lr, iterations=iterations, every=every,
                 should_stop=should_stop)
    save(rec, str(out), force=False)


def _live_params(path: Path, iterations: int) -> dict[str, np.ndarray]:
    """The user's parameters after `iterations` steps, run here without any trace."""
    prog = load(str(path))
    X, y = resolve_data(prog, None, prog.seed)
    from core.model.config import Config

    m = UserMachine(prog, X, y, Config(lr=prog.lr, seed=prog.seed, dataset="user"))
    m.run_fast(iterations) if iterations else None
    return m.snapshot()


def test_the_file_is_a_trace_of_the_built_in_kind_with_a_source_table(tmp_path: Path) -> None:
    run = tmp_path / "run.db"
    _record(EXAMPLE, run, 40)
    con = sqlite3.connect(run)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "dataset", "blocks", "checkpoints", "events", "source"} <= tables
    text, sha = con.execute("SELECT text, sha256 FROM source").fetchone()
    con.close()
    assert text == EXAMPLE.read_text() and len(sha) == 64
    assert is_user_trace(str(run)) and not is_user_trace(str(EXAMPLE))
    with pytest.raises(TraceError, match="your own code") as exc:
        TraceReader(run)  # export and diff read through it: one line, not a crash
    assert "\n" not in str(exc.value)


def test_checkpoints_and_data_round_trip_exactly(tmp_path: Path) -> None:
    run = tmp_path / "run.db"
    _record(EXAMPLE, run, 50, every=16)
    rec = read(str(run))
    assert rec.n == 50 and sorted(rec.checkpoints) == [0, 16, 32, 48]
    for k in (0, 32, 48):
        live = _live_params(EXAMPLE, k)
        assert list(rec.checkpoints[k]) == list(live)  # init()'s order
        for name, arr in live.items():
            assert rec.checkpoints[k][name].tobytes() == arr.tobytes()
    prog = load(str(EXAMPLE))
    X, y = resolve_data(prog, None, prog.seed)
    assert rec.X.tobytes() == X.tobytes() and rec.y.tobytes() == y.tobytes()
    assert np.isnan(rec.history.acc).all()  # the contract has no predictions


def test_odd_dtypes_and_ranks_come_back_as_the_code_made_them(tmp_path: Path) -> None:
    odd = tmp_path / "odd.py"
    odd.write_text(ODD)
    run = tmp_path / "odd.db"
    _record(odd, run, 30, every=8)
    rec = read(str(run))
    prog = load(str(odd))
    X, y = prog.call("data")
    assert rec.X.dtype == X.dtype and rec.X.shape == X.shape and (rec.X == X).all()
    assert rec.y.dtype == y.dtype and (rec.y == y).all()
    live = _live_params(odd, 24)
    for name, arr in live.items():
        got = rec.checkpoints[24][name]
        assert got.dtype == arr.dtype and got.shape == arr.shape
        assert got.tobytes() == arr.tobytes()
    rep = UserReplay(str(run))
    rep.jump(27, 0)  # re-executed from the checkpoint at 24, checked against the metrics
    assert rep.diverged is None


def test_unstorable_data_is_refused_before_running(tmp_path: Path) -> None:
    bad = tmp_path / "cplx.py"
    bad.write_text(ODD.replace("return X, y", "return X.astype(np.complex128), y"))
    with pytest.raises(UserError, match="complex128"):
        _record(bad, tmp_path / "x.db", 5)
    assert not (tmp_path / "x.db").exists()


def test_a_stopped_recording_keeps_what_ran(tmp_path: Path) -> None:
    run = tmp_path / "run.db"
    calls = []

    def stop() -> bool:  # polled between blocks of 256 iterations
        calls.append(1)
        return len(calls) > 2
    _record(EXAMPLE, run, 5000, every=64, should_stop=stop)
    rec = read(str(run))
    assert rec.meta["status"] == "interrupted" and 0 < rec.n < 5000
    assert max(rec.checkpoints) <= rec.n
    assert UserReplay(str(run)).end == rec.n


def _sql(statement: str) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        con = sqlite3.connect(p)
        con.execute(statement)
        con.commit()
        con.close()
    return apply


DAMAGE = {
    "no source": (_sql("DROP TABLE source"), "missing table 'source'"),
    "edited source": (_sql("UPDATE source SET text = text || '#'"), "sha256"),
    "two sources": (_sql("INSERT INTO source SELECT * FROM source"), "one row"),
    "bad params": (_sql("UPDATE meta SET value = '[1]' WHERE key = 'params'"), "params"),
    "object dtype": (_sql("UPDATE meta SET value = '[[\"W1\", \"|O\", [2]]]' "
                          "WHERE key = 'params'"), "unsupported dtype"),
    "bad lr": (_sql("UPDATE meta SET value = 'Infinity' WHERE key = 'lr'"), "lr"),
    "flipped bit": (_sql("UPDATE checkpoints SET data = zeroblob(length(data)) "
                         "WHERE name = 'W1' AND iteration = 0"), "checksum"),
    "lost checkpoint": (_sql("DELETE FROM checkpoints WHERE iteration = 0"), "from iteration 0"),
    "short block": (_sql("DELETE FROM blocks WHERE name = 'grad_norm'"), "needs columns"),
    "bad event": (_sql("INSERT INTO events VALUES (99999, 'x', 'nan', '')"), "bad event"),
    "no X": (_sql("DELETE FROM dataset WHERE name = 'X'"), "exactly X and y"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:3000]), "damaged trace"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_damage_is_one_error_line(tmp_path: Path, name: str) -> None:
    run = tmp_path / "run.db"
    _record(EXAMPLE, run, 20, every=8)
    damage, words = DAMAGE[name]
    damage(run)
    with pytest.raises(TraceError) as exc:
        read(str(run))
    msg = str(exc.value)
    assert "\n" not in msg and str(run) in msg and words in msg, msg


def test_save_refuses_an_existing_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "run.db"
    out.write_bytes(b"keep me")
    with pytest.raises(TraceError, match="--force"):
        _record(EXAMPLE, out, 5)
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.db"]
