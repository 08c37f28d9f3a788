"""DrillDown: one matrix entry's computation with the real numbers plugged in.

Pure Rich over an `investigate.DrillData`.  The chain reads top to bottom like
the article's hand calculation: `target = symbols`, `= numbers`, `= value`.
When the box is short, lines are dropped by importance — the target, the
numbers and the value stay; the general Σ form and notes go first — and a NaN's
provenance keeps its first and last steps.  Every line wraps rather than hides
its end, so "… (n more terms)" is never cut off.
"""

from __future__ import annotations

import math

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.investigate import DrillData

_BOLD = Style(bold=True)
_DIM = Style(dim=True)
_BAD = Style(bold=True, color="red", reverse=True)
_WARN = Style(bold=True, color="yellow")
HINT = "enter/esc leave · arrows move the cell · tab another panel"


class DrillDown:
    def __init__(self, data: DrillData | None, hint: str = HINT) -> None:
        self.data, self.hint = data, hint

    def entries(self) -> list[tuple[int, Text]]:
        """(priority, line) in display order; lower priority numbers are kept longer."""
        if self.data is None:
            return [(0, Text("no array under the cursor", _DIM))]
        e = self.data.explanation
        head = Text()
        head.append(f"▸ {e.target}", _BOLD)
        head.append(f"   {self.data.where}", _DIM)
        if e.formula:
            head.append(f"   {e.formula}", _DIM)
        out: list[tuple[int, Text]] = [(0, head)]
        lines = e.lines
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            prefix = f"{e.target} {e.arrow} " if i == 0 else "  = "
            t = Text(prefix)
            if last:
                t.append(line, _BOLD if math.isfinite(e.value) else _BAD)
            else:
                t.append(line)
            # the value and the line with the numbers matter most; the Σ form least
            pri = 0 if (i == 0 or last) else (1 if i == len(lines) - 2 else 3)
            out.append((pri, t))
        if not e.agrees:
            out.append((0, Text(f"  ≠ recomputed from the inputs: {e.recomputed!r} "
                                "(the kernel and this formula disagree)", _WARN)))
        for note in e.notes:
            out.append((5, Text(f"  {note}", _DIM)))
        prov = list(e.provenance)
        if prov:
            out.append((1, Text("why non-finite:", _WARN)))
            for j, step in enumerate(prov):
                edge = j == 0 or j >= len(prov) - 2
                arrow = "  " if j == 0 or step.startswith("first NaN") else "  ← "
                out.append((1 if edge else 4, Text(arrow + step)))
        out.append((6, Text(self.hint, _DIM)))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or 12
        entries = self.entries()
        rows = [len(t.wrap(console, width)) for _, t in entries]
        keep = [True] * len(entries)
        # drop the least important lines, latest first, until the rest fits
        for pri in (6, 5, 4, 3, 2, 1):
            for i in range(len(entries) - 1, -1, -1):
                if sum(r for r, k in zip(rows, keep, strict=True) if k) <= height:
                    break
                if keep[i] and entries[i][0] == pri:
                    keep[i] = False
        used = 0
        for (_, t), r, k in zip(entries, rows, keep, strict=True):
            if not k:
                continue
            for line in t.wrap(console, width):
                if used >= height:
                    return
                used += 1
                yield line
