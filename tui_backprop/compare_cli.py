"""`diff` and `metrics`: compare two runs, and take a run's numbers elsewhere.

Errors surface as TraceError or ConfigError, which `cli.main` prints as one
`error: ...` line with exit status 2 (see trace_cli.py for why not UsageError).
Heavy modules (NumPy, the engine) are imported when a command runs, never when
the parser is built, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_backprop.arg_types import non_negative, number, positive
from tui_backprop.cli import COMMAND_HELP

if TYPE_CHECKING:
    from core.model.config import Config
    from core.store.diff import Side

DEFAULT_ITERATIONS = 1000  # for a diff of two live runs


def _fail(message: str) -> Exception:
    """A one-line error for cli.main (imported late: `--help` needs no NumPy)."""
    from core.store.trace import TraceError

    return TraceError(message)








def add_compare_commands(sub: argparse._SubParsersAction,
                         add_run_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `diff` and `metrics` on the main parser's sub-commands."""
    d = sub.add_parser("diff", help=COMMAND_HELP["diff"],
                       description="A and B are traces or preset names; or the run options "
                                   "give A and --vs gives B (A with those options changed).")
    d.add_argument("runs", nargs="*", metavar="RUN", help="a trace file or a preset (up to 2)")
    add_run_options(d)
    d.add_argument("--vs", metavar='"OPTIONS"',
                   help='B is A with these run options, e.g. --vs "--lr 2.0"')
    d.add_argument("--vs-from", type=non_negative, metavar="T",
                   help="apply --vs as a knob change from iteration T (A and B share 0..T-1)")
    d.add_argument("--iterations", type=positive, metavar="N",
                   help=f"iterations of a live run (default: the trace's, else "
                        f"{DEFAULT_ITERATIONS})")
    d.add_argument("--rtol", type=number(0.0, 1.0, lo_open=False), default=0.0, metavar="R",
                   help="relative tolerance (default 0: bit-equal, NaN equals NaN)")
    d.add_argument("--show", metavar="I,J,...", help="iterations of the summary table")
    d.add_argument("--tui", action="store_true", help="open the split view on the difference")
    d.set_defaults(func=cmd_diff)
    m = sub.add_parser("metrics", help=COMMAND_HELP["metrics"])
    m.add_argument("run", metavar="RUN")
    m.add_argument("--every", type=positive, default=1, metavar="K",
                   help="every K-th iteration (and always the last)")
    fmt = m.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV with a header (the default)")
    fmt.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    m.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    m.add_argument("--force", action="store_true", help="overwrite FILE / the SQL table")
    m.add_argument("--sql", action="store_true",
                   help="instead, add the `metrics` SQL table to the trace itself")
    m.set_defaults(func=cmd_metrics)


# ---------------------------------------------------------------------- sides of a diff
def _live(label: str, cfg: Config, iterations: int, knobs: list | None = None) -> Side:
    from core.engine.stepper import Stepper
    from core.store.diff import Side

    s = Stepper(cfg, knobs=knobs)
    s.run_until(lambda ev: None, max_iters=iterations, block=4096)
    net = "-".join(str(x) for x in s.program.sizes)
    return Side(f"{label}  (live, {net} {cfg.dtype}, {len(s.history):,} iterations)",
                s.history, s.program.sizes, cfg.dtype, lambda: s)


def _trace(label: str, path: str) -> tuple[Side, Any]:
    from core.store.diff import Side
    from core.store.replay import Replay
    from core.store.trace import TraceReader

    tr = TraceReader(path)
    note = ("" if tr.status in ("complete", "interrupted") else
            f"{label[0]} is still being recorded (or was killed): compared up to its last "
            f"committed iteration {tr.n - 1:,}")
    replay: list[Replay] = []

    def open_replay() -> Replay:
        if not replay:
            replay.append(Replay(tr))
        return replay[0]

    net = "-".join(str(x) for x in tr.program.sizes)
    return Side(f"{label}  (trace, {net} {tr.cfg.dtype}, {tr.n:,} iterations)", tr.history,
                tr.program.sizes, tr.cfg.dtype, open_replay, note), tr


def _vs_config(base: Config, vs: str, run_options: Callable[[argparse.ArgumentParser], None]
               ) -> Config:
    from core.model.config import Config
    from tui_backprop.cli import Parser
    from tui_backprop.options import FLAGS, config_from_args

    p = Parser(prog="--vs", add_help=False)
    run_options(p)
    try:
        args = p.parse_args(shlex.split(vs))
    except Exception as exc:  # the cli module's UsageError (it may be loaded twice)
        raise _fail(f"--vs: {exc}") from None
    if args.preset or args.config:
        return config_from_args(args)
    return Config.build(base, {f: getattr(args, d) for d, f in FLAGS.items()
                               if getattr(args, d, None) is not None})


def resolve(args: argparse.Namespace, run_options: Callable[[argparse.ArgumentParser], None]
            ) -> tuple[Side, Side, list[Any]]:
    """A and B of a diff, and the trace readers to close afterwards."""
    if len(args.runs) > 2:
        raise _fail("diff compares two runs: give at most two RUNs")
    if args.vs_from is not None and args.vs is None:
        raise _fail("--vs-from needs --vs")
    if args.vs is not None and len(args.runs) == 2:
        raise _fail("give either two RUNs or --vs, not both")
    if args.vs is None and len(args.runs) != 2:
        raise _fail('diff needs a second run: another RUN, or --vs "OPTIONS"')
    readers: list[Any] = []
    try:
        return (*_sides(args, run_options, readers), readers)
    except BaseException:
        for r in readers:
            r.close()
        raise


def _sides(args: argparse.Namespace, run_options: Callable[[argparse.ArgumentParser], None],
           readers: list[Any]) -> tuple[Side, Side]:
    from core.engine import knobs as kn
    from core.model.presets import PRESETS
    from tui_backprop.options import config_from_args

    specs: list[tuple[str, str | None]] = list(zip("AB", args.runs, strict=False)) or [
        ("A", None)]
    opened: dict[str, tuple[Side, Any]] = {}
    for label, run in specs:  # traces first: their length is the live runs' default
        if run is not None and (run not in PRESETS or Path(run).exists()):
            opened[label] = _trace(f"{label}  {run}", run)
            readers.append(opened[label][1])
    n = args.iterations or min((s.n for s, _ in opened.values()), default=DEFAULT_ITERATIONS)
    sides: list[Side] = []
    base: tuple[Config, list] | None = None
    for label, run in specs:
        if label in opened:
            side, tr = opened[label]
            cfg, knobs = tr.cfg, tr.knobs
        else:
            cfg = config_from_args(_with_preset(args, run) if run else args)
            knobs = []
            side = _live(f"{label}  " + (f"preset {run}" if run else "run options"), cfg, n)
        sides.append(side)
        base = base or (cfg, knobs)
    if args.vs is None:
        return sides[0], sides[1]
    cfg, knobs = base
    if knobs:
        raise _fail("A has knob changes of its own: record B and compare two traces")
    b_cfg = _vs_config(cfg, args.vs, run_options)
    count = min(n, sides[0].n)
    if args.vs_from is None:
        return sides[0], _live(f"B  A with {args.vs}", b_cfg, count)
    knobs = [(args.vs_from, kn.apply(cfg, kn.changed(cfg, b_cfg)))]
    kn.check(cfg, knobs)
    if kn.apply(cfg, kn.changed(cfg, b_cfg)) != b_cfg:
        raise _fail("--vs-from: only knobs (lr, lr decay, reg, clipping, batch size) "
                         "can change during a run")
    return sides[0], _live(f"B  A with {args.vs} from iteration {args.vs_from}", cfg, count,
                           knobs)


def _with_preset(args: argparse.Namespace, preset: str) -> argparse.Namespace:
    ns = argparse.Namespace(**vars(args))
    ns.preset = preset
    return ns


# ---------------------------------------------------------------------- diff
def cmd_diff(args: argparse.Namespace) -> int:
    from tui_backprop.options import add_run_options

    a, b, readers = resolve(args, add_run_options)
    try:
        return _report(args, a, b)
    finally:
        for r in readers:
            r.close()


def _report(args: argparse.Namespace, a: Side, b: Side) -> int:
    from core.store.diff import comparable, compare_scalars, first_op_diff, summary_iterations

    d = compare_scalars(a, b, args.rtol)
    lines = [a.label, b.label]
    tol = "bit-equal" if args.rtol == 0 else f"rtol {args.rtol:g}"
    lines.append(f"compared   iterations 0..{d.compared - 1:,} aligned by iteration ({tol})")
    lines += [f"note       {n}" for n in d.notes]
    op = None
    if d.first is None:
        lines.append("identical  every compared scalar is equal")
    else:
        lines.append(f"first difference  iteration {d.first:,}: {', '.join(d.columns)}")
        lines.append("first differing loss  " + (f"iteration {d.first_loss:,}"
                                                if d.first_loss is not None else "none"))
        sa, sb = a.open(), b.open()
        why = comparable(a, b, sa, sb)
        if why is not None:
            lines.append(f"ops        not compared: {why}")
        else:
            op = first_op_diff(sa, sb, d.first, args.rtol)
            lines.append(_op_line(op))
            for s, side in ((sa, "A"), (sb, "B")):
                if getattr(s, "divergence", None):
                    lines.append(f"warning    {side}: {s.divergence}")
    lines += ["convention iteration i = what i computed from the parameters at its start,",
              "           plus the lr its update applies: a change from iteration i shows",
              "           in lr and the update ops at i, in the loss at i+1"]
    chosen = [_int(x) for x in args.show.split(",")] if args.show else None
    rows = summary_iterations(d, d.compared, chosen)
    lines += ["", *_table(a, b, rows)]
    print("\n".join(lines))
    if args.tui and d.compared:
        from tui_backprop.screens.diff import run_diff_app

        run_diff_app(a, b, d, op)
    return 0 if d.first is None else 1


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _fail(f"--show: {text!r} is not an iteration") from None


def _op_line(op: Any) -> str:
    if op.reason:
        return f"ops        not compared at iteration {op.iteration:,}: {op.reason}"
    if op.op is None:
        return (f"ops        every op output of iteration {op.iteration:,} is equal (the "
                f"difference is in a metric only)")
    return (f"first op   {op.op} (op {op.position + 1} of iteration {op.iteration:,}): "
            f"max |A−B| {op.max_abs:.3g} at {list(op.index)} (A {op.a:.17g}, B {op.b:.17g}), "
            f"max relative {op.max_rel:.3g}")


def _table(a: Side, b: Side, rows: list[int]) -> list[str]:
    def f(v: float) -> str:
        return f"{v:.6g}"

    def norms(side: Side, name: str, i: int) -> str:
        return "[" + ", ".join(f(v) for v in getattr(side.history.view(i, i + 1), name)[0]) + "]"

    head = ["iteration", "loss A", "loss B", "acc A", "acc B", "lr A", "lr B", "‖∇W‖ A",
            "‖∇W‖ B"]
    table = [head]
    for i in rows:
        va, vb = a.history.view(i, i + 1), b.history.view(i, i + 1)
        table.append([f"{i:,}", f(va.loss[0]), f(vb.loss[0]), f(va.acc[0]), f(vb.acc[0]),
                      f(va.lr[0]), f(vb.lr[0]), norms(a, "grad_norm", i),
                      norms(b, "grad_norm", i)])
    widths = [max(len(r[k]) for r in table) for k in range(len(head))]
    return ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]


# ---------------------------------------------------------------------- metrics
def cmd_metrics(args: argparse.Namespace, source: tuple[Any, list] | None = None) -> int:
    """`source` = (history, events) of a run read elsewhere (a user trace), else RUN's."""
    from core.store import metrics_out
    from core.store.trace import TraceReader

    if args.sql:
        if args.out or args.csv or args.jsonl or args.every != 1:
            raise _fail("--sql writes into the trace: no --out, --csv, --jsonl or --every")
        return _add_sql_table(args.run, args.force)
    if source is None:
        with TraceReader(args.run) as tr:
            source = tr.history, list(tr.events)
    history, events = source
    jsonl = args.jsonl or (not args.csv and bool(args.out) and args.out.endswith(".jsonl"))
    write = metrics_out.write_jsonl if jsonl else metrics_out.write_csv
    if args.out is None:
        write(sys.stdout.buffer, history, events, args.every)
        sys.stdout.flush()
        return 0
    rows = _atomic(args.out, args.force, lambda fh: write(fh, history, events, args.every))
    print(f"wrote {rows:,} rows to {args.out}", file=sys.stderr)
    return 0


def _atomic(path: str, force: bool, writer: Callable[[Any], int]) -> int:
    """Write through a temporary file in the same folder; an old file stays until done."""
    target = Path(path)
    if target.is_dir():
        raise _fail(f"{path} is a directory")
    if target.exists() and not force:
        raise _fail(f"{path} exists; pass --force to overwrite it")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            rows = writer(fh)
        os.replace(tmp, target)
        return rows
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _fail(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add_sql_table(path: str, force: bool) -> int:
    """Add (or, with --force, rewrite) the `metrics` table of core/store/metrics_table.py."""
    import sqlite3

    from core.store import metrics_table
    from core.store.trace import TraceReader

    with TraceReader(path) as tr:
        history, depth, status = tr.history, tr.program.depth, tr.status
    if status == "recording":
        raise _fail(f"{path} is still being recorded (or was killed); add the table once "
                         "it is closed")
    try:
        con = sqlite3.connect(path)
        try:
            if metrics_table.exists(con):
                if not force:
                    raise _fail(f"{path} already has a metrics table; --force rewrites it")
                con.execute(f"DROP TABLE {metrics_table.TABLE}")
            metrics_table.create(con, depth)
            step = 1 << 16
            for a in range(0, len(history), step):
                metrics_table.insert(con, history.view(a, a + step))
            con.commit()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise _fail(f"cannot write {path}: {exc}") from None
    print(f"added the metrics table ({len(history):,} rows) to {path}", file=sys.stderr)
    return 0
