"""Saved traces: recording speed, size, re-materialization latency and memory.

Run:  python benchmarks/bench_trace.py [--quick] [--dir DIR]
      python benchmarks/bench_trace.py --open RUN.trace [--rounds 21]   (opening only)

Issue 10 item 6 targets at the seed config: <= 32 bytes/iteration, recording
>= 0.9x the untraced fast path, opening a 1M-iteration trace <= 100 ms, jump
p50 <= 50 ms.  The optional SQL `metrics` table (`record --sql-metrics`) is
measured beside it: its bytes/iteration and its recording speed ratio.

Recording speed is compared with the untraced fast path in alternating rounds
within one process (the machine is shared and noisy); the ratio is the median
of per-round ratios of iterations per second, recorder / fast path.  Latency
is the time of `Replay.jump(i, op)` to random (iteration, op) picks on an open
trace: restore the nearest checkpoint, fast-forward, materialize, verify.
Peak RSS is measured in fresh child processes recording 10k and 1M iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_fastpath import random_dataset  # noqa: E402
from core.engine.machine import Machine  # noqa: E402
from core.model.config import Config  # noqa: E402
from core.model.datasets import Dataset  # noqa: E402
from core.model.presets import preset_config  # noqa: E402
from core.store.recorder import Recorder  # noqa: E402
from core.store.replay import Replay  # noqa: E402
from core.store.trace import TraceReader  # noqa: E402

SEED = preset_config("scratch-mlp")  # 2-10-2, N=50
BIG = Config(hidden=(512,), lr=1e-3, reg=1e-4, dataset="random")

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from benchmarks.bench_trace import SEED
from core.store.recorder import Recorder
t0 = time.perf_counter()
rec = Recorder({path!r}, SEED, force=True, target={n}, sql_metrics={sql})
rec.run({n})
rec.close()
print(json.dumps({{"seconds": time.perf_counter() - t0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def speed(cfg: Config, data: Dataset | None, path: Path, iters: int, rounds: int,
          sql: bool = False) -> tuple[float, float, float, Recorder]:
    """(fast µs/it, recording µs/it, median ratio) over alternating rounds."""
    m = Machine(cfg, data)
    m.init()
    rec = Recorder(path, cfg, data, force=True, target=iters * rounds, sql_metrics=sql)
    ratios, t_fast, t_rec = [], [], []
    for r in range(rounds):
        times = {}
        for name in (("fast", "rec") if r % 2 == 0 else ("rec", "fast")):
            t0 = time.perf_counter()
            m.run_fast(iters) if name == "fast" else rec.run(iters)
            times[name] = (time.perf_counter() - t0) / iters * 1e6
        t_fast.append(times["fast"])
        t_rec.append(times["rec"])
        ratios.append(times["fast"] / times["rec"])
    rec.close()
    return float(np.median(t_fast)), float(np.median(t_rec)), float(np.median(ratios)), rec


def latency(path: Path, picks: int, seed: int = 1) -> tuple[float, float, str | None]:
    """Median and max ms of jumps to random (iteration, op) of an open replay."""
    rp = Replay(path)
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(picks):
        i, op = int(rng.integers(rp.n)), int(rng.integers(len(rp.program.ops)))
        t0 = time.perf_counter()
        rp.jump(i, op)
        times.append((time.perf_counter() - t0) * 1e3)
    rp.close()
    return float(np.median(times)), float(max(times)), rp.divergence


def child_record(path: Path, n: int, sql: bool = False) -> dict[str, float]:
    """Record n seed iterations in a fresh process: wall time and peak RSS."""
    code = CHILD.format(root=str(Path(__file__).resolve().parents[1]), path=str(path), n=n,
                        sql=sql)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def bytes_per_iter(path: Path) -> float:
    with TraceReader(path) as tr:
        return tr.file_bytes() / tr.n


def open_times(path: Path, rounds: int = 7) -> list[float]:
    """Sorted ms of opening a trace (TraceReader: validate, decode every block), after one
    untimed open (file pages in the OS cache, modules imported)."""
    TraceReader(path).close()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        TraceReader(path).close()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)


def open_ms(path: Path, rounds: int = 7) -> tuple[float, float]:
    """Median and best ms of opening a trace."""
    times = open_times(path, rounds)
    return float(np.median(times)), times[0]


def report_open(path: Path, rounds: int) -> None:
    """Median and spread of opening an existing trace: the shared machine is noisy."""
    t = open_times(path, rounds)
    q1, q3 = np.percentile(t, [25, 75])
    with TraceReader(path) as tr:
        n = tr.n
    print(f"open {path} ({n:,} iterations, TraceReader): median {np.median(t):.1f} ms, "
          f"IQR {q1:.1f}-{q3:.1f}, min {t[0]:.1f}, max {t[-1]:.1f} of {rounds}")


def _ms(v: float) -> str:
    return f"{v:.1f}" if v == v else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    ap.add_argument("--dir", help="where to write traces (default: a temp folder)")
    ap.add_argument("--open", type=Path, metavar="TRACE",
                    help="only time opening this trace (e.g. `tui-backprop record --preset "
                         "scratch-mlp --iterations 1000000 --out run.trace`)")
    ap.add_argument("--rounds", type=int, default=21, help="opens timed with --open")
    args = ap.parse_args()
    if args.open:
        report_open(args.open, args.rounds)
        return
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-trace-"))
    q = args.quick
    rows = []
    f, r, ratio, rec = speed(SEED, None, folder / "seed.trace", 5000 if q else 50000,
                             4 if q else 8)
    p50, pmax, div = latency(folder / "seed.trace", 100 if q else 500)
    rows.append(("2-10-2, N=50 (seed)", rec.pos, rec.every, f, r, ratio,
                 bytes_per_iter(folder / "seed.trace"), p50, pmax, div))
    f, r, ratio, rec = speed(SEED, None, folder / "seed-sql.trace", 5000 if q else 50000,
                             4 if q else 8, sql=True)
    rows.append(("seed + --sql-metrics", rec.pos, rec.every, f, r, ratio,
                 bytes_per_iter(folder / "seed-sql.trace"), float("nan"), float("nan"), None))
    big_data = random_dataset(512, 784, 10)
    f, r, ratio, rec = speed(BIG, big_data, folder / "big.trace", 5 if q else 50, 2 if q else 4)
    p50, pmax, div = latency(folder / "big.trace", 10 if q else 40)
    rows.append(("784-512-10, N=512", rec.pos, rec.every, f, r, ratio,
                 bytes_per_iter(folder / "big.trace"), p50, pmax, div))
    print("| config | iterations | K | fast µs/it | recording µs/it | speed ratio "
          "| bytes/it | jump p50 ms | jump max ms | diverged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, n, k, f, r, ratio, bpi, p50, pmax, div in rows:
        print(f"| {name} | {n:,} | {k} | {f:.1f} | {r:.1f} | {ratio:.2f} | {bpi:,.1f} "
              f"| {_ms(p50)} | {_ms(pmax)} | {'yes' if div else 'no'} |")
    big_n = 100_000 if q else 1_000_000
    print()
    print("| seed recording | wall s | peak RSS MB | file MB | bytes/it |")
    print("|---|---|---|---|---|")
    for n in (10_000, big_n):
        path = folder / f"seed-{n}.trace"
        res = child_record(path, n)
        print(f"| {n:,} iterations | {res['seconds']:.1f} | {res['rss_mb']:.0f} "
              f"| {os.path.getsize(path) / 1e6:.1f} | {bytes_per_iter(path):.1f} |")
    path = folder / f"seed-{big_n}.trace"
    o50, obest = open_ms(path)
    print(f"\nopen {path.name} (TraceReader): median {o50:.0f} ms, best {obest:.0f} ms "
          f"of 7")
    t0 = time.perf_counter()
    rp = Replay(path)
    t_open = time.perf_counter() - t0
    target = min(777_777, rp.n - 1)
    t0 = time.perf_counter()
    rp.jump(target, "dL/dW1")
    t_jump = time.perf_counter() - t0
    print(f"open {path.name} (Replay): {t_open * 1e3:.0f} ms; jump to ({target:,}, dL/dW1): "
          f"{t_jump * 1e3:.1f} ms; diverged: {rp.divergence or 'no'}")
    rp.close()
    print(f"traces in {folder}")


if __name__ == "__main__":
    main()
