"""GradcheckScreen (`f`): finite differences against the op's analytic gradient.

The check re-runs the forward pass twice per entry in a float64 copy of the
machine, so it runs in a thread worker; the machine and frame it reads are the
cursor's, captured when the modal opens (the check builds its own Machine and
never touches the stepper).  Escape, f or q closes it.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from core.inspect.gradcheck import NotApplicable, gradcheck
from tui_backprop import investigate as inv
from tui_backprop.renderables.gradcheck import GradcheckReport


class GradcheckBody(Widget):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: inv.GradcheckData | None = None
        self.busy = "checking…"

    def render(self) -> RenderableType:
        return GradcheckReport(self.data, self.busy)


class GradcheckScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f,q", "close", "close")]

    def __init__(self, source: Any) -> None:
        super().__init__()
        self.op_name = source.op.name
        self.iteration = source.iteration
        self.result: inv.GradcheckData | None = None
        try:
            self.key = inv.gradcheck_key(source)
        except NotApplicable as exc:
            self.key = ""
            self.result = inv.not_applicable(source, str(exc))
        self.machine, self.frame = source.machine, source.frame

    def compose(self) -> ComposeResult:
        yield GradcheckBody(id="gradcheck")

    def on_mount(self) -> None:
        body = self.query_one(GradcheckBody)
        body.border_title = f"gradient check · {self.op_name}"
        body.border_subtitle = "esc close"
        if self.result is not None:
            self._show(self.result)
            return
        body.busy = (f"checking {self.op_name} at iteration {self.iteration}: two forward "
                     "passes per entry, in float64…")
        self._check()

    @work(thread=True, exclusive=True, group="gradcheck", exit_on_error=False)
    def _check(self) -> inv.GradcheckData:
        try:
            res = gradcheck(self.machine, self.frame, self.key)
        except NotApplicable as exc:
            return inv.GradcheckData(f"gradient check at {self.op_name}",
                                     f"not applicable: {exc}")
        return inv.gradcheck_data(res, self.op_name, self.iteration, self.machine.cfg.dtype)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "gradcheck":
            return
        if event.state == WorkerState.SUCCESS:
            self._show(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self._show(inv.GradcheckData(f"gradient check at {self.op_name}",
                                         f"error: {event.worker.error}"))

    def _show(self, data: inv.GradcheckData) -> None:
        self.result = data
        body = self.query_one(GradcheckBody)
        body.data = data
        body.set_class(not data.message and data.passed, "-pass")
        body.set_class(not data.message and not data.passed and data.checked > 0, "-fail")
        body.refresh()

    def action_close(self) -> None:
        self.dismiss(None)
