"""Start-up stays light: `--help` and `presets` never import NumPy (nor `dataclasses`,
nor the other commands' modules); BLAS threads are chosen before NumPy loads; the
NumPy-free dataset shapes match the generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.model.dataset_names import BUILTIN, SHAPES
from core.model.datasets import make_dataset

ROOT = Path(__file__).resolve().parents[2]


def probe(code: str, **env: str) -> str:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if var not in env:
            full.pop(var, None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def loaded_after(args: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after main(args)."""
    out = probe("import sys, contextlib, io\n"
                "from tui_backprop.cli import main\n"
                "with contextlib.redirect_stdout(io.StringIO()):\n"
                "    try:\n"
                f"        main({args!r})\n"
                "    except SystemExit:\n"
                "        pass\n"
                f"print(' '.join(sorted(m for m in {modules!r} if m in sys.modules)))")
    return out.split()


@pytest.mark.parametrize("args", [["--help"], ["presets"], ["record", "--help"]])
def test_help_and_presets_do_not_import_numpy(args: list[str]) -> None:
    assert loaded_after(args, ("numpy", "rich", "textual", "core.store.trace")) == []


@pytest.mark.parametrize("args", [["--help"], ["presets"], ["run", "--help"]])
def test_help_and_presets_load_neither_dataclasses_nor_other_commands(args: list[str]
                                                                       ) -> None:
    """`dataclasses` pulls in `inspect` (~7 ms): a third of our budget of 1.5× a bare
    argparse script (benchmarks/bench_tui.py --cli)."""
    assert loaded_after(args, ("dataclasses", "inspect", "core.model.config",
                               "tui_backprop.trace_cli", "tui_backprop.user_cli",
                               "tui_backprop.compare_cli")) == []


def test_the_command_list_is_the_same_with_or_without_the_command_modules() -> None:
    """`--help` lists the other modules' commands from a table: it must name every
    command those modules register, in their order, with their help."""
    from tui_backprop.cli import build_parser

    def listing(command: str | None) -> list[tuple[str, str]]:
        sub = next(a for a in build_parser(command)._actions if a.dest == "command")
        return [(c.dest, c.help) for c in sub._choices_actions]

    full = listing("record")
    assert listing(None) == full
    assert [name for name, _ in full][3:] == ["record", "info", "replay", "verify", "diff",
                                              "metrics", "check", "debug"]


def test_threads_default_to_one_and_the_option_wins() -> None:
    code = ("import os\nfrom tui_backprop.cli import take_threads\n"
            "rest = take_threads({})\nprint(rest, os.environ['OPENBLAS_NUM_THREADS'])")
    assert probe(code.format(["presets"])).split() == ["['presets']", "1"]
    assert probe(code.format(["run", "--threads", "2"])).split() == ["['run']", "2"]
    assert probe(code.format(["--threads=3"]), OPENBLAS_NUM_THREADS="4").split()[-1] == "3"
    assert probe(code.format([]), OPENBLAS_NUM_THREADS="4").split()[-1] == "4"


def test_a_bad_thread_count_is_one_line_error() -> None:
    res = subprocess.run([sys.executable, "-m", "tui_backprop.cli", "presets", "--threads", "x"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("error: --threads")


def test_numpy_free_shapes_match_the_generated_datasets() -> None:
    assert set(SHAPES) == set(BUILTIN)
    for name, (d, k) in SHAPES.items():
        data = make_dataset(name, 0)
        assert (data.X.shape[1], data.n_classes) == (d, k), name
