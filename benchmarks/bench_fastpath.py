"""Fast path vs the tight NumPy reference, and op-step latency.

Run:  python benchmarks/bench_fastpath.py [--quick]

The machine is shared and noisy, so the two loops are timed in alternating
rounds within one process and the ratio is the median of per-round ratios
(the reference's absolute time is printed alongside).  The fast path runs with
everything on: loss, accuracy, per-layer gradient and weight norms, the finite
check and sampled saturation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reference import make_tight_loop  # noqa: E402
from core.config import Config  # noqa: E402
from core.datasets import Dataset  # noqa: E402
from core.machine import Machine  # noqa: E402
from core.stepper import Stepper  # noqa: E402


def random_dataset(n: int, d: int, k: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset("random", rng.standard_normal((n, d)), rng.integers(0, k, n), k)


def compare(cfg: Config, data: Dataset | None, iters: int, rounds: int) -> dict[str, float]:
    """Median per-round ratio fast/reference, from identical starting weights."""
    m = Machine(cfg, data)
    m.init()
    weights = [m.buf[p].copy() for p in m.program.params]
    ref = make_tight_loop(m.X, m.Y, weights, cfg.lr, cfg.reg)
    ref(2)
    m.run_fast(2)
    ratios, t_ref, t_fast = [], [], []
    for r in range(rounds):
        pair = []
        for name in (("ref", "fast") if r % 2 == 0 else ("fast", "ref")):
            t0 = time.perf_counter()
            ref(iters) if name == "ref" else m.run_fast(iters)
            pair.append((name, (time.perf_counter() - t0) / iters * 1e6))
        d = dict(pair)
        t_ref.append(d["ref"])
        t_fast.append(d["fast"])
        ratios.append(d["fast"] / d["ref"])
    return {"ref_us": float(np.median(t_ref)), "fast_us": float(np.median(t_fast)),
            "ratio": float(np.median(ratios)), "ratio_min": min(t_fast) / min(t_ref)}


def step_latency(cfg: Config, moves: int) -> dict[str, float]:
    """Per-call time of step() and back() over a walk that crosses many iterations."""
    s = Stepper(cfg)
    s.jump(200, 0)
    out = {}
    for name in ("step", "back"):
        fn = getattr(s, name)
        ts = []
        for _ in range(moves):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        out[name] = (float(np.median(ts)), float(np.percentile(ts, 95)), float(max(ts)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = ap.parse_args()
    seed = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)  # the scratch-mlp preset
    big = Config(hidden=(512,), lr=1e-3, reg=1e-4, dataset="random")
    rows = [("2-10-2, N=50 (seed)", compare(seed, None, 500 if args.quick else 2000,
                                             6 if args.quick else 30))]
    rows.append(("784-512-10, N=512", compare(big, random_dataset(512, 784, 10),
                                                3 if args.quick else 10,
                                                4 if args.quick else 12)))
    print("| config | tight NumPy µs/it | fast path µs/it | ratio (median of rounds) "
          "| ratio (best/best) |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['ref_us']:.1f} | {r['fast_us']:.1f} | {r['ratio']:.2f}× "
              f"| {r['ratio_min']:.2f}× |")
    lat = step_latency(seed, 300 if args.quick else 3000)
    print()
    print("| seed config | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for name, (p50, p95, mx) in lat.items():
        print(f"| op {name} | {p50:.3f} | {p95:.3f} | {mx:.2f} |")


if __name__ == "__main__":
    main()
