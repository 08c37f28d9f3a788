"""Live `export --iteration I`: train to I on the fast path, visibly and interruptibly.

A live export of iteration 10**12 used to run for days in silence.  Here the run
goes through the Machine in chunks of about 0.1 s (memory stays flat: metrics of
one chunk at a time, no history), with a rich progress bar (iterations, it/s,
ETA) on stderr when it is a terminal and I is beyond PROGRESS_FROM.  Ctrl-C
raises KeyboardInterrupt between two iterations (the loop is Python), which
`cli.main` turns into exit 130 with nothing written.

The frame is bit-identical to `Stepper.jump(I, 0)`: the same kernels from the
same initial state, and chunk boundaries do not change any value.
"""

from __future__ import annotations

import time

from core.engine.machine import Frame, Machine
from core.model.config import Config
from core.model.datasets import Dataset

PROGRESS_FROM = 100_000  # iterations of live training before a bar is worth showing
MAX_CHUNK = 1 << 16  # iterations per fast-path call (its metrics block is this long)


def run_to(cfg: Config, data: Dataset | None, iteration: int, *,
           show: bool | None = None) -> tuple[Frame, int]:
    """The frame of `iteration` (op by op) after fast-running the ones before it."""
    m = Machine(cfg, data)
    m.init()
    if show is None:
        show = iteration >= PROGRESS_FROM and _stderr_is_terminal()
    if show:
        _run_with_bar(m, iteration)
    else:
        _run(m, iteration, None)
    return m.materialize(), m.program.depth


def _run(m: Machine, target: int, tick: object) -> None:
    chunk = 16
    while m.pos < target:
        t0 = time.perf_counter()
        n = min(chunk, target - m.pos)
        m.run_fast(n)
        dt = time.perf_counter() - t0
        chunk = max(1, min(MAX_CHUNK, int(n * 0.1 / max(dt, 1e-6))))
        if tick is not None:
            tick(m.pos)  # type: ignore[operator]


def _stderr_is_terminal() -> bool:
    from rich.console import Console

    return Console(stderr=True).is_terminal


def _run_with_bar(m: Machine, target: int) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    cols = (TextColumn(f"training to iteration {target:,}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} it/s"), TimeRemainingColumn(),
            TextColumn("Ctrl-C stops"))
    t0 = time.monotonic()
    with Progress(*cols, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("export", total=target, rate="-")

        def tick(pos: int) -> None:
            dt = time.monotonic() - t0
            bar.update(task, completed=pos, rate=f"{pos / dt:,.0f}" if dt > 0 else "-")

        _run(m, target, tick)
