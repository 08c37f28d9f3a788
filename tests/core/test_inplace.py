"""In-place outputs (core/engine/inplace.py): renaming buffers never changes what the loop
can see, on random programs built to tempt every rule (values carried across iterations,
reads after the call, partial overlaps, arrays the loop reads around the step)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_fastpath import MID
from core.engine import fused
from core.engine.fused import step_units
from core.engine.inplace import reuse_dead_inputs
from core.engine.machine import Machine
from core.model.code import Code, Unit
from tests.core.rewrites import run_from

UFUNCS = (np.add, np.subtract, np.multiply, np.maximum)


def random_program(rng: np.random.Generator) -> tuple[list[Unit], list[np.ndarray],
                                                       list[np.ndarray]]:
    """(units, every buffer, the ones the loop reads around the step).

    Six (3, 3) buffers, two of them the halves of one flat root (so merged-looking
    views and partial overlaps occur), elementwise calls and products in random order.
    """
    root = np.zeros(18)
    bufs = [root[:9].reshape(3, 3), root[9:].reshape(3, 3)] + [np.zeros((3, 3)) for _ in range(4)]
    views = bufs + [root.reshape(2, 9)]  # spans both halves
    units: list[Unit] = []
    written: list[int] = []  # mostly read what the step wrote, write what it has not yet

    def pick(fresh: bool) -> np.ndarray:
        pool = [i for i in range(len(bufs)) if (i in written) != fresh]
        i = int(rng.choice(pool)) if pool and rng.random() < 0.7 else int(rng.integers(6))
        if fresh:
            written.append(i)
        return bufs[i]

    for _ in range(rng.integers(3, 10)):
        if rng.random() < 0.25:
            a, b = pick(False), pick(False)
            units.extend(Code.dot(a, b, pick(True)).units)
            continue
        fn = UFUNCS[rng.integers(len(UFUNCS))]
        if rng.random() < 0.15:
            a, b, o = views[-1], np.full((2, 9), 0.5), views[-1] if rng.random() < 0.5 else \
                np.zeros((2, 9))
        else:
            a, b = pick(False), pick(False)
            o = pick(True)
        units.extend(Code.call(fn, a, b if rng.random() < 0.8 else 0.75, out=o).units)
    keep = [bufs[i] for i in rng.choice(len(bufs), rng.integers(1, 3), replace=False)]
    return units, bufs, keep


@pytest.mark.parametrize("seed", range(8))
def test_renamed_programs_leave_every_kept_buffer_bit_identical(seed: int) -> None:
    rng = np.random.default_rng(seed)
    renamed = 0
    for _ in range(60):
        units, bufs, keep = random_program(rng)
        start = [rng.normal(size=b.shape) * 0.5 for b in bufs]
        new = reuse_dead_inputs(units, keep)
        renamed += sum(u.src != v.src or u.env.keys() != v.env.keys() or any(
            x is not y for x, y in zip(u.env.values(), v.env.values(), strict=False))
            for u, v in zip(units, new, strict=True))
        results = []
        for prog in (units, new):
            run_from(prog, bufs, start)
            results.append([k.copy() for k in keep])
        for x, y in zip(*results, strict=True):
            assert x.tobytes() == y.tobytes()
    assert renamed > 10  # the rules do rename, not only refuse


def big_buffers(units: list[Unit]) -> set[int]:
    """Start addresses of the (300, 50)-sized arrays a step names (views included)."""
    out = set()
    for u in units:
        for v in u.env.values():
            v = getattr(v, "__self__", v)
            if isinstance(v, np.ndarray) and v.size >= 15000:
                out.add(v.__array_interface__["data"][0])
    return out


def test_the_2_50_2_step_touches_fewer_hidden_layer_buffers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """σ' = e·h·h lands in e and δ₁ = g₁·σ' in g₁: three (300, 50) buffers, not five."""
    m = Machine(MID)
    m.init()
    units, _ = step_units(m)
    monkeypatch.setattr(fused, "reuse_dead_inputs", lambda us, keep: us)
    plain, _ = step_units(m)
    assert len(big_buffers(plain)) == 5 and len(big_buffers(units)) == 3
