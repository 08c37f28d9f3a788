"""`record`, `info`, `replay` and trace `export`: the saved-trace sub-commands.

Errors of any kind (a damaged trace, a full disk, an iteration outside the
recording) surface as TraceError, which `cli.main` prints as one `error: ...`
line with exit status 2.  (TraceError, not cli.UsageError: under `python -m
tui_backprop.cli` the cli module is loaded twice and its classes differ.)
Ctrl-C (or SIGTERM) during `record` stops cleanly: everything recorded so far
stays in the file, the exit status is 130 (143) and a note on stderr says what
was kept.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_backprop.arg_types import non_negative, positive
from tui_backprop.cli import COMMAND_HELP, export_names
from tui_backprop.options import run_from_args

if TYPE_CHECKING:  # loaded by the commands themselves: `--help` stays NumPy-free
    import numpy as np

    from core.store.recorder import Recorder
    from core.store.replay import Replay
    from core.store.trace import TraceReader

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)




def add_trace_commands(sub: argparse._SubParsersAction,
                       add_run_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register record / info / replay on the main parser's sub-commands."""
    rec = sub.add_parser("record", help=COMMAND_HELP["record"])
    add_run_options(rec)
    rec.add_argument("--iterations", type=positive, required=True, metavar="N",
                     help="iterations to record (Ctrl-C stops early and keeps them)")
    rec.add_argument("--out", required=True, metavar="RUN", help="trace file to write")
    rec.add_argument("--force", action="store_true",
                     help="replace RUN if it exists (only once the new one is under way)")
    rec.add_argument("--checkpoint-every", type=positive, metavar="K",
                     help="parameters saved every K iterations (default: from the net size, "
                          "so any iteration re-materializes in ~25 ms)")
    rec.add_argument("--sql-metrics", action="store_true",
                     help="also write the `metrics` SQL table (~73 more bytes/iteration): "
                          "sqlite3 RUN 'select iteration, loss from metrics'")
    rec.set_defaults(func=cmd_record)
    info = sub.add_parser("info", help=COMMAND_HELP["info"])
    info.add_argument("run", metavar="RUN")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)
    rep = sub.add_parser("replay", help=COMMAND_HELP["replay"])
    rep.add_argument("run", metavar="RUN")
    rep.add_argument("--iteration", type=non_negative, metavar="I",
                     help="start at this iteration (default: the init ops)")
    rep.add_argument("--op", metavar="NAME", help="start at this op (key or name, e.g. dL/dW1)")
    rep.add_argument("--mouse", action="store_true",
                     help="enable mouse support (off by default: keyboard-first, SSH-safe)")
    rep.set_defaults(func=cmd_replay)
    ver = sub.add_parser("verify", help=COMMAND_HELP["verify"])
    ver.add_argument("run", metavar="RUN")
    ver.set_defaults(func=cmd_verify)


# ---------------------------------------------------------------------- record
def cmd_record(args: argparse.Namespace) -> int:
    from core.store.recorder import Recorder

    cfg, data = run_from_args(args, frames=1)
    stopped: list[int] = []  # Ctrl-C (or SIGTERM) only sets a flag: the loop stops cleanly
    old = {s: signal.signal(s, lambda signum, frame: stopped.append(signum))
           for s in STOP_SIGNALS}
    try:
        rec = Recorder(args.out, cfg, data, force=args.force, every=args.checkpoint_every,
                       target=args.iterations, sql_metrics=args.sql_metrics)
        _record_with_progress(rec, args.iterations, lambda: bool(stopped))
        rec.close("interrupted" if stopped else "complete")
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if rec.discarded:
        print(f"interrupted before the first iteration: {args.out} is unchanged",
              file=sys.stderr)
        return 128 + stopped[0] if stopped else 0
    n, size = rec.pos, Path(args.out).stat().st_size
    print(f"recorded {n:,} iterations to {args.out}: {size / 1e6:.2f} MB "
          f"({size / max(n, 1):.1f} bytes/iteration), {sum(rec.flags.values())} events")
    if stopped:
        kept = f"iterations 0..{n - 1}" if n else "no iterations, only the config"
        print(f"interrupted: kept {kept} of {args.iterations:,} in {args.out}", file=sys.stderr)
        return 128 + stopped[0]  # 130 for Ctrl-C, 143 for SIGTERM, as shells expect
    return 0


def _record_with_progress(rec: Recorder, total: int, should_stop: Callable[[], bool]) -> None:
    """The recorder's loop under a rich progress bar on stderr (it/s, ETA, loss, flags)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:  # a log or a pipe: no bar, just the summary at the end
        return rec.run(total, should_stop=should_stop)
    start, t0 = rec.pos, time.monotonic()
    cols = (TextColumn("recording"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} it/s"), TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[flags]}"))
    # transient: once done the bar goes, so an error after it is the only line on stderr
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task("record", total=total, rate="-", loss="-", flags="no flags")

        def show(r: Recorder) -> None:
            dt = time.monotonic() - t0
            flags = ", ".join(f"{k} {v}" for k, v in sorted(r.flags.items())) or "no flags"
            bar.update(task, completed=r.pos - start, rate=f"{(r.pos - start) / dt:,.0f}"
                       if dt > 0 else "-", loss=f"{r.loss:.4g}", flags=flags)

        rec.run(total, should_stop=should_stop, progress=show)


# ---------------------------------------------------------------------- info
def summary(tr: TraceReader) -> dict[str, Any]:
    """Everything `info` shows, as plain JSON-able data."""
    cfg, n = tr.cfg, tr.n
    size = tr.file_bytes()
    final: dict[str, Any] | None = None
    if n:
        last = tr.history.view(n - 1, n)
        final = {"iteration": n - 1, "loss": _num(last.loss[0]), "acc": _num(last.acc[0]),
                 "lr": _num(last.lr[0]), "grad_norm": [_num(v) for v in last.grad_norm[0]],
                 "weight_norm": [_num(v) for v in last.weight_norm[0]],
                 "update_ratio": [_num(v) for v in last.update_ratio[0]]}
    kinds = Counter(e.kind for e in tr.events)
    return {
        "path": str(tr.path), "format_version": int(tr.meta["format_version"]),
        "status": tr.status, "config": cfg.to_dict(),
        "dataset": {"name": cfg.dataset, "stored": "generator + seed" if tr.builtin
                    else "arrays", "rows": int(tr.meta["rows"]), "inputs":
                    int(tr.meta["inputs"]), "classes": tr.n_classes},
        "network": "-".join(str(s) for s in tr.program.sizes),
        "iterations": n, "target": int(tr.meta.get("target", "0") or 0),
        "file_bytes": size, "bytes_per_iteration": size / n if n else None,
        "checkpoint_every": tr.every, "checkpoints": len(tr.checkpoints),
        "events": {"count": len(tr.events), "by_kind": dict(sorted(kinds.items())),
                   "first": [{"iteration": e.iteration, "op": e.op, "kind": e.kind,
                              "detail": e.detail} for e in tr.events[:5]]},
        "final": final, "created": tr.meta.get("created"), "numpy": tr.meta.get("numpy"),
        "machine": tr.meta.get("machine"),
    }


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None  # JSON has no NaN


def cmd_info(args: argparse.Namespace) -> int:
    from core.store.trace import TraceReader

    with TraceReader(args.run) as tr:
        info = summary(tr)
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    status = {"complete": "complete", "interrupted": "stopped by Ctrl-C"}.get(
        info["status"], "not closed (recorder killed, failed or still running)")
    c, d = info["config"], info["dataset"]
    knobs = " ".join(f"{k}={v}" for k, v in c.items() if k not in ("detect", "hidden"))
    lines = [f"trace       {info['path']}  (format {info['format_version']}, {status})",
             f"network     {info['network']}  {knobs}",
             "detectors   " + " ".join(f"{k}={v:g}" for k, v in c["detect"].items()),
             f"dataset     {d['name']}: {d['rows']} rows × {d['inputs']}, {d['classes']} "
             f"classes ({d['stored']})",
             f"iterations  {info['iterations']:,} of {info['target']:,} requested",
             f"file        {info['file_bytes'] / 1e6:.2f} MB"
             + (f", {info['bytes_per_iteration']:.1f} bytes/iteration"
                if info["iterations"] else "")
             + f"; checkpoint every {info['checkpoint_every']} ({info['checkpoints']})"]
    f = info["final"]
    if f:
        lines.append(f"final       it {f['iteration']:,}: loss {_fmt(f['loss'])}  acc "
                     f"{_fmt(f['acc'])}  lr {_fmt(f['lr'])}  ‖∇W‖ {_fmts(f['grad_norm'])}  "
                     f"‖W‖ {_fmts(f['weight_norm'])}  η‖∇‖/‖W‖ {_fmts(f['update_ratio'])}")
    print("\n".join(lines + info_tail(info)))
    return 0


def info_tail(info: dict[str, Any]) -> list[str]:
    """The events and provenance lines `info` prints for any trace, built-in or user."""
    ev = info["events"]
    kinds = ", ".join(f"{k} {v}" for k, v in ev["by_kind"].items())
    lines = [f"events      {ev['count']}" + (f" ({kinds})" if kinds else "")]
    lines += [f"  it {e['iteration']:,} · {e['op']} · {e['kind']}: {e['detail']}"
              for e in ev["first"]]
    lines.append(f"recorded    {info['created']} with NumPy {info['numpy']} on {info['machine']}")
    return lines


def _fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.4g}"


def _fmts(vs: list[float | None]) -> str:
    return "[" + ", ".join(_fmt(v) for v in vs) + "]"


def cmd_verify(args: argparse.Namespace) -> int:
    """Every checksum of a trace; the first damaged part is the one `error:` line."""
    from core.store.trace import TraceReader
    from core.store.trace_check import verify

    with TraceReader(args.run) as tr:
        print(verify(tr))
    return 0


# ---------------------------------------------------------------------- replay / export
def _open_at(path: str, iteration: int | None, op: str | int | None = None) -> Replay:
    """A replay with its cursor at (iteration, op), range and op name checked first.

    An op without an iteration means that op of iteration 0.
    """
    from core.store.replay import Replay
    from core.store.trace import TraceError

    rp = Replay(path)
    if op is not None and iteration is None:
        iteration = 0
    op = 0 if op is None else op
    if iteration is not None:
        if iteration >= rp.n:
            rp.close()
            raise TraceError(f"iteration {iteration} is outside the recorded range of {path}"
                             + (f" (0..{rp.n - 1})" if rp.n else " (no iterations recorded)"))
        if isinstance(op, str) and op not in {k for o in rp.program.ops
                                              for k in (o.key, o.name)}:
            rp.close()
            raise TraceError(f"unknown op {op!r}; ops are "
                             + ", ".join(o.name for o in rp.program.ops))
        rp.jump(iteration, op)
    return rp


def cmd_replay(args: argparse.Namespace) -> int:
    rp = _open_at(args.run, args.iteration, args.op)
    try:
        from tui_backprop.app import run_replay
    except ImportError:
        from core.store.trace import TraceError

        rp.close()
        raise TraceError("replay needs the app (tui_backprop.app), which is not installed"
                         ) from None
    return run_replay(rp, mouse=args.mouse)


def trace_export(path: str, iteration: int | None) -> dict[str, np.ndarray]:
    """The arrays `export` writes for one recorded iteration: bit-identical to a live run."""
    if iteration is None:
        from core.store.trace import TraceError

        raise TraceError("export needs --iteration I")
    rp = _open_at(path, iteration)
    try:
        arrays = rp.frame.arrays()
        if rp.divergence:
            print(f"warning: {rp.divergence}", file=sys.stderr)
        return {k: arrays[k] for k in export_names(rp.program.depth, rp.cfg.bias)}
    finally:
        rp.close()
