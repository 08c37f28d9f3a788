"""`diff` and `metrics` as a user runs them: exit codes, what they print, what they write."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.engine.stepper import Stepper
from core.model.config import Config
from core.store.recorder import Recorder
from core.store.trace import TraceReader
from tui_backprop import cli

SEED_CFG = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)
NAN_CFG = Config(hidden=(6,), lr=200.0, activation="relu", loss="ce", init="he")
SEED_FLAGS = ["--preset", "scratch-mlp"]  # = SEED_CFG: 2-10-2, first 50 points, lr 1e-3


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(code: int, err: str, expect: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    for name, cfg, n in (("f64", SEED_CFG, 400), ("f32", SEED_CFG.replace(dtype="float32"), 400),
                         ("nan", NAN_CFG, 500)):
        rec = Recorder(folder / f"{name}.db", cfg, block=128, every=32, target=n)
        rec.run(n)
        rec.close()
        out[name] = folder / f"{name}.db"
    return out


def test_diff_of_a_run_with_itself_is_identical(traces: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(traces["f64"], copy)
    code, out, err = run(capsys, "diff", str(traces["f64"]), str(copy))
    assert code == 0 and err == "" and "identical" in out and "0..399" in out
    code, out, _ = run(capsys, "diff", *SEED_FLAGS, "--vs", "--seed 0", "--iterations", "64")
    assert code == 0 and "identical" in out


def test_float32_against_float64_differs_at_iteration_0_in_z1(
        traces: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", str(traces["f64"]), str(traces["f32"]))
    assert code == 1
    assert "first difference  iteration 0: loss" in out
    assert "first op   z1 (op 1 of iteration 0)" in out
    code, out, _ = run(capsys, "diff", str(traces["f64"]), *SEED_FLAGS, "--vs", "--dtype float32")
    assert code == 1 and "first op   z1 (op 1 of iteration 0)" in out  # a trace against a live run


def test_a_knob_change_at_128_is_found_at_128_and_in_the_loss_at_129(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", "--preset", "xor-50-explode", "--vs", "--lr 2.0",
                       "--vs-from", "128", "--iterations", "200")
    assert code == 1
    assert "first difference  iteration 128: lr" in out
    assert "first differing loss  iteration 129" in out
    assert "first op   update W" in out and "of iteration 128" in out
    rows = {line.split()[0] for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert {"127", "128", "129"} <= rows  # the summary table around the change


def test_a_tolerance_turns_a_difference_into_identical(
        traces: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with TraceReader(traces["f64"]) as a, TraceReader(traces["f32"]) as b:
        x, y = a.history.view(), b.history.view()
        worst = max(float(np.max(np.abs(getattr(x, k) - getattr(y, k))
                                 / np.maximum(np.abs(getattr(x, k)), np.abs(getattr(y, k)))))
                    for k in ("loss", "acc", "lr", "grad_norm", "weight_norm"))
    code, out, _ = run(capsys, "diff", str(traces["f64"]), str(traces["f32"]),
                       "--rtol", repr(worst * 1.5))
    assert code == 0 and "identical" in out


def test_diff_of_different_shapes_compares_scalars_and_says_why_not_ops(
        traces: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", str(traces["f64"]), *SEED_FLAGS, "--vs", "--hidden 4")
    assert code == 1 and "first difference  iteration 0" in out
    assert "not compared: the networks differ (2-10-2 against 2-4-2)" in out


@pytest.mark.parametrize("args,expect", [
    (["diff", "missing.db", "other.db"], "no such file"),
    (["diff", "--preset", "xor-3"], "needs a second run"),
    (["diff", "--preset", "xor-3", "--vs", "--lr -1"], "lr"),
    (["diff", "--preset", "xor-3", "--vs", "--bogus 1"], "--vs"),
    (["diff", "--preset", "xor-3", "--vs", "--hidden 4", "--vs-from", "10"], "knob"),
    (["diff", "--preset", "xor-3", "--vs-from", "10"], "--vs-from needs --vs"),
    (["diff", "a", "b", "c"], "at most two"),
    (["diff", "xor-3", "xor-3", "--rtol", "2"], "--rtol"),
    (["metrics", "missing.db"], "no such file"),
    (["metrics", "x.db", "--every", "0"], "--every"),
])
def test_bad_input_is_one_error_line(args: list[str], expect: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    one_error_line(*run(capsys, *args)[::2], expect)


def test_metrics_refuses_to_overwrite_without_force(traces: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.csv"
    out.write_text("keep me")
    one_error_line(*run(capsys, "metrics", str(traces["f64"]), "--out", str(out))[::2],
                   "exists; pass --force")
    assert out.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    assert run(capsys, "metrics", str(traces["f64"]), "--out", str(out), "--force")[0] == 0
    assert out.read_text().startswith("iteration,loss,")


def _floats(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])


def test_metrics_csv_equals_the_live_run_and_infos_final_row(
        traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.csv"
    assert run(capsys, "metrics", str(traces["f64"]), "--out", str(out))[0] == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    live = Stepper(SEED_CFG)
    live.run_until(lambda ev: None, max_iters=400)
    h = live.history.view()
    assert [int(r["iteration"]) for r in rows] == list(range(400))
    for key, want in (("loss", h.loss), ("acc", h.acc), ("lr", h.lr),
                      ("grad_norm1", h.grad_norm[:, 0]), ("weight_norm2", h.weight_norm[:, 1]),
                      ("update_ratio1", h.update_ratio[:, 0]),
                      ("saturation1", h.saturation[:, 0])):
        assert np.array_equal(_floats(rows, key), want, equal_nan=True), key  # bit for bit
    code, text, _ = run(capsys, "info", str(traces["f64"]), "--json")
    final = json.loads(text)["final"]
    last = rows[-1]
    assert int(last["iteration"]) == final["iteration"]
    for key in ("loss", "acc", "lr"):
        assert float(last[key]) == final[key]
    for key in ("grad_norm", "weight_norm", "update_ratio"):
        assert [float(last[f"{key}{l}"]) for l in (1, 2)] == final[key]


def test_metrics_jsonl_every_k_with_events_and_nan(traces: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.jsonl"
    assert run(capsys, "metrics", str(traces["nan"]), "--every", "64", "--out", str(out))[0] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    with TraceReader(traces["nan"]) as tr:
        h, events = tr.history.view(), tr.events
    assert [r["iteration"] for r in rows] == [*range(0, 500, 64), 499]
    for r in rows:
        want = h.loss[r["iteration"]]
        assert (r["loss"] is None) if not np.isfinite(want) else r["loss"] == want
    assert any(r["loss"] is None for r in rows)  # the run went NaN: JSON says null
    listed = [(e["iteration"], e["kind"]) for r in rows for e in r["events"]]
    assert listed == [(e.iteration, e.kind) for e in events] and listed
    prev = -1
    for r in rows:  # each event sits on the first row at or after it
        assert all(prev < e["iteration"] <= r["iteration"] for e in r["events"])
        prev = r["iteration"]


def test_metrics_sql_adds_the_queryable_table_to_a_trace(
        traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.db"
    shutil.copy(traces["f64"], path)
    assert run(capsys, "metrics", str(path), "--sql")[0] == 0
    with TraceReader(path) as tr:  # still a trace, same metrics
        loss = tr.history.view().loss.copy()
    con = sqlite3.connect(path)
    cut = float(np.median(loss))
    got = con.execute(f"select iteration, loss from metrics where loss > {cut!r}").fetchall()
    con.close()
    assert got == [(int(i), float(loss[i])) for i in np.flatnonzero(loss > cut)]
    one_error_line(*run(capsys, "metrics", str(path), "--sql")[::2], "already has")
    assert run(capsys, "metrics", str(path), "--sql", "--force")[0] == 0


def test_record_sql_metrics_makes_the_issue_query_work(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.db"
    code, out, _ = run(capsys, "record", *SEED_FLAGS, "--iterations", "300", "--out", str(path),
                       "--sql-metrics")
    assert code == 0
    with TraceReader(path) as tr:
        loss = tr.history.view().loss.copy()
    cut = float(np.quantile(loss, 0.9))
    con = sqlite3.connect(path)
    got = con.execute(f"select iteration, loss from metrics where loss > {cut!r}").fetchall()
    con.close()
    assert got == [(int(i), float(loss[i])) for i in np.flatnonzero(loss > cut)] and got
