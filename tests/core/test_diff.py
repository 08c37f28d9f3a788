"""Comparing runs: where two runs part is constructed, never read off a chaotic trajectory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.engine.stepper import Stepper
from core.model.config import Config
from core.store.diff import Side, comparable, compare_scalars, first_op_diff, summary_iterations
from core.store.recorder import Recorder
from core.store.replay import Replay
from core.store.trace import TraceReader

SEED_CFG = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)
NAN_CFG = Config(hidden=(6,), lr=200.0, activation="relu", loss="ce", init="he")
BIAS_CFG = Config(hidden=(5, 4), lr=0.5, bias=True, activation="tanh", batch_size=16, limit=64)


def live(cfg: Config, n: int, knobs: list | None = None) -> Side:
    s = Stepper(cfg, knobs=knobs)
    s.run_until(lambda ev: None, max_iters=n)
    return Side("live", s.history, s.program.sizes, cfg.dtype, lambda: s)


def traced(path: Path) -> Side:
    tr = TraceReader(path)
    rp = Replay(tr)
    return Side(str(path), tr.history, tr.program.sizes, tr.cfg.dtype, lambda: rp)


@pytest.mark.parametrize("cfg", [SEED_CFG, NAN_CFG, BIAS_CFG])
def test_a_run_against_itself_is_identical(cfg: Config) -> None:
    a, b = live(cfg, 300), live(cfg, 300)
    d = compare_scalars(a, b)
    assert d.compared == 300 and d.first is None and d.first_loss is None and d.notes == []
    op = first_op_diff(a.open(), b.open(), 123)
    assert op.op is None and op.reason is None  # every op output bit-equal
    if cfg is NAN_CFG:  # NaN against NaN is equal: the run did go non-finite
        assert np.isnan(a.history.view().loss).any()


def test_float32_against_float64_differs_at_iteration_0_in_the_first_op() -> None:
    a, b = live(SEED_CFG, 50), live(SEED_CFG.replace(dtype="float32"), 50)
    d = compare_scalars(a, b)
    assert d.first == 0 and d.first_loss == 0 and "loss" in d.columns
    sa, sb = a.open(), b.open()
    assert comparable(a, b, sa, sb) is None
    op = first_op_diff(sa, sb, 0)
    assert (op.position, op.op) == (0, "z1")
    sa.jump(0, "z1")
    sb.jump(0, "z1")
    gap = np.abs(sa.value - sb.value.astype(np.float64))
    assert op.max_abs == gap.max() > 0
    assert op.index == np.unravel_index(np.argmax(gap), gap.shape)
    assert (op.a, op.b) == (sa.value[op.index], float(sb.value[op.index]))


@pytest.mark.parametrize("t", [1, 128, 200])
def test_a_knob_change_at_t_is_found_at_t_and_in_the_loss_at_t_plus_1(t: int) -> None:
    knobs = [(t, SEED_CFG.replace(lr=2e-3))]
    a, b = live(SEED_CFG, 300), live(SEED_CFG, 300, knobs)
    d = compare_scalars(a, b)
    assert (d.first, d.columns, d.first_loss) == (t, ["lr"], t + 1)
    sa, sb = a.open(), b.open()
    op = first_op_diff(sa, sb, t)
    ops = sa.program.ops
    # the first op that reads the lr: the first parameter update
    assert op.position == next(k for k, o in enumerate(ops) if o.name.startswith("update "))
    # and the op reported is the first whose output differs, checked by hand
    for k in range(op.position):
        sa.jump(t, k)
        sb.jump(t, k)
        assert np.array_equal(sa.value, sb.value)


def test_a_tolerance_hides_differences_smaller_than_itself() -> None:
    a, b = live(SEED_CFG, 40), live(SEED_CFG.replace(dtype="float32"), 40)
    rel = []
    for name in ("loss", "acc", "lr", "grad_norm", "weight_norm"):
        x, y = getattr(a.history.view(), name), getattr(b.history.view(), name)
        rel.append(np.max(np.abs(x - y) / np.maximum(np.abs(x), np.abs(y))))
    worst = float(max(rel))
    assert worst > 0
    assert compare_scalars(a, b, rtol=worst * 1.01).first is None
    assert compare_scalars(a, b, rtol=worst * 0.99).first is not None


def test_runs_of_different_shapes_compare_scalars_and_say_why_ops_cannot() -> None:
    a, b = live(SEED_CFG, 30), live(SEED_CFG.replace(hidden=(4,)), 20)
    d = compare_scalars(a, b)
    assert d.compared == 20 and d.first == 0 and any("30" in n and "20" in n for n in d.notes)
    assert "networks differ (2-10-2 against 2-4-2)" in comparable(a, b, a.open(), b.open())
    deep = live(SEED_CFG.replace(hidden=(4, 4)), 20)
    d = compare_scalars(a, deep)
    assert any(n.startswith("grad_norm not compared") for n in d.notes)
    assert d.first == 0 and "loss" in d.columns


def test_a_trace_against_the_live_run_it_recorded_is_identical(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run.trace", BIAS_CFG, block=64, every=16)
    rec.run(200)
    rec.close()
    a, b = traced(tmp_path / "run.trace"), live(BIAS_CFG, 200)
    assert compare_scalars(a, b).first is None
    assert first_op_diff(a.open(), b.open(), 150).op is None


def test_a_trace_being_recorded_is_compared_up_to_its_last_commit(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run.trace", SEED_CFG, block=64, every=32)
    rec.run(100)
    rec.commit()
    rec.run(50)  # not committed
    a = traced(tmp_path / "run.trace")
    d = compare_scalars(a, live(SEED_CFG, 300))
    assert d.compared == 100 and d.first is None
    rec.close()


def test_summary_rows_surround_the_first_difference() -> None:
    a, b = live(SEED_CFG, 300), live(SEED_CFG, 300, [(128, SEED_CFG.replace(lr=2e-3))])
    d = compare_scalars(a, b)
    rows = summary_iterations(d, d.compared)
    assert {0, 127, 128, 129, 130, 299} <= set(rows) and rows == sorted(rows)
    assert summary_iterations(d, d.compared, [5, 400, -1, 5]) == [5]
