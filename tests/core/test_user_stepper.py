"""User code as stepper ops: the tracer's ops, bit-identical back-steps, NaN origin, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.user.loader import load
from core.user.machine import UserCodeError
from core.user.session import resolve_data
from core.user.stepper import GRAD_KIND, NotDeterministic, UserStepper
from tests.core.user_variants import EXAMPLE, source


def stepper(path: Path, **kw) -> UserStepper:
    prog = load(str(path))
    X, y = resolve_data(prog, None, 0)
    return UserStepper(prog, X, y, seed=0, lr=prog.lr, **kw)


def line_of(path: Path, text: str) -> int:
    """1-based line number of the (unique) line containing text."""
    hits = [i + 1 for i, ln in enumerate(path.read_text().splitlines()) if text in ln]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def test_ops_are_the_users_lines_with_their_values() -> None:
    s = stepper(EXAMPLE)
    s.jump(0, 0)
    ops = s.ops
    z1 = line_of(EXAMPLE, 'z1 = affine_forward(X, params["W1"], params["b1"])')
    assert ops[0].name == f"z1 L{z1}" and ops[0].phase == "forward"
    assert f"mlp.py:{z1}" in ops[0].formula and "z1 = affine_forward" in ops[0].formula
    assert set(ops[0].inputs) == {"X", "W1", "b1"}
    # the recorded value is what the line computes from the parameters before the iteration
    p = s.frame.params
    assert np.array_equal(s.frame.outputs[0], s.frame.batch["X"] @ p["W1"] + p["b1"])
    # helper lines are ops too, named by the helper's variables
    dw = line_of(EXAMPLE, "dW = x.T @ dout")
    assert any(op.name == f"dW L{dw}" and "in affine_backward()" in op.formula for op in ops)
    phases = [op.phase for op in ops]
    assert phases.index("backward") > phases.index("loss") > phases.index("forward") == 0
    assert phases[-1] == "update"
    # the loss op's value is loss(); the update op's value is the parameter after the step
    L = next(i for i, op in enumerate(ops) if op.phase == "loss" and op.name.startswith("loss"))
    prog = load(str(EXAMPLE))
    X, y = resolve_data(prog, None, 0)
    assert float(s.frame.outputs[L]) == prog.call("loss", {k: v.copy() for k, v in p.items()},
                                                   X, y)


def test_back_steps_are_bit_identical_across_iterations() -> None:
    s = stepper(EXAMPLE, checkpoint_every=4)
    seen = []
    while s.iteration < 3:
        s.step()
        seen.append((s.position, s.value.tobytes()))
    for pos, val in reversed(seen[:-1]):
        assert s.back()
        assert s.position == pos and s.value.tobytes() == val
    s.jump(40, 5)  # far ahead through the fast path, then back to a re-executed one
    far = s.value.tobytes()
    s.jump(2, 0)
    s.jump(40, 5)
    assert s.value.tobytes() == far


def test_fast_path_metrics_match_a_plain_training_loop() -> None:
    s = stepper(EXAMPLE)
    s.run(30)
    prog = load(str(EXAMPLE))
    X, y = resolve_data(prog, None, 0)
    params = prog.call("init", np.random.default_rng(0))
    losses = []
    for _ in range(30):
        losses.append(prog.call("loss", params, X, y))
        grads = prog.call("backward", params, X, y)
        for k in params:
            params[k] -= prog.lr * grads[k]
    assert s.history.view(0, 30).loss.tolist() == losses


def test_nan_origin_names_the_first_user_line(tmp_path: Path) -> None:
    path = tmp_path / "nanet.py"
    path.write_text(source(**{"    h1 = sigmoid(z1)\n    scores = affine_forward(h1, params":
                              "    h1 = np.log(z1)\n    scores = affine_forward(h1, params"}))
    s = stepper(path)
    ev = s.run_until(max_iters=5)
    line = line_of(path, "h1 = np.log(z1)")
    assert ev is not None and ev.kind == "nan" and ev.iteration == 0
    assert ev.op == f"h1 L{line}" and f"nanet.py:{line}" in ev.detail
    assert s.op.name == f"h1 L{line}" and s.frame.origin == s.index


def test_a_failing_gradient_is_flagged_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "bug.py"
    path.write_text(source("sign_flip_w2"))
    s = stepper(path)
    flagged = [e for e in s.events if e.kind == GRAD_KIND]
    assert len(flagged) == 1 and flagged[0].detail.startswith("W2: FAIL")
    assert "sign is flipped" in flagged[0].detail
    assert dict(s.program.panels)[s.program.grad_keys["W2"]].endswith("✗ FAIL")
    assert not any(t.endswith("FAIL") for k, t in s.program.panels
                   if k != s.program.grad_keys["W2"])


def test_an_exception_stops_the_cursor_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "boom.py"
    path.write_text(source(**{"    N = len(X)": "    N = len(X)\n    if params['b2'][0] != 0:"
                                               "\n        raise RuntimeError('boom')"}))
    s = stepper(path)
    with pytest.raises(UserCodeError, match=r"boom\.py:\d+: RuntimeError: boom"):
        s.jump(5, 0)  # b2 moves off zero after the first update: iteration 1 fails
    s.jump(1, 0)
    assert s.ops[-1].key == "error" and "RuntimeError: boom" in s.ops[-1].formula
    while s.step():
        pass
    assert s.position == (1, len(s.ops) - 1)  # cannot step past the failing iteration


def test_non_deterministic_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dropout.py"
    path.write_text(source(**{"    dz1 = dh1 * h1 * (1 - h1)":
                              "    dz1 = dh1 * h1 * (1 - h1) * (np.random.rand(*h1.shape) > 0.1)"}))
    with pytest.raises(NotDeterministic, match="not deterministic"):
        stepper(path)
