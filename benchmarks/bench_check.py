"""`check FILE.py` cost, as a ratio to one call of the user's own `loss`.

Run:  python benchmarks/bench_check.py [--quick]

Two user files in the contract: the shipped 2-10-2 example (all entries checked)
and a 784-128-10 MLP on 512 random rows (W1 has 100,352 entries; each parameter
is sampled to the default 32 entries).  In alternating rounds within one
process we time one `loss` call (median of 5) and a whole check at iteration 0 (fresh init,
every parameter), and at 0 and 100 (the default, including 100 training steps
with the user's backward).  Targets (absolute, as the issue states them):
2-10-2 <= 1 s, 784-128-10 with sampling <= 5 s; the ratio to one loss call is
what stays comparable across machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.user.check import run_check  # noqa: E402
from core.user.loader import load  # noqa: E402
from core.user.session import init_params, resolve_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIG = (ROOT / "examples" / "mlp.py").read_text().replace(
    "(2, HIDDEN)", "(784, HIDDEN)").replace("HIDDEN = 10", "HIDDEN = 128").replace(
    "(HIDDEN, 2)", "(HIDDEN, 10)").replace("np.zeros(2)", "np.zeros(10)").replace(
    '"W1": rng.standard_normal((784, HIDDEN))', '"W1": rng.standard_normal((784, HIDDEN)) / 28'
) + '''

def data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((512, 784))
    return X, np.eye(10)[rng.integers(0, 10, 512)]
'''


def one(path: str, at: list[int]) -> tuple[float, float]:
    prog = load(path)
    X, y = resolve_data(prog, None, 0)
    params = init_params(prog, 0)
    calls = []
    for _ in range(5):
        t0 = time.perf_counter()
        prog.call("loss", params, X, y)
        calls.append(time.perf_counter() - t0)
    t_loss = statistics.median(calls)
    t0 = time.perf_counter()
    report = run_check(prog, X, y, at, seed=0)
    t_check = time.perf_counter() - t0
    assert report.passed, "the benchmark's file must be correct"
    return t_loss, t_check


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    rounds = 2 if ap.parse_args().quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "mlp784.py"
        big.write_text(BIG)
        cases = [("2-10-2 (all entries)", str(ROOT / "examples" / "mlp.py"), 1.0),
                 ("784-128-10, N=512 (32 sampled)", str(big), 5.0)]
        print("| case | --at | one loss call ms | check s | ratio to one loss | target s |")
        print("|---|---|---|---|---|---|")
        for label, path, target in cases:
            for at in ([0], [0, 100]):
                losses, checks = [], []
                for _ in range(rounds):
                    tl, tc = one(path, at)
                    losses.append(tl)
                    checks.append(tc)
                tl, tc = statistics.median(losses), statistics.median(checks)
                ratio = statistics.median(c / lo for c, lo in zip(checks, losses, strict=True))
                ok = "✓" if tc <= target else "✗"
                print(f"| {label} | {','.join(map(str, at))} | {tl * 1e3:.3f} | {tc:.3f} | "
                      f"{ratio:,.0f}× | ≤ {target:g} {ok} |")
    np.random.default_rng(0)


if __name__ == "__main__":
    main()
