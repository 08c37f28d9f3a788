"""The two-call update (core/engine/update_pair.py): [W | G]·[d | η] then P − G gives the
same bits as W·d, G·η → T, P − T, and is refused wherever G's old value or T is still
needed."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from benchmarks.bench_fastpath import MID, SEED
from core.engine import fused
from core.engine.fused import step_units
from core.engine.machine import Machine
from core.engine.update_pair import merge_update_pair
from core.model.code import Code, Late, Unit, unit_from_calls
from core.model.config import Config
from core.model.op import Hyper, decay_of, lr_of
from tests.core.rewrites import run_from


def program(gap: int = 0, read_g_after: bool = False, write_g_first: bool = True,
            t_read_elsewhere: bool = False) -> tuple[list[Unit], Hyper, list[np.ndarray]]:
    """A step shaped like the fast path's end: G written (a product), the decay W·d, the
    scaled gradient G·η → T and P − T, over an arena [X | W | gap | G]."""
    hp = Hyper()
    hp.lr = 0.3
    dt = np.dtype(np.float64)
    arena = np.zeros(2 + 6 + gap + 6)
    x, w, g = arena[:2], arena[2:8], arena[8 + gap:]
    t, out = np.zeros(6), np.zeros(6)
    units: list[Unit] = []
    if write_g_first:  # G = x·M, as a gradient product writes it
        m = np.linspace(-1.0, 1.0, 12).reshape(2, 6)
        units.append(Code.dot(x, m, g).units[0])
    units.append(unit_from_calls(((np.multiply, (w, decay_of(hp, dt, 0.25), w)),)))
    units.append(unit_from_calls(((np.multiply, (g, lr_of(hp, dt), t)),
                                  (np.subtract, (w, t, w)))))
    if read_g_after:
        units.append(unit_from_calls(((np.add, (g, g, out)),)))
    if t_read_elsewhere:
        units.append(unit_from_calls(((np.multiply, (t, t, out)),)))
    units.append(unit_from_calls(((np.add, (x, np.array(0.5), x)),)))  # X moves on
    return units, hp, [arena, t, out]


def calls(units: list[Unit]) -> int:
    return sum(len(u.calls or ()) + (u.calls is None) for u in units)


def test_the_pair_merges_and_runs_bit_for_bit() -> None:
    units, hp, bufs = program()
    merged = merge_update_pair(units, hp)
    assert calls(merged) == calls(units) - 1
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(b.shape) for b in bufs]
    run_from(units, bufs, start, iterations=5)
    want = bufs[0].copy()
    run_from(merged, bufs, start, iterations=5)
    np.testing.assert_array_equal(bufs[0][:8], want[:8])  # X and W, the state that goes on
    hp.lr = 0.07  # a new step size reaches the merged vector too
    run_from(units, bufs, start, iterations=5)
    want = bufs[0].copy()
    run_from(merged, bufs, start, iterations=5)
    np.testing.assert_array_equal(bufs[0][:8], want[:8])


@pytest.mark.parametrize("case", [dict(gap=1), dict(read_g_after=True),
                                  dict(write_g_first=False), dict(t_read_elsewhere=True)])
def test_refused_where_it_would_change_something(case: dict) -> None:
    units, hp, _ = program(**case)
    assert merge_update_pair(units, hp) == units


def test_track_follows_the_step_size_and_forgets_dropped_vectors() -> None:
    hp = Hyper()
    hp.lr = 0.5
    box, dec = lr_of(hp, np.dtype(np.float64)), decay_of(hp, np.dtype(np.float64), 2.0)
    vec = np.zeros(4)
    hp.track(vec, ((slice(0, 1), dec.env[0][1]), (slice(1, 4), box.env[0][1])))
    hp.lr = 0.125
    assert vec.tolist() == [1.0 - 0.125 * 2.0, 0.125, 0.125, 0.125]
    del vec
    gc.collect()
    hp.lr = 0.25
    assert hp._fills == []
    assert isinstance(box, Late)


def test_the_seed_step_uses_it_and_matches_the_stepper() -> None:
    m = Machine(SEED)
    m.init()
    units, _ = step_units(m)
    vectors = [a for u in units for _, args in u.calls or () for a in args[1:2]
               if isinstance(a, np.ndarray) and a.ndim == 1 and a.size == 2 * m.params_flat.size]
    assert len(vectors) == 1
    block = m.run_fast(300)
    op_by_op = Machine(SEED)
    op_by_op.init()
    frames = [op_by_op.materialize() for _ in range(300)]
    np.testing.assert_array_equal(m.params_flat, op_by_op.params_flat)
    assert block is not None and [float(f.value("loss")) for f in frames] == block.loss.tolist()


def test_not_used_with_biases_or_a_decaying_step(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = fused.merge_update_pair

    def spy(units: list[Unit], hp: Hyper) -> list[Unit]:
        got = real(units, hp)
        seen.append(got is not units)
        return got

    monkeypatch.setattr(fused, "merge_update_pair", spy)
    for cfg in (MID, Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50, lr_decay=1e-3)):
        m = Machine(cfg)
        m.init()
        step_units(m)
    assert seen == [False]  # MID refused (biases sit between W and G); decay never asked
