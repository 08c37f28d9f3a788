"""MatrixHeatmap: a window onto a matrix, readable with or without colour.

Each cell is a shade glyph (magnitude) and a 6-character signed value, on a
diverging blue/red background when the terminal has colour.  Signs are
explicit characters and NaN/±Inf cells carry their own glyphs (✗ ▲ ▼), so a
NO_COLOR terminal loses nothing but the background.  A big matrix is never
dumped: the renderable shows the window that fits its box, from a row/column
offset, with "… N more rows" markers.  Statistics are computed once, on the
whole matrix, when the heatmap is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

SHADES = " ░▒▓█"
VALUE_W = 6
CELL_W = VALUE_W + 1  # shade glyph + value
STEP = CELL_W + 1  # one space between cells

_TRUE = {  # truecolor/256: (negative, positive) backgrounds per magnitude level 1..4
    -1: ["#16324f", "#1f4e79", "#2f6fad", "#4a90d9"],
    1: ["#4f1d1d", "#7a2626", "#a83232", "#d94a4a"],
}
_NAN = Style(bold=True, reverse=True)
_DIM = Style(dim=True)
_UNIT = Style(bold=True, underline=True)
_CURSOR = Style(bold=True, reverse=True)
_MARK = Style(bold=True, underline=True)  # the row / column the cursor's element reads


def fmt_value(v: float) -> str:
    """A signed number in exactly 6 characters: +0.532, -12.35, +1.2e5, +3e-05, NaN, +Inf."""
    if math.isnan(v):
        return "   NaN"
    if math.isinf(v):
        return "  +Inf" if v > 0 else "  -Inf"
    if v == 0:
        return "     0"
    a, s = abs(v), "+" if v > 0 else "-"
    body = ""
    if a >= 1e-3:  # fixed point with as many decimals as fit (rounding may add a digit)
        for decimals in (3, 2, 1, 0):
            body = f"{a:.{decimals}f}"
            if len(body) <= 5:
                break
    if not body or len(body) > 5:
        for spec in (".1e", ".0e"):
            mant, exp = format(a, spec).split("e")
            body = f"{mant}e{int(exp)}"
            if len(body) <= 5:
                break
        if len(body) > 5:  # beyond 1e±99: only the order of magnitude matters
            body = "≈0" if a < 1 else "huge"
    return (s + body).rjust(VALUE_W)


def fmt_stat(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


@dataclass(frozen=True)
class Stats:
    """Whole-matrix statistics over finite entries, and counts of the others."""

    min: float
    max: float
    mean: float
    norm: float
    nan: int
    posinf: int
    neginf: int
    scale: float  # max |finite|: the heatmap's full-intensity value

    @staticmethod
    def of(a: np.ndarray) -> Stats:
        if a.size == 0:
            return Stats(math.nan, math.nan, math.nan, 0.0, 0, 0, 0, 0.0)
        a = a.astype(float, copy=False)
        finite = np.isfinite(a)
        bad = not finite.all()
        f = a[finite] if bad else a.reshape(-1)
        nan = int(np.count_nonzero(np.isnan(a))) if bad else 0
        pinf = int(np.count_nonzero(a == np.inf)) if bad else 0
        ninf = int(np.count_nonzero(a == -np.inf)) if bad else 0
        if f.size == 0:
            return Stats(math.nan, math.nan, math.nan, math.nan, nan, pinf, ninf, 0.0)
        lo, hi = float(f.min()), float(f.max())
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(np.sqrt(f.dot(f)))
            mean = float(f.mean())
        return Stats(lo, hi, mean, norm, nan, pinf, ninf, max(abs(lo), abs(hi)))

    def tokens(self, exp: int = 0) -> list[str]:
        """Header tokens, most important first (non-finite counts and the unit lead)."""
        out = [f"×1e{exp}"] if exp else []
        if self.nan:
            out.append(f"✗{self.nan} NaN")
        if self.posinf:
            out.append(f"▲{self.posinf} +Inf")
        if self.neginf:
            out.append(f"▼{self.neginf} -Inf")
        out += [f"min {fmt_stat(self.min)}", f"max {fmt_stat(self.max)}",
                f"μ {fmt_stat(self.mean)}", f"‖·‖ {fmt_stat(self.norm)}"]
        return out


def common_exponent(scale: float) -> int:
    """The power of ten cells are shown in: 0 unless the largest |value| is < 0.1 or ≥ 1e4."""
    if not math.isfinite(scale) or scale == 0 or 0.1 <= scale < 1e4:
        return 0
    return math.floor(math.log10(scale))


def as_2d(a: np.ndarray) -> tuple[np.ndarray, str]:
    """A 2-D view of any array, and a note when the view is not the array's own shape."""
    if a.ndim == 2:
        return a, ""
    if a.ndim == 0:
        return a.reshape(1, 1), "scalar"
    if a.ndim == 1:
        return a.reshape(1, -1), "vector"
    return a.reshape(-1, a.shape[-1]), "rows = " + "·".join(str(s) for s in a.shape[:-1])


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape) if shape else "scalar"


def _palette(system: str | None) -> dict[tuple[int, int], Style]:
    """(sign, level) → style; 16-colour terminals get named ANSI colours that stay legible."""
    styles: dict[tuple[int, int], Style] = {}
    for sign in (-1, 1):
        name = "blue" if sign < 0 else "red"
        for level in range(1, 5):
            if system is None:
                styles[sign, level] = Style()
            elif system in ("standard", "windows"):
                styles[sign, level] = (Style(color=name) if level < 3 else
                                       Style(color="bright_white", bgcolor=name))
            else:
                styles[sign, level] = Style(color="#ffffff", bgcolor=_TRUE[sign][level - 1])
    return styles


_PALETTES: dict[str | None, dict[tuple[int, int], Style]] = {}


class MatrixHeatmap:
    """A window onto `array` starting at (row, col); sizes itself to its box."""

    def __init__(self, array: np.ndarray, *, row: int = 0, col: int = 0,
                 stats: Stats | None = None, max_height: int = 12,
                 cursor: tuple[int, int] | None = None,
                 mark: tuple[str, int, int] | None = None, unsampled: bool = False) -> None:
        self.array = array
        self.grid, self.note = as_2d(array)
        self.stats = stats or Stats.of(array)
        # like NumPy's printing: a matrix of tiny (or huge) values is shown in units of a
        # common power of ten, so a gradient of 0.001928 keeps 4 digits in 6 characters
        self.exp = common_exponent(self.stats.scale)
        self.row, self.col = row, col
        self.max_height = max_height
        self.cursor = cursor  # (row, col) of the drill-down cell cursor in the 2-D view
        # the row / column / cell an output element under the cursor reads from this input
        self.mark = mark
        self.unsampled = unsampled  # NaN means "not sampled" (gradcheck), not a bad value

    def at(self, row: int, col: int, cursor: tuple[int, int] | None = None,
           mark: tuple[str, int, int] | None = None) -> MatrixHeatmap:
        """The same matrix seen from another offset (statistics are shared, not redone)."""
        return MatrixHeatmap(self.array, row=row, col=col, stats=self.stats,
                             max_height=self.max_height, cursor=cursor, mark=mark,
                             unsampled=self.unsampled)

    # ------------------------------------------------------------------ geometry
    def label_width(self) -> int:
        return max(2, len(str(self.grid.shape[0] - 1)) + 1)

    def fit(self, width: int, height: int) -> tuple[int, int, int]:
        """(header lines, visible rows, visible cols) for a box of width × height."""
        rows, cols = self.grid.shape
        vis_c = max(1, (width - self.label_width() + 1) // STEP)
        head = 3 if height >= 9 and len(" ".join(self.stats.tokens(self.exp))) > width else 2
        if height <= 4:  # tiny boxes drop the statistics first (the overview has them)
            head = 1
        head = min(head, max(1, height - 1))
        avail = max(1, height - head)
        cut_c = cols > vis_c
        if height <= 4:  # no room for the "more rows" line: the title has the shape
            vis_r = min(rows, avail)
        else:
            vis_r = rows if rows <= avail and not cut_c else max(1, min(rows, avail - 1))
        return head, vis_r, min(cols, vis_c)

    def clamp(self, width: int, height: int) -> tuple[int, int]:
        """The offset moved back inside the matrix for this box."""
        _, vis_r, vis_c = self.fit(width, height)
        rows, cols = self.grid.shape
        return (max(0, min(self.row, rows - vis_r)), max(0, min(self.col, cols - vis_c)))

    # ------------------------------------------------------------------ drawing
    def _stats_lines(self, width: int, count: int) -> list[Text]:
        lines: list[Text] = []
        cur = ""
        tokens = self.stats.tokens(self.exp)
        if self.unsampled:
            tokens = [t for t in tokens if "NaN" not in t]
        for tok in ([self.note] if self.note else []) + tokens:
            if cur and len(cur) + 2 + len(tok) > width:
                lines.append(cur)
                cur = ""
            cur = f"{cur}  {tok}" if cur else tok
        lines.append(cur)
        out = []
        for line in lines[:count]:
            t = Text(line, no_wrap=True, overflow="ellipsis")
            t.highlight_regex(r"[✗▲▼]\d+ \S+", _NAN)
            t.highlight_regex(r"×1e-?\d+", _UNIT)
            out.append(t)
        while len(out) < count:
            out.append(Text(""))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or self.max_height
        system = console.color_system
        styles = _PALETTES.get(system) or _PALETTES.setdefault(system, _palette(system))
        head, vis_r, vis_c = self.fit(width, height)
        r0, c0 = self.clamp(width, height)
        rows, cols = self.grid.shape
        lw = self.label_width()
        if head > 1:
            yield from self._stats_lines(width, head - 1)
        new_line = Segment.line()
        kind, mr, mc = self.mark or ("", -1, -1)
        mark_r = mr if kind in ("row", "cell") else -1
        mark_c = (mr if kind == "col" else mc) if kind in ("col", "cell") else -1
        # each row's segments are merged where the style repeats (Segment.simplify): the
        # terminal gets one escape sequence per run, not one per cell (bytes over SSH)
        used = len(hdr0 := " " * lw)
        row: list[Segment] = [Segment(hdr0, _DIM)]
        for c in range(c0, c0 + vis_c):
            label = ("▼" if c == mark_c and kind == "col" else "") + str(c)
            cell_text = label.rjust(CELL_W) + " "
            if used + len(cell_text) > width:
                cell_text = cell_text[:max(0, width - used)]
            used += len(cell_text)
            row.append(Segment(cell_text, _CURSOR if c == mark_c and kind == "col" else _DIM))
        if head <= 1 and self.exp:  # no statistics line: the unit goes on the header
            unit = f"×1e{self.exp}"
            if used + len(unit) > width:  # in place of the first column labels
                row = [Segment(unit[:width], _UNIT)]
            else:
                row.append(Segment(unit, _UNIT))
        yield from Segment.simplify(row)
        yield new_line
        window = self.grid[r0:r0 + vis_r, c0:c0 + vis_c].astype(float, copy=False)
        scale = self.stats.scale
        # 10**-exp in two halves: one factor overflows (or underflows) for subnormals
        half = -self.exp // 2
        unit = (10.0 ** half, 10.0 ** (-self.exp - half))
        # Segments, not Text: a heatmap row is ~10 styled runs and Text's wrapping
        # machinery would cost more than the whole row
        cur_r, cur_c = self.cursor if self.cursor else (-1, -1)
        for i, values in enumerate(window.tolist()):
            here = r0 + i == cur_r
            marked_row = r0 + i == mark_r and kind == "row"
            label = str(r0 + i).rjust(lw - 1) + (">" if here else ("▶" if marked_row else " "))
            row = [Segment(label, _CURSOR if here or marked_row else _DIM)]
            for j, v in enumerate(values):
                if self.unsampled and v != v:
                    row += [Segment("      ·", _DIM), Segment(" ")]
                    continue
                text, style = self._cell(v, scale, unit, styles)
                if (here and c0 + j == cur_c) or (kind == "cell" and r0 + i == mark_r
                                                  and c0 + j == mark_c):
                    # ▸value◂ in reverse video: readable in mono too
                    row.append(Segment("▸" + text[1:] + "◂", _CURSOR))
                    continue
                if marked_row or (kind == "col" and c0 + j == mark_c):
                    style = (style or Style()) + _MARK
                row += [Segment(text, style), Segment(" ")]
            yield from Segment.simplify(row)
            yield new_line
        below, right = rows - r0 - vis_r, cols - c0 - vis_c
        marks = [f"↑{r0}"] if r0 else []
        marks += [f"… {below} more rows ↓"] if below else []
        marks += [f"←{c0}"] if c0 else []
        marks += [f"… {right} more cols →"] if right else []
        line = "  ".join(marks)
        if len(line) > width:  # narrow panel: the short form
            line = " ".join(([f"↑{r0}"] if r0 else []) + ([f"+{below} rows↓"] if below else [])
                            + ([f"←{c0}"] if c0 else []) + ([f"+{right} cols→"] if right else []))
        if marks and head + vis_r < height:
            yield Text(line, style=_DIM, no_wrap=True, overflow="ellipsis")

    @staticmethod
    def _cell(v: float, scale: float, unit: tuple[float, float],
              styles: dict[tuple[int, int], Style]) -> tuple[str, Style | None]:
        if not math.isfinite(v):
            glyph = "✗" if math.isnan(v) else ("▲" if v > 0 else "▼")
            return glyph + fmt_value(v), _NAN
        level = 0 if v == 0 or scale == 0 else min(4, int(abs(v) / scale * 5))
        text = fmt_value(v * unit[0] * unit[1])
        if level == 0:
            return " " + text, None
        return SHADES[level] + text, styles[1 if v > 0 else -1, level]


class PendingMatrix:
    """A panel whose value does not exist yet at the cursor: shape and a dim note, no numbers."""

    def __init__(self, note: str, shape: tuple[int, ...]) -> None:
        self.note, self.shape = note, shape

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or 3
        width = options.max_width
        mid = max(0, height // 2 - 1)
        for _ in range(mid):
            yield Text("")
        yield Text(self.note.center(width), style=_DIM, no_wrap=True, overflow="crop")
        if self.shape and height > mid + 1:
            yield Text(f"({shape_text(self.shape)})".center(width), style=_DIM, no_wrap=True,
                       overflow="crop")
