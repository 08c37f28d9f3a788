"""Keypress → repainted frame latency of the TUI, and start → first frame.

Run: python benchmarks/bench_tui.py [--presses 200] [--startup RUNS] [--cli RUNS]

Headless Textual pilot at 120×40: each sample is `press("n"); pause()` — the
key travels through the app's message queue, the screen steps the cursor and
every changed widget repaints before `pause()` returns.  One iteration has
~16 ops, so about one press in 16 crosses into a new iteration (the engine
materializes it: the p95 shows that cost).  Start-up is measured in a fresh
interpreter, from process start to the first `Ready` (first frame displayed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from textual import events
from textual._compositor import CompositorUpdate

from core.engine.stepper import Stepper
from core.model.config import Config
from core.model.datasets import Dataset
from tui_backprop.app import BackpropApp, live_label

FIRST_FRAME = """
import os, time, sys
launched = float(os.environ["BENCH_LAUNCHED"])  # wall clock just before the parent's Popen
t0 = time.perf_counter()
from textual.app import App
import tui_backprop.app as app_module
run = App.run
App.run = lambda self, **kw: run(self, headless=True, size=(120, 40))  # the real `run`, headless
first = []
def on_ready(self) -> None:
    first.append(f"{time.time() - launched:.4f} {time.perf_counter() - t0:.4f}")
show = app_module.BackpropApp._show_main
def show_main(self) -> None:  # then the main screen's own first paint: the engine is up
    show(self)
    def done() -> None:
        sys.stdout.write(f"{first[0]} {time.time() - launched:.4f}\\n")
        self.exit()
    self.call_after_refresh(done)
app_module.BackpropApp.on_ready = on_ready
app_module.BackpropApp._show_main = show_main
from tui_backprop.cli import main
main(["run"])  # what `tui-backprop` runs: the default preset through the command line
"""
TRIVIAL = """
import os, time, sys
launched = float(os.environ["BENCH_LAUNCHED"])
t0 = time.perf_counter()
from textual.app import App
from textual.widgets import Static

class Trivial(App):
    def compose(self):
        yield Static("hello")

    def on_ready(self) -> None:
        sys.stdout.write(f"{time.time() - launched:.4f} {time.perf_counter() - t0:.4f}\\n")
        self.exit()

Trivial().run(headless=True, size=(120, 40))
"""


def seed_config() -> Config:
    try:
        from core.model.presets import preset_config

        return preset_config("scratch-mlp")
    except (ImportError, KeyError):
        return Config(hidden=(10,))


def big_stepper() -> Stepper:
    rng = np.random.default_rng(0)
    ds = Dataset(name="random", X=rng.standard_normal((512, 784)),
                 labels=rng.integers(0, 10, 512), n_classes=10)
    return Stepper(Config(hidden=(512,), dataset="random"), data=ds)


async def step_latency(stepper: Stepper, presses: int, size: tuple[int, int]
                       ) -> tuple[list[float], list[float]]:
    """(key → painted frame, pilot press+pause) per "n" press, in seconds.

    The first figure posts the key event as the terminal driver does and stops
    the clock at the first frame painted (encoded to terminal escapes, as a real
    terminal write would) after the step action ran.  The second is the pilot's
    own `press(); pause()` round trip, which includes its fixed idle-detection
    sleeps (≥ 3 × 20 ms, see `empty_app_floor`).
    """
    app = BackpropApp(stepper, label=live_label(stepper.cfg, stepper.program))
    state = {"stepped": False, "t": 0.0}
    painted = asyncio.Event()
    display = app._display

    def timed_display(screen, renderable) -> None:
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(app.console)
        display(screen, renderable)
        if state["stepped"] and not painted.is_set():
            state["t"] = time.perf_counter()
            painted.set()

    app._display = timed_display  # type: ignore[method-assign]
    lat, pilot_rt = [], []
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        step = screen.action_step

        def timed_step() -> None:
            step()
            state["stepped"] = True

        screen.action_step = timed_step  # type: ignore[method-assign]
        for _ in range(presses):
            state["stepped"] = False
            painted.clear()
            t0 = time.perf_counter()
            app._driver.send_message(events.Key("n", "n"))
            await asyncio.wait_for(painted.wait(), 10)
            lat.append(state["t"] - t0)
            await pilot.pause()
        for _ in range(min(presses, 50)):
            t0 = time.perf_counter()
            await pilot.press("n")
            await pilot.pause()
            pilot_rt.append(time.perf_counter() - t0)
    return lat, pilot_rt


async def empty_app_floor(presses: int = 30) -> list[float]:
    """The pilot's press+pause round trip on an app that does nothing: its floor."""
    from textual.app import App

    class Empty(App[None]):
        BINDINGS = [("n", "noop", "noop")]

        def action_noop(self) -> None:
            pass

    out = []
    async with Empty().run_test(size=(120, 40)) as pilot:
        for _ in range(presses):
            t0 = time.perf_counter()
            await pilot.press("n")
            await pilot.pause()
            out.append(time.perf_counter() - t0)
    return out


def first_frame(inside: list[float], runs: int = 7, source: str = FIRST_FRAME) -> list[float]:
    """Process launch → first frame (Textual's Ready), per run; `inside` gets the part
    after the interpreter started (first import → Ready)."""
    return first_frames({"x": source}, runs, {"x": inside})["x"]


def first_frames(sources: dict[str, str], runs: int,
                 inside: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Launch → first frame of each source, in alternating fresh processes."""
    out: dict[str, list[float]] = {k: [] for k in sources}
    folder = tempfile.mkdtemp(prefix="bench-tui-")
    scripts = {}
    for k, source in sources.items():
        scripts[k] = os.path.join(folder, f"first_frame_{k}.py")
        with open(scripts[k], "w") as fh:
            fh.write(source)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for r in range(runs):
        names = list(sources) if r % 2 == 0 else list(reversed(list(sources)))
        for k in names:
            env = dict(os.environ, BENCH_LAUNCHED=repr(time.time()),
                       PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
            proc = subprocess.run([sys.executable, scripts[k]], capture_output=True, text=True,
                                  env=env, check=True)
            vals = [float(v) for v in proc.stdout.split()]
            out[k].append(vals[0])
            if inside is not None and k in inside:
                inside[k].append(vals[1])
            if len(vals) > 2:  # ours: the main screen painted too
                out.setdefault(k + " main", []).append(vals[2])
    return out


def startup_only(runs: int) -> None:
    """Start-up rows alone (fresh processes, ours and the trivial app alternating)."""
    got = first_frames({"ours": FIRST_FRAME, "trivial": TRIVIAL}, runs)
    print(row("launch → first frame (fresh process)", got["ours"], "≤ 1.5× trivial"))
    print(row("launch → main screen painted", got["ours main"], "(engine built)"))
    print(row("launch → first frame, trivial Textual app", got["trivial"], "(reference)"))
    ratios = [a / b for a, b in zip(got["ours"], got["trivial"], strict=True)]
    print(f"first-frame ratio ours / trivial Textual app: median of pairs "
          f"{statistics.median(ratios):.2f}×, of medians "
          f"{statistics.median(got['ours']) / statistics.median(got['trivial']):.2f}×")


def child_cpu(cmd: list[str]) -> float:
    """User + system CPU seconds of one fresh child process."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited with {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def cli_only(runs: int) -> None:
    """`tui-backprop --help` and `presets` against `python -c "import argparse"`: CPU time
    of fresh processes, alternating, through the installed console script (what a user runs).
    """
    script = os.path.join(os.path.dirname(sys.executable), "tui-backprop")  # not a shim
    if not os.path.exists(script):
        raise SystemExit("error: the tui-backprop console script is not installed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # bytecode cached, as after any install (this sandbox sets PYTHONDONTWRITEBYTECODE=1)
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(root, "core"),
                    os.path.join(root, "tui_backprop")], check=True)
    cmds = {"argparse": [sys.executable, "-c", "import argparse"],
            "--help": [script, "--help"], "presets": [script, "presets"]}
    got: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(runs):
        for k in (list(cmds) if r % 2 == 0 else list(reversed(list(cmds)))):
            got[k].append(child_cpu(cmds[k]))
    base = statistics.median(got["argparse"])
    print(f"{'command (CPU, fresh process)':<34} {'n':>5} {'p50 ms':>9} {'ratio':>9}   target")
    for k, xs in got.items():
        target = "(reference)" if k == "argparse" else "≤ 1.5× import argparse"
        print(f"{k:<34} {len(xs):>5} {statistics.median(xs) * 1000:>9.1f} "
              f"{statistics.median(xs) / base:>8.2f}×   {target}")


def row(name: str, xs: list[float], target: str) -> str:
    ms = sorted(x * 1000 for x in xs)
    p50 = statistics.median(ms)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"{name:<34} {len(ms):>5} {p50:>9.1f} {p95:>9.1f} {max(ms):>9.1f}   {target}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--startup", type=int, metavar="RUNS", default=0,
                    help="only the start-up rows, over RUNS alternating launches")
    ap.add_argument("--cli", type=int, metavar="RUNS", default=0,
                    help="only the --help / presets CPU rows, over RUNS alternating launches")
    args = ap.parse_args()
    if args.cli:
        return cli_only(args.cli)
    if args.startup:
        return startup_only(args.startup)
    print(f"{'case':<40} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}   target")
    cases = [("seed 2-10-2", lambda: Stepper(seed_config()), (120, 40), "p50 ≤ 30"),
             ("seed 2-10-2", lambda: Stepper(seed_config()), (80, 24), "p50 ≤ 30"),
             ("784-512-10 N=512", big_stepper, (120, 40), "p50 ≤ 100"),
             ("784-512-10 N=512", big_stepper, (80, 24), "p50 ≤ 100")]
    pilots = []
    for name, make, size, target in cases:
        lat, rt = asyncio.run(step_latency(make(), args.presses, size))
        print(row(f"key→frame {name} {size[0]}×{size[1]}", lat, target))
        pilots.append((f"pilot press+pause {name} {size[0]}×{size[1]}", rt))
    for name, rt in pilots:
        print(row(name, rt, "(includes pilot sleeps)"))
    print(row("pilot press+pause, empty app (floor)", asyncio.run(empty_app_floor()), ""))
    startup_only(9)
    cli_only(11)


if __name__ == "__main__":
    main()
