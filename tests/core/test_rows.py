"""Metrics from arena rows (core/engine/rows.py): the chunked forms equal the one-row forms
the stepper uses, and the prediction is np.argmax's, ties and NaNs included."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine.rows import RowMetrics


def metrics(n: int, k: int, w: list[int], b: list[int], labels: np.ndarray,
            decay: float = 0.0) -> RowMetrics:
    width = n * k + 2 * (sum(w) + sum(b))
    order = [(f"W{l + 1}", size) for l, size in enumerate(w)]
    order += [(f"b{l + 1}", size) for l, size in enumerate(b)]
    y = np.eye(k)[labels]
    return RowMetrics(np.zeros(width), y, labels, order, 1e-3, decay)


@pytest.mark.parametrize("k,nan", [(2, False), (3, False), (5, False), (2, True), (4, True)])
def test_accuracy_is_argmax_with_ties_and_nans(k: int, nan: bool) -> None:
    rng = np.random.default_rng(k)
    n, c = 40, 300
    labels = rng.integers(0, k, n)
    rm = metrics(n, k, [3], [], labels)
    h = rng.integers(0, 3, (c, n, k)).astype(float)  # many ties
    h[rng.random(h.shape) < 0.05] = -0.0
    if nan:
        h[rng.random(h.shape) < 0.05] = np.nan
    want = np.count_nonzero(h.argmax(2) == labels, axis=1) * (1.0 / n)
    assert np.array_equal(rm.accuracy(h.reshape(c, -1)), want)


@pytest.mark.parametrize("bias,decay", [(False, 0.0), (True, 0.0), (True, 0.02)])
def test_a_chunk_sums_each_row_as_the_one_row_forms_do(bias: bool, decay: float) -> None:
    rng = np.random.default_rng(7)
    n, k, w = 30, 3, [20, 12]
    b = [4, 3] if bias else []
    labels = rng.integers(0, k, n)
    rm = metrics(n, k, w, b, labels, decay)
    c = 257
    rows = rng.standard_normal((c, rm.arena.size)) * 10.0 ** rng.integers(-3, 3, (c, 1))
    loss, acc, gn, wsq = np.empty(c), np.empty(c), np.empty((c, 2)), np.empty((c, 2))
    rm.into(rows.copy(), loss, acc, gn, wsq)
    nk, p = n * k, sum(w) + sum(b)
    for i in (0, 1, 128, 256):
        one = rows[i:i + 1]
        l1, w1 = rm.loss_and_wsq(rm.sums(one, 0, rm.split))
        g1 = rm.grad_norm(rm.sums(one, rm.split))
        assert loss[i] == l1[0] and acc[i] == rm.accuracy(one)[0]
        assert (gn[i] == g1[0]).all() and (wsq[i] == w1[0]).all()
        # and the numbers are the definitions: Σ(h−y)²/2N + λ/2N·Σ W², ‖∇‖ per layer
        d = one[0, :nk] - rm.y  # h − y
        par, g = one[0, nk:nk + p], one[0, nk + p:].copy()
        g[:sum(w)] += decay * par[:sum(w)]  # dL/dW = data term + c·W
        assert l1[0] == pytest.approx(d @ d / (2 * n) + 1e-3 * (par[:sum(w)] ** 2).sum(),
                                      rel=1e-12)
        first = np.concatenate([g[:w[0]], g[sum(w):sum(w) + b[0]] if b else []])
        assert g1[0, 0] == pytest.approx(np.sqrt(first @ first), rel=1e-12)


def test_a_chunk_with_nan_outputs_predicts_as_argmax() -> None:
    """NaN outputs (and so a NaN Σ(h − y)²) switch the chunk to np.argmax's rule."""
    rng = np.random.default_rng(3)
    n, k = 20, 2
    labels = rng.integers(0, k, n)
    rm = metrics(n, k, [6], [], labels)
    rows = rng.random((40, rm.arena.size))
    rows[5, 3] = np.nan  # h[1, 1]
    h = rows[:, :n * k].reshape(40, n, k)
    want = np.count_nonzero(h.argmax(2) == labels, axis=1) * (1.0 / n)
    loss, acc, gn, wsq = np.empty(40), np.empty(40), np.empty((40, 1)), np.empty((40, 1))
    rm.into(rows.copy(), loss, acc, gn, wsq)
    assert np.array_equal(acc, want) and np.isnan(loss[5]) and not np.isnan(loss[4])
