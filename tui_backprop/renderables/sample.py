"""SampleCard: one row of the batch through the network, and its share of each dL/dW.

Pure Rich over `sample.SampleData`: the forward vectors (x, z1, h1, …, y), the
backward rows dL/dz, then for each layer the row's outer product beside the
batch total, both in the heatmap's 6-character number format so a NO_COLOR
terminal reads them the same.  Long vectors show their first entries and a
count of the rest.
"""

from __future__ import annotations

import math

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from tui_backprop.renderables.matrix import common_exponent, fmt_value, shape_text
from tui_backprop.sample import SampleData

_BOLD = Style(bold=True)
_DIM = Style(dim=True)


def vector(values, room: int) -> str:
    """As many 6-character entries as fit in `room`, then "… +k"; tiny or huge vectors
    in units of a common power of ten, like the heatmaps ("×1e-4 [-4.012 +3.998]")."""
    if values is None:
        return "· not computed yet ·"
    vals = [float(v) for v in values.reshape(-1)]
    finite = [abs(v) for v in vals if math.isfinite(v)]
    exp = common_exponent(max(finite)) if finite else 0
    unit = f"×1e{exp} " if exp else ""
    scale = 10.0 ** -exp
    fit = max(1, (room - 4 - len(unit) - 9) // 7)
    body = " ".join(fmt_value(v * scale) for v in vals[:fit])
    more = f" … +{len(vals) - fit}" if len(vals) > fit else ""
    return f"{unit}[{body}{more}]"


class SampleCard:
    def __init__(self, data: SampleData) -> None:
        self.d = data

    def lines(self, width: int, height: int) -> list[Text]:
        d = self.d
        out = [Text(f"row n = {d.n} of {d.rows_in_batch} in the batch of it {d.iteration}"
                    f" · class {d.label} · e: another row, esc: back", _BOLD,
                    no_wrap=True, overflow="ellipsis")]
        for row in d.forward + d.backward:
            t = Text(no_wrap=True, overflow="crop")
            t.append(f"{row.name + '[n]':<10}", _BOLD)
            t.append(vector(row.values, width - 10), None if row.values is not None else _DIM)
            out.append(t)
        half = max(20, (width - 3) // 2)
        for c in d.contributions:
            if len(out) >= height:
                break
            head = Text(no_wrap=True, overflow="crop")
            own = f"h{c.layer - 1}[n]ᵀ·dL/dz{c.layer}[n]" if c.layer > 1 else "x[n]ᵀ·dL/dz1[n]"
            shape = shape_text(c.own.shape) if c.own is not None else ""
            head.append(f"{own} {shape}".ljust(half), _BOLD)
            head.append(f" │ dL/dW{c.layer} (batch)", _BOLD)
            out.append(head)
            rows = 0 if c.own is None else c.own.shape[0]
            for r in range(min(rows, 3)):
                t = Text(no_wrap=True, overflow="crop")
                t.append(vector(c.own[r], half).ljust(half))
                t.append(" │ ")
                t.append(vector(None if c.total is None else c.total[r], half))
                out.append(t)
            if c.own is None:
                out.append(Text("· not computed yet ·", _DIM))
        return out[:height]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width, options.height or 20)
