"""The benchmark's reference (benchmarks/reference.py) trains the same net as the engine.

Its ratios mean something only if it does the same maths: after 200 iterations every
variant's parameters match the engine's to rounding (the arithmetic differs in the last
bits: the engine folds 1/N into the output sigmoid, the reference into the step size).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.reference import VARIANTS, make_tight_loop
from core.engine.machine import Machine
from core.model.config import Config


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reference_trains_the_engines_net(bias: bool, variant: str) -> None:
    cfg = Config(hidden=(6,), lr=0.5, reg=1e-2, bias=bias, limit=40)
    m = Machine(cfg)
    m.init()
    start = [m.buf[p].copy() for p in m.program.params]
    run, calls = make_tight_loop(m.X, m.Y, start, cfg.lr, cfg.reg, bias=bias,
                                 **VARIANTS[variant])
    run(200)
    m.run_fast(200)
    assert calls >= 20
    for p, got in zip(m.program.params, run.params, strict=True):
        moved = np.abs(m.buf[p] - dict(zip(m.program.params, start, strict=True))[p]).max()
        assert moved > 1e-3  # training moved this parameter: the comparison means something
        np.testing.assert_allclose(got, m.buf[p], rtol=1e-9, atol=1e-12)
