"""argparse `type=` converters shared by every sub-command.

Each returns a converter whose error is argparse's one-line `error: argument
--x: ...` (exit 2), with the bound it checks named, so every command refuses a
bad number the same way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from core.model.limits import MAX_ITERATION


def integer(lo: int = 0, hi: int = MAX_ITERATION) -> Callable[[str], int]:
    """An int in lo..hi; hi defaults to the largest iteration the CLI addresses (2**53)."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r:.40} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if value > hi:
            bound = "2**53 = " if hi == MAX_ITERATION else ""
            raise argparse.ArgumentTypeError(f"must be <= {bound}{hi}, got {text:.40}")
        return value
    return convert


def number(lo: float = 0.0, hi: float = math.inf, *, lo_open: bool = True,
           hi_open: bool = True) -> Callable[[str], float]:
    """A finite float between lo and hi (open ends by default: `> 0`, `< inf`)."""
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r:.40} is not a number") from None
        above = value > lo if lo_open else value >= lo
        below = value < hi if hi_open else value <= hi
        if not (above and below and math.isfinite(value)):
            if hi == math.inf:
                want = f"{'>' if lo_open else '>='} {lo:g}"
            else:
                want = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be {want}, got {text:.40}")
        return value
    return convert


non_negative = integer(0)
positive = integer(1)
