"""The debugger's engine: a cursor at (iteration, op) that moves both ways.

Moving forward far uses the fast path; moving back restores the nearest
in-memory checkpoint (the parameters: batch order is derived from the seed and
the iteration, so there is no RNG state to keep) and re-executes.  Because both
paths run the same kernels, every value shown is bit-identical however the
cursor got there.

Knobs changed while paused (core/engine/knobs.py) make a schedule [(iteration, Config)];
each config segment runs on its own Machine and the parameters move across the
boundary.  A checkpoint at k holds the state before iteration k, which depends
only on the configs of iterations < k: a change at t keeps checkpoints <= t
(the one at t is pinned, so a segment can always be re-run from its start) and
forgets everything computed from iteration t on.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from core.engine import knobs as kn
from core.engine.history import History, MetricsBlock
from core.engine.machine import Frame, Machine
from core.engine.reexec import frame_metrics, locate_nan
from core.inspect.detectors import Event, Scanner
from core.model.config import Config
from core.model.datasets import Dataset
from core.model.program import Op

INIT = -1  # the iteration index of the init ops
StopRule = Callable[[list[Event]], Event | None]
# sees the new events and the iterations [start, stop) now in the history; may stop anywhere
BlockRule = Callable[[list[Event], int, int], Event | None]
QUIET = frozenset({kn.KIND})  # events that inform, never stop a plain continue


class Interrupted(RuntimeError):
    """A move stopped by `Stepper.interrupt()` (the app quitting); the cursor did not move."""


def _first(events: list[Event]) -> Event | None:
    return next((e for e in events if e.kind not in QUIET), None)


class Stepper:
    """Cursor, checkpoints, metrics history and events of one live run."""

    end: int | None = None  # iterations >= end do not exist (a replay's recorded range)
    interrupted = False  # set from another thread by interrupt(): every long loop stops

    def __init__(self, cfg: Config, data: Dataset | None = None, *,
                 checkpoint_every: int | None = None, memory_mb: float = 128,
                 knobs: kn.Schedule | None = None, machine: Machine | None = None) -> None:
        self.cfg = cfg  # the config the run starts with; knobs may change it later
        # the machine holding the current state; a prebuilt one runs user code (core/user)
        self._active = machine if machine is not None else Machine(cfg, data)
        self._machines = {cfg: self._active}
        self.knobs: kn.Schedule = list(knobs or [])
        kn.check(cfg, self.knobs)
        self.program = self._active.program
        self.history = History(self.program.depth)
        self.events: list[Event] = [kn.event(t, self.config_at(t - 1), c) for t, c in self.knobs]
        p_bytes = sum(int(np.prod(self.program.param_shape(p))) for p in self.program.params)
        p_bytes *= np.dtype(cfg.dtype).itemsize
        sizes = self.program.sizes
        flops = 6 * self.program.n * sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
        # re-executing K iterations should cost ~20 ms at ~1.5 GFLOP/s
        # (a power of two, so continue blocks and checkpoint stretches line up)
        self.every = checkpoint_every or 1 << max(0, min(10, int(np.log2(max(
            1.0, 3e7 / max(flops, 1))))))
        self._chunk = self.every  # fast-path iterations between interrupt checks (~20 ms)
        self.max_checkpoints = max(8, min(4096, int(memory_mb * 2**20 / max(p_bytes, 1))))
        self.checkpoints: dict[int, dict[str, np.ndarray]] = {}
        self._hi = -1  # >= every saved iteration (a shortcut for _base)
        # dense parameter snapshots of the last re-executed stretch, so that stepping
        # back across many iteration boundaries costs one materialization each
        # (flat parameter copies, as Machine.run_fast leaves them in `snaps`)
        self._recent: OrderedDict[int, np.ndarray | dict[str, np.ndarray]] = OrderedDict()
        self.max_recent = max(2, min(4096, int(16 * 2**20 / max(p_bytes, 1))))
        # the fast path also snapshots every `snap_every` iterations (and the last one), so
        # a back-step or a landing re-executes at most a few iterations (~0.4 ms of them)
        per_it = 6e-6 * self.program.depth + flops / 5e10  # ~Python overhead + BLAS
        if machine is not None:  # user code: no estimate; blocks of 256, no spaced snapshots
            per_it = max(per_it, 0.2 / 256)
        self.snap_every = int(4e-4 / per_it) if per_it < 4e-4 else 0
        self._per_it = per_it  # the estimate, until fast runs measure it (_calibrate)
        self._measured = False
        self._user = machine is not None
        # a continue runs blocks of ~0.1 s (a power of two, 8..2048; per_it overestimates
        # small nets ~2×): detectors and rules cost per block, a pause is polled between
        self.block = 1 << max(3, min(13, int(np.log2(0.2 / per_it))))
        self._frames: OrderedDict[int, Frame] = OrderedDict()
        self._layer_ops = [f"dL/dW{l}" for l in range(1, self.program.depth + 1)]
        self._scanner = Scanner(cfg.detect, self._layer_ops)
        self.iteration = INIT
        self.index = 0
        self.frame = self._frame(INIT)

    # ------------------------------------------------------------------ what the cursor shows
    @property
    def ops(self) -> tuple[Op, ...]:
        return self.frame.ops

    @property
    def op(self) -> Op:
        return self.frame.ops[self.index]

    @property
    def value(self) -> np.ndarray:
        return self.frame.outputs[self.index]

    @property
    def position(self) -> tuple[int, int]:
        return self.iteration, self.index

    @property
    def machine(self) -> Machine:
        """A machine with the config of the cursor's iteration (for gradcheck, explain)."""
        return self.machine_for(self.iteration)

    def config_at(self, i: int) -> Config:
        """The config iteration i runs with (the start config, or a knob change's)."""
        return kn.config_at(self.cfg, self.knobs, i)

    def machine_for(self, i: int) -> Machine:
        """The Machine that runs iteration i; its buffers are scratch unless active."""
        cfg = self.config_at(i)
        if cfg not in self._machines:
            self._machines[cfg] = Machine(cfg, self._active.data)
        return self._machines[cfg]

    def op_index(self, iteration: int, op: str) -> int | None:
        """Where op (key or display name) sits in iteration's program; None if absent."""
        try:
            return self.machine_for(iteration).program.index(op)
        except KeyError:
            return None

    # ------------------------------------------------------------------ moves
    def step(self) -> bool:
        """One op forward (into the next iteration after the last update); False at the end."""
        if self.index + 1 < len(self.frame.ops):
            self.index += 1
        elif self._at_end():
            return False
        else:
            self._enter(self.iteration + 1, 0)
        return True

    def back(self) -> bool:
        """One op back; False at the very first init op."""
        if self.index > 0:
            self.index -= 1
        elif self.iteration == INIT:
            return False
        else:
            self._enter(self.iteration - 1, -1)
        return True

    def next_phase(self) -> None:
        """Forward to the first op of the next phase."""
        phase = self.op.phase
        while self.op.phase == phase and self.step():
            pass

    def next_iteration(self) -> bool:
        """Op 0 of the next iteration; False (and no move) at the end."""
        if self._at_end():
            return False
        self._enter(self.iteration + 1, 0)
        return True

    def jump(self, iteration: int, op: int | str = 0) -> None:
        """Put the cursor at (iteration, op); op is an index, a key or a display name."""
        if iteration < INIT:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        self._enter(iteration, op)

    def run(self, n: int, should_stop: Callable[[], bool] | None = None) -> None:
        """Run n iterations ahead and land on op 0 of the iteration after them."""
        target = self.iteration + n if self.iteration >= 0 else n
        if self.end is not None:
            target = min(target, self.end - 1)
            if target <= self.iteration:  # at the end of a replay: stay put
                return
        self.run_until(lambda ev: None, max_iters=max(0, target - max(self.iteration, 0)),
                       should_stop=should_stop)
        if should_stop is None or not should_stop():
            self._enter(target, 0)

    def run_until(self, stop: StopRule = _first, max_iters: int = 1_000_000,
                  should_stop: Callable[[], bool] | None = None, block: int | None = None,
                  rule: BlockRule | None = None) -> Event | None:
        """Fast-run until `stop` picks an event among new ones; the cursor lands on it.

        `should_stop` is polled between blocks (a UI's pause key).  Returns the
        event stopped at, or None when max_iters ran out or the run was paused.
        A `rule` (breakpoints) replaces `stop`: it is first asked about the rest
        of the cursor's own iteration, then about each block of new history.
        """
        block = block or self.block
        start = max(self.iteration + 1, 0)
        end = start + max_iters
        if self.end is not None:
            end = min(end, self.end)
        if rule is not None and self.iteration >= 0:
            hit = rule(self._events_in(self.iteration, start), self.iteration, start)
            if hit is not None:
                return self._land(hit)
        pos = start
        while pos < end:
            if self.interrupted or (should_stop is not None and should_stop()):
                break
            stop_at = min(end, (pos // block + 1) * block)
            self._advance_history(stop_at)
            events = self._events_in(pos, stop_at)
            hit = stop(events) if rule is None else rule(events, pos, stop_at)
            if hit is not None:
                return self._land(hit)
            pos = stop_at
        if pos > start:
            self._enter(pos - 1, -1)
        return None

    def interrupt(self) -> None:
        """Stop whatever move runs in another thread within one chunk (~20 ms of work).

        For quitting: the move raises Interrupted and every later move does too.
        """
        self.interrupted = True

    # ------------------------------------------------------------------ knobs
    def set_knobs(self, **changes: object) -> Event | None:
        """Change knobs from the next iteration boundary; returns the knob event.

        The iteration under the cursor (even at its first op) finishes with the old
        knobs; the new ones apply from t = iteration + 1 (0 from the init ops).
        Everything from t on — history, events, later knob changes — is forgotten
        and re-run on demand.  Raises ConfigError (nothing applied) on a bad value.
        """
        if self.end is not None:
            raise ValueError("knobs change live runs only, not a replay")
        t = self.iteration + 1
        old = self.config_at(self.iteration)
        new = kn.apply(old, dict(changes))
        if not kn.changed(old, new) and not any(s >= t for s, _ in self.knobs):
            return None
        self._seek(t)  # the state before t, still computed with the old schedule
        state = self._active.snapshot()
        self.knobs = [(s, c) for s, c in self.knobs if s < t]
        if kn.changed(old, new):
            self.knobs.append((t, new))
        self.history.truncate(t)
        self.events = [e for e in self.events if e.iteration < t]
        for store in (self.checkpoints, self._recent, self._frames):
            for k in [k for k in store if k > t or (store is self._frames and k == t)]:
                del store[k]
        self.checkpoints[t] = state
        self._hi = max((*self.checkpoints, *self._recent), default=-1)
        if not kn.changed(old, new):
            return None
        ev = kn.event(t, old, new)
        self.events.append(ev)
        return ev

    # ------------------------------------------------------------------ internals
    def _at_end(self) -> bool:
        return self.end is not None and self.iteration + 1 >= self.end

    def _events_in(self, lo: int, hi: int) -> list[Event]:
        """Events of iterations [lo, hi) in iteration order (knob events of a schedule
        given at construction precede the detector events found later)."""
        return sorted((e for e in self.events if lo <= e.iteration < hi),
                      key=lambda e: e.iteration)

    def _land(self, hit: Event) -> Event:
        self._enter(hit.iteration, self._op_index(hit.op, hit.iteration))
        return hit

    def _op_index(self, op: int | str, iteration: int) -> int:
        if isinstance(op, int):
            return op
        idx = self.op_index(iteration, op)
        return 0 if idx is None else idx

    def _enter(self, iteration: int, op: int | str) -> None:
        if self.end is not None and iteration >= self.end:
            raise ValueError(f"iteration {iteration} is outside the recorded range "
                             f"0..{self.end - 1}")
        frame = self._frame(iteration)
        idx = self._op_index(op, iteration) if iteration != INIT or isinstance(op, int) else 0
        n = len(frame.ops)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise ValueError(f"op index {op} out of range 0..{n - 1}")
        self.frame, self.iteration, self.index = frame, iteration, idx

    def _frame(self, i: int) -> Frame:
        if i in self._frames:
            self._frames.move_to_end(i)
            return self._frames[i]
        if i == INIT:
            frame = self._switch(0).materialize_init()
            self._checkpoint()
        else:
            self._seek(i)
            frame = self._switch(i).materialize()
            self._observe_frame(frame)
            self._checkpoint()
            self._remember(i, frame.params)  # the frame's own copy: a later step back is free
        self._frames[i] = frame
        if len(self._frames) > 4:
            self._frames.popitem(last=False)
        return frame

    def _switch(self, i: int) -> Machine:
        """Make the machine of iteration i's config the active one, moving the state over."""
        m = self.machine_for(i)
        if m is not self._active:
            m.restore(self._active.snapshot(), self._active.pos)
            self._active = m
        return m

    def _next_start(self, pos: int) -> int:
        """The first knob change after pos (a run never crosses one in a single call)."""
        return next((s for s, _ in self.knobs if s > pos), 1 << 62)

    def _seek(self, i: int) -> None:
        """Bring the active machine to the start of iteration i (restore, then fast-forward)."""
        if not self.checkpoints:
            self._switch(0).init()
            self._checkpoint()
        backwards = self._active.pos > i
        base = self._base(i)
        gap = max(self.snap_every, 1)
        if backwards and base == i > 0 and i - (below := self._base(i - 1)) > gap:
            # i is saved but nothing just before it: re-run the stretch once from the
            # state before it, leaving snapshots for the steps back that will follow
            if (i - below) // gap <= self.max_recent:
                base = below
        if backwards or base > self._active.pos:
            self._switch(base).restore(self._state(base), base)
        snap = self.snap_every
        if backwards and not snap and i - base <= self.max_recent:
            snap = 1  # big nets: every iteration of a short stretch
        blocks: list[MetricsBlock] = []
        while (pos := self._active.pos) < i:
            if self.interrupted:
                raise Interrupted(f"stopped at iteration {pos}")
            nxt = min(i, (pos // self.every + 1) * self.every, pos + self._chunk)
            m = self._switch(pos)
            m.snap_every = snap
            count = min(nxt, self._next_start(pos)) - pos
            t0 = time.perf_counter()
            if self._needs_metrics(pos + count):
                blocks.append(m.run_fast(count))
            else:  # known iterations (a landing, a step back): the step alone
                m.run_fast(count, metrics=False)
            self._calibrate(count, time.perf_counter() - t0)
            self._remember_all(getattr(m, "snaps", []))
            self._checkpoint()
        if blocks:  # detectors scan the stretch once
            self._observe(MetricsBlock.concat(blocks))

    def _needs_metrics(self, stop: int) -> bool:
        """Whether re-executing up to `stop` must compute metrics: only past the history
        (a replay overrides this: it checks re-execution against its recording)."""
        return self._user or stop > len(self.history)

    def _calibrate(self, count: int, seconds: float) -> None:
        """Space the fast path's snapshots by what an iteration costs on this machine.

        The estimate from the net's size is off by 3× between CPUs (per-call overhead
        dominates small nets); the fastest run seen (noise only adds) sets the spacing,
        so a landing re-executes ~0.25 ms of iterations whatever the CPU.  Only what is
        kept changes, never the arithmetic."""
        if self._user or count < 64 or seconds <= 0:
            return
        self._per_it = min(self._per_it, seconds / count) if self._measured else seconds / count
        self._measured = True
        self.snap_every = int(2.5e-4 / self._per_it) if self._per_it < 2.5e-4 else 0

    def _remember(self, k: int, state: np.ndarray | dict[str, np.ndarray]) -> None:
        """Keep the parameters at the start of iteration k among the recent states."""
        self._recent[k] = state
        self._recent.move_to_end(k)
        self._hi = max(self._hi, k)
        while len(self._recent) > self.max_recent:
            self._recent.popitem(last=False)

    def _remember_all(self, snaps: list[tuple[int, np.ndarray]]) -> None:
        """_remember each (k, state) of a fast run, in one dict update when they all lie
        beyond every saved state (a continue keeps ~800 per block of 8192 iterations:
        one at a time, their bookkeeping cost ~1% of the run)."""
        if not snaps:
            return
        if snaps[0][0] <= self._hi or len(snaps) > self.max_recent:
            for k, state in snaps[-self.max_recent:]:
                self._remember(k, state)
            return
        recent = self._recent
        recent.update(snaps)  # new keys, increasing: appended in order, as _remember does
        self._hi = snaps[-1][0]
        while len(recent) > self.max_recent:
            recent.popitem(last=False)

    # hooks a replay overrides: where saved states come from, what to do with new metrics
    def _base(self, i: int) -> int:
        """The latest saved iteration <= i (a few dict probes when one is near)."""
        for k in range(i, max(i - max(self.snap_every, 1) - 1, -1), -1):
            if k in self._recent or k in self.checkpoints:
                return k
        pos = self._active.pos
        if self._hi <= pos <= i:  # nothing saved beyond the machine: no restore needed
            return pos
        return max((k for k in (*self.checkpoints, *self._recent) if k <= i), default=0)

    def _state(self, k: int) -> dict[str, np.ndarray]:
        """The parameters saved at the start of iteration k."""
        if k not in self._recent:
            return self.checkpoints[k]
        state = self._recent[k]
        return self._active.state_of(state) if isinstance(state, np.ndarray) else state

    def _observe(self, block: MetricsBlock) -> None:
        """Metrics the fast path just computed: extend the history past its end."""
        if block.start + len(block) > len(self.history):
            self._append(block)

    def _observe_frame(self, frame: Frame) -> None:
        """An iteration just materialized op by op."""
        if frame.iteration == len(self.history):
            self._append(frame_metrics(self._active, frame))

    def _advance_history(self, stop: int) -> None:
        """Make sure metrics exist for iterations < stop (fast path from the frontier)."""
        if len(self.history) < stop:
            self._seek(len(self.history))
            self._seek(stop)

    def _checkpoint(self) -> None:
        m = self._active
        # pinned: each segment's first state (runs stop there), so that re-running part
        # of a segment, as locating a NaN does, never starts under another config
        starts = {s for s, _ in self.knobs}
        if (m.pos % self.every == 0 or m.pos in starts) and m.pos not in self.checkpoints:
            self.checkpoints[m.pos] = m.snapshot()
            self._hi = max(self._hi, m.pos)
            if len(self.checkpoints) > self.max_checkpoints:  # thin: double the spacing
                self.every *= 2
                for k in [k for k in self.checkpoints if k % self.every and k not in starts]:
                    del self.checkpoints[k]

    def _append(self, block: MetricsBlock) -> None:
        skip = len(self.history) - block.start
        if skip:
            block = MetricsBlock(block.start + skip, block.loss[skip:], block.acc[skip:],
                                 block.lr[skip:], block.grad_norm[skip:],
                                 block.weight_norm[skip:], block.saturation[skip:])
        start = len(self.history)
        self.history.append(block)
        new = self._scanner.scan(self.history, start, len(self.history))
        self.events.extend(self._locate(e) for e in new)

    def _locate(self, event: Event) -> Event:
        """Name the op that *produced* a NaN, like re-running op by op (jax debug_nans)."""
        if event.kind != "nan":
            return event
        base = max(k for k in self.checkpoints if k <= event.iteration)  # >= segment start
        return locate_nan(self.machine_for(event.iteration), base, self.checkpoints[base], event)
