"""Continue with breakpoints that never fire vs. continue with none.

Run:  python benchmarks/bench_breakpoints.py [--quick]

At the seed config (preset scratch-mlp) a fresh Stepper runs `run_until` over the
same iterations twice per round: once with no stop at all (what a bare continue
costs when no flag fires) and once with six breakpoints of different kinds that
never fire there.  The machine is shared and noisy, so the two are timed in
alternating rounds within one process and the ratio is the median of per-round
ratios.  Target: <= 1.10 (breakpoint checks cost under 10% of a continue).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.engine.stepper import Stepper  # noqa: E402
from core.inspect.breakpoints import BreakpointList  # noqa: E402
from core.model.presets import preset_config  # noqa: E402

BREAKPOINTS = ("nan", "grad > 1e6", "grad1 > 1000x median", "loss > 100", "loss rising 500",
               "event explode")
TARGET = 1.10


def timed(iters: int, with_breakpoints: bool, inside: list[float]) -> float:
    """Seconds for one continue over `iters` iterations from a fresh run.

    Time spent inside the breakpoint rule itself is added to `inside`: a direct
    measure of the checks, immune to the noise of the ~1 s around them.
    """
    s = Stepper(preset_config("scratch-mlp"))
    rule = None
    if with_breakpoints:
        bl = BreakpointList()
        for text in BREAKPOINTS:
            bl.add(text, s)
        checks = bl.rule(s)

        def rule(events, start, stop):
            t = time.perf_counter()
            try:
                return checks(events, start, stop)
            finally:
                inside.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    hit = s.run_until(lambda events: None, max_iters=iters, rule=rule)
    elapsed = time.perf_counter() - t0
    assert hit is None and len(s.history) == iters, "a breakpoint fired: the bench is void"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = ap.parse_args()
    iters, rounds = (5_000, 5) if args.quick else (20_000, 9)
    timed(1_000, True, [])  # warm up imports, BLAS, allocators
    none, some, ratios, inside = [], [], [], []
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        t = {flag: timed(iters, flag, inside) for flag in order}
        none.append(t[False])
        some.append(t[True])
        ratios.append(t[True] / t[False])
    ratio = float(np.median(ratios))
    print(f"preset scratch-mlp, {iters:,} iterations per continue, {rounds} alternating rounds")
    print(f"breakpoints: {', '.join(BREAKPOINTS)}\n")
    print("| continue with | median time | µs / iteration | it/s |")
    print("|---|---:|---:|---:|")
    for name, ts in (("no breakpoints", none), (f"{len(BREAKPOINTS)} breakpoints", some)):
        med = float(np.median(ts))
        print(f"| {name} | {med:.3f} s | {med / iters * 1e6:.1f} | {iters / med:,.0f} |")
    per_call = float(np.median(inside))
    share = sum(inside) / sum(some)
    print(f"\ninside the checks: {per_call * 1e6:.0f} µs per call (one call per 256-iteration "
          f"block), {share:.1%} of the continue's time")
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"\nmedian ratio (breakpoints / none): **{ratio:.3f}** "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= {TARGET}) {verdict}")


if __name__ == "__main__":
    main()
