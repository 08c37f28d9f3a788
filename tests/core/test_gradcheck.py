"""Analytic gradients of every catalog combination against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.engine.stepper import Stepper
from core.inspect.gradcheck import NotApplicable, gradcheck
from core.model.code import Code
from core.model.config import Config

combos = st.fixed_dictionaries({
    "activation": st.sampled_from(["sigmoid", "tanh", "relu"]),
    "loss": st.sampled_from(["mse", "ce"]),
    "reg_kind": st.sampled_from(["l2", "l1"]),
    "reg": st.sampled_from([0.0, 0.01, 0.3]),
    "bias": st.booleans(),
    "hidden": st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    "dataset": st.sampled_from(["xor", "spiral", "blobs"]),
    "seed": st.integers(0, 2**16),
    "batch_size": st.sampled_from([0, 7]),
})


@settings(max_examples=60, deadline=None)
@given(combos, st.integers(0, 4))
def test_every_gradient_matches_finite_differences(opts: dict, iteration: int) -> None:
    cfg = Config.build(Config(), {**opts, "lr": 0.2, "limit": 24})
    s = Stepper(cfg)
    s.jump(iteration, 0)
    for l in range(1, cfg.depth + 1):
        keys = [f"dL_dW{l}", f"dL_dz{l}"] + ([f"dL_db{l}"] if cfg.bias else [])
        for key in keys:
            r = gradcheck(s.machine, s.frame, key)
            assert r.checked + r.skipped_kinks > 0
            assert r.passed or r.checked == 0, (key, r.max_rel_error, r.worst_index)


def test_float32_run_is_checked_in_float64() -> None:
    s = Stepper(Config(hidden=(4,), dtype="float32", lr=0.5))
    s.jump(2, 0)
    r = gradcheck(s.machine, s.frame, "dL_dW1")
    assert r.passed and r.checked == 2 * 4


def test_a_wrong_derivative_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break sigmoid's derivative by 1%: the check must fail, so it can fail."""
    import core.model.catalog as cat

    real, real_kept = cat._sigmoid_d, cat.sigmoid_factor

    def off_by_one_percent(h: np.ndarray, out: np.ndarray) -> Code:
        return real(h, out) + Code.call(np.multiply, out, 1.01, out=out)

    def kept_off_by_one_percent(e: np.ndarray, h: np.ndarray, out: np.ndarray) -> Code:
        return real_kept(e, h, out) + Code.call(np.multiply, out, 1.01, out=out)

    # both forms: h(1−h) and, where exp(−z) is kept (full-batch MSE), e·h·h
    monkeypatch.setitem(cat.ACTIVATIONS, "sigmoid", cat.Activation(
        **{**cat.ACTIVATIONS["sigmoid"].__dict__, "derivative": off_by_one_percent,
           "derivative_kept": kept_off_by_one_percent}))
    s = Stepper(Config(hidden=(3,), lr=0.5))
    s.jump(1, 0)
    assert not gradcheck(s.machine, s.frame, "dL_dW1").passed
    assert gradcheck(s.machine, s.frame, "dL_dW2").passed  # W2's chain has no σ' of layer 1


def test_large_matrices_are_sampled() -> None:
    s = Stepper(Config(hidden=(40,), lr=0.1))
    s.jump(0, 0)
    r = gradcheck(s.machine, s.frame, "dL_dW2", max_entries=16)
    assert r.checked == 16 and np.isfinite(r.rel_error).sum() == 16 and r.passed


def test_not_applicable_cases() -> None:
    s = Stepper(Config(hidden=(3,)))
    with pytest.raises(NotApplicable):
        gradcheck(s.machine, s.frame, "dL_dW1")  # still on the init ops
    s.jump(0, 0)
    with pytest.raises(NotApplicable):
        gradcheck(s.machine, s.frame, "h1")  # a forward op
    nan = Stepper(Config(hidden=(3,), activation="relu", loss="ce", lr=1e100))
    nan.jump(3, 0)
    with pytest.raises(NotApplicable):
        gradcheck(nan.machine, nan.frame, "dL_dW1")


def test_nan_differences_never_pass() -> None:
    """A finite analytic gradient whose finite differences are NaN (the loss overflows at
    w ± ε, forced here by a huge ε) confirms nothing: FAIL, never PASS with error 0."""
    s = Stepper(Config(hidden=(3,), loss="ce", bias=True))
    s.jump(0, 0)
    r = gradcheck(s.machine, s.frame, "dL_db2", eps=1e308)
    assert np.isnan(r.numeric).all() and np.isfinite(r.analytic).all()
    assert r.nonfinite == r.checked == 2 and not r.passed


def test_every_entry_skipped_is_no_pass() -> None:
    """ReLU units all at their kink (W1 = b1 = 0): every nudge of W1 crosses it."""
    s = Stepper(Config(hidden=(3,), activation="relu", bias=True))
    s.jump(0, 0)
    s.frame.params["W1"][:] = 0
    s.frame.params["b1"][:] = 0
    r = gradcheck(s.machine, s.frame, "dL_dW1")
    assert r.checked == 0 and r.skipped_kinks == 6 and not r.passed


def test_the_report_shows_no_pass_for_either() -> None:
    from rich.console import Console

    from tui_backprop import investigate as inv
    from tui_backprop.renderables.gradcheck import GradcheckReport

    s = Stepper(Config(hidden=(3,), loss="ce", bias=True))
    s.jump(0, 0)
    console = Console(width=100, height=30, color_system=None, record=True)
    console.print(GradcheckReport(inv.gradcheck_data(
        gradcheck(s.machine, s.frame, "dL_db2", eps=1e308), "dL/db2", 0, "float64")))
    text = console.export_text()
    assert "PASS" not in text and "FAIL" in text and "NaN/Inf difference" in text
    s = Stepper(Config(hidden=(3,), activation="relu", bias=True))
    s.jump(0, 0)
    s.frame.params["W1"][:] = 0
    s.frame.params["b1"][:] = 0
    console.print(GradcheckReport(inv.gradcheck_data(
        gradcheck(s.machine, s.frame, "dL_dW1"), "dL/dW1", 0, "float64")))
    text = console.export_text()
    assert "PASS" not in text and "NO VERDICT" in text


def test_an_l1_kink_crossed_by_the_nudge_is_skipped_not_failed() -> None:
    """|W| has no derivative at 0: a weight within ε of 0 is skipped, like a ReLU kink.

    Found by the property test above: W2[1,3] = 1.3e-6 made an exact gradient "fail"."""
    cfg = Config(hidden=(3,), reg=0.3, reg_kind="l1", lr=0.2, limit=24, dataset="spiral")
    s = Stepper(cfg)
    s.jump(1, 0)
    w = s.frame.params["W2"]
    w[0, 1] = 3e-6  # the state checked: one weight right at the kink
    r = gradcheck(s.machine, s.frame, "dL_dW2")
    assert r.skipped_kinks == 1 and np.isnan(r.rel_error[0, 1])
    assert r.passed and r.checked == w.size - 1
