"""SaveScreen (`s`): ask where to save the live session as a trace.

It only picks and checks a path; the recording itself (config, knob schedule,
every iteration run so far, re-executed headless by the Recorder) runs in a
worker of the main screen.  An existing file is never replaced silently: the
first enter says so, a second enter on the same path confirms.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui_backprop.widgets.inputs import steady

KEYS = "enter: save · esc: cancel"


class SaveScreen(ModalScreen[tuple[Path, bool] | None]):
    """Dismisses with (path, overwrite) or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, what: str, suggestion: str) -> None:
        super().__init__()
        self.what, self.suggestion = what, suggestion
        self._confirm: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="save"):
            yield Label("Save this session as a trace", id="save-title")
            yield Static(self.what, id="save-help")
            yield steady(Input(self.suggestion, id="save-input", compact=True))
            yield Static("", id="save-message")
            yield Static(Text(KEYS, style="dim"), id="save-keys")

    def on_mount(self) -> None:
        self.query_one("#save-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit(event.value)

    def submit(self, text: str) -> None:
        """Dismiss with a writable path, or stay open and say why not."""
        text = text.strip()
        if not text:
            return self._error("type a file name, e.g. run.trace")
        path = Path(text).expanduser()
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            return self._error(f"{path} is a directory")
        if not parent.is_dir():
            return self._error(f"no folder {parent}")
        if not os.access(parent, os.W_OK):
            return self._error(f"cannot write in {parent}")
        if path.exists() and self._confirm != path:
            self._confirm = path
            return self._error(f"{path} exists: enter again to overwrite it, esc to cancel")
        self.dismiss((path, path.exists()))

    def _error(self, message: str) -> None:
        msg = self.query_one("#save-message", Static)
        msg.update(message)
        msg.add_class("-error")

    def action_cancel(self) -> None:
        self.dismiss(None)
