"""OpCard: the current op — phase, formula, scalars used, factors and shapes → output.

Pure Rich over a `view.OpCardData`.  Up to three lines, as many as its box has:
the formula line, the scalars-and-factors line (on the first screen: what to
press), then the phase strip with a window of the
op sequence around the cursor (done · current · pending).
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.renderables.matrix import shape_text
from tui_backprop.view import OpCardData

_BADGE = Style(bold=True, reverse=True)
_DIM = Style(dim=True)
_BOLD = Style(bold=True)


class OpCard:
    def __init__(self, data: OpCardData) -> None:
        self.data = data

    def formula_line(self, width: int) -> Text:
        d = self.data
        right = f"op {d.index + 1}/{d.count}"
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {d.phase.upper()} ", _BADGE)
        line.append(" ")
        line.append(d.formula, _BOLD)
        pad = width - line.cell_len - len(right)
        if pad >= 2:
            line.append(" " * pad)
            line.append(right, _DIM)
        return line

    def shapes_line(self, width: int = 1 << 16) -> Text:
        """What to press on the first screen; else the scalars used, then the factors.

        When the line is too long the factors lose their shapes, then go (the
        panels show them); the scalars stay.
        """
        d = self.data
        if d.hint:
            return Text(d.hint, _BOLD, no_wrap=True, overflow="ellipsis")
        for shapes, factors in ((True, True), (False, True), (False, False)):
            line = self._shapes(shapes, factors)
            if line.cell_len <= width:
                return line
        return line

    def _shapes(self, shapes: bool, factors: bool) -> Text:
        d = self.data
        line = Text(no_wrap=True, overflow="ellipsis")
        for s in d.scalars:
            line.append(s, _BOLD)
            line.append("  ")
        if not factors:
            return line
        if d.inputs:
            line.append("in: ", _DIM)
            for i, (name, shape) in enumerate(d.inputs):
                if i:
                    line.append(" ")
                line.append(name, _BOLD)
                if shapes:
                    line.append(f" {shape_text(shape)}")
            line.append("  →  ")
        else:
            line.append("no inputs  →  ", _DIM)
        line.append(f"{d.name}", _BOLD)
        if shapes:
            line.append(" " + shape_text(d.shape))
        return line

    def strip_line(self, width: int) -> Text:
        """Phases with the current one bracketed, then the ops around the cursor."""
        d = self.data
        line = Text(no_wrap=True, overflow="crop")
        for i, ph in enumerate(d.phases):
            if i:
                line.append(" › ", _DIM)
            if ph == d.phase:
                line.append(f"[{ph}]", _BOLD)
            else:
                line.append(ph, _DIM)
        line.append("   ")
        room = width - line.cell_len
        names = d.names
        lo = d.index
        used = len(names[lo]) + 2
        hi = lo + 1
        while True:  # grow the window both ways, the past first, while it fits
            grew = False
            if lo > 0 and used + len(names[lo - 1]) + 1 + 2 <= room:
                lo -= 1
                used += len(names[lo]) + 1
                grew = True
            if hi < len(names) and used + len(names[hi]) + 1 + 2 <= room:
                used += len(names[hi]) + 1
                hi += 1
                grew = True
            if not grew:
                break
        if lo > 0:
            line.append("… ", _DIM)
        for i in range(lo, hi):
            if i == d.index:
                line.append(f"[{names[i]}]", _BADGE)
            else:
                line.append(names[i], None if i < d.index else _DIM)
            line.append(" ")
        if hi < len(names):
            line.append("…", _DIM)
        return line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or 3
        yield self.formula_line(width)
        if height >= 2:
            yield self.shapes_line(width)
        if height >= 3:
            yield self.strip_line(width)
