"""PromptScreen: a one-field modal asking for an integer (run N, jump to iteration).

It dismisses with the number, or None on escape; a bad entry keeps the modal
open with a one-line reason, so the main screen only ever gets valid input.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui_backprop.widgets.inputs import steady

MAX_VALUE = 100_000_000


class PromptScreen(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, hint: str, minimum: int = 0) -> None:
        super().__init__()
        self.title_text, self.hint, self.minimum = title, hint, minimum
        self._typed = ""
        self._submit_pending = False

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.title_text, id="prompt-title")
            yield steady(Input(placeholder=self.hint, type="integer", id="prompt-input"))
            yield Static("enter: ok · escape: cancel", id="prompt-error")

    def feed(self, key: str, character: str | None) -> None:
        """Type-ahead from the main screen: keys that arrived before this modal was up."""
        if key == "enter":
            self._submit_pending = True
        elif key == "backspace":
            self._typed = self._typed[:-1]
        elif character:
            self._typed += character

    def on_mount(self) -> None:
        field = self.query_one("#prompt-input", Input)
        if self._typed:
            field.value = self._typed
            field.cursor_position = len(self._typed)
        if self._submit_pending:
            self.submit(self._typed)

    def on_key(self, event: Key) -> None:
        """Keys that reach the screen before the input has focus are typed into it."""
        field = self.query_one("#prompt-input", Input)
        if field.has_focus or not (event.key in ("enter", "backspace") or event.is_printable):
            return
        event.stop()
        event.prevent_default()
        field.focus()
        if event.key == "enter":
            self.submit(field.value)
        elif event.key == "backspace":
            field.value = field.value[:-1]
        else:
            field.value += event.character or ""
        field.cursor_position = len(field.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit(event.value)

    def submit(self, text: str) -> None:
        """Dismiss with the number, or stay open with the reason it is not one."""
        text = text.strip()
        try:
            value = int(text)
        except ValueError:
            self._error(f"{text!r} is not a whole number" if text else "type a number")
            return
        if value < self.minimum:
            self._error(f"must be ≥ {self.minimum}")
        elif value > MAX_VALUE:
            self._error(f"must be ≤ {MAX_VALUE:,}")
        else:
            self.dismiss(value)

    def _error(self, message: str) -> None:
        err = self.query_one("#prompt-error", Static)
        err.update(message)
        err.add_class("-error")

    def action_cancel(self) -> None:
        self.dismiss(None)
