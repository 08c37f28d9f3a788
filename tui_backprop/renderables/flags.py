"""FlagsStrip: what went wrong and where it first appeared, one line per kind.

Pure Rich over `view.FlagLine`s.  Each line starts with a glyph (✗ ! ↑ ↓ ^ ↗ ▬)
so the kind reads without colour; lines found in the iteration under the
cursor (the NaN origin, floating-point warnings with their hint) come first.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.view import FLAG_GLYPH, FLAG_LABEL, FlagLine

_SEVERE = {"diverged", "nan", "explode", "fp"}
_STYLE = {True: Style(bold=True, color="red"), False: Style(color="yellow")}
_DIM = Style(dim=True)


class FlagsStrip:
    def __init__(self, lines: list[FlagLine], scanned: int) -> None:
        self.lines, self.scanned = lines, scanned

    def _line(self, f: FlagLine) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        label = FLAG_LABEL.get(f.kind, f.kind)
        t.append(f"{FLAG_GLYPH.get(f.kind, '?')} {label:<9}", _STYLE[f.kind in _SEVERE])
        where = "here" if f.here else f"it {f.iteration}"
        t.append(f" {where} · ")
        if f.op and f.op not in f.detail:  # "‖dL/dW2‖ = …" already names its op
            t.append(f.op, Style(bold=True))
            t.append(" · ")
        t.append(f.detail)
        if f.count > 1:
            t.append(f"  (×{f.count})", _DIM)
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or len(self.lines) or 1
        if not self.lines:
            last = f"0–{self.scanned - 1}" if self.scanned else "none yet"
            yield Text(f"✓ no flags  (iterations scanned: {last})", _DIM)
            return
        if height == 1 and len(self.lines) > 1:  # one row: the first flag, then a count
            line = self._line(self.lines[0])
            kinds = ", ".join(dict.fromkeys(FLAG_LABEL.get(f.kind, f.kind)
                                            for f in self.lines[1:]))
            tail = f"  +{len(self.lines) - 1}: {kinds}"
            room = options.max_width - len(tail)
            line.truncate(max(10, room), overflow="ellipsis")
            line.append(tail, _DIM)
            yield line
            return
        shown = self.lines if len(self.lines) <= height else self.lines[:max(0, height - 1)]
        spare = height - len(shown)
        for f in shown:
            t = self._line(f)
            if spare > 0 and t.cell_len > options.max_width:  # a spare row: wrap, not cut
                t.no_wrap, t.overflow = False, "fold"
                spare -= 1
            yield t
        rest = self.lines[len(shown):]
        if rest:
            kinds = ", ".join(dict.fromkeys(FLAG_LABEL.get(f.kind, f.kind) for f in rest))
            yield Text(f"+{len(rest)} more: {kinds}", _DIM, no_wrap=True, overflow="ellipsis")
