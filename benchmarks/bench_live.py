"""What live refresh during c / r costs the run: worker-side work at ~10 Hz vs none.

During `continue` / `run N` the worker thread polls `should_stop` between blocks;
every 0.1 s (and never more often than 20× its own cost) it builds what the screen
shows from metrics already computed — chart series, flags, newest ‖dL/dWₗ‖ — and
hands it to the UI thread.  This script runs the same iterations with and without
that work, in alternating rounds, and prints the median time ratio.  Target: ≤ 1.05.
Run: `python benchmarks/bench_live.py`.  (The UI thread's painting of those frames
is not included: it is the same ≤ 10 frames a second as before this refresh.)
"""

from __future__ import annotations

import statistics
import time

from core.engine.stepper import Stepper
from core.model.presets import preset_config
from tui_backprop.screens.main import MainScreen

ITERS = 30_000
ROUNDS = 9


def run(live: bool) -> tuple[float, float]:
    """(wall time of the run, time spent building the live view inside it)."""
    s = Stepper(preset_config("xor-3"))
    last, gap, spent = [0.0], [0.1], [0.0]

    def should_stop() -> bool:
        now = time.perf_counter()
        if now - last[0] >= gap[0]:
            last[0] = now
            MainScreen.live_view(None, s, "loss", 70)  # type: ignore[arg-type]
            cost = time.perf_counter() - now
            spent[0] += cost
            gap[0] = max(0.1, 20 * cost)
        return False

    t0 = time.perf_counter()
    s.run_until(lambda ev: None, max_iters=ITERS, should_stop=should_stop if live else None)
    return time.perf_counter() - t0, spent[0]


def main() -> None:
    plain, live, shares = [], [], []
    for _ in range(ROUNDS):
        plain.append(run(False)[0])
        wall, spent = run(True)
        live.append(wall)
        shares.append(spent / wall)
    ratios = [b / a for a, b in zip(plain, live, strict=True)]
    print(f"xor-3, {ITERS} iterations per run, {ROUNDS} alternating rounds")
    print(f"no refresh  median {statistics.median(plain) * 1e3:.0f} ms")
    print(f"10 Hz live  median {statistics.median(live) * 1e3:.0f} ms")
    print(f"ratio       median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})  target ≤ 1.05")
    print(f"refresh work as a share of the live run's time: median "
          f"{statistics.median(shares):.2%} (max {max(shares):.2%})")


if __name__ == "__main__":
    main()
