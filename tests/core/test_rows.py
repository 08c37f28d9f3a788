"""Metrics from arena rows (core/rows.py): the chunked forms equal the one-row forms
the stepper uses, and the prediction is np.argmax's, ties and NaNs included."""

from __future__ import annotations

import numpy as np
import pytest

from core.rows import RowMetrics


def metrics(n: int, k: int, w: list[int], b: list[int], labels: np.ndarray,
            y: np.ndarray) -> RowMetrics:
    width = n * k + 2 * (sum(w) + sum(b))
    return RowMetrics(np.zeros(width), y, labels, k, w, b, 1e-3)


@pytest.mark.parametrize("k,nan", [(2, False), (3, False), (5, False), (2, True), (4, True)])
def test_accuracy_is_argmax_with_ties_and_nans(k: int, nan: bool) -> None:
    rng = np.random.default_rng(k)
    n, c = 40, 300
    labels = rng.integers(0, k, n)
    rm = metrics(n, k, [3], [], labels, np.zeros((n, k)))
    h = rng.integers(0, 3, (c, n, k)).astype(float)  # many ties
    h[rng.random(h.shape) < 0.05] = -0.0
    if nan:
        h[rng.random(h.shape) < 0.05] = np.nan
    want = np.count_nonzero(h.argmax(2) == labels, axis=1) * (1.0 / n)
    assert np.array_equal(rm.accuracy(h.reshape(c, -1)), want)


@pytest.mark.parametrize("bias", [False, True])
def test_a_chunk_sums_each_row_as_the_one_row_forms_do(bias: bool) -> None:
    rng = np.random.default_rng(7)
    n, k, w = 30, 3, [20, 12]
    b = [4, 3] if bias else []
    labels = rng.integers(0, k, n)
    y = np.eye(k)[labels]
    rm = metrics(n, k, w, b, labels, y)
    rows = rng.standard_normal((257, rm.arena.size)) * 10.0 ** rng.integers(-3, 3, (257, 1))
    lo, acc, gn, wsq = rm.chunk(rows.copy())
    for i in (0, 1, 128, 256):
        one = rows[i:i + 1]
        l1, w1 = rm.loss_and_wsq(rm.sums(one, 0, rm.split))
        g1 = rm.grad_norm(rm.sums(one, rm.split))
        assert lo[i] == l1[0] and acc[i] == rm.accuracy(one)[0]
        assert gn[i * 2:i * 2 + 2] == g1[0].tolist() and wsq[i * 2:i * 2 + 2] == w1[0].tolist()
        # and the numbers are the definitions: Σ(h−y)²/2N + λ/2N·Σ W², ‖∇‖ per layer
        d = one[0, :n * k] - y.reshape(-1)
        assert l1[0] == pytest.approx(d @ d / (2 * n) + 1e-3 * (one[0, n * k:rm.split] ** 2
                                                                 )[:sum(w)].sum(), rel=1e-12)
        g = one[0, rm.split:]
        first = np.concatenate([g[:w[0]], g[sum(w):sum(w) + b[0]] if b else []])
        assert g1[0, 0] == pytest.approx(np.sqrt(first @ first), rel=1e-12)
