"""HelpScreen (`?`): every key, what the glyphs mean, and how the layout adapts."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui_backprop.view import FLAG_GLYPH, FLAG_LABEL

GLYPHS = [
    ("+0.532 / -0.532", "every value carries its sign; 0 is shown as a bare 0"),
    ("░ ▒ ▓ █", "magnitude relative to the matrix's largest |value| (the heatmap, in glyphs)"),
    ("✗ NaN  ▲ +Inf  ▼ -Inf", "non-finite cells, in reverse video; counts lead the header"),
    ("· not computed yet ·", "the op producing this value comes after the cursor"),
    ("… N more rows ↓", "the matrix is larger than its box: focus it (tab) and scroll"),
    ("▸+0.520◂", "the drill-down cell cursor (enter); its computation shows below the panels"),
    ("▶ dL/dW1 ← • X", "diagram (w): the op's output ▶ and its inputs •"),
    ("3▶  ▼1  ▸v◂", "the row / column / cell of an input that the output's cursor cell reads"),
    ("↶", "overview: the value is the previous iteration's (not computed yet in this one)"),
    ("⣿ x +", "chart: the first series is the line, the others are marked x, +, … (legend)"),
    ("↑ ^ ◆ ┆", "chart: events and knob changes as vertical markers, the flag's glyph on top"),
]
FLAGS = {
    "diverged": "a replay re-executed differently from its recording",
    "nan": "first NaN/Inf, named by the op that produced it",
    "fp": "floating-point warning (overflow, invalid, divide) with a hint",
    "explode": "gradient norm above its limit or k× its running median",
    "vanish": "gradient norm below its floor",
    "spike": "loss above 1.5× its recent minimum (spike_factor in [detect])",
    "rising": "loss rose n iterations in a row",
    "saturated": "most hidden units saturated (σ, tanh) or dead (relu)",
    "break": "the breakpoint (x) continue stopped at, and why",
    "knob": "knobs (k) changed from this iteration on, old → new",
    "gradcheck": "debug FILE.py: a gradient your backward() returns fails the check",
}
KEYS_EXTRA = [
    ("tab / shift+tab", "focus the next / previous matrix panel"),
    ("enter, then ← → ↑ ↓ [ ]", "cell cursor on the focused panel: move it; enter/esc leave"),
    ("↑ ↓ pgup pgdn home end", "scroll the focused panel's rows"),
    ("[ ]", "scroll the focused panel's columns"),
    ("ctrl+p", "command palette (every action by name)"),
]


def _key(b: Binding) -> str:
    names = {"right": "→", "left": "←", "question_mark": "?", "space": "space",
             "escape": "esc"}
    return " / ".join(names.get(k, k) for k in b.key.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,enter", "dismiss_help", "close")]

    def __init__(self, bindings: list[BindingType], palette: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.bindings_shown = [b for b in bindings if isinstance(b, Binding)]
        self.titles = {action: title for title, _, action in palette}
        self.titles.update(help="Keys and glyphs (this screen)", quit="Quit")

    def compose(self) -> ComposeResult:
        keys = Table(title="keys", title_justify="left", box=None, padding=(0, 2, 0, 0))
        keys.add_column(style="bold")
        keys.add_column()
        for b in self.bindings_shown:
            keys.add_row(_key(b), self.titles.get(b.action, b.description))
        for k, d in KEYS_EXTRA:
            keys.add_row(k, d)
        glyphs = Table(title="glyphs", title_justify="left", box=None, padding=(0, 2, 0, 0))
        glyphs.add_column(style="bold")
        glyphs.add_column()
        for g, d in GLYPHS:
            glyphs.add_row(g, d)
        flags = Table(title="flags: 'it 12 · dL/dW1' = iteration and op where it first "
                      "appeared; 'here' = in the iteration under the cursor",
                      title_justify="left", box=None, padding=(0, 2, 0, 0))
        flags.add_column(style="bold")
        flags.add_column()
        for kind, glyph in FLAG_GLYPH.items():
            flags.add_row(f"{glyph} {FLAG_LABEL[kind]}", FLAGS.get(kind, ""))
        notes = Text(
            "Mouse is off (keyboard-only, safe over SSH, terminal text selection works); "
            "start with --mouse to enable it. NO_COLOR=1 and 16-colour terminals keep "
            "every sign and flag as glyphs.\n"
            "Layout: the panels show every factor of the current op in formula order "
            "(h1ᵀ · dL/dz2 = dL/dW2; v rotates the inputs when they outnumber the panels); "
            "below them one line per headline matrix (z, h, dL/dW of each layer: in = the op "
            "reads it, out = writes it, ↶ = the previous iteration's value); mini heatmaps "
            "from 32 rows and 100 columns. The chart appears once there are 2 iterations; l "
            "hides it, t switches loss → accuracy → gradient norms (log). e follows one row of "
            "the batch through the network.\n"
            "escape, q, ? or enter closes this help.", style="dim")
        with VerticalScroll(id="help"):
            yield Static(keys)
            yield Static(notes)
            yield Static(glyphs)
            yield Static(flags)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
