"""DecisionBoundary: predicted classes as half-block pixels, training points on top.

Pure Rich over a `core.inspect.boundary.Boundary`.  In colour each cell is two pixels
(▀ with fg = top pixel, bg = bottom) in named ANSI colours, so a 16-colour
terminal shows exactly the intended hues.  Training points are their class
digit on the predicted colour: a digit on another class's colour is a
misclassified point.  Without colour (NO_COLOR, or a Console with no colour
system) regions become glyphs — ▀ ▄ █ for two classes, shades for more — and
points stay digits, so nothing is lost but the hue.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from core.inspect.boundary import Boundary

COLOURS = ("blue", "red", "green", "yellow", "magenta", "cyan", "bright_black", "white")
_DARK_TEXT = {"yellow", "cyan", "white"}  # light backgrounds: digits in black
SHADES = " ░▒▓█"
_DIM = Style(dim=True)
_BOLD = Style(bold=True)


def colour(k: int) -> str:
    return COLOURS[k % len(COLOURS)]


def point_glyph(k: int) -> str:
    """A training point of class k: its digit (then letters past 9)."""
    return str(k) if k < 10 else chr(ord("a") + (k - 10) % 26)


def _region_glyph(top: int, bottom: int, k: int) -> str:
    """Monochrome: two classes as half-blocks (class 1 filled), more as shades of the top."""
    if k == 2:
        return " ▄▀█"[top * 2 + bottom]
    return SHADES[top] if top < len(SHADES) else point_glyph(top).upper()


class DecisionBoundary:
    """The grid of `boundary` (rows = 2 × text lines) and a legend line below it."""

    def __init__(self, boundary: Boundary, *, mono: bool = False, caption: str = "") -> None:
        self.b, self.mono, self.caption = boundary, mono, caption

    def codes(self) -> np.ndarray:
        """One int per text cell: top·K + bottom for a region cell; points above K².

        A point cell is K² + (its digit's class, or K when classes mix)·K + the class
        of the pixel it sits on.
        """
        cls, k = self.b.classes, self.b.n_classes
        rows, cols = cls.shape
        top = cls[0::2]
        bottom = cls[1::2] if rows > 1 else top
        if len(bottom) < len(top):  # an odd pixel count: the last line is one pixel tall
            bottom = np.vstack([bottom, top[-1:]])
        code = top * k + bottom
        if len(self.b.labels):
            r, c = self.b.pixels[:, 0], self.b.pixels[:, 1]
            cell = (r // 2) * cols + c
            lo = np.full(code.size, k, np.int64)
            hi = np.full(code.size, -1, np.int64)
            np.minimum.at(lo, cell, self.b.labels)
            np.maximum.at(hi, cell, self.b.labels)
            glyph = np.where(lo == hi, lo, k)[cell]
            code.reshape(-1)[cell] = k * k + glyph * k + cls[r, c]
        return code

    def _look(self, code: int, mono: bool) -> tuple[str, Style | None]:
        k = self.b.n_classes
        if code >= k * k:  # a training point
            glyph_k, under = divmod(code - k * k, k)
            glyph = "*" if glyph_k == k else point_glyph(glyph_k)
            if mono:
                return glyph, Style(bold=True)
            bg = colour(under)
            return glyph, Style(color="black" if bg in _DARK_TEXT else "bright_white",
                                bgcolor=bg, bold=True)
        t, b = divmod(code, k)
        if mono:
            return _region_glyph(t, b, k), _DIM
        if t == b:
            return " ", Style(bgcolor=colour(t))
        return "▀", Style(color=colour(t), bgcolor=colour(b))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        mono = self.mono or console.color_system is None
        width = options.max_width
        looks: dict[int, tuple[str, Style | None]] = {}
        new_line = Segment.line()
        # runs of equal cells become one Segment: a region row is a handful of them
        for row in self.codes()[:, :width]:
            cuts = [0, *(np.flatnonzero(np.diff(row)) + 1).tolist(), len(row)]
            values = row.tolist()
            for a, b in zip(cuts, cuts[1:], strict=False):
                code = values[a]
                look = looks.get(code)
                if look is None:
                    look = looks[code] = self._look(code, mono)
                yield Segment(look[0] * (b - a), look[1])
            yield new_line
        yield self.legend(mono, width)

    def legend(self, mono: bool, width: int) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        for c in range(self.b.n_classes):
            if mono:
                glyph = " ▄▀█"[3 * c] if self.b.n_classes == 2 else _region_glyph(c, c, 99)
                t.append(f"[{glyph}]", _DIM)
            else:
                t.append("  ", Style(bgcolor=colour(c)))
            t.append(f"{c} ")
        x0, x1, y0, y1 = self.b.extent
        if self.caption:
            t.append(f"{self.caption} · ", _BOLD)
        t.append(f"acc {self.b.accuracy:.0%} · ")
        what = "colour" if not mono else "fill"
        # the long explanation when it fits, else the short one: never cut mid-word
        for text in (f"{what} = prediction, digits = points (true class) · x {x0:.3g}…"
                     f"{x1:.3g}, y {y0:.3g}…{y1:.3g}",
                     f"{what} = prediction, digits = points (true class)",
                     f"{what} = predicted, digit = true class", f"{what}: predicted"):
            if t.cell_len + len(text) <= width or text.endswith("predicted"):
                t.append(text, _DIM)
                break
        return t
