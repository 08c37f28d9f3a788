"""The shape of one operation: `Op`, the buffers it reads and writes, `Hyper`.

Kept apart from `core/model/program.py` (which builds the list of ops from a Config)
so the op builders in `core/model/grad_ops.py` can share it without an import cycle.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.model.code import Code, Late

Buffers = dict[str, np.ndarray]
PHASES = ("init", "forward", "loss", "backward", "update")


@dataclass
class Hyper:
    """Scalars that change between iterations, read by bound kernels."""

    # Python-float copies of scalar outputs, so the fast path reads metrics
    # without NumPy item access (set by the loss and norm kernels)
    loss: float = 0.0
    # views over the w_sq and grad_norm buffers (set when those kernels are bound)
    w_sq: Sequence[float] = ()
    grad_norm: Sequence[float] = ()
    rows: Any = None  # the run's core/engine/rows.py RowMetrics, when its metrics come from rows
    _lr: float = 0.0
    # 0-d arrays holding the step size, one per dtype: kernels read these (a ufunc takes a
    # 0-d array faster than a Python float, same bits); setting `lr` updates them all
    _boxes: dict[str, np.ndarray] = field(default_factory=dict)
    _decay: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)
    # vectors whose slices repeat boxes (core/engine/update_pair.py), refilled on every set
    _fills: list[tuple[weakref.ref, tuple[tuple[slice, np.ndarray], ...]]] = field(
        default_factory=list)

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = value
        for box in self._boxes.values():
            box[()] = value
        for (_, c), box in self._decay.items():
            box[()] = 1.0 - value * c
        if self._fills:
            self._refill()

    def track(self, vec: np.ndarray, parts: tuple[tuple[slice, np.ndarray], ...]) -> None:
        """Keep vec[sl] equal to each 0-d box (a step size, a decay factor) from now on."""
        self._fills.append((weakref.ref(vec), parts))
        self._refill()

    def _refill(self) -> None:
        live = []
        for ref, parts in self._fills:
            vec = ref()
            if vec is not None:
                for sl, box in parts:
                    vec[sl] = box
                live.append((ref, parts))
        self._fills[:] = live

    def lr_box(self, dt: np.dtype) -> np.ndarray:
        box = self._boxes.get(dt.str)
        if box is None:
            box = self._boxes[dt.str] = np.array(self._lr, dtype=dt)
        return box


# binding an op to buffers gives its kernel as Code: callable on its own (the stepper)
# and inlined statement by statement into the fast path's generated loop
Kernel = Callable[[Buffers, Hyper], Code]


def decay_of(hp: Hyper, dt: np.dtype, c: float) -> Late:
    """The weight-decay factor 1 − η·c as read when the kernel runs (η may change)."""
    box = hp._decay.get((dt.str, c))
    if box is None:
        box = hp._decay[(dt.str, c)] = np.array(1.0 - hp.lr * c, dtype=dt)
    return Late("dec", (("dec", box),))


def lr_of(hp: Hyper, dt: np.dtype) -> Late:
    """The step size as read when the kernel runs (it changes between iterations)."""
    return Late("lr", (("lr", hp.lr_box(dt)),))


@dataclass(frozen=True)
class Op:
    """One named operation of the program; `bind` makes its runnable kernel."""

    key: str  # array name (export key), e.g. "dL_dz2"
    name: str  # display name, e.g. "dL/dz2"
    phase: str
    formula: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    layer: int
    family: str  # catalog family: "linear", "sigmoid", "mse", "l2", "sgd", ...
    bind: Kernel = field(repr=False, compare=False)
    target: str = ""  # buffer written in place (params, clipped grads); "" = own buffer
    display_only: bool = False  # not needed to compute the update (fused elsewhere)


def cells(arr: np.ndarray) -> memoryview:
    """A writable memoryview over a small contiguous float array.

    Writing Python floats through it costs ~0.1 µs against ~0.3-0.6 µs for NumPy
    item assignment: it matters on the fast path of a 2-10-2 net.
    """
    return memoryview(arr.reshape(-1)).cast("B").cast(arr.dtype.char)


def h_name(l: int) -> str:
    return "X" if l == 0 else f"h{l}"
