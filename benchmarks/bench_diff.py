"""`diff` of two 1M-iteration traces, and `metrics` writing 1M rows.

Run:  python benchmarks/bench_diff.py [--quick] [--dir DIR]

Targets (issue 12, seed config 2-10-2, N=50, 1M iterations): scalars compared
<= 2 s, the first differing op found <= 100 ms after that, 1M metric rows
written <= 3 s.  The two traces differ by a knob change (lr x2) at iteration
N/2, so the op search restores a checkpoint and re-executes on both sides.
Times are medians of alternating rounds; each is also shown as a ratio against
a reference measured in the same rounds: opening the two traces (what any
reader of them pays) for the scalar diff, and Python's csv module writing the
same columns from `tolist()` (what a script would do) for `metrics`.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.presets import preset_config  # noqa: E402
from core.store import metrics_out  # noqa: E402
from core.store.diff import Side, compare_scalars, first_op_diff  # noqa: E402
from core.store.recorder import Recorder  # noqa: E402
from core.store.replay import Replay  # noqa: E402
from core.store.trace import TraceReader  # noqa: E402

SEED = preset_config("scratch-mlp")


def record(path: Path, n: int, knob_at: int | None) -> None:
    if path.exists():
        with TraceReader(path) as tr:
            if tr.n == n and tr.status == "complete":
                return
    knobs = [(knob_at, SEED.replace(lr=2 * SEED.lr))] if knob_at is not None else None
    rec = Recorder(path, SEED, force=True, target=n, knobs=knobs)
    rec.run(n)
    rec.close()


def side(tr: TraceReader) -> Side:
    return Side(str(tr.path), tr.history, tr.program.sizes, tr.cfg.dtype, lambda: Replay(tr))


def scalar_round(a: Path, b: Path) -> tuple[float, float, int | None]:
    """(open both + compare ms, open both ms, first differing iteration)."""
    t0 = time.perf_counter()
    ta, tb = TraceReader(a), TraceReader(b)
    t_open = time.perf_counter() - t0
    d = compare_scalars(side(ta), side(tb))
    t_all = time.perf_counter() - t0
    ta.close()
    tb.close()
    return t_all * 1e3, t_open * 1e3, d.first


def op_round(a: Path, b: Path, first: int) -> tuple[float, str | None]:
    """ms from opened traces to the first differing op (replays built, both re-executed)."""
    ta, tb = TraceReader(a), TraceReader(b)
    t0 = time.perf_counter()
    op = first_op_diff(Replay(ta), Replay(tb), first)
    dt = time.perf_counter() - t0
    ta.close()
    tb.close()
    return dt * 1e3, op.op


def metrics_round(path: Path) -> tuple[float, float]:
    """(metrics_out CSV ms, csv-module CSV ms) of every row of a trace, to memory."""
    with TraceReader(path) as tr:
        h = tr.history
        t0 = time.perf_counter()
        metrics_out.write_csv(io.BytesIO(), h, tr.events)
        ours = time.perf_counter() - t0
        v = h.view()
        t0 = time.perf_counter()
        cols = [range(len(h)), v.loss.tolist(), v.acc.tolist(), v.lr.tolist(),
                *[c.tolist() for c in (*v.grad_norm.T, *v.weight_norm.T,
                                       *v.update_ratio.T, *v.saturation.T)]]
        w = csv.writer(io.StringIO())
        w.writerows(zip(*cols, strict=True))
        ref = time.perf_counter() - t0
    return ours * 1e3, ref * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100k iterations, 3 rounds")
    ap.add_argument("--dir", help="where the traces are (re)used or recorded")
    args = ap.parse_args()
    n, rounds = (100_000, 3) if args.quick else (1_000_000, 7)
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-diff-"))
    folder.mkdir(parents=True, exist_ok=True)
    a, b = folder / f"seed-{n}.trace", folder / f"seed-{n}-lr2x.trace"
    record(a, n, None)
    record(b, n, n // 2)
    sc, op_ms, mo = [], [], []
    first, name = None, None
    for r in range(rounds):
        steps = [lambda: sc.append(scalar_round(a, b)), lambda: mo.append(metrics_round(a))]
        for step in steps if r % 2 == 0 else steps[::-1]:
            step()
        first = sc[-1][2]
        t, name = op_round(a, b, first)
        op_ms.append(t)
    all_ms = np.array([s[0] for s in sc])
    open_ms = np.array([s[1] for s in sc])
    ours, ref = np.array([m[0] for m in mo]), np.array([m[1] for m in mo])
    print(f"traces: {a.name}, {b.name} ({n:,} iterations each, lr x2 from {n // 2:,})")
    print(f"first difference at iteration {first:,}; first differing op: {name}")
    print()
    print("| step | median ms | best ms | target | ratio (median of rounds) |")
    print("|---|---|---|---|---|")
    print(f"| open both + compare scalars | {np.median(all_ms):.0f} | {all_ms.min():.0f} | "
          f"<= 2000 | {np.median(all_ms / open_ms):.2f}x opening the two traces |")
    print(f"| first differing op | {np.median(op_ms):.1f} | {min(op_ms):.1f} | <= 100 | - |")
    print(f"| metrics CSV, {n:,} rows (to memory) | {np.median(ours):.0f} | {ours.min():.0f} | "
          f"<= 3000 | {np.median(ours / ref):.2f}x Python's csv module |")


if __name__ == "__main__":
    main()
