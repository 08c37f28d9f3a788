"""BreakpointsScreen (`x`): add, list, enable/disable and remove breakpoints.

It edits the session's `BreakpointList` in place; an expression that does not
parse (or names a layer, op or iteration that does not exist) leaves the list
untouched and shows the reason under the field, so nothing half-applied ever
reaches `continue`.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from core.inspect.breakpoints import EVENT_NAMES, BreakpointError, BreakpointList
from tui_backprop.widgets.inputs import steady

HELP = ("c stops at the first enabled breakpoint to fire, on its op, and says why. "
        "With none enabled, c stops on any detector flag.")
KEYS = "enter: add · tab: list · space: on/off · d/del: remove · esc: close"
GRAMMAR = [  # two examples per row, each with what it means
    ("nan", "NaN/Inf appears", "it 500", "at iteration 500"),
    ("grad > 5", "any ‖∇W‖ above 5", "op dL/dW1", "each time at that op"),
    ("grad2 > 10x median", "layer 2, vs median", "event explode", "a detector flag"),
    ("loss rising 5", "5 rises in a row", "loss > 0.5", "loss above 0.5"),
]


def grammar() -> Table:
    """The expression language in four lines: examples beside their meaning."""
    table = Table.grid(padding=(0, 1))
    for style in ("bold", "dim", "bold", "dim"):
        table.add_column(style=style, no_wrap=True)
    for row in GRAMMAR:
        table.add_row(*row)
    return table


def event_names() -> Text:
    others = ", ".join(k for k in EVENT_NAMES if k != "explode")
    return Text(f"events: explode or {others}", style="dim")


class BreakpointsScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("space", "toggle", "on/off", show=False),
        Binding("d,delete", "remove", "remove", show=False),
    ]

    def __init__(self, breakpoints: BreakpointList, source: Any) -> None:
        super().__init__()
        self.breakpoints, self.source = breakpoints, source

    def compose(self) -> ComposeResult:
        with Vertical(id="breakpoints"):
            yield Label("Breakpoints", id="bp-title")
            yield Static(HELP, id="bp-help")
            yield steady(Input(placeholder="e.g. grad2 > 10x median", id="bp-input", compact=True))
            yield Static("", id="bp-message")
            yield OptionList(id="bp-list", compact=True)
            yield Static(grammar(), id="bp-examples")
            yield Static(event_names(), id="bp-events")
            yield Static(Text(KEYS, style="dim"), id="bp-keys")

    def on_mount(self) -> None:
        self._fill()
        self.query_one("#bp-input", Input).focus()

    # ------------------------------------------------------------------ showing
    def _fill(self, highlight: int | None = None) -> None:
        options = self.query_one("#bp-list", OptionList)
        options.clear_options()
        items = self.breakpoints.items
        if not items:
            options.add_option(Option(Text("no breakpoints yet", style="dim"), disabled=True))
            return
        for i, bp in enumerate(items):
            mark = "●" if bp.enabled else "○"
            state = "" if bp.enabled else "  (off)"
            options.add_option(Option(f"{i + 1:>2} {mark} {bp.text}{state}"))
        if highlight is not None:
            options.highlighted = max(0, min(highlight, len(items) - 1))

    def _message(self, text: str, error: bool = False) -> None:
        msg = self.query_one("#bp-message", Static)
        msg.update(text)
        msg.set_class(error, "-error")

    # ------------------------------------------------------------------ editing
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            bp = self.breakpoints.add(event.value, self.source)
        except BreakpointError as exc:  # the box is cleared; the message quotes the text
            event.input.value = ""
            self._message(f"rejected {event.value!r}: {exc}", error=True)
            return
        event.input.value = ""
        self._message(f"added {bp.text}")
        self._fill(len(self.breakpoints.items) - 1)

    def _selected(self) -> int | None:
        options = self.query_one("#bp-list", OptionList)
        i = options.highlighted
        if not options.has_focus or i is None or i >= len(self.breakpoints.items):
            return None
        return i

    def action_toggle(self) -> None:
        i = self._selected()
        if i is not None:
            self.breakpoints.toggle(i)
            bp = self.breakpoints.items[i]
            self._message(f"{bp.text} {'on' if bp.enabled else 'off'}")
            self._fill(i)

    def action_remove(self) -> None:
        i = self._selected()
        if i is not None:
            text = self.breakpoints.items[i].text
            self.breakpoints.remove(i)
            self._message(f"removed {text}")
            self._fill(i)
            if not self.breakpoints.items:
                self.query_one("#bp-input", Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)
