"""Metrics text: every float written parses back to the very same float64."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.store.metrics_out import _write_lines, floats_text, kept_rows


def parsed(x: np.ndarray) -> np.ndarray:
    out = io.BytesIO()
    _write_lines(out, [floats_text(x)])
    return np.array([float(v) for v in out.getvalue().split(b"\n")[:-1]])


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a)
                                                                         & np.isnan(b))))


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 6000), elements=st.floats(width=64)))
def test_any_float_round_trips(x: np.ndarray) -> None:
    # above 4096 values with many distinct ones, the vectorized 17-digit path is used
    assert same(parsed(x), x)


def test_both_paths_on_wide_ranges() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-320, 308, 20000),
                        [5e-324, -0.0, 0.0, 1e16, 9.999999999999999e22, 1.7976931348623157e308,
                         6.0, 0.1, 1.0000000000010001]])
    assert same(parsed(x), x)  # distinct values: 17 digits, vectorized
    few = np.round(rng.random(20000), 2)
    assert same(parsed(few), few)  # few distinct values: Python's shortest repr
    assert b"0.62" in floats_text(np.full(5000, 0.62)).tolist()


def test_kept_rows_always_end_on_the_last_iteration() -> None:
    assert kept_rows(10, 3).tolist() == [0, 3, 6, 9]
    assert kept_rows(11, 3).tolist() == [0, 3, 6, 9, 10]
    assert kept_rows(0, 5).tolist() == []
