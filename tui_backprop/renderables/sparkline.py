"""Sparkline: a one-line trend of a series, min/max-bucketed so spikes survive.

Pure Rich.  NaN/Inf points become a ✗ so a broken run is visible even on a
line of eight block glyphs.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

BARS = "▁▂▃▄▅▆▇█"


def spark_text(values: np.ndarray, width: int, style: str | Style = "") -> Text:
    """The last values squeezed into `width` glyphs (each glyph = the bucket's max)."""
    v = np.asarray(values, dtype=float)
    if width <= 0 or v.size == 0:
        return Text("")
    buckets = np.array_split(v, min(width, v.size))
    bad = np.array([not np.isfinite(b).all() for b in buckets])
    tops = np.array([np.max(b[np.isfinite(b)]) if np.isfinite(b).any() else np.nan
                     for b in buckets])
    finite = tops[np.isfinite(tops)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    span = hi - lo
    out = []
    for top, broken in zip(tops, bad, strict=True):
        if broken:
            out.append("✗")
        else:
            level = 0 if span == 0 else int((top - lo) / span * (len(BARS) - 1))
            out.append(BARS[level])
    return Text("".join(out), style=style, no_wrap=True)


class Sparkline:
    """A renderable sparkline filling the width it is given."""

    def __init__(self, values: np.ndarray, width: int | None = None,
                 style: str | Style = "") -> None:
        self.values, self.width, self.style = values, width, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield spark_text(self.values, self.width or options.max_width, self.style)
