"""Running a unit list from a given state: how the rewrite tests (in-place outputs, blocked
runs) compare a program with its rewritten form."""

from __future__ import annotations

import numpy as np

from core.model.code import Unit, compile_units


def run_from(units: list[Unit], bufs: list[np.ndarray], start: list[np.ndarray],
             iterations: int = 3) -> None:
    """Reset `bufs` to `start`, then run the units `iterations` times in a row (overflow and
    0/0 are data here, not warnings)."""
    for b, s in zip(bufs, start, strict=True):
        b[...] = s
    step = compile_units(tuple(units), "step")
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            step()
