"""OverviewLines: the headline matrices, one lovely-numpy-style line each.

`out z1 300×3  -2.82 ▁▃▅█▇▄▂▁ 2.43  μ 0.01  σ 1.02  ‖20.3‖  ✗2`: what the op
writes (`out`, bold reverse) or reads (`in`, bold), the range around an
8-bin histogram sparkline, mean, standard deviation, norm, and NaN/Inf counts
as glyphs.  A value from the previous iteration is dim and marked `↶`.  With
`tiles`, each line gets a mini heatmap below it (the longer axis across) and
entries pair up two per row.  Everything reads without colour.
"""

from __future__ import annotations

import math

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.overview import Entry, Summary

BARS = "▁▂▃▄▅▆▇█"
SHADES = " ░▒▓█"
_OUT = Style(bold=True, reverse=True)
_IN = Style(bold=True)
_DIM = Style(dim=True)
_BAD = Style(bold=True, reverse=True)


def g(v: float, width: int = 7) -> str:
    """A number in at most `width` characters (3 significant digits, or an exponent)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    s = f"{v:.3g}"
    if len(s) > width:
        s = f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e")
    return s


def hist_text(hist: tuple[int, ...]) -> str:
    top = max(hist) if hist else 0
    if top == 0:
        return " " * len(hist)
    return "".join(" " if c == 0 else BARS[min(7, int(c / top * 7.999))] for c in hist)


def shape_short(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape) if shape else "()"


def summary_line(e: Entry, width: int) -> Text:
    """One entry in `width` columns; σ and the source iteration go first when short."""
    t = Text(no_wrap=True, overflow="crop")
    stale = e.from_iteration is not None
    tag = {"out": "out", "in": " in"}.get(e.role, "   ")
    t.append(tag, _OUT if e.role == "out" else (_IN if e.role else None))
    t.append("↶" if stale else " ", _DIM)
    t.append(f"{e.name:<7}", _OUT if e.role == "out" else (_IN if e.role else None))
    s = e.summary
    if s is None:
        t.append(" · not computed yet ·", _DIM)
        if e.live:
            t.append(f"  {e.live}", _IN)
        return t
    body = _body(s, width - t.cell_len)
    t.append(body, _DIM if stale and not e.role else None)
    if s.nan or s.inf:
        bad = (f" ✗{s.nan}" if s.nan else "") + (f" ▲{s.inf}" if s.inf else "")
        t.append(bad, _BAD)
    if e.live and t.cell_len + len(e.live) + 2 <= width:
        t.append(f"  {e.live}", _IN)
    elif stale and t.cell_len + 8 <= width:
        t.append(f"  ↶it {e.from_iteration}", _DIM)
    return t


def _body(s: Summary, room: int) -> str:
    """Aligned columns when they fit; else unpadded; σ goes first, then the norm."""
    shape = shape_short(s.shape)
    lo, hi, hist = g(s.min), g(s.max), hist_text(s.hist)
    mu, sd, nm = g(s.mean), g(s.std), g(s.norm)
    tries = [
        f"{shape:<8} {lo:>7} {hist} {hi:<7} μ {mu:<7} σ {sd:<6} ‖{nm}‖",
        f"{shape} {lo} {hist} {hi} μ {mu} σ {sd} ‖{nm}‖",
        f"{shape} {lo} {hist} {hi} μ {mu} ‖{nm}‖",
        f"{shape} {lo} {hist} {hi} μ {mu}",
    ]
    for text in tries:
        if len(text) + 1 <= room:
            return " " + text
    return " " + tries[-1]


def mini_heat(a: np.ndarray | None, rows: int, cols: int, color: bool) -> list[Text]:
    """The array block-averaged to rows × cols shade glyphs, its longer axis across."""
    if a is None or a.size == 0:
        return [Text("") for _ in range(rows)]
    m = np.asarray(a, dtype=np.float64)
    m = m.reshape(1, -1) if m.ndim < 2 else m.reshape(-1, m.shape[-1])
    if m.shape[0] > m.shape[1]:
        m = m.T
    r, c = min(rows, m.shape[0]), min(cols, m.shape[1])
    with np.errstate(all="ignore"):
        blocks = [np.array_split(part, c, axis=1)
                  for part in np.array_split(m, r, axis=0)]
        grid = np.array([[b.mean() for b in row] for row in blocks])
        finite = np.abs(grid[np.isfinite(grid)])
        scale = float(finite.max()) if finite.size else 0.0
    red, blue = Style(color="red"), Style(color="blue")
    out = []
    for row in grid:
        t = Text(no_wrap=True, overflow="crop")
        run, run_style = "", None  # one span per run of equal style: one escape per run
        for v in row:
            if not math.isfinite(v):
                glyph, style = "✗", _BAD
            else:
                level = 0 if scale == 0 else min(4, int(abs(v) / scale * 4.999))
                glyph = SHADES[level]
                style = (red if v > 0 else blue) if color and level else None
            if style is not run_style and run:
                t.append(run, run_style)
                run = ""
            run, run_style = run + glyph, style
        if run:
            t.append(run, run_style)
        out.append(t)
    while len(out) < rows:
        out.append(Text(""))
    return out


class OverviewLines:
    """Lines (or tiles) for the entries; `columns` 2 puts entries side by side."""

    def __init__(self, entries: tuple[Entry, ...], tiles: bool = False, heat_rows: int = 2,
                 columns: int = 1) -> None:
        self.entries, self.tiles, self.heat_rows = entries, tiles, heat_rows
        self.columns = 2 if tiles else columns

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or len(self.entries)
        color = console.color_system is not None
        cols = self.columns
        cell = width // cols
        rows: list[Text] = []
        for k in range(0, len(self.entries), cols):
            group = self.entries[k:k + cols]
            lines = [summary_line(e, cell - 1) for e in group]
            rows.append(_join(lines, cell))
            if self.tiles:
                heats = [mini_heat(e.array, self.heat_rows, cell - 6, color) for e in group]
                for r in range(self.heat_rows):
                    row = []
                    for h in heats:
                        line = Text("     ", no_wrap=True)
                        line.append_text(h[r])
                        row.append(line)
                    rows.append(_join(row, cell))
        if len(rows) > height:  # the ones the op touches first, then in order
            keep = rows[:height]
            rows = keep
        yield from rows


def _join(parts: list[Text], cell: int) -> Text:
    t = Text(no_wrap=True, overflow="crop")
    for i, p in enumerate(parts):
        p = p.copy()
        p.truncate(cell - 1 if i < len(parts) - 1 else cell)
        t.append_text(p)
        if i < len(parts) - 1:
            t.append(" " * (cell - p.cell_len))
    return t
