"""Decision-boundary render time: grid classification + Rich render, at a terminal size.

Run: python benchmarks/bench_boundary.py [--repeat 50] [--size 120x40]

Each sample computes the boundary for the whole terminal (two pixels per cell:
120×40 → 9 600 grid points through the network's forward kernels, plus the
training points for the accuracy) and renders it with Rich to a Console of
that size (truecolor, output discarded).  The first call builds and caches
the forward model (the first frame in the app pays it too); the median and
p90 are over the calls after it.  The budget is 50 ms.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from rich.console import Console

from core.engine.stepper import Stepper
from core.inspect.boundary import decision_boundary, frame_params
from core.model.config import Config
from core.model.presets import preset_config
from tui_backprop.renderables.boundary import DecisionBoundary

BUDGET_MS = 50.0
CASES = (
    ("xor-3 (2-3-2)", lambda: preset_config("xor-3")),
    ("xor-50-explode (2-50-2)", lambda: preset_config("xor-50-explode")),
    ("spiral 2-50-50-3 relu ce", lambda: Config(hidden=(50, 50), activation="relu", loss="ce",
                                                dataset="spiral")),
    ("moons 2-64-64-64-2 float32", lambda: Config(hidden=(64, 64, 64), dataset="moons",
                                                  dtype="float32")),
)


def sample(stepper: Stepper, width: int, height: int, mono: bool) -> float:
    """Seconds for one boundary: compute for width × (height − 1) cells, then render."""
    m = stepper.machine
    console = Console(file=io.StringIO(), width=width, height=height, force_terminal=True,
                      color_system=None if mono else "truecolor")
    t0 = time.perf_counter()
    b = decision_boundary(m.cfg, frame_params(stepper.frame), m.X, m.labels, m.data.n_classes,
                          2 * (height - 1), width)
    console.print(DecisionBoundary(b, mono=mono), height=height)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--size", default="120x40")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"decision boundary at {width}×{height} ({width}×{2 * (height - 1)} pixels), "
          f"median of {args.repeat} (budget {BUDGET_MS:.0f} ms)")
    print(f"{'network':<28} {'mode':<6} {'first ms':>9} {'median ms':>10} {'p90 ms':>8}  ok")
    for name, make in CASES:
        stepper = Stepper(make())
        stepper.jump(10, 0)
        for mono in (False, True):
            first = sample(stepper, width, height, mono)
            times = sorted(sample(stepper, width, height, mono) for _ in range(args.repeat))
            med = statistics.median(times) * 1e3
            p90 = times[int(0.9 * (len(times) - 1))] * 1e3
            print(f"{name:<28} {'mono' if mono else 'colour':<6} {first * 1e3:9.1f} "
                  f"{med:10.1f} {p90:8.1f}  {'yes' if med <= BUDGET_MS else 'NO'}")


if __name__ == "__main__":
    main()
