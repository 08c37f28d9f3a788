"""Screens: the main debugger view, the help screen and the number prompt."""

from tui_backprop.screens.help import HelpScreen
from tui_backprop.screens.main import MainScreen
from tui_backprop.screens.prompt import PromptScreen

__all__ = ["HelpScreen", "MainScreen", "PromptScreen"]
