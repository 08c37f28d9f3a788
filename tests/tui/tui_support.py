"""Helpers for the TUI tests: a fixed colour environment and theme, small configs.

NO_COLOR is cleared and a truecolor terminal is declared before any app is built
(Textual reads the environment when an App is created), so snapshots and
assertions do not depend on the terminal pytest runs in.
"""

from __future__ import annotations

import os

os.environ.pop("NO_COLOR", None)
os.environ["COLORTERM"] = "truecolor"
os.environ["TERM"] = "xterm-256color"

from core.engine.stepper import Stepper  # noqa: E402
from core.model.config import Config  # noqa: E402
from tui_backprop.app import BackpropApp, live_app, replay_app  # noqa: E402

THEME = "textual-dark"
NAN_CONFIG = Config(hidden=(3,), activation="relu", loss="ce", lr=1e8)  # NaN early, made by z2


def explode_config() -> Config:
    """The preset that explodes; a large-lr stand-in until core/model/presets.py has it."""
    try:
        from core.model.presets import preset_config

        return preset_config("xor-50-explode")
    except (ImportError, KeyError):
        return Config(hidden=(50,), lr=50.0)


def make_app(cfg: Config | None = None) -> BackpropApp:
    app = live_app(cfg or Config())
    app.theme = THEME
    return app


class StandInReplay(Stepper):
    """A live Stepper posing as a replay source (same interface, a trace path)."""

    path = "/tmp/runs/demo.trace"


def make_replay() -> BackpropApp:
    app = replay_app(StandInReplay(Config()))
    app.theme = THEME
    return app


def screen_text(app: BackpropApp) -> str:
    """What the terminal shows right now, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
