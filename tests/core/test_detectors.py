"""Detectors fire where the condition starts, name NaN origins, and stay quiet otherwise."""

from __future__ import annotations

import numpy as np

from core.engine.history import History, MetricsBlock
from core.engine.stepper import Stepper
from core.inspect.detectors import scan
from core.model.config import Config, Detect


def history(loss: np.ndarray, gn: np.ndarray | None = None,
            sat: np.ndarray | None = None) -> History:
    n = len(loss)
    block = MetricsBlock.empty(0, n, 2)
    block.loss[:] = loss
    block.acc[:] = 0.5
    block.lr[:] = 0.1
    block.grad_norm[:] = 1.0 if gn is None else gn
    block.weight_norm[:] = 1.0
    if sat is not None:
        block.saturation[:, 0] = sat
    h = History(2)
    h.append(block)
    return h


OPS = ["dL/dW1", "dL/dW2"]


def kinds(events) -> list[tuple[int, str]]:
    return [(e.iteration, e.kind) for e in events]


def test_quiet_on_a_smoothly_falling_loss() -> None:
    h = history(np.linspace(1.0, 0.1, 500))
    assert scan(h, 0, 500, Detect(), OPS) == []


def test_spike_fires_once_where_the_jump_starts() -> None:
    loss = np.linspace(1.0, 0.5, 300)
    loss[200:210] = 5.0
    events = scan(history(loss), 0, 300, Detect(), OPS)
    assert kinds(events) == [(200, "spike")]


def test_scanning_in_blocks_equals_scanning_at_once() -> None:
    rng = np.random.default_rng(1)
    loss = np.abs(rng.standard_normal(1000)).cumsum()[::-1] / 1000
    loss[700:703] *= 40
    gn = np.ones((1000, 2))
    gn[450, 1] = 1e4
    gn[900:, 0] = 1e-9
    h = history(loss, gn)
    whole = scan(h, 0, 1000, Detect(), OPS)
    parts = []
    for a in range(0, 1000, 37):
        parts += scan(h, a, min(a + 37, 1000), Detect(), OPS)
    assert whole == parts
    assert {(450, "explode"), (700, "spike"), (900, "vanish")} <= set(kinds(whole))


def test_explode_relative_to_running_median() -> None:
    gn = np.full((300, 2), 2.0)
    gn[250:, 0] = 50.0  # 25x the median, below the absolute limit
    events = scan(history(np.linspace(1, 0.5, 300), gn), 0, 300, Detect(), OPS)
    assert kinds(events) == [(250, "explode")] and events[0].op == "dL/dW1"


def test_rising_loss_for_n_iterations() -> None:
    loss = np.linspace(1.0, 0.5, 200)
    loss[100:115] = np.linspace(0.5, 0.6, 15)  # rises 14 times in a row, gently
    events = scan(history(loss), 0, 200, Detect(rise_iters=10, spike_factor=100), OPS)
    assert kinds(events) == [(110, "rising")]


def test_saturation_is_held_between_samples() -> None:
    sat = np.full(100, np.nan)
    sat[::16] = 0.1
    sat[64::16] = 0.95
    events = scan(history(np.linspace(1, 0.5, 100), sat=sat), 0, 100, Detect(), OPS)
    assert kinds(events) == [(64, "saturated")]


def test_nan_origin_is_the_first_producing_op_not_a_propagating_one() -> None:
    s = Stepper(Config(hidden=(3,), activation="relu", loss="ce", lr=1e100))
    s.run(5)
    nan = [e for e in s.events if e.kind == "nan"]
    assert len(nan) == 1
    s.jump(nan[0].iteration, 0)
    frame = s.frame
    assert frame.origin is not None and frame.ops[frame.origin].name == nan[0].op
    assert not any(frame.nonfinite[: frame.origin])  # every op before it was finite
    assert frame.nonfinite[frame.origin]
    assert "overflow" in frame.fp_warnings[frame.origin]


def test_fp_warnings_are_captured_not_printed(recwarn) -> None:
    s = Stepper(Config(hidden=(3,), lr=1e308, reg=1.0))
    s.run(3)
    assert any(e.kind == "nan" for e in s.events)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_explode_is_seen_in_the_first_window_too() -> None:
    gn = np.full((60, 2), 1.0)
    gn[30, 0] = 50.0
    events = scan(history(np.linspace(1, 0.5, 60), gn), 0, 60, Detect(window=64), OPS)
    assert kinds(events) == [(30, "explode")]


def test_one_episode_is_one_event() -> None:
    gn = np.full((400, 2), 1.0)
    gn[200:260:3, 1] = 40.0  # flickers on and off for 60 iterations
    gn[390, 1] = 40.0  # a new episode after a quiet window
    events = scan(history(np.linspace(1, 0.5, 400), gn), 0, 400, Detect(window=64), OPS)
    assert kinds(events) == [(200, "explode"), (390, "explode")]


def test_presets_tell_their_stories() -> None:
    from core.model.presets import preset_config

    calm = Stepper(preset_config("xor-3"))
    assert calm.run_until(max_iters=3000) is None
    boom = Stepper(preset_config("xor-50-explode"))
    ev = boom.run_until(max_iters=1000)
    assert ev is not None and ev.kind == "explode" and 60 <= ev.iteration <= 200
    assert boom.op.name == ev.op == "dL/dW2"
