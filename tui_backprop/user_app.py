"""`debug FILE.py`: the same app, screens and panels over the user's own code.

Only what differs is overridden: `f` runs the user-code check (core/user/check.py)
for the gradient under the cursor and shows its fitted diagnosis; the drill-down
shows the recorded value and its source line (the built-in explainer knows only
the built-in ops); the decision boundary and network diagram, which need the
built-in network, say so instead.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from textual import work
from textual.events import Mount

from core.inspect.explain import Explanation
from core.user.check import Checker, ParamResult
from core.user.loader import UserError, load
from core.user.session import resolve_data
from core.user.stepper import UserStepper
from tui_backprop import investigate as inv
from tui_backprop.app import BackpropApp
from tui_backprop.screens import MainScreen
from tui_backprop.screens.gradcheck import GradcheckScreen
from tui_backprop.widgets.tools import DrillPane


def gradient_param(src: Any) -> str | None:
    """The parameter whose returned gradient the cursor's op made, if any."""
    keys = src.program.grad_keys
    return next((p for p, k in keys.items() if k == src.op.key), None)


def check_data(res: ParamResult, name: str, iteration: int) -> inv.GradcheckData:
    """A user-code check result in the shape the gradcheck renderable draws."""
    title = f"{name} (grad of {res.name}) against central differences of loss(), it {iteration}"
    if res.rel_error is None:  # mis-shaped: nothing to compare entry by entry
        return inv.GradcheckData(title, f"FAIL: {res.diagnosis}")
    rel = res.rel_error
    flat, ana, num = res.checked if res.checked is not None else (np.zeros(0, int),) * 3
    err = rel.reshape(-1)[flat]
    order = np.argsort(-err, kind="stable")[:8]
    rows = tuple((inv.idx_text(tuple(int(i) for i in np.unravel_index(flat[p], rel.shape))),
                  float(ana[p]), float(num[p]), float(err[p])) for p in order)
    worst = f"{res.name}{inv.idx_text(res.worst_index or ())} analytic {res.analytic:.4g} " \
            f"numeric {res.numeric:.4g}"
    return inv.GradcheckData(title, "", res.passed, res.max_rel_error or 0.0,
                             res.threshold, worst, res.sample.count, res.sample.size, 0,
                             1e-5, rel, rows, "" if res.passed else res.diagnosis)


class UserGradcheckScreen(GradcheckScreen):
    """`f` on user code: check the gradient backward returns for the op's parameter."""

    def __init__(self, source: Any) -> None:
        super().__init__(source)
        self.param = gradient_param(source)
        self.result = None
        if source.iteration < 0 or self.param is None:
            names = ", ".join(source.program.grad_name(p) for p in source.program.params)
            self.result = inv.GradcheckData(
                f"gradient check at {self.op_name}",
                f"not applicable: f checks a gradient backward() returns ({names}); "
                f"step to one of them in an iteration")
        self.prog, self.X, self.y = source.prog, source.user.X, source.user.y

    @work(thread=True, exclusive=True, group="gradcheck", exit_on_error=False)
    def _check(self) -> inv.GradcheckData:
        try:
            res = Checker(self.prog, self.X, self.y).check(self.frame.params, self.iteration,
                                                           only=self.param)
        except UserError as exc:
            return inv.GradcheckData(f"gradient check at {self.op_name}", f"error: {exc}")
        return check_data(res.params[0], self.op_name, self.iteration)


def user_drill(src: Any, panel: inv.PanelData, cell: tuple[int, int]) -> inv.DrillData | None:
    key = inv.array_key(panel)
    if key is None or panel.array is None:
        return None
    index = inv.cell_index(tuple(panel.array.shape), *cell)
    value = float(panel.array[index]) if panel.array.ndim else float(panel.array)
    op = next((o for o in src.frame.ops if o.key == key), None)
    name = op.name if op else key
    e = Explanation(f"{name}{inv.idx_text(index)}", name, op.formula if op else key, "=",
                    (repr(value),), ("the value this line of your code produced",),
                    value, value, abs(value), 0.0, ())
    it = "init" if src.iteration < 0 else f"it {src.iteration}"
    return inv.DrillData(e, f"{it} · {panel.title}")


class UserMainScreen(MainScreen):
    def action_gradcheck(self) -> None:
        self.app.push_screen(UserGradcheckScreen(self.source))

    def action_boundary(self) -> None:
        self.notify("the decision boundary needs the built-in network", severity="warning")

    def action_diagram(self) -> None:
        self.notify("the network diagram needs the built-in network", severity="warning")

    def refresh_tools(self) -> None:
        if self.running:
            return
        panel = self._cursor_panel()
        if panel is not None and panel.data is not None and panel.cursor is not None:
            self.query_one(DrillPane).show(user_drill(self.source, panel.data, panel.cursor))


class UserApp(BackpropApp):
    def on_mount(self, event: Mount) -> None:
        event.prevent_default()  # Textual also runs the base class's handler otherwise
        self.push_screen(UserMainScreen(self.source, self.label))
        changed = getattr(self.source, "changed", "")
        if changed:
            self.notify(changed, title="file changed", severity="warning", timeout=10)


def user_app(path: str, *, dataset: str | None = None, seed: int | None = None,
             lr: float | None = None, time_limit: float | None = None) -> UserApp:
    """The app over FILE.py (raises UserError on bad input, before any screen opens)."""
    prog = load(path) if time_limit is None else load(path, time_limit=time_limit)
    seed = prog.seed if seed is None else seed
    X, y = resolve_data(prog, dataset, seed)
    stepper = UserStepper(prog, X, y, seed=seed, lr=prog.lr if lr is None else lr)
    n = len(stepper.program.params)
    return UserApp(stepper, label=f"debug {path} · {n} params",
                   title=f"tui-backprop debug: {path}")


def replay_app(path: str, iteration: int | None = None) -> UserApp:
    """The app over a trace of a user file (core/user/usertrace.py)."""
    from pathlib import Path

    from core.user.replay import UserReplay

    source = UserReplay(path)
    if iteration is not None:
        source.jump(min(iteration, source.end - 1) if source.end else 0, 0)
    name = Path(path).name
    label = f"replay: {name}" + (" · FILE CHANGED" if source.changed else "")
    return UserApp(source, label=label, title=f"replay: {name}")


def run_debug(args: argparse.Namespace) -> int:
    app = user_app(args.file, dataset=args.dataset, seed=args.seed, lr=args.lr,
                   time_limit=args.time_limit)
    app.run(mouse=args.mouse)
    return app.return_code or 0
