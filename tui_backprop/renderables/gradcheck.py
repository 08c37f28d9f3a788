"""GradcheckReport: a finite-difference check of the current gradient, at a glance.

Pure Rich over an `investigate.GradcheckData`: a verdict in words and colour
(PASS / FAIL, so NO_COLOR loses nothing) with the threshold it used, the worst
entry, how many entries were checked or skipped, the worst few entries side by
side, and the relative error of every checked entry as a heatmap (the matrix
renderable; · marks entries not sampled).
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from core.inspect.explain import num
from tui_backprop.investigate import GradcheckData
from tui_backprop.renderables.matrix import MatrixHeatmap

_PASS = Style(bold=True, color="black", bgcolor="green")
_FAIL = Style(bold=True, color="bright_white", bgcolor="red")
_NONE = Style(bold=True, color="black", bgcolor="yellow")
_BOLD = Style(bold=True)
_DIM = Style(dim=True)


class GradcheckReport:
    def __init__(self, data: GradcheckData | None, busy: str = "") -> None:
        self.data, self.busy = data, busy

    def lines(self) -> list[Text]:
        d = self.data
        if d is None:
            return [Text(self.busy or "checking…", _DIM)]
        out = [Text(d.title, _BOLD, no_wrap=True, overflow="ellipsis")]
        if d.message:
            out += [Text(""), Text(d.message, _BOLD),
                    Text("f checks dL/dW, dL/db and dL/dz ops of an iteration with finite "
                         "parameters: step there (p jumps phases) and press f again.", _DIM)]
            return out
        verdict = Text()
        if d.checked == 0:  # every entry skipped: nothing was compared, so no verdict
            verdict.append(" NO VERDICT ? ", _NONE)
            verdict.append("  every sampled entry was skipped at a ReLU kink: nothing compared")
        else:
            verdict.append(" PASS ✓ " if d.passed else " FAIL ✗ ", _PASS if d.passed else _FAIL)
            rel = "≤" if d.passed else ">"
            verdict.append(f"  max relative error {d.max_rel:.2e} {rel} threshold "
                           f"{d.threshold:.0e}  (worst: {d.worst})")
        out.append(verdict)
        if d.nonfinite:
            out.append(Text(f"{d.nonfinite} entr{'ies' if d.nonfinite > 1 else 'y'} gave a NaN/Inf "
                            "difference: the loss overflows at w ± ε, so they confirm nothing",
                            _BOLD))
        if d.diagnosis:
            out.append(Text(d.diagnosis, _BOLD))
        sampled = "" if d.checked + d.skipped >= d.total else " (sampled)"
        out.append(Text(f"checked {d.checked} of {d.total} entries{sampled} · {d.skipped} "
                        f"skipped at ReLU kinks · central differences, ε = {d.eps:.0e}, "
                        "float64", _DIM))
        if d.rows:
            out.append(Text(f"{'entry':<10} {'analytic':>12} {'numeric':>12} {'rel. error':>11}",
                            _DIM))
            for idx, a, n, e in d.rows[:5]:
                out.append(Text(f"{idx:<10} {num(a):>12} {num(n):>12} {e:>11.2e}"))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or 20
        lines = self.lines()
        yield from lines[:height]
        d = self.data
        room = height - len(lines) - 1
        if d is None or d.rel_error is None or room < 4:
            return
        yield Text("relative error per entry (· = not sampled, or skipped at a kink)", _DIM)
        yield from console.render(MatrixHeatmap(d.rel_error, unsampled=True),
                                  options.update(height=room))
