"""`debug FILE.py`: tracing overhead per iteration, and key → frame when stepping lines.

Run:  python benchmarks/bench_debug.py [--presses 200] [--rounds 30]

On the shipped example (examples/mlp.py: 2-10-2, 300 rows, ~35 traced lines an
iteration), from the same parameters each round:
  - untraced: the user's loss, backward and default update called plainly;
  - fast path: UserMachine.run_fast(1) (the same calls plus metrics);
  - traced: UserMachine.materialize() (the same calls under the line tracer, every
    array-binding line copied into an op).
Rounds alternate, figures are medians; the ratio traced / untraced is the overhead.
Key → frame uses benchmarks/bench_tui.py's measurement (key event posted as the driver
does, clock stopped at the first painted frame) over a UserStepper at 80×24 and 120×40;
about one press in 35 crosses into a new iteration, which traces it (p95 shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_tui import row, step_latency  # noqa: E402
from core.user.loader import load  # noqa: E402
from core.user.session import resolve_data  # noqa: E402
from core.user.stepper import UserStepper  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlp.py"


def overhead(rounds: int) -> None:
    prog = load(str(EXAMPLE))
    X, y = resolve_data(prog, None, 0)
    s = UserStepper(prog, X, y, seed=0, lr=prog.lr, precheck=False)
    m = s.user
    start = m.snapshot()
    loss, backward = prog.fn("loss"), prog.fn("backward")
    plain, fast, traced = [], [], []
    for _ in range(rounds):
        p = {k: v.copy() for k, v in start.items()}
        t0 = time.perf_counter()
        for _ in range(20):
            loss(p, X, y)
            g = backward(p, X, y)
            for k in p:
                p[k] -= prog.lr * g[k]
        plain.append((time.perf_counter() - t0) / 20)
        m.restore(start, 0)
        t0 = time.perf_counter()
        m.run_fast(20)
        fast.append((time.perf_counter() - t0) / 20)
        spent = 0.0
        for _ in range(20):
            m.restore(start, 0)
            t0 = time.perf_counter()
            frame = m.materialize()
            spent += time.perf_counter() - t0
        traced.append(spent / 20)
    ratio = statistics.median(t / u for t, u in zip(traced, plain, strict=True))
    print("| untraced µs/it | fast path µs/it | traced µs/it | traced ops | traced / untraced |")
    print("|---|---|---|---|---|")
    print(f"| {statistics.median(plain) * 1e6:.0f} | {statistics.median(fast) * 1e6:.0f} | "
          f"{statistics.median(traced) * 1e6:.0f} | {len(frame.ops)} | {ratio:.1f}× |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    overhead(args.rounds)
    prog = load(str(EXAMPLE))
    X, y = resolve_data(prog, None, 0)
    print(f"\n{'case':<40} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}   target")
    for size in ((80, 24), (120, 40)):
        stepper = UserStepper(prog, X, y, seed=0, lr=prog.lr)
        lat, _ = asyncio.run(step_latency(stepper, args.presses, size))
        print(row(f"key→frame debug mlp.py {size[0]}×{size[1]}", lat, "p50 ≤ 30"))


if __name__ == "__main__":
    main()
