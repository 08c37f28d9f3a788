"""Fast path vs the tight NumPy reference; continue path; back-step and landing latency.

Run:  python benchmarks/bench_fastpath.py [--quick] [--no-threads] [--processes P]
      python benchmarks/bench_fastpath.py --breakdown   (where the metrics' time goes)
      python benchmarks/bench_fastpath.py --neighbour 32   (the fast-path rows while another
          process streams 32 MB: how a busy shared machine moves the ratios)

The machine is shared and noisy, so loops are timed in alternating rounds within
one process and each ratio is the median of per-round ratios (absolute times are
printed alongside); the fast-path rows repeat that in several fresh processes,
since one process's memory layout moves a ratio by a percent or two.  The fast
path runs with every metric on: loss, accuracy, per-layer ‖∇W‖ and ‖W‖, the
finite check and sampled saturation.  Call counts are static: the NumPy/builtin
calls written per iteration (the fast path's are counted in its generated loop,
amortized branches excluded).
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

# like the CLI (tui_backprop/cli.py): one BLAS thread unless told otherwise
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.neighbour import neighbour  # noqa: E402
from benchmarks.reference import VARIANTS, make_tight_loop  # noqa: E402
from core.engine.fused import step_units  # noqa: E402
from core.engine.machine import Machine  # noqa: E402
from core.engine.stepper import Stepper  # noqa: E402
from core.model.config import Config  # noqa: E402
from core.model.datasets import Dataset  # noqa: E402

SEED = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)  # the scratch-mlp preset
MID = Config(hidden=(50,), lr=1e-3, reg=1e-4, bias=True)  # 2-50-2, N=300, biases
BIG = Config(hidden=(512,), lr=1e-3, reg=1e-4, dataset="random")


def random_dataset(n: int, d: int, k: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset("random", rng.standard_normal((n, d)), rng.integers(0, k, n), k)


def data_for(cfg: Config) -> Dataset | None:
    return random_dataset(512, 784, 10) if cfg is BIG else None


def fast_calls(m: Machine) -> int:
    """Calls per iteration written in the generated step (fused units + bookkeeping); a
    blocked loop (core/engine/blocked.py) counts its calls once per block."""
    units, _ = step_units(m)
    n = sum(sum(isinstance(node, ast.Call) for node in ast.walk(ast.parse(u.src)))
            * len(u.env.get("blocks", (None,))) for u in units)  # type: ignore[arg-type]
    if m.program.row_metrics:  # metrics: the arena copy (counted above), chunks amortized
        return n
    return n + 3 + 1  # three list appends + argmax (chunk compare and sampling amortized)


def alternate(loops: dict[str, object], iters: int, rounds: int) -> dict[str, list[float]]:
    """µs/iteration of each loop over alternating rounds (order rotates every round)."""
    names = list(loops)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            t0 = time.perf_counter()
            loops[k](iters)
            out[k].append((time.perf_counter() - t0) / iters * 1e6)
    return out


def ratio(ts: dict[str, list[float]], a: str, b: str) -> float:
    return float(np.median([x / y for x, y in zip(ts[a], ts[b], strict=True)]))


def reference_for(m: Machine, cfg: Config, **variant: bool):
    params = [m.buf[p].copy() for p in m.program.params]
    return make_tight_loop(m.X, m.Y, params, cfg.lr, cfg.reg, bias=cfg.bias, **variant)


def variants_table(iters: int, rounds: int) -> None:
    m = Machine(SEED)
    m.init()
    loops, calls = {}, {}
    for name, kw in VARIANTS.items():
        loops[name], calls[name] = reference_for(m, SEED, **kw)
    ts = alternate(loops, iters, rounds)
    ref = next(iter(VARIANTS))
    print("Reference variants, seed config 2-10-2 N=50 (sigmoid + MSE + L2, no biases):\n")
    print("| variant | calls/it | µs/it (median) | ratio to reference |")
    print("|---|---|---|---|")
    for name in VARIANTS:
        print(f"| {name} | {calls[name]} | {np.median(ts[name]):.1f} | "
              f"{ratio(ts, name, ref):.2f}× |")


def compare(label: str, cfg: Config, iters: int, rounds: int) -> tuple:
    m = Machine(cfg, data_for(cfg))
    m.init()
    ref, ref_calls = reference_for(m, cfg)
    ref(2)
    m.run_fast(2)
    ts = alternate({"ref": ref, "fast": m.run_fast}, iters, rounds)
    return (label, ref_calls, fast_calls(m), np.median(ts["ref"]), np.median(ts["fast"]),
            ratio(ts, "fast", "ref"), min(ts["fast"]) / min(ts["ref"]))


def compare_in_processes(label: str, name: str, iters: int, rounds: int, procs: int
                         ) -> tuple:
    """compare() in `procs` fresh processes, one after another: each process gets its own
    memory layout, which shifts a ratio by a percent or two either way; the median of
    the processes' ratios (each the median of its alternating rounds) is reported."""
    root = str(Path(__file__).resolve().parents[1])
    code = (f"import sys,json;sys.path.insert(0,{root!r});"
            "from benchmarks.bench_fastpath import *;"
            f"r=compare('x',{name},{iters},{rounds});"
            "print(json.dumps([float(v) for v in r[1:]]))")
    got = []
    for _ in range(procs):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True).stdout
        got.append(json.loads(out.splitlines()[-1]))
    rc, fc = int(got[0][0]), int(got[0][1])
    ratios = [g[4] for g in got]
    return (label, rc, fc, float(np.median([g[2] for g in got])),
            float(np.median([g[3] for g in got])), float(np.median(ratios)), min(ratios),
            max(ratios), float(np.median([g[5] for g in got])))


def _without(m: Machine, **parts: object) -> Machine:
    """m with names of its generated fast loop replaced (the loop's own `flush` and `sat`):
    benchmark-only surgery, to time what each part of the metrics costs."""
    f = m._loop
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                           f.__closure__)
    g.__kwdefaults__ = {**f.__kwdefaults__, **parts}
    m._loop = g
    return m


def breakdown(cfg: Config, iters: int, rounds: int) -> list[float]:
    """Ratios to the reference, one process, alternating: the step alone (the bare loop of
    landings), + the arena copy, + the chunk metrics, + the saturation samples (= the fast
    path with every metric on).  Row-metrics configs with a hidden layer."""
    def machine() -> Machine:
        m = Machine(cfg, data_for(cfg))
        m.init()
        m.run_fast(2)
        return m

    def noop(*_: object) -> None:
        return None

    bare = machine()
    bare.run_fast(2, metrics=False)
    loops = {"bare": lambda n: bare.run_fast(n, metrics=False),
             "copy": _without(machine(), sat=noop, flush=noop).run_fast,
             "chunk": _without(machine(), sat=noop).run_fast, "all": machine().run_fast}
    ref_m = Machine(cfg, data_for(cfg))
    ref_m.init()
    loops["ref"], _ = reference_for(ref_m, cfg)
    with np.errstate(invalid="ignore"):  # "copy" skips the flush: its norms are garbage
        ts = alternate(loops, iters, rounds)
    return [ratio(ts, k, "ref") for k in ("bare", "copy", "chunk", "all")]


def print_breakdown(q: bool) -> None:
    print("\nWhere the metrics' time goes (one process, alternating rounds, ratio to the "
          "reference):\n")
    print("| config | step alone | + arena copy | + chunk metrics | + saturation samples "
          "(every metric on) |")
    print("|---|---|---|---|---|")
    for label, cfg, iters, rounds in (("2-10-2, N=50 (seed)", SEED, 2048, 12 if q else 60),
                                      ("2-50-2, N=300, biases", MID, 256, 6 if q else 30)):
        r = breakdown(cfg, iters, rounds)
        print(f"| {label} | " + " | ".join(f"{x:.3f}×" for x in r) + " |")


def continue_ratio(iters: int, rounds: int) -> tuple[float, float, float]:
    """Stepper.run_until (detectors on, landing included) vs Machine.run_fast."""
    s = Stepper(SEED)
    m = Machine(SEED)
    m.init()
    s.run_until(lambda ev: None, max_iters=2)

    def cont(n: int) -> None:
        s.run_until(lambda ev: None, max_iters=n)

    ts = alternate({"fast": m.run_fast, "cont": cont}, iters, rounds)
    return np.median(ts["fast"]), np.median(ts["cont"]), ratio(ts, "fast", "cont")


def latency(cfg: Config, moves: int, landings: int, start: int
            ) -> dict[str, list[tuple[float, float]]]:
    """(wall ms, CPU ms) per step() / back() over a walk crossing many iterations, and
    per landing (the cursor arriving after a run or a continue).  CPU time leaves out
    the time another process held the core (this machine is shared)."""
    s = Stepper(cfg, data_for(cfg))
    s.jump(start, 0)
    gc.collect()  # as the app does once its main screen is up (tui_backprop/app.py,
    gc.freeze()  # settle_heap): start-up's objects are not walked by later collections
    out: dict[str, list[tuple[float, float]]] = {"step": [], "back": [], "landing": []}
    clocks = (time.perf_counter, time.process_time)
    for name in ("step", "back"):
        fn = getattr(s, name)
        for _ in range(moves):
            t0, c0 = (c() for c in clocks)
            fn()
            out[name].append(((time.perf_counter() - t0) * 1e3,
                              (time.process_time() - c0) * 1e3))
    real_enter = s._enter
    landed: list[tuple[float, float]] = []

    def timed_enter(iteration: int, op: int | str) -> None:
        t0, c0 = (c() for c in clocks)
        real_enter(iteration, op)
        landed.append(((time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3))

    s._enter = timed_enter  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    for k in range(landings):
        n = int(rng.integers(1, 700 if cfg is SEED else 4))
        if k % 2:
            s.run(n)
        else:
            stop_at = s.iteration + n

            def rule(ev, lo, hi, stop_at=stop_at):  # a breakpoint "it == stop_at"
                from core.inspect.detectors import Event
                return Event(stop_at, "L", "break", "") if lo <= stop_at < hi else None

            s.run_until(rule=rule, max_iters=n + 300)
        out["landing"].append(landed[-1])
    return out


def threads_row(iters: int, rounds: int) -> tuple[float, float]:
    """784-512-10 µs/it with OPENBLAS_NUM_THREADS=1 and =2, fresh processes, alternating."""
    root = str(Path(__file__).resolve().parents[1])
    code = (f"import sys,time;sys.path.insert(0,{root!r});"
            "from benchmarks.bench_fastpath import *;"
            "m=Machine(BIG,data_for(BIG));m.init();m.run_fast(1);t=time.perf_counter();"
            f"m.run_fast({iters});print((time.perf_counter()-t)/{iters}*1e6)")
    res: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for k in ((1, 2) if r % 2 == 0 else (2, 1)):
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(k), OMP_NUM_THREADS=str(k))
            outp = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                  capture_output=True, text=True).stdout
            res[k].append(float(outp.split()[-1]))
    return float(np.median(res[1])), float(np.median(res[2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--no-threads", action="store_true", help="skip the BLAS threads row")
    ap.add_argument("--processes", type=int, default=5,
                    help="fresh processes per fast-path row (default 5)")
    ap.add_argument("--breakdown", action="store_true",
                    help="only the table of where the metrics' time goes")
    ap.add_argument("--neighbour", type=int, default=0, metavar="MB",
                    help="only the fast-path rows, timed while another process streams MB "
                         "megabytes (benchmarks/neighbour.py)")
    args = ap.parse_args()
    q = args.quick
    if args.breakdown:
        print_breakdown(q)
        return
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}\n")
    if not args.neighbour:
        variants_table(500 if q else 2000, 8 if q else 30)
    procs = 2 if q else args.processes
    with neighbour(args.neighbour):
        rows = [compare_in_processes("2-10-2, N=50 (seed)", "SEED", 500 if q else 2000,
                                     8 if q else 24, procs),
                compare_in_processes("2-50-2, N=300, biases", "MID", 200 if q else 600,
                                     6 if q else 16, procs),
                compare_in_processes("784-512-10, N=512", "BIG", 3 if q else 10,
                                     4 if q else 12, 1)]
    busy = (f", while a neighbour process streams {args.neighbour} MB"
            if args.neighbour else "")
    print(f"\nFast path (every metric on) vs the reference{busy}, {procs} fresh processes each "
          "(one process's memory layout moves a ratio by ±2%):\n")
    print("| config | reference calls/it | fast calls/it | reference µs/it | fast µs/it "
          "| ratio (median of processes) | range over processes | best/best |")
    print("|---|---|---|---|---|---|---|---|")
    for label, rc, fc, r_us, f_us, med, lo, hi, best in rows:
        print(f"| {label} | {rc} | {fc} | {r_us:.1f} | {f_us:.1f} | {med:.3f}× "
              f"| {lo:.3f}–{hi:.3f} | {best:.3f}× |")
    if args.neighbour:
        return
    print_breakdown(q)
    f_us, c_us, speed = continue_ratio(2000 if q else 20000, 6 if q else 16)
    print(f"\nContinue path (Stepper.run_until, detectors on, landing included), seed: "
          f"{c_us:.1f} µs/it against the fast path's {f_us:.1f}: speed {speed:.2f}× the fast "
          f"path (target ≥ 0.95×)\n")
    print("| latency, ms | p50 | p95 | max (wall) | max (CPU) |")
    print("|---|---|---|---|---|")
    for label, cfg, moves, landings, start in (
            ("seed", SEED, 300 if q else 3000, 20 if q else 200, 200),
            ("784-512-10", BIG, 10 if q else 40, 4 if q else 10, 3)):
        lat = latency(cfg, moves, landings, start)
        for name, pairs in lat.items():
            wall, cpu = np.array(pairs).T
            print(f"| {label}: {name} | {np.median(wall):.3f} | {np.percentile(wall, 95):.3f} "
                  f"| {wall.max():.2f} | {cpu.max():.2f} |")
    if not args.no_threads:
        one, two = threads_row(3 if q else 10, 2 if q else 6)
        print(f"\n784-512-10 with OpenBLAS threads: 1 → {one:.0f} µs/it, 2 → {two:.0f} µs/it "
              f"(fresh processes, alternating, medians)")


if __name__ == "__main__":
    main()
