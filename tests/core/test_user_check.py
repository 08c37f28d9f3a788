"""The finite-difference check of user code: a correct file passes, each bug is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.user import diagnose as dg
from core.user.check import choose_sample, run_check
from core.user.loader import load
from core.user.session import resolve_data
from tests.core.user_variants import EXAMPLE, VARIANTS, write


def check(path: Path, at: list[int], **kw):
    prog = load(str(path))
    X, y = resolve_data(prog, None, 0)
    return run_check(prog, X, y, at, seed=0, **kw)


def test_the_shipped_example_passes_at_init_and_after_training() -> None:
    report = check(EXAMPLE, [0, 100])
    assert [it.iteration for it in report.iterations] == [0, 100]
    assert report.passed
    for it in report.iterations:
        assert {p.name for p in it.params} == {"W1", "b1", "W2", "b2"}
        for p in it.params:
            assert p.max_rel_error < 1e-5 and p.sample.full


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_bug_fails_exactly_the_parameters_it_breaks(tmp_path: Path, name: str) -> None:
    v = VARIANTS[name]
    report = check(write(tmp_path, name), [0, 100])
    first = report.iterations[0]
    assert {p.name for p in first.params if not p.passed} == v.breaks
    for p in first.params:
        if p.name in v.breaks:
            assert v.words in p.diagnosis, (p.name, p.diagnosis)
    for it in report.iterations[1:]:  # after 100 steps with the bug, the same set fails
        assert {p.name for p in it.params if not p.passed} == v.breaks


def test_the_missing_one_over_n_fit_finds_the_batch_size(tmp_path: Path) -> None:
    report = check(write(tmp_path, "missing_1_over_n"), [0])
    w2 = next(p for p in report.iterations[0].params if p.name == "W2")
    assert w2.fit is not None and w2.fit.scale == pytest.approx(300, rel=1e-4)
    assert "a ≈ 300 = N" in w2.diagnosis
    # the analytic value at the worst index really is ~N times the numeric one
    assert w2.analytic == pytest.approx(300 * w2.numeric, rel=0.05, abs=1e-3 * abs(w2.analytic))


def test_the_broadcast_offset_is_lambda_times_sum_of_squares(tmp_path: Path) -> None:
    path = write(tmp_path, "lambda_sum_broadcast")
    prog = load(str(path))
    W1 = prog.call("init", np.random.default_rng(0))["W1"]
    report = check(path, [0])
    w1 = next(p for p in report.iterations[0].params if p.name == "W1")
    assert w1.fit is not None
    assert w1.fit.offset == pytest.approx(1e-3 * np.sum(W1 ** 2), rel=1e-3)


def test_a_transposed_gradient_names_both_shapes(tmp_path: Path) -> None:
    report = check(write(tmp_path, "transposed_w1"), [0, 100])
    w1 = next(p for p in report.iterations[0].params if p.name == "W1")
    assert "(10, 2)" in w1.diagnosis and "(2, 10)" in w1.diagnosis
    assert w1.max_rel_error is None and w1.fit is None
    # the default update cannot apply a (10, 2) gradient: iteration 100 is skipped, said why
    assert [i for i, _ in report.skipped] == [100]


def test_big_parameters_are_sampled_with_the_stated_stride(tmp_path: Path) -> None:
    # a 20-30-2 net on 20-feature data: W1 has 600 entries, sampled 50; corrupt one column
    src = (EXAMPLE.read_text().replace("(2, HIDDEN)", "(20, HIDDEN)")
           .replace("HIDDEN = 10", "HIDDEN = 30")
           .replace("dW1 += LAM * W1", "dW1 += LAM * W1\n    dW1[:, 7] *= 1.5"))
    src += ("\n\ndef data():\n    rng = np.random.default_rng(1)\n    X = rng.standard_normal"
            "((64, 20))\n    y = np.eye(2)[(X[:, 0] > 0).astype(int)]\n    return X, y\n")
    path = tmp_path / "wide.py"
    path.write_text(src)
    report = check(path, [0], max_entries=50)
    w1 = next(p for p in report.iterations[0].params if p.name == "W1")
    s = w1.sample
    assert s.count == 50 and s.size == 600 and not s.full
    idx = s.indices()
    assert str(s.start) in str(s) and str(s.stride) in str(s)
    checked = np.flatnonzero(np.isfinite(w1.rel_error.reshape(-1)))
    assert np.array_equal(checked, idx)
    cols = idx % 30
    assert len(np.unique(cols)) > 25  # spread over columns, not stuck in one
    assert not w1.passed and "only in columns 7 " in w1.diagnosis


@pytest.mark.parametrize(("scale", "words"), [(2.0, "a ≈ 2"), (0.5, "a ≈ ½"), (-1.0, "flipped"),
                                              (50.0, "missing 1/N"), (1 / 50, "extra 1/N")])
def test_named_scales(scale: float, words: str) -> None:
    rng = np.random.default_rng(3)
    num = rng.standard_normal(40)
    ana = scale * num
    fit, text = dg.describe(ana, num, np.arange(40), (40,), np.ones(40, bool), 50, ana, 1e-8)
    assert fit is not None and fit.scale == pytest.approx(scale)
    assert words in text


def test_a_square_transposed_gradient_is_recognised() -> None:
    rng = np.random.default_rng(4)
    true = rng.standard_normal((5, 5))
    idx = np.arange(25)
    ana = true.T.copy()
    fit, text = dg.describe(ana.reshape(-1), true.reshape(-1), idx, (5, 5),
                            np.ones(25, bool), 10, ana, 1e-8)
    assert "transpose" in text


def test_the_sample_is_coprime_with_the_columns() -> None:
    s = choose_sample((784, 128), 64, seed=5)
    idx = s.indices()
    assert len(np.unique(idx)) == 64 and idx.max() < 784 * 128
    assert len(np.unique(idx % 128)) == 64 and len(np.unique(idx // 128)) == 64
