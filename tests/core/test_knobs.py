"""Knobs while paused: where a change applies, determinism across it, traces that keep it."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from core.engine import knobs as kn
from core.engine.stepper import INIT, Stepper
from core.inspect.breakpoints import BreakpointList
from core.model.config import Config, ConfigError
from core.model.presets import preset_config
from core.store.recorder import Recorder
from core.store.replay import Replay
from core.store.trace import FORMAT_VERSION, TraceError, TraceReader

CFG = Config(hidden=(4,), lr=0.5, bias=True, limit=60)


@pytest.fixture(scope="module")
def explode() -> Config:
    return preset_config("xor-50-explode")


def test_a_change_applies_from_the_next_iteration_and_is_an_event(explode) -> None:
    s = Stepper(explode)
    s.jump(100, "L")  # mid-iteration: 100 finishes with lr 2.3
    s.run(50)
    s.jump(100, "L")
    ev = s.set_knobs(lr=1.0, reg=0.01)
    assert (ev.iteration, ev.op, ev.kind) == (101, "update", "knob")
    assert ev.detail == "lr 2.3 → 1, reg 0 → 0.01" and ev in s.events
    assert len(s.history) == 101 and all(e.iteration <= 101 for e in s.events)
    assert s.position == (100, s.program.index("L"))  # the cursor does not move
    s.jump(100, "dL/dW2")
    w, g = s.frame.params["W2"].copy(), s.value.copy()
    s.jump(101, "dL/dW2")
    assert np.array_equal(s.frame.params["W2"], w - 2.3 * g)  # 100 used the old lr
    w, g = s.frame.params["W2"].copy(), s.value.copy()
    m = s.machine
    # a full-batch L2 run applies the penalty as a weight decay (trace format 5):
    # W·(1 − η·λ/N) − η·(data term), which is W − η·dL/dW up to rounding
    decay, raw = m.program.decay, m.buf["raw_dW2"].copy() if m.program.decay else None
    s.jump(102, 0)
    if decay:
        assert decay == 0.01 / m.program.n
        assert np.array_equal(s.frame.params["W2"], w * (1.0 - 1.0 * decay) - raw * 1.0)
        assert np.allclose(s.frame.params["W2"], w - 1.0 * g, rtol=1e-12, atol=1e-15)
        assert not np.allclose(s.frame.params["W2"], w - 2.3 * g)  # 101 the new one
    else:
        assert np.array_equal(s.frame.params["W2"], w - 1.0 * g)  # 101 the new one
    lr = s.history.view(0, len(s.history)).lr
    assert lr[100] == 2.3 and lr[101] == 1.0
    assert s.config_at(100).lr == 2.3 and s.config_at(101) == explode.replace(lr=1.0, reg=0.01)


def test_knobs_from_the_init_ops_apply_from_iteration_0() -> None:
    s = Stepper(CFG)
    assert s.iteration == INIT
    ev = s.set_knobs(lr=0.25)
    assert ev.iteration == 0 and s.config_at(0).lr == 0.25
    s.jump(1, 0)
    assert s.history.view(0, 1).lr[0] == 0.25


def test_stepping_back_across_a_change_is_bit_identical() -> None:
    cfg = CFG.replace(batch_size=16)
    s = Stepper(cfg, checkpoint_every=7)
    s.jump(30, "h1")
    s.set_knobs(lr=0.1, batch_size=32, clip=0.5, clip_kind="value", reg=0.01, reg_kind="l1")
    seen = {}
    for pos in [(29, "dL/dW1"), (31, "dL/dW1"), (31, "z1"), (45, "L"), (12, "h1")]:
        s.jump(*pos)
        seen[pos] = s.value.copy()
    for pos in reversed(seen):
        s.jump(*pos)
        assert np.array_equal(s.value, seen[pos]), pos
    s.jump(31, "z1")
    assert s.value.shape[0] == 32  # the new batch size
    fresh = Stepper(cfg, knobs=s.knobs, checkpoint_every=1000)  # another path, same schedule
    assert [e for e in fresh.events if e.kind == "knob"] == [e for e in s.events
                                                             if e.kind == "knob"]
    for pos, val in seen.items():
        fresh.jump(*pos)
        assert np.array_equal(fresh.value, val), pos
    stepped = Stepper(cfg, knobs=s.knobs)  # and op by op across the boundary
    stepped.jump(29, "dL/dW1")
    while stepped.position != (31, stepped.op_index(31, "z1")):
        stepped.step()
    assert np.array_equal(stepped.value, seen[(31, "z1")])


def test_a_bad_value_changes_nothing() -> None:
    s = Stepper(CFG)
    s.jump(20, 3)
    n, knobs, events = len(s.history), list(s.knobs), list(s.events)
    for bad, message in (({"lr": -1.0}, "lr must be > 0"), ({"hidden": 5}, "not a knob"),
                         ({"reg_kind": "l3"}, "reg_kind must be one of"),
                         ({"batch_size": 2.5}, "batch_size must be an integer")):
        with pytest.raises(ConfigError, match=message):
            s.set_knobs(**bad)
    assert (len(s.history), s.knobs, s.events) == (n, knobs, events)


def test_typed_fields_parse_with_one_line_errors() -> None:
    fields = {k: str(getattr(CFG, k)) for k in kn.KNOBS}
    assert kn.parse(CFG, fields) == CFG
    assert kn.parse(CFG, {**fields, "lr": "1e-3", "reg_kind": "L1"}).reg_kind == "l1"
    for name, text, message in (("lr", "abc", "lr: 'abc' is not a number"),
                                ("batch_size", "1.5", "not a whole number"),
                                ("clip", "", "clip: empty"), ("clip", "-1", "clip must be >= 0")):
        with pytest.raises(ConfigError, match=message):
            kn.parse(CFG, {**fields, name: text})


def test_a_change_before_a_later_one_drops_the_later_one() -> None:
    s = Stepper(CFG)
    s.jump(40, 0)
    s.set_knobs(lr=0.2)
    s.jump(60, 0)
    s.set_knobs(lr=0.05)
    assert [t for t, _ in s.knobs] == [41, 61]
    s.jump(50, 0)
    s.set_knobs(lr=0.3)
    assert [(t, c.lr) for t, c in s.knobs] == [(41, 0.2), (51, 0.3)]
    assert [e.iteration for e in s.events if e.kind == "knob"] == [41, 51]
    s.set_knobs(lr=0.2)  # back to what iteration 50 runs with: the change at 51 goes
    assert [t for t, _ in s.knobs] == [41]


def test_a_plain_continue_does_not_stop_on_a_knob_event(explode) -> None:
    s = Stepper(explode)
    s.jump(100, 0)
    s.set_knobs(lr=2.4)
    hit = s.run_until(max_iters=500)
    assert hit is not None and hit.kind != "knob"


def test_checkpoint_thinning_keeps_each_segment_start() -> None:
    s = Stepper(CFG, checkpoint_every=1, memory_mb=0)  # 8 checkpoints at most
    s.jump(33, 0)
    s.set_knobs(lr=0.3)
    s.jump(400, 0)
    assert 34 in s.checkpoints and s.every > 1


def test_a_nan_after_a_change_is_located_with_the_new_config(tmp_path) -> None:
    cfg = Config(hidden=(3,), activation="relu", loss="ce", lr=0.5)
    s = Stepper(cfg)
    s.jump(9, 2)
    s.set_knobs(lr=1e100)  # from 10: the old lr would never overflow (op "L", not located)
    s.jump(40, 0)
    nan = next(e for e in s.events if e.kind == "nan")
    assert (nan.iteration, nan.op) == (12, "z2")  # as lr=1e100 from the start NaNs at 2
    fresh = Stepper(cfg, knobs=s.knobs, checkpoint_every=64)  # no checkpoint from set_knobs
    fresh.jump(40, 0)
    assert nan in fresh.events
    rec = Recorder(tmp_path / "n.trace", cfg, knobs=s.knobs, every=4)
    rec.run(40)
    rec.close()
    with TraceReader(tmp_path / "n.trace") as tr:
        assert nan in tr.events


def test_trace_round_trip_with_knobs(tmp_path) -> None:
    cfg = CFG.replace(batch_size=16)
    s = Stepper(cfg)
    s.jump(25, 4)
    s.set_knobs(lr=0.1, batch_size=0)
    s.jump(60, 0)
    s.set_knobs(reg=0.02, lr_decay=0.01)
    s.jump(120, 0)
    path = tmp_path / "k.trace"
    rec = Recorder(path, cfg, knobs=s.knobs, every=16, block=32)
    rec.run(120)
    rec.close()
    with TraceReader(path) as tr:
        assert tr.knobs == s.knobs and tr.meta["format_version"] == str(FORMAT_VERSION)
        live, saved = s.history.view(0, 120), tr.history.view(0, 120)
        for name in ("loss", "acc", "lr", "grad_norm", "weight_norm"):
            assert np.array_equal(getattr(live, name), getattr(saved, name)), name
        assert 26 in tr.checkpoints and 61 in tr.checkpoints
    rp = Replay(path)
    assert [(e.iteration, e.detail) for e in rp.events if e.kind == "knob"] == [
        (26, "lr 0.5 → 0.1, batch size 16 → 0"), (61, "lr decay 0 → 0.01, reg 0 → 0.02")]
    bl = BreakpointList()
    bl.add("event knob", rp)
    assert rp.run_until(rule=bl.rule(rp)).iteration == 26 and rp.position == (26, 0)
    for pos in [(25, "dL/dW1"), (26, "z1"), (70, "update W1"), (3, "h1"), (119, "L")]:
        rp.jump(*pos)
        s.jump(*pos)
        assert np.array_equal(rp.value, s.value), pos
    assert rp.divergence is None
    with pytest.raises(ValueError, match="replay"):
        rp.set_knobs(lr=1.0)
    rp.close()


def test_a_trace_without_knobs_has_no_knobs_entry(tmp_path) -> None:
    path = tmp_path / "plain.trace"
    rec = Recorder(path, CFG)
    rec.run(10)
    rec.close()
    with sqlite3.connect(path) as con:
        meta = dict(con.execute("SELECT key, value FROM meta"))
    assert meta["format_version"] == str(FORMAT_VERSION) and "knobs" not in meta
    with TraceReader(path) as tr:
        assert tr.knobs == []


def test_a_damaged_knob_schedule_is_one_line(tmp_path) -> None:
    path = tmp_path / "bad.trace"
    rec = Recorder(path, CFG, knobs=[(5, CFG.replace(lr=0.1))])
    rec.run(10)
    rec.close()
    with sqlite3.connect(path) as con:
        con.execute("""UPDATE meta SET value = '[[5, {"hidden": 3}]]' WHERE key = 'knobs'""")
    with pytest.raises(TraceError, match="hidden is not a knob"):
        TraceReader(path)
