"""The generated fast path, the op-by-op stepper and trace replay agree bit for bit.

Every activation × loss × bias × depth 1–3, over 3,000 iterations: the fast loop
(`core/engine/fused.py`, one generated function) must give the same metrics whether it
runs in one call or in uneven pieces, the same as the stepper's history, and the
iterations materialized op by op (forward and backward from checkpoints, live
and replayed) must hold exactly the numbers the fast path computed.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from core.engine.fused import fuse_units
from core.engine.history import MetricsBlock
from core.engine.machine import Machine
from core.engine.stepper import Stepper
from core.model import catalog as cat
from core.model.code import Code
from core.model.config import Config
from core.store.recorder import Recorder
from core.store.replay import Replay

N = 3000
COLUMNS = ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation")
COMBOS = list(itertools.product(("sigmoid", "tanh", "relu"), ("mse", "ce"), (False, True),
                                ((5,), (5, 4), (5, 4, 3))))


def cat_blocks(blocks: list[MetricsBlock]) -> dict[str, np.ndarray]:
    return {c: np.concatenate([getattr(b, c) for b in blocks]) for c in COLUMNS}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a, b, equal_nan=True)


def check_frame_against_row(frame, metrics: dict[str, np.ndarray], it: int, depth: int,
                            n: int, rows: bool) -> None:
    """What a materialized iteration shows equals the fast path's metrics row.

    `rows`: the run's sums come from arena rows (core/engine/rows.py, formats 5-6), summed by
    np.add.reduceat; otherwise by a dot product (format 3)."""
    assert float(frame.value("loss")) == metrics["loss"][it]
    assert same(frame.value("grad_norm"), metrics["grad_norm"][it])
    hits = np.count_nonzero(frame.value(f"h{depth}").argmax(1) == frame.batch["labels"])
    assert hits * (1.0 / n) == metrics["acc"][it]
    for l in range(depth):
        w = frame.params[f"W{l + 1}"].reshape(-1)
        sq = float(np.add.reduceat(w * w, [0])[0]) if rows else float(w.dot(w))
        assert math.sqrt(sq) == metrics["weight_norm"][it, l]


@pytest.mark.parametrize("act,loss,bias,hidden", COMBOS)
def test_fast_path_stepper_and_replay_are_bit_identical(tmp_path: Path, act: str, loss: str,
                                                        bias: bool, hidden: tuple) -> None:
    cfg = Config(hidden=hidden, activation=act, loss=loss, bias=bias, lr=0.5, reg=1e-3,
                 limit=40)
    whole = Machine(cfg)
    assert whole.program.row_metrics == (loss == "mse")  # both metric forms are covered
    whole.init()
    ref = cat_blocks([whole.run_fast(N)])
    pieces = Machine(cfg)
    pieces.init()
    split = cat_blocks([pieces.run_fast(k) for k in (1, 255, 257, 1000, 1487)])
    for c in COLUMNS:
        assert same(ref[c], split[c]), c
    assert same(whole.params_flat, pieces.params_flat)

    live = Stepper(cfg, checkpoint_every=500)
    live.run_until(lambda ev: None, max_iters=N)
    hist = live.history.view(0, N)
    for c in COLUMNS:
        assert same(getattr(hist, c), ref[c]), c

    rec = Recorder(tmp_path / "run.trace", cfg, target=N, every=500)
    rec.run(N)
    rec.close()
    rep = Replay(tmp_path / "run.trace")
    try:
        for it in (N - 1, 1, 777, 776, 0):  # far back, near a checkpoint, one back
            live.jump(it, 0)
            rep.jump(it, 0)
            check_frame_against_row(live.frame, ref, it, cfg.depth, 40,
                                    whole.program.row_metrics)
            for a, b in zip(live.frame.outputs, rep.frame.outputs, strict=True):
                assert same(a, b)
        assert rep.divergence is None
    finally:
        rep.close()
    # the update leaves the next iteration's parameters: stepping on matches jumping
    live.jump(776, -1)
    target, after = live.op.target, live.value.copy()
    live.step()
    assert live.iteration == 777 and same(after, live.frame.params[target])


@pytest.mark.parametrize("batch", [0, 30])
def test_twin_updates_merge_into_one_call_per_arena(batch: int) -> None:
    """Per-layer L2 terms and SGD steps become one call each, with the same bits.

    Full batch (row metrics): the penalty is a weight decay, one call for all layers;
    its term in dL/dW is formed for display only; every layer's sigmoid derivative is
    e·h·h, two calls for all layers.  Mini-batch: L2 terms are merged."""
    m = Machine(Config(hidden=(6, 5), lr=0.3, reg=1e-2, bias=True, batch_size=batch))
    assert (m.program.decay > 0) == (batch == 0)
    units = [u for k in m.live for u in k.units if not u.metric]
    fused = fuse_units(units)
    if batch:
        assert len(fused) == len(units) - 2 - 5  # 3 L2 terms -> 1, 6 SGD steps -> 1
    else:
        # 3 decays -> 1, 6 SGD steps -> 1, and the 3 layers' σ' = e·h·h -> 1
        assert len(fused) == len(units) - 2 - 5 - 2
        assert sum(u.metric for k in m.live for u in k.units) >= 3  # the shown L2 terms
    m.init()
    a = m.run_fast(50)
    m2 = Machine(m.cfg)
    m2.init()
    frames = [m2.materialize() for _ in range(50)]
    assert same(m.params_flat, m2.params_flat)
    assert [float(f.value("loss")) for f in frames] == a.loss.tolist()


def test_code_runs_alone_what_it_inlines() -> None:
    x = np.arange(4.0)
    out = np.empty(4)
    k = Code.call(np.multiply, x, 2.0, out=out) + Code.call(np.add, out, 1.0, out=out)
    k()
    assert out.tolist() == [1.0, 3.0, 5.0, 7.0]
    assert len(k.units) == 1 and len(k.units[0].calls or ()) == 2


@pytest.mark.parametrize("dtype,z", [("float32", -100.0), ("float64", -700.0)])
def test_a_saturated_sigmoid_unit_gets_a_zero_derivative_not_nan(dtype: str, z: float) -> None:
    """σ'(z) = e·h·h reads exp(−z), which overflows float32 below z = −88 (float64 below
    −709): there float32 keeps h(1−h), so a hopelessly saturated unit's factor is 0 as the
    maths says, in the op-by-op frame and in the fast path, never inf·0 = NaN."""
    cfg = Config(hidden=(3,), lr=0.5, bias=True, dtype=dtype)
    m = Machine(cfg)
    m.init()
    m.buf["b1"][0] = z  # unit 1's pre-activation is z (the inputs are in [0, 1])
    start = m.params_flat.copy()
    frame = m.materialize()
    factor = frame.value("dh1_dz1")[:, 0]
    assert not any(frame.nonfinite) and frame.origin is None
    assert np.isfinite(factor).all() and factor.max() < 1e-30
    m.params_flat[:] = start
    m.pos = 0
    block = m.run_fast(20)
    assert np.isfinite(block.loss).all() and np.isfinite(block.grad_norm).all()


@pytest.mark.parametrize("bias,decay", [(False, 0.0), (True, 1e-3)])
def test_re_execution_without_metrics_leaves_the_same_parameters(bias: bool,
                                                                 decay: float) -> None:
    """A landing re-executes known iterations with the step alone (no arena copy, no
    metrics): the parameters and the kept snapshots are those of the metric-computing
    loop, bit for bit."""
    cfg = Config(hidden=(6, 4), lr=0.4, reg=1e-3, bias=bias, lr_decay=decay)
    a, b = Machine(cfg), Machine(cfg)
    assert a.program.row_metrics
    for m in (a, b):
        m.init()
        m.snap_every = 7
    assert a.run_fast(300) is not None and b.run_fast(300, metrics=False) is None
    assert np.array_equal(a.params_flat, b.params_flat) and a.pos == b.pos == 300
    assert [k for k, _ in a.snaps] == [k for k, _ in b.snaps]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a.snaps, b.snaps, strict=True))
    assert not np.array_equal(a.params_flat, Machine(cfg).params_flat)  # it trained


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(cat.ACTIVATIONS))
def test_the_fast_saturation_count_is_the_saturated_mask_count(name: str, dtype: str) -> None:
    """The fast path counts a sample in place; the stepper counts `saturated`'s mask (in
    float32 too, where 0.01 rounds: the threshold is compared in the outputs' dtype)."""
    act = cat.ACTIVATIONS[name]
    rng = np.random.default_rng(4)
    h = rng.uniform(-1.2, 1.2, (40, 25)).astype(dtype)
    h.flat[:14] = [0.01, 0.99, -0.99, 0.0, -0.0, np.nan, np.inf, -np.inf,
                   np.nextafter(0.01, 0), np.nextafter(0.99, 1), 1.0, -1.0,
                   np.float32(0.01), np.nextafter(np.float32(0.01), np.float32(1))]
    count = act.saturated_counter(h)
    for _ in range(2):  # masks are reused: the second count sees new values
        assert count() == np.count_nonzero(act.saturated(h)) > 0
        h *= 1.01
