"""Breakpoints: the grammar, and each kind stopping where an independent reading says."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine.stepper import Stepper
from core.inspect.breakpoints import BreakpointError, BreakpointList, parse
from core.model.config import Config
from core.model.presets import preset_config

OPS = ("z1", "h1", "z2", "h2", "L", "dL/dW2", "dL/dW1")
NAN_CFG = Config(hidden=(3,), activation="relu", loss="ce", lr=1e100)


@pytest.fixture(scope="module")
def explode() -> Config:
    return preset_config("xor-50-explode")


def run(cfg: Config, *texts: str, at: tuple[int, int | str] | None = None,
        max_iters: int = 3000, s: Stepper | None = None):
    """Continue once with these breakpoints; returns (hit, stepper)."""
    s = s or Stepper(cfg)
    if at is not None:
        s.jump(*at)
    bl = BreakpointList()
    for t in texts:
        bl.add(t, s)
    return s.run_until(rule=bl.rule(s), max_iters=max_iters), s


# ---------------------------------------------------------------------------- grammar
@pytest.mark.parametrize("text, norm, kind", [
    ("nan", "nan", "nan"), ("NaN", "nan", "nan"),
    ("grad > 5", "grad > 5", "grad"), ("grad2>1e3", "grad2 > 1000", "grad"),
    ("grad2 > 10x median", "grad2 > 10x median", "grad_median"),
    ("grad > 3 × median", "grad > 3x median", "grad_median"),
    ("loss > 0.5", "loss > 0.5", "loss"), ("loss  rising  5", "loss rising 5", "rising"),
    ("it 500", "it 500", "it"), ("iteration 7", "it 7", "it"),
    ("op dl/dw1", "op dL/dW1", "op"), ("event explode", "event explode", "event"),
    ("event any", "event any", "event"), ("event knob", "event knob", "event"),
])
def test_expressions_parse_to_a_normal_form(text: str, norm: str, kind: str) -> None:
    bp = parse(text, 2, OPS)
    assert (bp.text, bp.kind) == (norm, kind)


@pytest.mark.parametrize("text, message", [
    ("", "type a breakpoint"), ("grad3 > 5", "no layer 3"), ("grad0 > 5", "no layer 0"),
    ("grad > abc", "cannot read"), ("grad > 0x median", "factor must be > 0"),
    ("grad > 5 median", "write the factor with x"), ("grad > 5x", "x what"),
    ("it -1", "iterations start at 0"),
    ("op dL/dW9", "no op 'dL/dW9'"), ("event boom", "no event 'boom'"),
    ("loss rising 0", "1..100000"), ("stop when sad", "cannot read"),
])
def test_bad_expressions_say_why_in_one_line(text: str, message: str) -> None:
    with pytest.raises(BreakpointError, match=message) as exc:
        parse(text, 2, OPS)
    assert "\n" not in str(exc.value)


def test_an_iteration_past_a_replays_end_is_refused() -> None:
    with pytest.raises(BreakpointError, match="past the end of the trace"):
        parse("it 70", 2, OPS, end=70)
    assert parse("it 69", 2, OPS, end=70).value == 69


def test_the_list_refuses_duplicates_and_toggles() -> None:
    s, bl = Stepper(Config()), BreakpointList()
    bl.add("grad > 5", s)
    with pytest.raises(BreakpointError, match="already set"):
        bl.add("grad>5", s)
    bl.toggle(0)
    assert bl.active == [] and bl.rule(s) is None  # none enabled: c keeps its default meaning
    bl.toggle(0)
    bl.remove(0)
    assert bl.items == []


# ---------------------------------------------------------------------------- stopping
def _above_median(s: Stepper, cfg: Config, layer: int, factor: float) -> np.ndarray:
    """The oracle of `gradL > k x median`: the detector's running median, on the history."""
    from core.inspect.detectors import _reference
    g = s.history.view(0, len(s.history)).grad_norm[:, layer - 1]
    with np.errstate(invalid="ignore"):
        return g > factor * _reference(g, 0, len(g), cfg.detect.window)


def test_grad_above_k_times_median_stops_where_the_explode_detector_flags(explode) -> None:
    hit, s = run(explode, "grad2 > 10x median")
    first = _turns_on(_above_median(s, explode, 2, 10.0), -1)  # where the oracle says
    assert first < len(s.history), "the explode preset must explode within 3000 iterations"
    assert (hit.iteration, hit.op) == (first, "dL/dW2") and s.op.name == "dL/dW2"
    assert s.position == (first, s.program.index("dL/dW2"))
    g = s.history.view(0, len(s.history)).grad_norm[first, 1]
    assert f"‖dL/dW2‖ = {g:.4g} > 10× median" in hit.detail
    explode_ev = next(e for e in s.events if e.kind == "explode")  # same reference, same place
    assert (explode_ev.iteration, explode_ev.op) == (first, "dL/dW2")


def test_continuing_again_goes_to_the_next_episode(explode) -> None:
    hit, s = run(explode, "grad2 > 10x median")
    again = s.run_until(rule=_rule(s, "grad2 > 10x median"), max_iters=3000)
    assert again.iteration > hit.iteration
    g = s.history.view(0, len(s.history)).grad_norm[:, 1]
    from core.inspect.detectors import _reference
    on = g > 10 * _reference(g, 0, len(g), explode.detect.window)
    assert on[again.iteration] and not on[again.iteration - 1]
    assert not on[hit.iteration + 1:again.iteration - 1].all()


def _rule(s: Stepper, *texts: str):
    bl = BreakpointList()
    for t in texts:
        bl.add(t, s)
    return bl.rule(s)


def _turns_on(values: np.ndarray, after: int) -> int:
    """The first i > after where values[i] holds and values[i-1] does not (the oracle);
    after = -1 counts values[0] as turning on."""
    prev = np.concatenate(([False], values[:-1]))
    on = np.flatnonzero(values & ~prev)
    on = on[on > after]
    return int(on[0]) if len(on) else len(values)


def test_absolute_gradient_threshold_matches_the_history(explode) -> None:
    early = Stepper(explode)
    early.run_until(lambda ev: None, max_iters=11)
    # twice the largest norm of iterations 5..10: crossed later, when the gradients grow
    thr = 2 * float(early.history.view(5, 11).grad_norm.max())
    hit, s = run(explode, f"grad > {thr}", at=(10, 0))
    g = s.history.view(0, len(s.history)).grad_norm
    firsts = [_turns_on(g[:, layer] > thr, 10) for layer in (0, 1)]
    layer = int(np.argmin(firsts))
    assert (hit.iteration, hit.op) == (firsts[layer], f"dL/dW{layer + 1}")
    thr1 = float(g[hit.iteration, 0]) * 1.5
    again, s = run(explode, f"grad1 > {thr1}", s=s)
    g = s.history.view(0, len(s.history)).grad_norm
    assert (again.iteration, again.op) == (_turns_on(g[:, 0] > thr1, hit.iteration), "dL/dW1")


def test_iteration_breakpoint(explode) -> None:
    hit, s = run(explode, "it 500")
    assert (hit.iteration, s.index) == (500, 0) and hit.op == "z1"
    assert s.run_until(rule=_rule(s, "it 500"), max_iters=50) is None  # fired once


def test_op_breakpoint_from_mid_iteration_goes_to_the_next_occurrence(explode) -> None:
    hit, s = run(explode, "op dL/dW1", at=(5, "h1"))
    assert s.position == (5, s.program.index("dL/dW1")) and hit.op == "dL/dW1"
    s.run_until(rule=_rule(s, "op dL/dW1"))
    assert s.position == (6, s.program.index("dL/dW1"))
    s.jump(8, "update W1")  # past it in this iteration: the next one is in iteration 9
    s.run_until(rule=_rule(s, "op dL/dW1"))
    assert s.position == (9, s.program.index("dL/dW1"))


def test_loss_rising_matches_the_rising_detector(explode) -> None:
    hit, s = run(explode, "loss rising 10")
    loss = s.history.view(0, len(s.history)).loss
    rising = np.array([i >= 10 and bool((np.diff(loss[i - 10:i + 1]) > 0).all())
                       for i in range(len(loss))])
    first = _turns_on(rising, -1)  # the oracle: 10 rises in a row, first time
    assert first < len(loss), "the explode preset's loss must rise for 10 iterations"
    assert (hit.iteration, hit.op) == (first, "L")
    assert any(e.kind == "rising" and e.iteration == first for e in s.events)


def test_loss_threshold(explode) -> None:
    ref = Stepper(explode)
    ref.run_until(lambda ev: None, max_iters=1000)
    loss = ref.history.view(0, 1000).loss
    rise = int(np.flatnonzero(np.diff(loss) > 0)[0]) + 1  # the loss first climbs back here
    thr = float(loss[rise - 1] + loss[rise]) / 2
    hit, s = run(explode, f"loss > {thr!r}", at=(rise - 1, 0))
    loss = s.history.view(0, len(s.history)).loss
    assert (hit.iteration, hit.op) == (_turns_on(loss > thr, rise - 1), "L") == (rise, "L")


def test_nan_stops_on_the_op_that_produced_it() -> None:
    hit, s = run(NAN_CFG, "nan")
    assert (hit.iteration, hit.op) == (2, "z2") and s.op.name == "z2"
    assert "produced the first NaN/Inf" in hit.detail


def test_event_breakpoints_and_the_earliest_of_several(explode) -> None:
    ref = Stepper(explode)
    ref.run_until(lambda ev: None, max_iters=3000)
    first = {k: next((e for e in ref.events if e.kind == k), None) for k in ("explode", "rising")}
    assert first["explode"] is not None
    hit, _ = run(explode, "event explode")
    assert (hit.iteration, hit.op) == (first["explode"].iteration, first["explode"].op)
    hit, s = run(explode, "event rising", "it 300", "grad2 > 10x median")
    grad2 = _turns_on(_above_median(ref, explode, 2, 10.0), -1)
    rising = first["rising"].iteration if first["rising"] else 1 << 30
    assert hit.iteration == min(grad2, rising, 300)
    if grad2 < min(rising, 300):
        assert hit.op == "dL/dW2" and hit.detail.startswith("grad2")


def test_disabled_breakpoints_do_not_fire(explode) -> None:
    s = Stepper(explode)
    bl = BreakpointList()
    bl.add("grad2 > 10x median", s)
    bl.add("it 150", s)
    bl.toggle(0)
    hit = s.run_until(rule=bl.rule(s), max_iters=3000)
    assert hit.iteration == 150


def test_breakpoints_on_the_cursor_iteration_fire_only_after_the_cursor(explode) -> None:
    first, _ = run(explode, "grad2 > 10x median")
    at = first.iteration
    hit, s = run(explode, "grad2 > 10x median", at=(at, "z1"))
    assert (hit.iteration, hit.op) == (at, "dL/dW2")
    hit, s = run(explode, "grad2 > 10x median", at=(at, "dL/dW1"))
    assert hit.iteration > at


def test_events_of_one_iteration_are_visited_in_op_order() -> None:
    hit, s = run(NAN_CFG, "event explode")  # iteration 1 explodes in both layers
    assert (hit.iteration, hit.op) == (1, "dL/dW2")  # backprop reaches dL/dW2 first
    hit = s.run_until(rule=_rule(s, "event explode"), max_iters=100)
    assert (hit.iteration, hit.op) == (1, "dL/dW1")
    hit, s = run(NAN_CFG, "event any")
    assert (hit.iteration, hit.op) == (1, "L") and "spike" in hit.detail
