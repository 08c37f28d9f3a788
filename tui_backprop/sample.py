"""One sample through the network: row n of the batch, as the article follows one observation.

`sample(src, n)` reads the cursor's frame: that row's x, z_l, h_l, y (and the
backward rows dL/dz_l once computed) as vectors, and its own contribution to
each dL/dW_l — the outer product h_{l−1}[n]ᵀ·dL/dz_l[n] — next to the batch
total, whose sum over all rows (plus any penalty term) it is a part of.
Values the cursor has not reached yet are None.  Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Row:
    name: str  # "x", "z1", "dL/dz2"
    values: np.ndarray | None  # None: not computed yet at the cursor


@dataclass(frozen=True)
class Contribution:
    layer: int
    own: np.ndarray | None  # h_{l−1}[n]ᵀ · dL/dz_l[n]
    total: np.ndarray | None  # dL/dW_l of the batch


@dataclass(frozen=True)
class SampleData:
    n: int
    rows_in_batch: int
    iteration: int
    label: int
    forward: tuple[Row, ...]
    backward: tuple[Row, ...]
    contributions: tuple[Contribution, ...]


def _computed(frame: Any, index: int, key: str) -> np.ndarray | None:
    for i, op in enumerate(frame.ops):
        if op.key == key:
            return frame.outputs[i] if i <= index else None
    return None


def sample(src: Any, n: int) -> SampleData:
    """Row n (clamped to the batch) of every per-row array at the cursor."""
    frame, cur = src.frame, src.index
    X = frame.batch["X"]
    rows = X.shape[0]
    n = max(0, min(n, rows - 1))
    depth = src.program.depth
    fwd = [Row("x", X[n].copy()), Row("y", frame.batch["y"][n].copy())]
    back = []
    contrib = []
    for l in range(1, depth + 1):
        for p in ("z", "h"):
            a = _computed(frame, cur, f"{p}{l}")
            fwd.append(Row(f"{p}{l}", None if a is None else a[n].copy()))
    for l in range(depth, 0, -1):
        g = _computed(frame, cur, f"dL_dz{l}")
        back.append(Row(f"dL/dz{l}", None if g is None else g[n].copy()))
        below = X if l == 1 else _computed(frame, cur, f"h{l - 1}")
        own = None
        if g is not None and below is not None:
            with np.errstate(all="ignore"):
                own = np.outer(below[n], g[n])
        contrib.append(Contribution(l, own, _computed(frame, cur, f"dL_dW{l}")))
    label = int(frame.batch["labels"][n])
    return SampleData(n, rows, frame.iteration, label, tuple(fwd), tuple(back),
                      tuple(contrib))
