"""`check FILE.py` and `debug FILE.py`: the user's own NumPy backprop, checked and stepped.

Bad input (no such file, a syntax error, a broken contract, an exception in
the user's code) surfaces as core.user.loader.UserError, which `cli.main`
prints as one `error: FILE:LINE: ...` line with exit status 2.  Ctrl-C inside
the user's code ends with exit status 130; each call into it also has a time
limit (`--time-limit`, default 10 s) so an endless loop ends on its own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.user.limits import MAX_ENTRIES, THRESHOLD, TIME_LIMIT
from tui_backprop.arg_types import number, positive
from tui_backprop.cli import COMMAND_HELP

if TYPE_CHECKING:  # the commands load them: `--help` stays NumPy-free
    from core.user.check import CheckReport, ParamResult


def _iterations(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of iterations like 0,100"
                                         ) from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give iterations >= 0, like 0,100")
    return values






def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.py", help="your backprop code, in the contract "
                                                   "(init, loss, backward; see README)")
    p.add_argument("--dataset", metavar="NAME|PATH",
                   help="data when FILE.py has no data(): a built-in name or .csv/.npz "
                        "(y is passed one-hot; default xor)")
    p.add_argument("--seed", type=int, help="seed for init(rng) and built-in data "
                                            "(default: the file's SEED, else 0)")
    p.add_argument("--lr", type=number(), help="learning rate (default: the file's LR)")
    p.add_argument("--time-limit", type=number(), default=TIME_LIMIT, metavar="S",
                   help=f"seconds any one call into FILE.py may take (default {TIME_LIMIT:g})")


def add_user_commands(sub: argparse._SubParsersAction) -> None:
    """Register check / debug on the main parser's sub-commands."""
    chk = sub.add_parser("check", help=COMMAND_HELP["check"])
    _common(chk)
    chk.add_argument("--at", type=_iterations, default=[0, 100], metavar="I,J",
                     help="iterations to check at, training with your own gradients in "
                          "between (default 0,100)")
    chk.add_argument("--samples", type=positive, default=MAX_ENTRIES, metavar="K",
                     help=f"entries checked per parameter above this size (default "
                          f"{MAX_ENTRIES}; a fixed stride, stated in the output)")
    chk.add_argument("--threshold", type=number(), default=THRESHOLD, metavar="T",
                     help=f"max relative error that passes (default {THRESHOLD:g})")
    chk.add_argument("--json", action="store_true", help="print one JSON object")
    chk.set_defaults(func=cmd_check)
    dbg = sub.add_parser("debug", help=COMMAND_HELP["debug"])
    _common(dbg)
    dbg.add_argument("--mouse", action="store_true", help="enable mouse support")
    dbg.set_defaults(func=cmd_debug)
    _extend_trace_commands(sub)


def _extend_trace_commands(sub: argparse._SubParsersAction) -> None:
    """`record FILE.py`, and `replay`/`info`/`metrics` of a user trace, on the trace commands."""
    rec = sub.choices.get("record")
    if rec is not None:
        rec.add_argument("file", nargs="?", metavar="FILE.py",
                         help="record your own code (the check/debug contract) instead of "
                              "the built-in network; --seed, --lr, --dataset apply")
        rec.add_argument("--time-limit", type=number(), default=TIME_LIMIT,
                         metavar="S", help="seconds one call into FILE.py may take")
        builtin = rec.get_default("func")
        rec.set_defaults(func=lambda a: cmd_record_user(a) if a.file else builtin(a))
    for name, user_cmd in (("replay", cmd_replay_user), ("info", cmd_info_user),
                           ("metrics", cmd_metrics_user), ("verify", cmd_verify_user)):
        if name in sub.choices:
            _dispatch(sub.choices[name], user_cmd)


def _dispatch(parser: argparse.ArgumentParser, user_cmd: Callable[[argparse.Namespace], int]
              ) -> None:
    """Send a user trace to `user_cmd`, anything else to the built-in command."""
    builtin = parser.get_default("func")

    def run(a: argparse.Namespace) -> int:
        from core.user.usertrace import is_user_trace  # here: `--help` stays NumPy-free

        return user_cmd(a) if is_user_trace(a.run) else builtin(a)
    parser.set_defaults(func=run)


def cmd_record_user(args: argparse.Namespace) -> int:
    from core.store.recorder import existing
    from core.user.loader import UserError, load
    from core.user.recording import record, save
    from core.user.session import resolve_data

    existing(Path(args.out), args.force)  # before the run: folders, FIFOs, devices, no --force
    if args.sql_metrics:
        raise UserError("--sql-metrics applies to the built-in network only; export a user "
                        "trace's metrics with `metrics RUN`")
    prog = load(args.file, time_limit=args.time_limit)
    seed = prog.seed if args.seed is None else args.seed
    X, y = resolve_data(prog, args.dataset, seed)
    rec = record(prog, X, y, seed=seed, lr=args.lr or prog.lr, iterations=args.iterations,
                 every=args.checkpoint_every or 64)
    size = save(rec, args.out, args.force)
    print(f"recorded {rec.n:,} iterations of {args.file} (source sha256 {prog.sha256[:12]}…) "
          f"to {args.out}: {size / 1e3:.1f} kB ({size / max(rec.n, 1):.1f} bytes/iteration), "
          f"{len(rec.events)} events")
    if rec.meta["status"] == "interrupted":
        kept = f"iterations 0..{rec.n - 1}" if rec.n else "no iterations, only the set-up"
        print(f"interrupted: kept {kept} of {args.iterations:,} in {args.out}",
              file=sys.stderr)
        return 130
    return 0


def cmd_replay_user(args: argparse.Namespace) -> int:
    from core.user.loader import UserError
    from tui_backprop.user_app import replay_app

    if getattr(args, "op", None):
        raise UserError("--op names a built-in op; a user trace starts at --iteration I")
    app = replay_app(args.run, iteration=args.iteration)
    app.run(mouse=args.mouse)
    return app.return_code or 0


def user_summary(path: str) -> dict[str, Any]:
    """What `info` shows of a user trace, as plain JSON-able data."""
    from core.user.replay import file_status
    from core.user.usertrace import UserTrace

    with UserTrace(path) as tr:
        rec, size = tr.recording, tr.file_bytes()
    m, n = rec.meta, rec.n
    final = None
    if n:
        h = rec.history
        final = {"iteration": n - 1, "loss": _num(h.loss[-1]), "lr": m["lr"],
                 "grad_norm": dict(zip(m["params"], map(_num, h.grad_norm[-1]), strict=True)),
                 "weight_norm": dict(zip(m["params"], map(_num, h.weight_norm[-1]),
                                         strict=True))}
    kinds = Counter(e.kind for e in rec.events)
    return {"path": path, "kind": "user", "format_version": int(m["format_version"]),
            "status": m["status"], "file": m["display"], "resolved": m["path"],
            "sha256": m["sha256"], "on_disk": file_status(rec) or "unchanged",
            "seed": m["seed"], "lr": m["lr"],
            "params": {k: list(v.shape) for k, v in rec.checkpoints[0].items()},
            "data": {"X": list(rec.X.shape), "y": list(rec.y.shape)},
            "iterations": n, "target": int(m.get("target", "0") or 0), "file_bytes": size,
            "bytes_per_iteration": size / n if n else None,
            "checkpoint_every": m["checkpoint_every"], "checkpoints": len(rec.checkpoints),
            "events": {"count": len(rec.events), "by_kind": dict(sorted(kinds.items())),
                       "first": [{"iteration": e.iteration, "op": e.op, "kind": e.kind,
                                  "detail": e.detail} for e in rec.events[:5]]},
            "final": final, "created": m.get("created"), "numpy": m.get("numpy"),
            "machine": m.get("machine")}


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None  # JSON has no NaN


def cmd_verify_user(args: argparse.Namespace) -> int:
    """SQLite's page check, then the whole user trace read and checked (every CRC)."""
    from core.store.trace import TraceError
    from core.user.usertrace import UserTrace

    with UserTrace(args.run) as tr:
        problems = [r[0] for r in tr.con.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            raise TraceError(f"{args.run}: damaged database pages "
                             f"({' '.join(problems[0].split())})")
        rec = tr.recording
    print(f"{args.run}: ok · your own code, {rec.n:,} iterations, {len(rec.checkpoints)} "
          "checkpoints; every checksum matches")
    return 0


def cmd_info_user(args: argparse.Namespace) -> int:
    info = user_summary(args.run)
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    status = {"complete": "complete", "interrupted": "stopped early"}.get(info["status"],
                                                                           info["status"])
    shapes = ", ".join(f"{k} {'×'.join(map(str, s)) or 'scalar'}"
                       for k, s in info["params"].items())
    lines = [f"trace       {info['path']}  (format {info['format_version']}, your own code, "
             f"{status})",
             f"file        {info['file']}  sha256 {info['sha256'][:16]}…  ({info['on_disk']})",
             f"params      {shapes}",
             f"data        X {tuple(info['data']['X'])}, y {tuple(info['data']['y'])}  "
             f"seed {info['seed']}  lr {info['lr']:g}",
             f"iterations  {info['iterations']:,} of {info['target']:,} requested",
             f"size        {info['file_bytes'] / 1e3:.1f} kB"
             + (f", {info['bytes_per_iteration']:.1f} bytes/iteration" if info["iterations"]
                else "")
             + f"; checkpoint every {info['checkpoint_every']} ({info['checkpoints']})"]
    f = info["final"]
    if f:
        norms = "  ".join(f"‖∇{k}‖ {_fmt(v)}" for k, v in f["grad_norm"].items())
        lines.append(f"final       it {f['iteration']:,}: loss {_fmt(f['loss'])}  {norms}")
    from tui_backprop.trace_cli import info_tail

    print("\n".join(lines + info_tail(info)))
    return 0


def _fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.4g}"


def cmd_metrics_user(args: argparse.Namespace) -> int:
    """CSV/JSONL of a user trace: loss, lr, per parameter ‖∇p‖, ‖p‖ and their ratio.

    The columns are the built-in ones (accuracy and saturation are empty: the
    contract has no predictions), layer k being the k-th parameter init() returns."""
    from core.engine.history import History
    from core.user.loader import UserError
    from core.user.usertrace import read
    from tui_backprop.compare_cli import cmd_metrics

    if args.sql:
        raise UserError("--sql applies to traces of the built-in network; `metrics RUN "
                        "--out run.csv` exports a user trace")
    rec = read(args.run)
    return cmd_metrics(args, source=(History.wrap(rec.history), rec.events))


def cmd_check(args: argparse.Namespace) -> int:
    from core.user.check import run_check
    from core.user.loader import load
    from core.user.session import resolve_data

    prog = load(args.file, time_limit=args.time_limit)
    seed = prog.seed if args.seed is None else args.seed
    X, y = resolve_data(prog, args.dataset, seed)
    report = run_check(prog, X, y, args.at, seed=seed, lr=args.lr, max_entries=args.samples,
                       threshold=args.threshold)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print_report(report, f"{args.file} · X {X.shape}, y {y.shape} · seed {seed} · "
                             f"central differences, ε = 1e-5, float64", print)
    return 0 if report.passed else 1


def _fmt_index(idx: tuple[int, ...] | None) -> str:
    return "-" if idx is None else "[" + ", ".join(map(str, idx)) + "]"


def _row(p: ParamResult, width: int) -> str:
    shape = "×".join(map(str, p.shape)) or "scalar"
    verdict = "PASS" if p.passed else "FAIL"
    if p.max_rel_error is None:
        return f"  {p.name:<{width}}  {shape:>9}  {'-':>9}  {'':<24}{verdict}"
    return (f"  {p.name:<{width}}  {shape:>9}  {p.max_rel_error:9.2e}  "
            f"{_fmt_index(p.worst_index):<8} {p.analytic: .3e} {p.numeric: .3e}  {verdict}")


def print_report(report: CheckReport, header: str, out: Callable[[str], None]) -> None:
    out(header)
    fails: list[str] = []
    for it in report.iterations:
        width = max(4, *(len(p.name) for p in it.params))
        threshold = it.params[0].threshold if it.params else THRESHOLD
        out(f"\niteration {it.iteration} · loss {it.loss:.6g} · pass if max rel error ≤ "
            f"{threshold:g}")
        out(f"  {'name':<{width}}  {'shape':>9}  {'max rel':>9}  {'worst':<8} "
            f"{'analytic':>10} {'numeric':>10}")
        for p in it.params:
            out(_row(p, width))
            if not p.passed:
                fails.append(f"{p.name} at {it.iteration}")
                pad = " " * (width + 4)
                out(textwrap.fill(p.diagnosis, 96, initial_indent=pad + "└ ",
                                  subsequent_indent=pad + "  "))
                if p.fit is not None:
                    out(f"  {'':<{width}}    fit: analytic ≈ {p.fit.scale:.6g}·numeric "
                        f"{'+' if p.fit.offset >= 0 else '−'} {abs(p.fit.offset):.3g}"
                        + (f" {'+' if p.fit.weight >= 0 else '−'} {abs(p.fit.weight):.3g}·{p.name}"
                           if p.fit.weight else ""))
            if not p.sample.full:
                out(f"  {'':<{width}}    checked {p.sample}")
    for iteration, why in report.skipped:
        out(f"\niteration {iteration} not checked: {why}")
    total = sum(len(it.params) for it in report.iterations)
    if report.passed:
        out(f"\nPASS: all {total} gradient checks passed")
    else:
        out(f"\nFAIL: {len(fails)} of {total} gradient checks failed ({', '.join(fails)})")


def cmd_debug(args: argparse.Namespace) -> int:
    from tui_backprop.user_app import run_debug

    return run_debug(args)


__all__ = ["add_user_commands", "cmd_check", "cmd_debug", "print_report"]


if __name__ == "__main__":  # pragma: no cover - convenience
    from tui_backprop.cli import main

    sys.exit(main(["check", *sys.argv[1:]]))
