"""Re-executing one iteration op by op: its metrics row, and the op that made a NaN.

The Stepper (stepping, locating live NaNs), the Recorder (locating NaNs while
recording) and Replay (checking re-executed rows) all need the fast path's very
numbers from a materialized frame: one module keeps them equal.
"""

from __future__ import annotations

import math

import numpy as np

from core.engine.history import MetricsBlock
from core.engine.machine import SAT_EVERY, Frame, Machine
from core.inspect.detectors import Event, frame_events
from core.model import catalog as cat


def locate_nan(m: Machine, base: int, params: dict[str, np.ndarray], event: Event) -> Event:
    """Re-run a NaN event's iteration op by op from a saved state to name the producing op.

    The machine's own state is put back afterwards.
    """
    saved, pos = m.snapshot(), m.pos
    m.restore(params, base)
    if event.iteration > base:
        m.run_fast(event.iteration - base)
    frame = m.materialize()
    m.restore(saved, pos)
    found = frame_events(frame)
    return found[0] if found and found[0].kind == "nan" else event


def frame_metrics(m: Machine, frame: Frame) -> MetricsBlock:
    """The metrics row of a materialized iteration, computed as the fast path does.

    Call it right after `m.materialize()`: the loss is the kernel's Python float (as
    the fast path reads it), not the buffer, which rounds it to float32 in a float32
    run; gradient norms are read from their buffer by both.
    """
    with np.errstate(all="ignore"):  # NaN/overflow here is data, already flagged
        return _frame_metrics(m, frame)


def _frame_metrics(m: Machine, frame: Frame) -> MetricsBlock:
    depth = m.program.depth
    block = MetricsBlock.empty(frame.iteration, 1, depth)
    block.loss[0] = m.hp.loss
    block.lr[0] = m.cfg.lr_at(frame.iteration)
    block.grad_norm[0] = list(m.hp.grad_norm)
    out = frame.value(f"h{depth}")
    if m.program.row_metrics:  # as the fast path computes it from the arena rows
        block.acc[0] = m.hp.rows.accuracy(out.reshape(1, -1))[0]
    else:
        pred = out.argmax(1)
        block.acc[0] = np.count_nonzero(pred == frame.batch["labels"]) * (1.0 / m.program.n)
    for l in range(depth):
        if m.program.row_metrics:  # Σ W² from the arena rows, kept by the loss op
            block.weight_norm[0, l] = math.sqrt(m.hp.w_sq[l])
            continue
        f = frame.params[f"W{l + 1}"].reshape(-1)
        block.weight_norm[0, l] = math.sqrt(float(f.dot(f)))
    if frame.iteration % SAT_EVERY == 0:
        act = cat.ACTIVATIONS[m.cfg.activation]
        for l in range(1, depth):
            h = frame.value(f"h{l}")
            block.saturation[0, l - 1] = np.count_nonzero(act.saturated(h)) / h.size
    return block
