"""Snapshot tests: the screens at 80×24 and 120×40 with a fixed theme and seed.

Regenerate with `pytest tests/tui/test_snapshots.py --snapshot-update` after
reading the SVGs' text.
"""

from __future__ import annotations

from tui_support import NAN_CONFIG, make_app


async def _wait_workers(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_80x24_forward_pass(snap_compare) -> None:
    """Compact layout at h1 of iteration 0: z1 = h1's factor beside it, the six overview
    lines (four not computed yet), no chart before 2 iterations."""
    assert snap_compare(make_app(), press=["n"] * 3, terminal_size=(80, 24))


def test_80x24_after_a_few_iterations(snap_compare) -> None:
    """Compact layout in the backward phase of iteration 3: factors, overview with ↶ marks,
    and the 8-row loss chart."""
    assert snap_compare(make_app(), press=["i"] * 4 + ["p", "p"], terminal_size=(80, 24))


def test_120x40_backward_pass(snap_compare) -> None:
    """Wide layout at dL/dW2: h1ᵀ · dL/dz2 = dL/dW2 side by side, overview with mini heatmaps
    (dL/dW1 from the previous iteration, marked ↶)."""
    assert snap_compare(make_app(), press=["i", "i", "p", "p", "n", "n", "n"],
                        terminal_size=(120, 40))


def test_120x40_nan_origin(snap_compare) -> None:
    """Jump to the iteration whose z2 overflows: marked cells and the NaN/Inf flags."""
    async def run_before(pilot) -> None:
        await pilot.press("g", "2", "1", "enter")
        await _wait_workers(pilot)
        await pilot.press("n", "n")

    assert snap_compare(make_app(NAN_CONFIG), run_before=run_before, terminal_size=(120, 40))


def test_too_small_notice(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=(50, 14))


def test_help_screen(snap_compare) -> None:
    assert snap_compare(make_app(), press=["question_mark"], terminal_size=(80, 24))
