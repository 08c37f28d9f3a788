"""Replay a user trace (core/user/usertrace.py): the recorded source, re-executed and checked.

`UserReplay` is a `UserStepper` over the source stored in the recording (not the
file on disk, which may have changed: `changed` says whether it did), with the
recorded metrics as its history, the recorded checkpoints as its saved states
and the recorded range as its end.  Every iteration re-executed (fast or
traced) is compared bit for bit with the recording; the first difference is a
'diverged' event instead of being shown silently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core.engine.history import MetricsBlock
from core.engine.machine import Frame
from core.inspect.detectors import Event
from core.user.loader import UserError, load_source
from core.user.stepper import GRAD_KIND, UserStepper
from core.user.usertrace import Recording, read


def file_status(rec: Recording) -> str:
    """'' if the file on disk is the recorded one, else a plain sentence saying how not."""
    path = Path(rec.meta["path"])
    if not path.exists():
        return f"{rec.meta['display']} no longer exists; replaying the recorded source"
    if hashlib.sha256(path.read_bytes()).hexdigest() != rec.meta["sha256"]:
        return (f"{rec.meta['display']} changed since it was recorded; replaying the recorded "
                f"source, not the file")
    return ""


class UserReplay(UserStepper):
    def __init__(self, path: str) -> None:
        rec = read(path)
        self.recording = rec
        self.changed = file_status(rec)
        display = rec.meta["display"] + " (recorded)"
        prog = load_source(rec.source, display, display, rec.meta["sha256"],
                           Path(rec.meta["display"]).stem)
        self.diverged: Event | None = None
        super().__init__(prog, rec.X, rec.y, seed=int(rec.meta["seed"]),
                         lr=float(rec.meta["lr"]), precheck=False,
                         checkpoint_every=int(rec.meta["checkpoint_every"]))
        depth = self.program.depth
        if list(self.program.params) != rec.meta["params"]:
            raise UserError(f"{path}: the recorded source's init() makes parameters "
                            f"{', '.join(self.program.params)}; the trace holds "
                            f"{', '.join(rec.meta['params'])}")
        block = MetricsBlock.empty(0, rec.n, depth)
        block.loss[:] = rec.history.loss
        block.acc[:] = np.nan
        block.lr[:] = [self.config_at(i).lr_at(i) for i in range(rec.n)]
        block.grad_norm[:] = rec.history.grad_norm
        block.weight_norm[:] = rec.history.weight_norm
        self.history.truncate(0)
        self._append(block)
        self.checkpoints.update(rec.checkpoints)
        self.end = rec.n
        for e in rec.events:  # the gradient check made when recording: flag its panels again
            if e.kind == GRAD_KIND and e.detail.split(":")[0] in self.program.params:
                self.program.failing[e.detail.split(":")[0]] = e.detail.partition(" · ")[2]
                self.events.append(e)

    def _observe(self, block: MetricsBlock) -> None:
        n = min(len(block), len(self.history) - block.start)
        if n > 0:
            rec = self.history.view(block.start, block.start + n)
            bad = np.flatnonzero(rec.loss.view(np.uint64) != block.loss[:n].view(np.uint64))
            if len(bad):
                self._diverge(block.start + int(bad[0]), float(rec.loss[bad[0]]),
                              float(block.loss[bad[0]]))
        self._note_error()

    def _observe_frame(self, frame: Frame) -> None:
        if any(op.key == "error" for op in frame.ops):
            self._note_error()
            return
        i = frame.iteration
        if i < len(self.history):
            want = float(self.history.view(i, i + 1).loss[0])
            if np.array([want]).tobytes() != np.array([self.user.hp.loss]).tobytes():
                self._diverge(i, want, self.user.hp.loss)

    def _diverge(self, i: int, want: float, got: float) -> None:
        if self.diverged is None or i < self.diverged.iteration:
            self.diverged = Event(i, "L", "diverged",
                                  f"re-executed loss {got!r} != recorded {want!r} (another "
                                  f"NumPy/BLAS or CPU?)")
            self.events.append(self.diverged)
