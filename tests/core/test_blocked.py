"""Blocked elementwise runs (core/engine/blocked.py): same bits as the calls run whole, on
random programs and on real steps, and refused where blocks would read unwritten values."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_fastpath import BIG, data_for
from core.engine import blocked
from core.engine.blocked import block_runs, blocked_unit
from core.engine.fused import step_units
from core.engine.machine import Machine
from core.engine.stepper import Stepper
from core.model.code import Code, Late, Unit
from core.model.config import Config
from tests.core.rewrites import run_from

UFUNCS = (np.add, np.subtract, np.multiply, np.divide, np.maximum)


def random_program(rng: np.random.Generator, size: int) -> tuple[list[Unit], list[np.ndarray]]:
    """Elementwise calls over four flat buffers of `size`, seen also as (k, size/k) views
    of the same memory, with constants, a late-read step size and in-place outputs."""
    bufs = [np.zeros(size) for _ in range(4)]
    shaped = [b.reshape(2, -1) for b in bufs]
    step = Late("lr", (("lr", np.array(0.25)),))
    units: list[Unit] = []
    for _ in range(rng.integers(2, 9)):
        fn = UFUNCS[rng.integers(len(UFUNCS))]
        pool = shaped if rng.random() < 0.4 else bufs
        a, b, o = (pool[i] for i in rng.integers(4, size=3))
        second: object = b if rng.random() < 0.7 else (0.75 if rng.random() < 0.5 else step)
        units.extend(Code.call(fn, a, second, out=o).units)
    return units, bufs


@pytest.mark.parametrize("seed", range(4))
def test_blocked_programs_leave_every_buffer_bit_identical(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = 40
    changed = 0
    for _ in range(50):
        units, bufs = random_program(rng, size)
        start = [rng.normal(size=size) for _ in bufs]
        block = int(rng.choice([1, 3, 7, 16, size]))
        new = block_runs(units, block=block, least=1)
        changed += len(new) < len(units)
        results = []
        for prog in (units, new):
            run_from(prog, bufs, start)
            results.append([b.tobytes() for b in bufs])
        assert results[0] == results[1]
    assert changed > 25  # the programs do get blocked, not only refused


def test_a_view_shifted_against_another_is_never_blocked() -> None:
    """h[1:] = h[:-1] + 1 whole reads old values; in blocks it would read new ones."""
    h = np.arange(12.0)
    units = list(Code.call(np.add, h[:-1], 1.0, out=h[1:]).units
                 + Code.call(np.multiply, h[1:], 2.0, out=h[1:]).units)
    assert blocked_unit(units, 4) is None
    assert block_runs(units, block=4, least=1) == units


def test_small_runs_and_costly_calls_stay_whole() -> None:
    a, b = np.ones(100), np.ones(100)
    cheap = list(Code.call(np.add, a, b, out=a).units + Code.call(np.multiply, a, 2.0, out=b).units)
    assert block_runs(cheap, block=8) == cheap  # under BLOCK_MIN elements
    costly = list(Code.call(np.exp, a, out=a).units + Code.call(np.add, a, b, out=a).units)
    assert block_runs(costly, block=8, least=1) == costly  # exp is not memory-bound


@pytest.mark.parametrize("act,loss,bias,hidden", [
    ("sigmoid", "mse", False, (6,)), ("sigmoid", "mse", True, (6, 5)),
    ("tanh", "ce", True, (6, 5, 4)), ("relu", "ce", False, (6,)),
])
def test_a_fast_path_in_blocks_is_the_stepper_bit_for_bit(monkeypatch: pytest.MonkeyPatch,
                                                         act: str, loss: str, bias: bool,
                                                         hidden: tuple) -> None:
    """Every cheap run blocked in blocks of 7 (odd, so blocks end mid-row and mid-layer)."""
    monkeypatch.setattr(blocked, "BLOCK_MIN", 1)
    monkeypatch.setattr(blocked, "BLOCK", 7)
    cfg = Config(hidden=hidden, activation=act, loss=loss, bias=bias, lr=0.5, reg=1e-3,
                 limit=40)
    fast = Machine(cfg)
    fast.init()
    assert any(u.src.startswith("for x") for u in step_units(fast)[0])
    block = fast.run_fast(600)
    live = Stepper(cfg, checkpoint_every=500)
    live.run_until(lambda ev: None, max_iters=600)
    hist = live.history.view(0, 600)
    for c in ("loss", "acc", "grad_norm", "weight_norm"):
        assert np.array_equal(getattr(hist, c), getattr(block, c), equal_nan=True), c
    assert fast.params_flat.tobytes() == live.machine.params_flat.tobytes()


def test_784_512_10_runs_its_l2_term_and_step_as_one_blocked_loop() -> None:
    """The norms between them are passed: four calls, one pass over the weights."""
    m = Machine(BIG, data_for(BIG))
    m.init()
    loops = [u for u in step_units(m)[0] if u.src.startswith("for x")]
    calls = [ln.split("(")[0].strip() for u in loops for ln in u.src.splitlines()[1:]]
    assert len(loops) == 2 and len(calls) == 6  # σ' (two calls) and L2 + step (four)
    assert loops[1].reads and max(a.size for a in loops[1].reads) == 784 * 512 + 512 * 10
