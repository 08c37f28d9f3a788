"""Detectors fire where the condition starts, name NaN origins, and stay quiet otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine.history import History, MetricsBlock
from core.engine.stepper import Stepper
from core.inspect.detectors import Scanner, scan
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


def eventful(seed: int, n: int = 900, depth: int = 3) -> History:
    """A history where every condition turns on and off many times, with NaN/inf rows,
    non-finite median windows, and saturation samples every 32 rows around the line."""
    rng = np.random.default_rng(seed)
    block = MetricsBlock.empty(0, n, depth)
    loss = np.exp(-np.arange(n) / 300) * (1 + 0.05 * rng.standard_normal(n))
    for a in rng.integers(20, n - 20, 12):  # spikes and gentle rises
        if rng.random() < 0.5:
            loss[a:a + rng.integers(1, 6)] *= rng.uniform(1.2, 4)
        else:
            loss[a:a + 14] = loss[a] * (1 + 0.01 * np.arange(14))
    loss[rng.integers(0, n, 4)] = np.nan
    gn = np.exp(rng.standard_normal((n, depth)) * 0.3)
    gn[rng.integers(0, n, 10), rng.integers(0, depth, 10)] *= rng.uniform(5, 50, 10)
    gn[rng.integers(0, n, 6), rng.integers(0, depth, 6)] = 1e-9
    gn[rng.integers(0, n, 3), rng.integers(0, depth, 3)] = np.inf
    gn[rng.integers(10, 60, 2), 0] = 5e3  # in the first window, and above the ceiling
    block.loss[:], block.grad_norm[:], block.weight_norm[:] = loss, gn, 1.0
    block.acc[:], block.lr[:] = 0.5, 0.1
    block.saturation[::32] = rng.uniform(0.8, 0.98, (len(block.saturation[::32]), depth - 1))
    h = History(depth)
    h.append(block)
    return h


@pytest.mark.parametrize("seed", range(6))
def test_the_row_by_row_scanner_finds_what_one_whole_scan_finds(seed: int) -> None:
    """Scanner judges appended rows from its memory of each condition (scan_row); the
    events must be those of one scan of the whole history, details included."""
    h = eventful(seed)
    ops = [f"dL/dW{l}" for l in range(1, 4)]
    det = Detect(window=32 + 16 * (seed % 3), rise_iters=8 + seed)
    whole = scan(h, 0, len(h), det, ops)
    assert len({e.kind for e in whole}) >= 5  # the data exercises most conditions
    rng = np.random.default_rng(seed)
    sc, got, at = Scanner(det, ops), [], 0
    while at < len(h):  # blocks and single rows mixed, as a stepper sees them
        size = int(rng.choice([1, 1, 1, 2, 4, int(rng.integers(5, 90))]))
        got += sc.scan(h, at, min(at + size, len(h)))
        at += size
    assert got == whole


def test_the_scanner_forgets_rows_a_truncation_dropped() -> None:
    h, other = eventful(1), eventful(2)
    det, ops = Detect(), ["dL/dW1", "dL/dW2", "dL/dW3"]
    sc = Scanner(det, ops)
    for i in range(400):
        sc.scan(h, i, i + 1)
    h.truncate(300)  # a knob change: the future is re-run with other values
    h.append(other.view(300, 700))
    got = [e for i in range(300, 700) for e in sc.scan(h, i, i + 1)]
    assert got == [e for e in scan(h, 0, 700, det, ops) if e.iteration >= 300]


def test_saturation_before_a_scan_start_is_held_into_it() -> None:
    """A scan whose look-back starts between samples still sees the sample in force
    there: where a scan starts (a step, a block, a trace's tail) never changes events."""
    sat = np.full(220, np.nan)
    sat[::32] = 0.5
    sat[96] = sat[160] = 0.95  # on over 96..127, off over 128..159, on again from 160
    h = history(np.linspace(1, 0.5, 220), sat=sat)
    det = Detect(window=48)  # 160's look-back starts at 112, after the sample at 96
    whole = scan(h, 0, 220, det, OPS)
    assert kinds(whole) == [(96, "saturated")]  # 160 is within a window of the first on
    assert scan(h, 160, 220, det, OPS) == []


def test_an_episode_ends_a_whole_window_after_its_last_row() -> None:
    """On again exactly `window` rows later is the same episode; one row more is a new
    one: the row-by-row scanner draws the line where scan() does."""
    gn = np.ones((600, 2))
    gn[[200, 264, 400, 465], 0] = 1e-9  # window 64: 264 is within, 465 is not
    h = history(np.linspace(1, 0.5, 600), gn)
    whole = scan(h, 0, 600, Detect(), OPS)
    assert kinds(whole) == [(200, "vanish"), (400, "vanish"), (465, "vanish")]
    sc = Scanner(Detect(), OPS)
    assert [e for i in range(600) for e in sc.scan(h, i, i + 1)] == whole


def test_window_statistics_match_their_definitions() -> None:
    """The running minimum (van Herk / Gil-Werman) and the aligned-window medians, on
    data with NaN and ±inf, against a direct loop over their definitions."""
    from core.inspect.detectors import _reference, _running_min

    rng = np.random.default_rng(7)
    for _ in range(400):
        n, w = int(rng.integers(1, 400)), int(rng.choice([1, 7, 32, 48, 64]))
        v = np.exp(rng.standard_normal(n))
        v[rng.random(n) < 0.03] = np.nan
        v[rng.random(n) < 0.02] = rng.choice([np.inf, -np.inf])
        if rng.random() < 0.3:
            v[: int(rng.integers(0, n))] = np.nan  # whole windows without a finite value
        a = int(rng.integers(0, n))
        b = int(rng.integers(a + 1, n + 1))
        mins, refs = [], []
        for i in range(a, b):
            seg = v[max(0, i - w):i]
            mins.append(seg[np.isfinite(seg)].min() if np.isfinite(seg).any() else np.inf)
            past = v[:i] if i < w else v[i // w * w - w:i // w * w]
            past = past[np.isfinite(past)]
            refs.append(np.median(past) if len(past) and (i >= w or i >= 8) else np.nan)
        assert np.array_equal(_running_min(v, a, b, w), mins)
        assert np.array_equal(_reference(v, a, b, w), refs, equal_nan=True)
