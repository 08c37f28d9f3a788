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

    def entries(self) -> list[tuple[int, Text, str]]:
        """(priority, line, tag) in display order; lower priorities are kept longer.

        0 the target, the first line, the value, a NaN's origin; 1 the numbers, where a
        NaN's chain starts; 3 the other forms; 4 the chain's middle ("mid"); 5 notes.
        """
        if self.data is None:
            why = ("no stored array under the cursor (not computed yet, or derived like "
                   "ΔW = new − old): the output panel explains its cells")
            return [(0, Text(why, _DIM), "")]
        e = self.data.explanation
        head = Text()
        head.append(f"▸ {e.target}", _BOLD)
        head.append(f"   {self.data.where}", _DIM)
        if e.formula:
            head.append(f"   {e.formula}", _DIM)
        out: list[tuple[int, Text, str]] = [(0, head, "")]
        lines = e.lines
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            t = Text(f"{e.target} {e.arrow} " if i == 0 else "  = ")
            t.append(line, (_BOLD if math.isfinite(e.value) else _BAD) if last else None)
            numbers = i == len(lines) - 2
            pri = 0 if (i == 0 or last) else ((2 if e.provenance else 1) if numbers else 3)
            out.append((pri, t, ""))
        if not e.agrees:
            out.append((0, Text(f"  ≠ recomputed from the inputs: {e.recomputed!r} "
                                "(the kernel and this formula disagree)", _WARN), ""))
        out += [(5, Text(f"  {note}", _DIM), "") for note in e.notes]
        prov = e.provenance
        for j, step in enumerate(prov):
            first, origin = j == 0, j >= len(prov) - 2
            t = Text("why: " if first else ("  " if step.startswith("first NaN") else "  ← "),
                     _WARN if first else "")
            t.append(step)
            out.append((0 if origin else (1 if first else 4), t,
                        "mid" if not (first or origin) else ""))
        out.append((6, Text(self.hint, _DIM), ""))
        return out

    @staticmethod
    def _fit(entries: list[tuple[int, Text, str]], rows: list[int], height: int
             ) -> list[bool]:
        keep = [True] * len(entries)
        # drop the least important lines, latest first, until the rest fits
        for pri in (6, 5, 4, 3, 2, 1):
            for i in range(len(entries) - 1, -1, -1):
                if sum(r for r, k in zip(rows, keep, strict=True) if k) <= height:
                    return keep
                if keep[i] and entries[i][0] == pri:
                    keep[i] = False
        return keep

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or 12
        entries = self.entries()
        rows = [len(t.wrap(console, width)) for _, t, _ in entries]
        keep = self._fit(entries, rows, height)
        middle = [i for i, (_, _, tag) in enumerate(entries) if tag == "mid"]
        if any(not keep[i] for i in middle):  # the chain's middle, one line: "← a ← b ← c"
            chain = " ← ".join(entries[i][1].plain[4:].split(" ← ")[0] for i in middle)
            entries = (entries[:middle[0]] + [(2, Text(f"  ← {chain}", _DIM), "")]
                       + entries[middle[-1] + 1:])
            rows = [len(t.wrap(console, width)) for _, t, _ in entries]
            keep = self._fit(entries, rows, height)
        used = 0
        for (_, t, _), k in zip(entries, keep, strict=True):
            if not k:
                continue
            for line in t.wrap(console, width):
                if used >= height:
                    return
                used += 1
                yield line
