"""The Textual app: wiring of screens, app-wide keys and the command palette.

Behaviour lives in `screens/main.py`; this module only builds the app for a
live run (`run_app`) or for a replay source with the Stepper interface
(`run_replay`).  Mouse support is off unless asked for: the app is keyboard-only
so that it works over SSH and lets the terminal select and copy text.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import Screen

from core.config import Config
from core.datasets import Dataset
from tui_backprop.screens import HelpScreen, MainScreen


class SafeCommandPalette(CommandPalette):
    """Textual's palette, minus one crash: pgup/pgdn in the same burst as ctrl+p reach
    OptionList._move_page before the list has lines, which raises KeyError (Textual 8.2.8)."""

    def _action_command_list(self, action: str) -> None:
        try:
            super()._action_command_list(action)
        except KeyError:  # nothing laid out yet: there is no page to move by
            pass


class BackpropApp(App[int]):
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source: Any, *, label: str, title: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.label = label
        self.title = title or f"tui-backprop: {label}"

    def on_mount(self) -> None:
        self.push_screen(MainScreen(self.source, self.label))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(MainScreen.BINDINGS + self.BINDINGS, MainScreen.PALETTE))

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(SafeCommandPalette(id="--command-palette"))

    async def action_quit(self) -> None:
        """Quit now, whatever runs: the engine stops at its next chunk (~20-50 ms), so the
        worker thread the process waits for at exit ends at once (see Stepper.interrupt)."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.action_pause()  # a running worker stops at its next block
                interrupt = getattr(screen.source, "interrupt", None)
                if interrupt is not None:
                    interrupt()
        self.workers.cancel_all()  # the save worker polls is_cancelled
        self.exit(0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            for title, help_text, action in MainScreen.PALETTE:
                yield SystemCommand(title, help_text, partial(screen.run_action, action))
        yield SystemCommand("Keys and glyphs", "?", self.action_help)


def live_label(cfg: Config, program: Any) -> str:
    net = "-".join(str(s) for s in program.sizes)
    return f"live {cfg.dataset} {net}"


def live_app(cfg: Config, data: Dataset | None = None) -> BackpropApp:
    """The app over a fresh live Stepper of `cfg` (on `data` when already loaded)."""
    from core.stepper import Stepper

    stepper = Stepper(cfg, data)
    return BackpropApp(stepper, label=live_label(cfg, stepper.program))


def replay_app(source: Any, name: str | None = None) -> BackpropApp:
    """The same screens over a replay source (a saved trace behind the Stepper API)."""
    path = getattr(source, "path", None) or getattr(getattr(source, "trace", None), "path", None)
    name = name or Path(str(path or "trace")).name
    return BackpropApp(source, label=f"replay: {name}", title=f"replay: {name}")


def run_app(cfg: Config, mouse: bool = False, data: Dataset | None = None) -> int:
    """Open the app on a live run of `cfg`; returns the exit status."""
    app = live_app(cfg, data)
    app.run(mouse=mouse)
    return app.return_code or 0


def run_replay(source: Any, mouse: bool = False) -> int:
    """Open the app over a replay source; returns the exit status."""
    app = replay_app(source)
    app.run(mouse=mouse)
    return app.return_code or 0
