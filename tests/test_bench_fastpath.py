"""The breakdown of benchmarks/bench_fastpath.py times the same training with parts of the
metrics left out: leaving them out must not change a parameter's bit."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_fastpath import MID, SEED, _without
from core.engine.machine import Machine
from core.model.config import Config


@pytest.mark.parametrize("cfg", [SEED, MID], ids=["seed", "2-50-2"])
def test_the_breakdown_variants_train_the_same_parameters(cfg: Config) -> None:
    def noop(*_: object) -> None:
        return None

    machines = []
    for parts in ({}, {"sat": noop}, {"sat": noop, "flush": noop}, None):
        m = Machine(cfg)
        m.init()
        m.run_fast(1)
        if parts is None:  # the bare loop of landings
            m.run_fast(599, metrics=False)
        else:
            with np.errstate(invalid="ignore"):  # no flush: the block's norms are garbage
                _without(m, **parts).run_fast(599)
        machines.append(m)
    full = machines[0].buf["params"]
    assert np.isfinite(full).all()
    for m in machines[1:]:
        assert m.buf["params"].tobytes() == full.tobytes()
