"""NetworkDiagram: the topology with the current op's arrays lit, and gradient flow.

Pure Rich over an `investigate.DiagramData`, drawn like the article's figures:
a column per layer (its size, its units, the arrays that live there: z, h,
dL/dh, dh/dz, dL/dz), a column per weight matrix between them (W, b, dL/dW,
dL/db) and the loss.  The op under the cursor marks its output ▶ and its
inputs •, so "X and dL/dz1 → dL/dW1" reads without colour.  Below, one line
per weight layer: sparklines of ‖∇W‖, the update ratio η‖∇W‖/‖W‖ and the
hidden layer's saturation over recent iterations, each with its latest value.
A wide network too wide for the box drops the unit dots, then the gaps, then
keeps the columns around the current op.
"""

from __future__ import annotations

import math

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.investigate import DiagramData, Flow
from tui_backprop.renderables.sparkline import spark_text

_ROLE = {"out": Style(bold=True, reverse=True), "in": Style(bold=True, underline=True),
         "head": Style(bold=True), "dim": Style(dim=True), "": Style()}
_MARK = {"out": "▶ ", "in": "• ", "": "  "}
Cell = tuple[str, str]  # (text, role)


def _short(v: float) -> str:
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else "inf"
    return f"{v:.2e}" if v and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.3g}"


def _fits(widths: list[int], gap: int, width: int) -> bool:
    """Whether these columns, an ellipsis column and their gaps fit in `width`."""
    return sum(widths) + gap * len(widths) + 2 <= width


class NetworkDiagram:
    def __init__(self, data: DiagramData) -> None:
        self.d = data

    def _role(self, name: str) -> str:
        if name == self.d.output:
            return "out"
        return "in" if name in self.d.inputs else ""

    def columns(self, dots: bool = True, shapes: bool = True) -> list[list[Cell]]:
        d = self.d
        depth = len(d.sizes) - 1
        cols: list[list[Cell]] = []
        for l in range(depth + 1):
            name = "X" if l == 0 else f"h{l}"
            size = d.sizes[l]
            col: list[Cell] = [(f"{name} · {size}", "head")]
            if dots:
                col.append(("●" * min(size, 6) + ("…" if size > 6 else ""), "dim"))
            col += [(_MARK[self._role(x)] + x, self._role(x)) for x in d.nodes[l]]
            cols.append(col)
            if l < depth:
                w = f"W{l + 1}"
                head = f"{w} {d.sizes[l]}×{d.sizes[l + 1]}" if shapes else w
                edge: list[Cell] = [(head, "head")]
                if dots:
                    edge.append(("─" * (len(head) - 1) + "▶", "dim"))
                edge += [(_MARK[self._role(x)] + x, self._role(x)) for x in d.edges[l]]
                cols.append(edge)
        tail: list[Cell] = [("loss", "head")] + ([("", "dim")] if dots else [])
        tail += [(_MARK[self._role(x)] + x, self._role(x)) for x in d.tail]
        cols.append(tail)
        return cols

    def layout(self, width: int) -> list[Text]:
        """The diagram's lines, compacted step by step until they fit `width`."""
        for dots, shapes, gap in ((True, True, 3), (True, True, 2), (False, True, 1),
                                  (False, False, 1)):
            cols = self.columns(dots, shapes)
            widths = [max(len(t) for t, _ in c) for c in cols]
            if sum(widths) + gap * (len(cols) - 1) <= width:
                break
        else:  # still too wide: keep the columns around the lit ones
            lit = [i for i, c in enumerate(cols) if any(r in ("out", "in") for _, r in c)]
            lo, hi = (min(lit), max(lit)) if lit else (0, 0)
            while True:
                if hi + 1 < len(cols) and _fits(widths[lo:hi + 2], gap, width):
                    hi += 1
                elif lo > 0 and _fits(widths[lo - 1:hi + 1], gap, width):
                    lo -= 1
                else:
                    break
            cols, widths = cols[lo:hi + 1], widths[lo:hi + 1]
            if lo > 0:
                cols, widths = [[("…", "dim")]] + cols, [1] + widths
        height = max(len(c) for c in cols)
        lines = []
        for r in range(height):
            t = Text(no_wrap=True, overflow="crop")
            for i, (c, w) in enumerate(zip(cols, widths, strict=True)):
                text, role = c[r] if r < len(c) else ("", "")
                t.append(text, _ROLE[role])
                if i < len(cols) - 1:
                    t.append(" " * (w - len(text) + gap))
            lines.append(t)
        return lines

    def caption(self) -> Text:
        d = self.d
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("▶ " + d.output, _ROLE["out"])
        if d.inputs:
            t.append(" ← ")
            for i, x in enumerate(d.inputs):
                t.append(("" if i == 0 else ", ") + "• " + x, _ROLE["in"])
        t.append(f"   {d.formula}", _ROLE["dim"])
        return t

    def flow_lines(self, width: int) -> list[Text]:
        d = self.d
        a, b = d.span
        if b <= a:
            return [Text("gradient flow: no iterations yet (i: next iteration, c: continue)",
                         _ROLE["dim"])]
        long = (f"gradient flow, iterations {a}–{b - 1}: ‖∇W‖ · update ratio "
                "η‖∇W‖/‖W‖ · saturated share (sampled)")
        if len(long) > width:
            long = f"gradient flow, it {a}–{b - 1}: ‖∇W‖ · η‖∇W‖/‖W‖ · saturated share"
        head = Text(long, _ROLE["dim"], no_wrap=True, overflow="ellipsis")
        spark = max(4, (width - 4 - 3 * 16) // 3)
        out = [head]
        for f in d.flows:
            out.append(self._flow(f, spark))
        return out

    @staticmethod
    def _flow(f: Flow, spark: int) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"W{f.layer:<3}", _ROLE["head"])
        for label, values in (("‖∇‖", f.grad), ("ratio", f.ratio)):
            t.append(f"{label} ", _ROLE["dim"])
            t.append_text(spark_text(values, spark))
            t.append(f" {_short(float(values[-1])):<8} ")
        t.append("sat ", _ROLE["dim"])
        if f.sat is None:
            t.append("— (output layer)", _ROLE["dim"])
        elif not len(f.sat):
            t.append("not sampled yet", _ROLE["dim"])
        else:
            t.append_text(spark_text(np.asarray(f.sat), spark))
            t.append(f" {f.sat[-1]:.0%}")
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = options.height or 24
        body = self.layout(width)
        flows = self.flow_lines(width)
        room = height - 1 - len(flows) - 1
        yield self.caption()
        yield from body[:max(0, room)]
        if room >= 0:
            yield Text("")
        yield from flows[:max(0, height - 1 - min(len(body), max(0, room)))]
