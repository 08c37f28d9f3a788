"""TUI test fixtures; the colour environment is fixed on import of tui_support."""

from __future__ import annotations

import pytest
from tui_support import BackpropApp, make_app


@pytest.fixture
def app() -> BackpropApp:
    return make_app()
