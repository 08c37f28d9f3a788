"""The main screen's run controls: breakpoints (x), knobs while paused (k), save (s).

A mixin of `MainScreen`, so its wiring there stays a few lines: the bindings and
palette entries, `continue_rule` (read by the continue job), `describe_break`
(the status line after a breakpoint stop) and `with_break` (the flags strip).
The engine does the work: `core.inspect.breakpoints` evaluates, `Stepper.set_knobs`
rewrites the future, `Recorder` writes the trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.binding import Binding
from textual.worker import get_current_worker

from core.engine import knobs as kn
from core.inspect.breakpoints import KIND as BREAK
from core.inspect.breakpoints import BreakpointList
from core.inspect.detectors import Event
from core.model.config import Config
from core.model.datasets import Dataset
from tui_backprop.view import FlagLine

CONTROL_ACTIONS = {"breakpoints", "knobs", "save"}
BINDINGS = [
    Binding("x", "breakpoints", "breakpoints", show=False),
    # priority: a focused matrix panel binds k as a vim alias of ↑, which ↑ still does
    Binding("k", "knobs", "knobs", show=False, priority=True),
    Binding("s", "save", "save trace", show=False),
]
PALETTE = [
    ("Breakpoints", "x: stop continue on nan, grad > 10x median, loss rising 5, it 500, "
     "op dL/dW1, event explode", "breakpoints"),
    ("Change knobs from the next iteration", "k: lr, lr decay, regularization, clipping, "
     "batch size", "knobs"),
    ("Save the session as a trace", "s: config, knob changes and every iteration run",
     "save"),
]


class ControlMixin:
    """Mixed into MainScreen: expects `source`, `running`, `note` and `refresh_view`."""

    source: Any
    running: str
    note: str
    hit: Event | None = None  # the breakpoint the last continue stopped at
    _breakpoints: BreakpointList | None = None

    @property
    def breakpoints(self) -> BreakpointList:
        if self._breakpoints is None:
            self._breakpoints = BreakpointList()
        return self._breakpoints

    def check_control(self, action: str) -> bool | None:
        """Knobs and save wait while a job runs (greyed); breakpoints can be edited anytime."""
        return None if self.running and action != "breakpoints" else True

    # ------------------------------------------------------------------ hooks
    def continue_rule(self, src: Any):
        """The breakpoint rule of a continue starting now (None: stop on any flag)."""
        return self.breakpoints.rule(src)

    def describe_break(self, event: Event) -> str | None:
        """Status text of a continue that stopped on `event`; None if it is not a breakpoint."""
        self.hit = event if event.kind == BREAK else None
        return f"break: {event.detail}" if self.hit else None

    def with_break(self, lines: list[FlagLine]) -> list[FlagLine]:
        """The flags strip, led by the breakpoint hit while the cursor is in its iteration."""
        hit = self.hit
        if hit is None or self.source.iteration != hit.iteration:
            return lines
        return [FlagLine(BREAK, hit.iteration, hit.op, hit.detail, 1, True), *lines]

    def _say(self, note: str) -> None:
        self.note = note
        self.refresh_view()

    # ------------------------------------------------------------------ actions
    def action_breakpoints(self) -> None:
        from tui_backprop.screens.breakpoints import BreakpointsScreen  # loaded on first use

        def closed(_: None) -> None:
            n, on = len(self.breakpoints.items), len(self.breakpoints.active)
            self._say(f"{n} breakpoint{'s' * (n != 1)}, {on} on" if n else
                      "no breakpoints: c stops on any flag")

        self.app.push_screen(BreakpointsScreen(self.breakpoints, self.source), closed)

    def action_knobs(self) -> None:
        from tui_backprop.screens.knobs import KnobsScreen

        src = self.source
        if self.running:  # the palette does not grey actions: the job owns the stepper
            return self.app.bell()
        if getattr(src, "end", None) is not None:
            return self._say("a replay's knobs are fixed: they replay as recorded")

        def apply(new: Config) -> str:  # raises ConfigError: the dialog shows it, stays open
            ev = src.set_knobs(**{k: getattr(new, k) for k in kn.KNOBS})
            self.hit = None
            what = ev.detail if ev else "later knob changes dropped"
            self._say(f"knobs from it {src.iteration + 1}: {what}")
            return what

        self.app.push_screen(KnobsScreen(src, apply))

    def action_save(self) -> None:
        from tui_backprop.screens.save import SaveScreen

        src = self.source
        if self.running:
            return self.app.bell()
        if getattr(src, "end", None) is not None:
            return self._say("this is a trace already; saving is for live runs")
        n = len(src.history)
        if n == 0:
            return self._say("nothing to save yet: run at least one iteration")
        what = (f"The config, {len(src.knobs)} knob change(s) and iterations 0..{n - 1}, "
                "re-executed headless into one file; open it with tui-backprop replay FILE.")

        def chosen(answer: tuple[Path, bool] | None) -> None:
            if answer is not None:
                path, force = answer
                self._say(f"saving {n} iterations to {path}…")
                self._save(path, force, src.cfg, list(src.knobs), src.machine_for(0).data, n)

        self.app.push_screen(SaveScreen(what, "session.trace"), chosen)

    @work(thread=True, group="save", exit_on_error=False)
    def _save(self, path: Path, force: bool, cfg: Config, knobs: kn.Schedule, data: Dataset,
              n: int) -> None:
        """Record in a thread from copies of the session's inputs: never touches the stepper."""
        from core.store.trace import TraceError  # the trace layer loads only when saving

        worker = get_current_worker()
        try:
            from core.store.recorder import Recorder  # sqlite & co. load only when saving

            rec = Recorder(path, cfg, data, force=force, target=n, knobs=knobs)
            rec.run(n, should_stop=lambda: worker.is_cancelled)
            done = rec.pos
            rec.close("complete" if done == n else "interrupted")
            msg = f"saved {path} (it 0..{done - 1})"  # the path first: 80 columns cut the tail
        except TraceError as exc:
            msg = f"cannot save: {exc}"
        except Exception as exc:  # noqa: BLE001 - the status line says it; the app lives on
            msg = f"cannot save: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if not worker.is_cancelled:
            self.app.call_from_thread(self._say, msg)
