"""The `tui-backprop` command: the app, and headless sub-commands.

Bad input of any kind ends here as one line `error: ...` on stderr and exit
status 2 — never a traceback, never a half-written file.

NumPy, the engine and the app are imported by the commands that need them, not
here: `--help` and `presets` answer at the cost of a bare argparse script, and
BLAS threads can still be chosen (`--threads`) before NumPy loads.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core.model.choices import ConfigError
from tui_backprop.arg_types import non_negative
from tui_backprop.options import add_run_options, config_from_args, run_from_args

if TYPE_CHECKING:
    import numpy as np

    from core.model.config import Config

# errors that are the user's input, by module: checked only if that module was loaded
INPUT_ERRORS = (("core.model.limits", "LimitError"), ("core.model.datasets", "DatasetError"),
                ("core.store.trace", "TraceError"), ("core.user.loader", "UserError"))

# Sub-commands defined in the other command modules, with their one-line help.  Those
# modules (and what they import) load only when one of their commands runs: `--help`,
# `presets`, `run` and `export` list them from this table alone.
COMMAND_HELP: dict[str, str] = {
    "record": "train headless and save a replayable trace",
    "info": "describe a saved trace",
    "replay": "open the app on a saved trace",
    "verify": "check every block and checkpoint checksum of a trace",
    "diff": "compare two runs iteration by iteration, then op by op",
    "metrics": "write a trace's per-iteration metrics as CSV or JSONL",
    "check": "finite-difference check of FILE.py's backward()",
    "debug": "step through FILE.py line by line in the app",
}


class UsageError(Exception):
    """Bad command-line input; printed as `error: <message>`."""


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are our one-line errors."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def export_names(depth: int, bias: bool) -> list[str]:
    """The arrays `export` writes, in a stable order."""
    names = ["X", "y", "loss"]
    for l in range(1, depth + 1):
        names += [f"W{l}"] + ([f"b{l}"] if bias else [])
        names += [f"z{l}", f"h{l}", f"dL_dh{l}", f"dh{l}_dz{l}", f"dL_dz{l}", f"dL_dW{l}"]
        names += [f"dL_db{l}"] if bias else []
    return names


def check_target(path: str, force: bool) -> None:
    """An output path may be new, or (with --force) an existing regular file: never a FIFO,
    a device or a folder, which a rename would silently replace or fail on (the same rule
    as for traces)."""
    from core.store.columns import TraceError
    from core.store.recorder import existing

    try:
        existing(Path(path), force)
    except TraceError as exc:
        raise UsageError(str(exc)) from None


def write_npz(path: str, arrays: dict[str, np.ndarray], force: bool) -> None:
    """Write atomically: a temp file in the same folder, renamed over the target."""
    import tempfile

    import numpy as np

    check_target(path, force)
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tui-backprop-", suffix=".npz", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        if not force and os.path.lexists(target):  # appeared meanwhile: still never clobber
            raise FileExistsError(errno.EEXIST, "it appeared while writing; nothing replaced")
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def live_export(cfg: Config, iteration: int, data: Any = None) -> dict[str, np.ndarray]:
    """Every named matrix of one iteration of a live run (see export_progress.run_to)."""
    from tui_backprop.export_progress import run_to

    frame, depth = run_to(cfg, data, iteration)
    arrays = frame.arrays()
    return {k: arrays[k] for k in export_names(depth, cfg.bias)}


def cmd_presets(args: argparse.Namespace) -> int:
    """The presets table, from the presets' own changes: each names its network, data and
    rate (checked in tests/test_cli.py), so no Config (nor `dataclasses`) is needed here."""
    # plain text: rich alone costs more start-up than the whole budget of this command
    import shutil
    import textwrap

    from core.model.dataset_names import SHAPES
    from core.model.presets import DEFAULT_PRESET, PRESETS

    width = max(60, min(120, shutil.get_terminal_size((100, 24)).columns))
    print("presets (tui-backprop run --preset NAME)\n")
    for name, preset in PRESETS.items():
        changes = preset.changes
        d, k = SHAPES[changes["dataset"]]
        net = "-".join(str(w) for w in (d, *changes["hidden"], changes.get("outputs") or k))
        knobs = [f"lr={changes['lr']:g}"] + [f"{k}={v}" for k, v in changes.items()
                                             if k not in ("hidden", "lr", "dataset")]
        head = f"{name}{' (default)' if name == DEFAULT_PRESET else ''}  ·  {net} " \
               f"{changes['dataset']}  ·  {' '.join(knobs)}"
        print(textwrap.fill(head, width, subsequent_indent="    "))
        print(textwrap.fill(preset.summary, width, initial_indent="    ",
                            subsequent_indent="    "))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.run:
        from tui_backprop.trace_cli import trace_export  # the saved-trace issue

        arrays = trace_export(args.run, args.iteration)
    else:
        if args.iteration is None:
            raise UsageError("export needs --iteration I")
        check_target(args.out, args.force)  # before the work, not after hours of it
        cfg, data = run_from_args(args, frames=1)
        arrays = live_export(cfg, args.iteration, data)
    write_npz(args.out, arrays, args.force)
    print(f"wrote {len(arrays)} arrays of iteration {args.iteration} to {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tui_backprop.app import run_app

    return run_app(config_from_args(args), mouse=args.mouse)




def build_parser(command: str | None = None) -> Parser:
    """The whole parser; the other modules' commands are full only if `command` is one of
    them (they extend each other's parsers, so they load together), else one-line stubs."""
    p = Parser(prog="tui-backprop",
               description="Step through backpropagation of a small MLP in the terminal.")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="BLAS threads for NumPy (default 1; any position on the line)")
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    run = sub.add_parser("run", help="open the app on a live run (the default command)")
    add_run_options(run)
    run.add_argument("--mouse", action="store_true",
                     help="enable mouse support (off by default: keyboard-first, SSH-safe)")
    run.set_defaults(func=cmd_run)
    pre = sub.add_parser("presets", help="list the presets")
    pre.set_defaults(func=cmd_presets)
    exp = sub.add_parser("export", help="write every named matrix of one iteration to .npz")
    exp.add_argument("run", nargs="?", metavar="RUN", help="a saved trace (else a live run)")
    add_run_options(exp)
    exp.add_argument("--iteration", type=non_negative, metavar="I", required=True,
                     help="iteration to export (0 = the first)")
    exp.add_argument("--out", required=True, metavar="FILE.npz", help="output file")
    exp.add_argument("--force", action="store_true", help="overwrite FILE.npz if it exists")
    exp.set_defaults(func=cmd_export)
    if command not in COMMAND_HELP:
        for name, text in COMMAND_HELP.items():
            sub.add_parser(name, help=text, add_help=False)
        return p
    from tui_backprop.compare_cli import add_compare_commands  # diff, metrics
    from tui_backprop.trace_cli import add_trace_commands  # record, info, replay, verify
    from tui_backprop.user_cli import add_user_commands  # check / debug FILE.py (issue 9)

    add_trace_commands(sub, add_run_options)
    add_compare_commands(sub, add_run_options)
    add_user_commands(sub)
    return p


def is_input_error(exc: BaseException) -> bool:
    """Bad input (printed as one line), as opposed to a bug (a traceback)."""
    if isinstance(exc, (UsageError, ConfigError)):
        return True
    return any(isinstance(exc, getattr(sys.modules[mod], name))
               for mod, name in INPUT_ERRORS if mod in sys.modules)


def take_threads(argv: list[str]) -> list[str]:
    """Remove `--threads N` (anywhere) and cap BLAS threads before NumPy is imported.

    Default 1: on a small shared machine a second OpenBLAS thread made a
    784-512-10 iteration 2-4× slower (benchmarks/bench_fastpath.py); an explicit
    OPENBLAS_NUM_THREADS in the environment is kept unless --threads is given.
    """
    threads = None
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--threads" or a.startswith("--threads="):
            value = a.partition("=")[2] if "=" in a else next(it, "")
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"--threads needs a positive integer, got {value!r}")
            threads = value
        else:
            rest.append(a)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if threads is not None:
            os.environ[var] = threads
        else:
            os.environ.setdefault(var, "1")
    return rest


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = take_threads(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
            argv = ["run", *argv]  # `tui-backprop --preset X` means `tui-backprop run --preset X`
        parser = build_parser(argv[0])
        args = parser.parse_args(argv)
        if args.command is None:
            args = parser.parse_args(["run", *argv])
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except Exception as exc:
        if isinstance(exc, BrokenPipeError):  # `tui-backprop info RUN | head`: reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if not is_input_error(exc):
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
