"""`record FILE.py` cost and size: a user trace against the same code run untraced.

Run:  python benchmarks/bench_user_trace.py [--iterations N] [--rounds R]

In alternating rounds within one process: N iterations of examples/mlp.py on
the bare machine (the user's loss, backward and update, no stepper, nothing
kept), then `record` + `save` of the same N iterations into a fresh trace
(the stepper's determinism probe and gradient check at 0, detectors,
checkpoints every 64, the SQLite file written through a rename).  Prints the
medians, their ratio, the bytes per iteration of the file and how they split
between the tables, and the time `read` takes to open and validate it.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.config import Config  # noqa: E402
from core.user.loader import load  # noqa: E402
from core.user.machine import UserMachine  # noqa: E402
from core.user.recording import record, save  # noqa: E402
from core.user.session import resolve_data  # noqa: E402
from core.user.usertrace import read  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlp.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.iterations
    prog = load(str(EXAMPLE))
    X, y = resolve_data(prog, None, prog.seed)
    bare, rec, opened = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            t = time.perf_counter()
            UserMachine(prog, X, y, Config(lr=prog.lr, seed=prog.seed,
                                           dataset="user")).run_fast(n)
            bare.append(time.perf_counter() - t)
            out = Path(d) / f"run{r}.db"
            t = time.perf_counter()
            save(record(prog, X, y, seed=prog.seed, lr=prog.lr, iterations=n, every=64),
                 str(out), force=False)
            rec.append(time.perf_counter() - t)
            t = time.perf_counter()
            read(str(out))
            opened.append(time.perf_counter() - t)
        size = out.stat().st_size
        con = sqlite3.connect(out)
        parts = {t: con.execute(f"SELECT sum(length(data)) FROM {t}").fetchone()[0]
                 for t in ("blocks", "checkpoints", "dataset")}
        parts["source"] = con.execute("SELECT length(text) FROM source").fetchone()[0]
        con.close()
    b, c = statistics.median(bare), statistics.median(rec)
    print(f"examples/mlp.py, {n:,} iterations, medians of {args.rounds} alternating rounds")
    print(f"untraced        {b / n * 1e6:8.1f} µs/iteration")
    print(f"record + save   {c / n * 1e6:8.1f} µs/iteration   ratio {c / b:.2f}")
    print(f"file            {size / n:8.1f} bytes/iteration ({size / 1e3:.1f} kB): "
          + ", ".join(f"{k} {v / n:.1f}" for k, v in parts.items()))
    print(f"read (validate) {statistics.median(opened) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
