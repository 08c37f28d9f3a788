"""Text inputs that do not blink: a blinking cursor repaints twice a second, which over
SSH is a steady ~1.3 KB/s for nothing."""

from __future__ import annotations

from textual.widgets import Input


def steady(box: Input) -> Input:
    box.cursor_blink = False
    return box
