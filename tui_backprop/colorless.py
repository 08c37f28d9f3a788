"""NO_COLOR done fully: a line filter that drops every colour and keeps the attributes.

Textual's own NO_COLOR filter paints in greys (Monochrome) or default colours, so
the terminal still receives colour escapes; under NO_COLOR (and TERM=dumb) the app
replaces it with this one, which writes bold, dim, reverse and underline only.
"""

from __future__ import annotations

import os

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter, Monochrome, NoColor


class Colorless(LineFilter):
    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(text, None if style is None else style.without_color, control)
                for text, style, control in segments]


def wanted() -> bool:
    """Whether the environment asks for no colour at all."""
    return os.environ.get("NO_COLOR") is not None or os.environ.get("TERM") == "dumb"


def install(app: object) -> None:
    """Swap Textual's grey/default-colour filters for `Colorless` on an App."""
    filters = getattr(app, "_filters", None)
    if filters is None:
        return
    filters[:] = [f for f in filters if not isinstance(f, (Monochrome, NoColor))]
    filters.append(Colorless())
