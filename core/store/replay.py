"""Replay a saved trace through the Stepper, re-executing from its checkpoints.

`Replay` is a `Stepper` whose range ends at the last recorded iteration, whose
saved states include the trace's checkpoints (loaded on demand), and whose
history and events come from the file.  Every iteration it re-executes is
checked against the recorded metrics, bit for bit: a different machine, NumPy
or BLAS, or a damaged value, shows up as `divergence` (and a "diverged" event)
naming the first iteration that differs, instead of silently wrong numbers.
Knob changes recorded in the trace are re-executed at the same iterations
(and show as "knob" events); a replay's own knobs cannot change.
"""

from __future__ import annotations

from bisect import insort
from pathlib import Path

import numpy as np

from core.engine.history import MetricsBlock
from core.engine.machine import Frame
from core.engine.reexec import frame_metrics
from core.engine.stepper import Stepper
from core.inspect.detectors import Event
from core.model.datasets import Dataset, make_dataset
from core.store.trace import ARITHMETIC, ARITHMETIC_CHANGES, TraceReader, dataset_digest

CHECKED = ("loss", "acc", "grad_norm", "weight_norm", "saturation")


class Replay(Stepper):
    """A Stepper over iterations 0..n-1 of a trace; see the module docstring."""

    def __init__(self, trace: TraceReader | str | Path) -> None:
        self.trace = trace if isinstance(trace, TraceReader) else TraceReader(trace)
        self.end = self.trace.n
        self.divergence: str | None = None
        self._diverged_at: int | None = None
        self._pending: list[MetricsBlock] = []
        cfg = self.trace.cfg
        data = self.trace.dataset() or make_dataset(cfg.dataset, cfg.seed, cfg.outputs)
        if cfg.limit:  # the trace stores exactly the rows used; regenerate the same
            data = Dataset(data.name, data.X[:cfg.limit], data.labels[:cfg.limit],
                           data.n_classes)
        super().__init__(cfg, data, checkpoint_every=self.trace.every, knobs=self.trace.knobs)
        self.history = self.trace.history
        self.events = list(self.trace.events)
        if dataset_digest(data) != self.trace.meta.get("dataset_sha256"):
            self._diverge(0, f"dataset {cfg.dataset!r} regenerates differently here "
                             f"(recorded with NumPy {self.trace.meta.get('numpy', '?')})")

    @property
    def n(self) -> int:
        """Number of recorded iterations."""
        return self.trace.n

    def close(self) -> None:
        self.trace.close()

    # ------------------------------------------------------------------ Stepper hooks
    def _base(self, i: int) -> int:
        return max(super()._base(i), self.trace.base(i))

    def _state(self, k: int) -> dict[str, np.ndarray]:
        if k in self._recent or k in self.checkpoints:
            return super()._state(k)
        return self.trace.checkpoint(k)

    def _needs_metrics(self, stop: int) -> bool:
        return True  # every re-executed iteration is checked against the recording

    def _observe(self, block: MetricsBlock) -> None:
        # stepping back re-executes one iteration per block: check them all at once
        if self._pending and self._pending[-1].start + len(self._pending[-1]) != block.start:
            self._verify_pending()
        self._pending.append(block)

    def _observe_frame(self, frame: Frame) -> None:
        self._observe(frame_metrics(self._active, frame))
        self._verify_pending()

    def _verify_pending(self) -> None:
        blocks, self._pending = self._pending, []
        if len(blocks) == 1:
            return self._verify(blocks[0])
        self._verify(MetricsBlock(blocks[0].start, *(
            np.concatenate([getattr(b, name) for b in blocks])
            for name in ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation"))))

    # ------------------------------------------------------------------ checking
    def _verify(self, block: MetricsBlock) -> None:
        """Compare re-executed metrics with the recorded ones; note the first difference."""
        start, stop = block.start, min(block.start + len(block), self.n)
        if stop <= start:
            return
        rec = self.history.view(start, stop)
        first: tuple[int, str] | None = None
        for name in CHECKED:
            a = getattr(block, name)[: stop - start].reshape(stop - start, -1)
            b = getattr(rec, name).reshape(stop - start, -1)
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            bad = np.flatnonzero(~same.all(axis=1))
            if len(bad) and (first is None or bad[0] < first[0]):
                j = int(bad[0])
                first = (j, f"{name} {a[j].tolist()} re-executed, {b[j].tolist()} recorded")
        if first is not None:
            self._diverge(start + first[0], first[1])

    def _diverge(self, i: int, why: str) -> None:
        if self._diverged_at is not None and self._diverged_at <= i:
            return
        if self._diverged_at is not None:
            self.events = [e for e in self.events if e.kind != "diverged"]
        self._diverged_at = i
        if self.trace.version < ARITHMETIC:
            changes = "; ".join(f"format {v}: {text}" for v, text in ARITHMETIC_CHANGES.items()
                                if v > self.trace.version)
            why += (f" (the trace is format {self.trace.version}, recorded before the "
                    f"arithmetic changed, so its last digits can differ — {changes})")
        self.divergence = f"re-execution differs from the recording at iteration {i}: {why}"
        insort(self.events, Event(i, "L", "diverged", why), key=lambda e: e.iteration)
