"""The main screen: op card, matrix panels, flags, loss chart, status line.

It owns the cursor's source (a live Stepper or a replay source with the same
interface) and is the only place that moves it.  Short moves (one op, one
phase, one iteration) run on the UI thread; long work (continue, run N, jump)
runs in one exclusive thread worker that polls a pause flag between blocks and
reports progress through `call_from_thread`.  While it runs the step keys are
disabled (greyed in the footer) so the source is never used from two threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.events import Key, Resize
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from core.inspect.detectors import Event
from tui_backprop import view
from tui_backprop.overview import Overview, headline_for
from tui_backprop.screens import control, showing, tools
from tui_backprop.screens.layout import MAX_SLOTS, MIN_HEIGHT, MIN_WIDTH, Plan, plan
from tui_backprop.screens.prompt import PromptScreen
from tui_backprop.widgets import (
    FlagsView,
    HeatmapCache,
    MatrixPanel,
    OpCardView,
    OverviewView,
    PlotextPlot,
    StatusLine,
)

MOVES = {"step", "back", "phase", "iteration", "continue", "run", "goto"}
NARROW_FOOTER = 76
NARROW_HIDDEN = ("back", "goto", "series")


@dataclass(frozen=True)
class Outcome:
    """What a worker job ended with, shown in the status line."""

    kind: str
    event: Event | None
    paused: bool
    start: int


class MainScreen(showing.ShowingMixin, control.ControlMixin, tools.ToolsMixin, Screen[None]):
    AUTO_FOCUS = ""  # enter puts the cell cursor on the output panel, not the first input
    BINDINGS = [
        Binding("n,right", "step", "step"),
        Binding("b,left", "back", "back"),
        Binding("p", "phase", "phase"),
        Binding("i", "iteration", "iter"),
        Binding("c", "continue", "cont"),
        Binding("r", "run", "run N"),
        Binding("g", "goto", "goto"),
        Binding("space,escape", "pause", "pause"),
        Binding("t", "series", "chart"),
        Binding("v", "cycle", "panels", show=False),
        Binding("l", "toggle_chart", "chart on/off", show=False),
        *tools.BINDINGS,
        *control.BINDINGS,
    ]
    # (title, help, action) for the command palette
    PALETTE = [
        ("Step one op forward", "n / →", "step"),
        ("Step one op back", "b / ←", "back"),
        ("Next phase", "p: forward → loss → backward → update", "phase"),
        ("Next iteration", "i", "iteration"),
        ("Continue until a flag fires", "c: the first breakpoint (x) to fire; with none, "
         "any flag: NaN/Inf, explode, vanish, spike, …", "continue"),
        ("Run N iterations", "r", "run"),
        ("Jump to iteration", "g", "goto"),
        ("Pause the running job", "space / escape", "pause"),
        ("Next chart series", "t: loss → accuracy → gradient norms", "series"),
        ("Rotate the inputs shown", "v: when an op has more factors than panels", "cycle"),
        ("Show or hide the chart", "l", "toggle_chart"),
        *tools.PALETTE,
        *control.PALETTE,
    ]

    def __init__(self, source: Any, label: str) -> None:
        super().__init__()
        self.source = source
        self.label = label
        self.entries = len(headline_for(source.program))
        self.cache = HeatmapCache()
        self.overview = Overview()
        self.factors: tuple[view.PanelData, ...] = ()
        self._entries: tuple = ()  # the overview entries last computed at the cursor
        self.shown: list[int] = []  # factor position shown by each visible panel
        self.plan: Plan = plan(80, 24, MAX_SLOTS, entries=self.entries)
        self._planned_ready = False
        self._planned_size = (80, 24)
        self.rotation = 0
        self.series = 0
        self.chart_on = True
        self.note = ""
        self.running = ""
        self._job_kind = ""
        self._pause_requested = False
        self._chart_key: tuple | None = None
        self._rate: tuple[float, int] = (0.0, 0)
        self._prompt: PromptScreen | None = None
        self._awaiting_prompt = False
        self._typeahead: list[tuple[str, str | None]] = []

    # ------------------------------------------------------------------ building
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Vertical(id="body"):
            yield OpCardView(id="card")
            with Grid(id="panels"):
                for i in range(MAX_SLOTS):
                    yield MatrixPanel(self.cache, id=f"slot{i}")
            yield from self.compose_tool_views()
            yield OverviewView(id="overview")
            yield FlagsView(id="flags")
            yield from self.compose_drill()
            yield PlotextPlot(id="chart")
        yield Static(id="too-small")
        yield Footer(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.refresh_view()

    @property
    def active_bindings(self) -> dict:
        """Below 76 columns the footer leaves out b, g and t (help and ctrl+p list them), so
        that `? help` and `q quit` stay in sight; the keys themselves still work."""
        bindings = super().active_bindings
        if self.size.width >= NARROW_FOOTER or not self.size.width:
            return bindings
        return {k: b for k, b in bindings.items() if b.binding.action not in NARROW_HIDDEN}

    def on_resize(self, event: Resize) -> None:
        self.apply_plan(event.size.width, event.size.height)
        self.refresh_bindings()

    def apply_plan(self, width: int, height: int) -> None:
        self._planned_ready = self._chart_ready()
        self._planned_size = (width, height)
        p = self.plan = plan(width, height, MAX_SLOTS, self.chart_on, self.entries,
                             self._planned_ready)
        self.set_class(p.too_small, "-too-small")
        if p.too_small:
            self.query_one("#too-small", Static).update(
                f"Terminal too small: {width}×{height}.\n"
                f"tui-backprop needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\n"
                "Enlarge the window, or press q to quit.")
            return
        grid = self.query_one("#panels", Grid)
        grid.styles.grid_size_rows = 1
        self._layout_panels()
        self.query_one("#card").styles.height = p.card
        self.query_one("#overview").styles.height = p.overview
        self.query_one("#flags").styles.height = p.flags
        chart = self.query_one("#chart", PlotextPlot)
        chart.display = p.chart > 0
        chart.styles.height = max(p.chart, 1)
        self._chart_key = None
        self.layout_tools(p)
        self.refresh_view()

    # ------------------------------------------------------------------ moves
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a job runs, moves are hidden and pause appears; behind the "too small"
        notice only help and quit (app keys) work."""
        if self.plan.too_small and action not in ("pause",):
            return False
        if action in tools.TOOL_ACTIONS:
            return self.check_tool(action)
        if action in control.CONTROL_ACTIONS:
            return self.check_control(action)
        if action == "pause":
            return bool(self.running)
        if action in MOVES and self.running:  # hidden: the footer keeps pause and quit in view
            return False
        return True

    def _move(self, fn: Callable[[], object], stuck: str = "at the end of the trace") -> None:
        """Run one short move on the UI thread; `stuck` is shown when it returns False."""
        if self.running:
            self.app.bell()
            return
        try:
            result = fn()
        except (ValueError, IndexError, KeyError) as exc:
            self.note = f"cannot move: {exc}"
            self.notify(str(exc), title="cannot move", severity="warning")
        else:
            self.note = stuck if result is False else ""
        self.refresh_view()

    def action_step(self) -> None:
        self._move(self.source.step)

    def action_back(self) -> None:
        self._move(self.source.back, "at the first op")

    def action_phase(self) -> None:
        self._move(self.source.next_phase)

    def action_iteration(self) -> None:
        self._move(self.source.next_iteration)

    def action_series(self) -> None:
        self.series = (self.series + 1) % len(view.SERIES)
        self.refresh_view()

    def action_cycle(self) -> None:
        if len(self.factors) <= len(self.shown):
            self.note = "v: every factor of this op is already shown"
        self.rotation += 1
        self.refresh_view()

    def action_toggle_chart(self) -> None:
        self.chart_on = not self.chart_on
        self.apply_plan(self.size.width, self.size.height)

    def action_pause(self) -> None:
        if self.running:
            self._pause_requested = True
            self.running = "pausing…"
            self._show_status()

    def action_continue(self) -> None:
        self._start("continue", 0)

    def action_run(self) -> None:
        self._ask(PromptScreen("Run how many iterations?", "e.g. 100", minimum=1), "run")

    def action_goto(self) -> None:
        self._ask(PromptScreen("Jump to iteration", "0, 1, … (-1 = the init ops)", minimum=-1),
                  "jump")

    def _ask(self, prompt: PromptScreen, kind: str) -> None:
        """Open a number prompt, handing it whatever was typed since g / r (see on_key)."""
        def answered(value: int | None) -> None:
            self._prompt = None
            if value is not None:
                self._start(kind, value)

        self._prompt = prompt
        for key, char in self._typeahead:
            prompt.feed(key, char)
        self._typeahead.clear()
        self._awaiting_prompt = False
        self.app.push_screen(prompt, answered)

    def on_key(self, event: Key) -> None:
        """Keep type-ahead for prompts: "g 1 2 enter" typed fast must still jump to 12.

        Key events reach this handler before their bindings run, so "1" can arrive
        before g's prompt exists; such keys are buffered, then fed to the prompt.
        """
        typeable = event.key in ("enter", "backspace") or event.is_printable
        if self._prompt is not None or self._awaiting_prompt:
            if typeable:
                if self._prompt is not None:
                    self._prompt.feed(event.key, event.character)
                else:
                    self._typeahead.append((event.key, event.character))
                event.stop()
                event.prevent_default()
                if event.key == "enter":  # the answer is complete: later keys (q!) are keys
                    self._awaiting_prompt = False
                    self._prompt = None
        elif event.key in ("g", "r") and not self.running and self.app.screen is self:
            self._awaiting_prompt = True

    def on_screen_suspend(self) -> None:
        """A dialog came on top before g/r's prompt opened (`r k` in one burst): g/r's
        binding now meets the dialog and never runs, so stop holding keys for a prompt."""
        if self._prompt is None:
            self._awaiting_prompt = False
            self._typeahead.clear()

    # ------------------------------------------------------------------ long work
    def _start(self, kind: str, arg: int) -> None:
        if self.running:
            return
        self._pause_requested = False
        self._job_kind = kind
        self._rate = (time.perf_counter(), len(self.source.history))
        self.running = f"{kind}… (space to pause)"
        self.note = ""
        self.refresh_bindings()
        self._show_status()
        chart = self.query_one(PlotextPlot)
        width = max(10, (chart.size.width if chart.display else self.size.width) - 10)
        self._job(kind, arg, view.SERIES[self.series], width)

    @work(thread=True, exclusive=True, group="long", exit_on_error=False)
    def _job(self, kind: str, arg: int, series: str, width: int | None) -> Outcome:
        """Runs in a thread: the only code touching the source until it returns."""
        src = self.source
        start = src.iteration
        last = [0.0]

        gap = [0.1]  # seconds between refreshes: ≥ 0.1, and ≥ 20× their own cost (≤ 5%)

        def should_stop() -> bool:  # polled by the engine between blocks of iterations
            if getattr(src, "interrupted", False):  # quitting: never wait on the UI thread
                return True
            now = time.perf_counter()
            if now - last[0] >= gap[0]:
                last[0] = now
                live = self.live_view(src, series, width)
                gap[0] = max(0.1, 20 * (time.perf_counter() - now))
                try:
                    self.app.call_from_thread(self._progress, *live)
                except RuntimeError:  # the app is closing
                    return True
            return self._pause_requested

        event = None
        if kind == "continue":
            event = src.run_until(should_stop=should_stop, rule=self.continue_rule(src))
        elif kind == "run":
            src.run(arg, should_stop=should_stop)
        else:
            ahead = arg - max(src.iteration + 1, 0)
            bounded = getattr(src, "end", None) is not None  # a replay: nothing to run ahead
            if arg > len(src.history) and ahead > 0 and not bounded:  # pausable blocks first
                src.run_until(lambda events: None, max_iters=ahead, should_stop=should_stop)
            if not self._pause_requested:
                src.jump(arg, 0)
        return Outcome(kind, event, self._pause_requested, start)

    def _progress(self, frontier: int, chart: view.Series | None,
                  flags: list[view.FlagLine] | None = None,
                  live: dict[str, str] | None = None) -> None:
        t0, n0 = self._rate
        dt = time.perf_counter() - t0
        speed = (frontier - n0) / dt if dt > 0 else 0.0
        what = "pausing…" if self._pause_requested else f"{self._job_kind}… space: pause"
        self.running = f"{what} ran {frontier:,} · {speed:,.0f} it/s"
        self._show_status()
        if self._chart_ready() != self._planned_ready:  # the chart's rows appear mid-run
            self.apply_plan(*self._planned_size)
        if chart is not None:
            self.query_one(PlotextPlot).set_series(chart)
            self._chart_key = None
        if flags is not None:
            self.query_one(FlagsView).show(self.with_break(flags), frontier)
        if live:
            self._show_overview(live)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "long" or event.state in (WorkerState.PENDING,
                                                           WorkerState.RUNNING):
            return
        if event.state == WorkerState.SUCCESS:
            self.note = self._describe(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.note = f"error: {event.worker.error}"
            self.notify(str(event.worker.error), title="cannot do that", severity="error")
        else:
            self.note = "cancelled"
        self.running = ""
        self._pause_requested = False
        self.refresh_bindings()
        self.refresh_view()

    def _describe(self, out: Outcome) -> str:
        src = self.source
        if out.paused:
            return f"paused at it {src.iteration}"
        if out.kind == "continue":
            if out.event is None:
                return "no flag fired"
            return self.describe_break(out.event) or \
                f"stopped on {view.FLAG_LABEL.get(out.event.kind, out.event.kind)}"
        if out.kind == "run":
            return f"ran {max(0, src.iteration - max(out.start, 0))} iterations"
        return f"jumped to it {src.iteration}"
