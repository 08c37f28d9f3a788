"""KnobsScreen (`k`): change training knobs while paused, from the next iteration.

The fields start at the config the next iteration would run with.  Enter (in
any field) validates everything through `Config.replace`; a bad value keeps
the dialog open with a one-line reason and changes nothing.  The dialog says
where the change takes effect and what it rewrites before it is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.engine import knobs as kn
from core.model.choices import CLIP_KINDS, REG_KINDS, ConfigError
from core.model.config import Config
from tui_backprop.widgets.inputs import steady

LABELS = {
    "lr": "learning rate",
    "lr_decay": "lr decay (lr/(1+d·i))",
    "reg": "regularization λ",
    "reg_kind": f"reg kind ({'|'.join(REG_KINDS)})",
    "clip": "clip (0 = off)",
    "clip_kind": f"clip kind ({'|'.join(CLIP_KINDS)})",
    "batch_size": "batch size (0 = full)",
}
KEYS = "enter: apply · tab / shift+tab: next / previous field · esc: cancel"


def _text(value: Any) -> str:
    """Short text that reads back as the same value (so untouched fields stay unchanged)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


class KnobsScreen(ModalScreen[None]):
    """`apply(new_config)` changes the run and returns what to report, or raises."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, source: Any, apply: Callable[[Config], str]) -> None:
        super().__init__()
        self.source, self.apply = source, apply
        it = source.iteration
        self.start = it + 1
        self.current = source.config_at(self.start)

    def compose(self) -> ComposeResult:
        src, t = self.source, self.start
        here = "the init ops" if t == 0 else f"iteration {t - 1}"
        ahead = len(src.history) - t
        lines = [f"Apply from iteration {t}: {here} (under the cursor) finishes with the "
                 "current knobs."]
        if ahead > 0 or any(s > t for s, _ in src.knobs):
            lines.append(f"The {ahead:,} iterations already run after it are forgotten and "
                         "re-run with the new knobs; later knob changes are dropped.")
        lines.append("Decay counts from iteration 0: lr at i is lr / (1 + decay·i).")
        with Vertical(id="knobs"):
            yield Label("Knobs", id="knobs-title")
            yield Static("\n".join(lines), id="knobs-help")
            with Grid(id="knobs-grid"):
                for name in kn.KNOBS:
                    yield Label(LABELS[name])
                    yield steady(Input(_text(getattr(self.current, name)),
                                       id=f"knob-{name}", compact=True))
            yield Static("", id="knobs-message")
            yield Static(Text(KEYS, style="dim"), id="knobs-keys")

    def on_mount(self) -> None:
        self.query_one("#knob-lr", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        """Validate every field; apply and close, or show why not and change nothing."""
        texts = {name: self.query_one(f"#knob-{name}", Input).value for name in kn.KNOBS}
        try:
            new = kn.parse(self.current, texts)
        except ConfigError as exc:
            return self._error(str(exc))
        if not kn.changed(self.current, new):
            return self._error("nothing changed (esc to close)")
        try:
            self.apply(new)
        except (ConfigError, ValueError) as exc:
            return self._error(str(exc))
        self.dismiss(None)

    def _error(self, message: str) -> None:
        msg = self.query_one("#knobs-message", Static)
        msg.update(message)
        msg.add_class("-error")

    def action_cancel(self) -> None:
        self.dismiss(None)
