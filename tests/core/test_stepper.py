"""Stepping, jumping and re-execution give bit-identical values however you get there."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine.machine import Machine
from core.engine.stepper import INIT, Stepper
from core.model.config import Config

SEED_CFG = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)


def test_op_names_follow_the_chain_rule() -> None:
    s = Stepper(Config(hidden=(3,), bias=False))
    assert [op.name for op in s.ops] == ["init W1", "init W2"]
    names = [op.name for op in s.program.ops]
    assert names == ["z1", "h1", "z2", "h2", "L", "dL/dh2", "dh2/dz2", "dL/dz2", "dL/dW2",
                     "dL/dh1", "dh1/dz1", "dL/dz1", "dL/dW1", "‖dL/dW‖", "update W2",
                     "update W1"]
    phases = [op.phase for op in s.program.ops]
    assert phases == sorted(phases, key=["forward", "loss", "backward", "update"].index)


def test_deeper_nets_name_ops_per_layer() -> None:
    s = Stepper(Config(hidden=(4, 5), bias=True, clip=1.0))
    keys = [op.key for op in s.program.ops]
    for l in (1, 2, 3):
        for k in (f"z{l}", f"h{l}", f"dL_dh{l}", f"dh{l}_dz{l}", f"dL_dz{l}", f"dL_dW{l}",
                  f"dL_db{l}", f"W{l}_new", f"b{l}_new", f"dL_dW{l}_clip"):
            assert k in keys
    assert keys.index("dL_dW3") < keys.index("dL_dh2") < keys.index("dL_dW2")


@pytest.mark.parametrize("cfg", [SEED_CFG, Config(hidden=(4, 3), batch_size=16, bias=True,
                                                  activation="relu", loss="ce", lr=0.3)])
def test_stepping_back_reproduces_forward_values_exactly(cfg: Config) -> None:
    s = Stepper(cfg)
    seen = [(s.position, s.value.copy())]
    for _ in range(60):  # crosses init -> iteration 0 -> 1 -> 2 -> 3
        s.step()
        seen.append((s.position, s.value.copy()))
    for pos, val in reversed(seen[:-1]):
        assert s.back()
        assert s.position == pos
        assert np.array_equal(s.value, val) and s.value.dtype == val.dtype
    assert not s.back()  # nothing before the first init op
    assert s.position == (INIT, 0)


def test_jump_back_and_forth_is_bit_identical_to_stepping() -> None:
    cfg = Config(hidden=(6,), lr=0.5, batch_size=32)
    a = Stepper(cfg, checkpoint_every=7)
    a.jump(40, "dL/dW1")
    far = a.value.copy()
    a.jump(3, "h1")
    a.jump(40, "dL/dW1")
    assert np.array_equal(a.value, far)
    b = Stepper(cfg, checkpoint_every=1000)
    while b.position != (40, b.program.index("dL_dW1")):
        b.step()
    assert np.array_equal(b.value, far)


def test_fast_path_equals_materialized_iterations() -> None:
    """The fast path skips recording but runs the same kernels: same metrics, same params."""
    cfg = Config(hidden=(5, 4), lr=0.4, batch_size=20, reg=0.01, bias=True, loss="ce")
    fast = Machine(cfg)
    fast.init()
    block = fast.run_fast(30)
    s = Stepper(cfg)
    for i in range(30):
        s.jump(i, 0)
    hist = s.history.view(0, 30)
    for name in ("loss", "acc", "grad_norm", "weight_norm"):
        assert np.array_equal(getattr(block, name), getattr(hist, name)), name
    s.jump(30, 0)
    for p, arr in s.frame.params.items():
        assert np.array_equal(arr, fast.buf[p])


def test_same_config_and_seed_are_deterministic_and_seed_matters() -> None:
    def final(seed: int) -> np.ndarray:
        m = Machine(Config(hidden=(7,), lr=0.5, batch_size=10, seed=seed))
        m.init()
        m.run_fast(50)
        return m.buf["W1"].copy()

    assert np.array_equal(final(3), final(3))
    assert not np.array_equal(final(3), final(4))


def test_next_phase_and_next_iteration() -> None:
    s = Stepper(Config(hidden=(3,)))
    s.jump(0, 0)
    s.next_phase()
    assert s.op.phase == "loss" and s.op.name == "L"
    s.next_phase()
    assert s.op.name == "dL/dh2"
    s.next_iteration()
    assert s.position == (1, 0)


def test_run_lands_after_n_iterations_and_history_grows() -> None:
    s = Stepper(SEED_CFG)
    s.run(100)
    assert s.position == (100, 0) and len(s.history) == 101


def test_run_until_stops_and_can_be_paused() -> None:
    s = Stepper(Config(hidden=(3,), activation="relu", loss="ce", lr=1e100))
    ev = s.run_until(lambda evs: next((e for e in evs if e.kind == "nan"), None))
    assert ev is not None and s.iteration == ev.iteration and s.op.name == ev.op
    calm = Stepper(SEED_CFG)
    assert calm.run_until(max_iters=10_000, should_stop=lambda: True) is None
    assert len(calm.history) <= 1


def test_checkpoints_stay_bounded() -> None:
    s = Stepper(SEED_CFG, checkpoint_every=1, memory_mb=0.001)
    s.run(300)
    assert len(s.checkpoints) <= s.max_checkpoints
    v = s.value.copy()
    s.jump(5, 0)
    s.jump(300, 0)
    assert np.array_equal(s.value, v)


def test_bad_jumps_raise() -> None:
    s = Stepper(SEED_CFG)
    with pytest.raises(ValueError):
        s.jump(-5)
    with pytest.raises(ValueError):
        s.jump(0, 999)
