"""The Textual app: wiring of screens, app-wide keys and the command palette.

Behaviour lives in `screens/main.py`; this module only builds the app for a
live run (`run_app`) or for a replay source with the Stepper interface
(`run_replay`).  Mouse support is off unless asked for: the app is keyboard-only
so that it works over SSH and lets the terminal select and copy text.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import Screen
from textual.widgets import Static

from core.model.config import Config
from tui_backprop import colorless

# NumPy, the engine and the screens load after the first frame of a command-line launch
# (StartScreen): the first paint costs about what a bare Textual app's does.

_settled = False


def settle_heap() -> None:
    """Once per process, after the main screen is up: collect, then freeze what is left.

    Imports and the engine's set-up leave ~25k objects that the collector would walk
    again in later collections: the first of them after start-up took 0.5-0.7 ms,
    inside whichever step it interrupted (benchmarks/bench_fastpath.py, latency rows).
    Frozen, they are never walked again; objects made afterwards are collected as usual.
    """
    global _settled
    if not _settled:
        _settled = True
        gc.collect()
        gc.freeze()


class StartScreen(Screen):
    """The first frame of a launch: what is being built, while NumPy and the engine load."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.text)


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

    def __init__(self, source: Any, *, label: str, title: str | None = None,
                 build: Callable[[], tuple[Any, str]] | None = None) -> None:
        """`build` (instead of a source) returns (source, label) after the first frame."""
        super().__init__()
        if colorless.wanted():  # NO_COLOR / TERM=dumb: no colour escapes at all
            colorless.install(self)
        self.source = source
        self.label = label
        self.title = title or f"tui-backprop: {label}"
        self._build = build
        self.error: Exception | None = None  # what `build` raised, if it failed

    def on_mount(self) -> None:
        if self._build is None:
            self._show_main()
        else:
            self.push_screen(StartScreen(f"tui-backprop: building {self.label} …"))
            self.call_after_refresh(self._start)

    def _start(self) -> None:
        assert self._build is not None
        try:
            self.source, self.label = self._build()
        except Exception as exc:  # bad input (a dataset file...): run_app re-raises it
            self.error = exc
            self.exit(2)
            return
        self.title = f"tui-backprop: {self.label}"
        self._show_main()

    def _show_main(self) -> None:
        from tui_backprop.screens import MainScreen

        if isinstance(self.screen, StartScreen):
            self.switch_screen(MainScreen(self.source, self.label))
        else:
            self.push_screen(MainScreen(self.source, self.label))
        self.call_after_refresh(settle_heap)

    def action_help(self) -> None:
        from tui_backprop.screens import HelpScreen, MainScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(MainScreen.BINDINGS + self.BINDINGS, MainScreen.PALETTE))

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(SafeCommandPalette(id="--command-palette"))

    async def action_quit(self) -> None:
        """Quit now, whatever runs: the engine stops at its next chunk (~20-50 ms), so the
        worker thread the process waits for at exit ends at once (see Stepper.interrupt)."""
        from tui_backprop.screens import MainScreen

        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.action_pause()  # a running worker stops at its next block
                interrupt = getattr(screen.source, "interrupt", None)
                if interrupt is not None:
                    interrupt()
        self.workers.cancel_all()  # the save worker polls is_cancelled
        self.exit(0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        from tui_backprop.screens import MainScreen

        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            for title, help_text, action in MainScreen.PALETTE:
                yield SystemCommand(title, help_text, partial(screen.run_action, action))
        yield SystemCommand("Keys and glyphs", "?", self.action_help)


def live_label(cfg: Config, program: Any) -> str:
    net = "-".join(str(s) for s in program.sizes)
    return f"live {cfg.dataset} {net}"


def live_app(cfg: Config) -> BackpropApp:
    """The app over a fresh live Stepper of `cfg`."""
    from core.engine.stepper import Stepper

    stepper = Stepper(cfg)
    return BackpropApp(stepper, label=live_label(cfg, stepper.program))


def replay_app(source: Any, name: str | None = None) -> BackpropApp:
    """The same screens over a replay source (a saved trace behind the Stepper API)."""
    path = getattr(source, "path", None) or getattr(getattr(source, "trace", None), "path", None)
    name = name or Path(str(path or "trace")).name
    return BackpropApp(source, label=f"replay: {name}", title=f"replay: {name}")


def run_app(cfg: Config, mouse: bool = False) -> int:
    """Open the app on a live run of `cfg`; returns the exit status.

    The Stepper (and NumPy with it) is built after the first frame is painted, once
    the dataset is loaded and the run's memory footprint checked (options.checked_data).
    """
    def build() -> tuple[Any, str]:
        from core.engine.stepper import Stepper
        from tui_backprop.options import checked_data

        stepper = Stepper(cfg, checked_data(cfg))
        return stepper, live_label(cfg, stepper.program)

    app = BackpropApp(None, label=f"live {cfg.dataset}", build=build)
    app.run(mouse=mouse)
    if app.error is not None:
        raise app.error
    return app.return_code or 0


def run_replay(source: Any, mouse: bool = False) -> int:
    """Open the app over a replay source; returns the exit status."""
    app = replay_app(source)
    app.run(mouse=mouse)
    return app.return_code or 0
