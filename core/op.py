"""The shape of one operation: `Op`, the buffers it reads and writes, `Hyper`.

Kept apart from `core/program.py` (which builds the list of ops from a Config)
so the op builders in `core/grad_ops.py` can share it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.code import Code, Late

Buffers = dict[str, np.ndarray]
PHASES = ("init", "forward", "loss", "backward", "update")


@dataclass
class Hyper:
    """Scalars that change between iterations, read by bound kernels."""

    lr: float = 0.0
    # Python-float copies of scalar outputs, so the fast path reads metrics
    # without NumPy item access (set by the loss and norm kernels)
    loss: float = 0.0
    # views over the w_sq and grad_norm buffers (set when those kernels are bound)
    w_sq: Sequence[float] = ()
    grad_norm: Sequence[float] = ()


# binding an op to buffers gives its kernel as Code: callable on its own (the stepper)
# and inlined statement by statement into the fast path's generated loop
Kernel = Callable[[Buffers, Hyper], Code]


def lr_of(hp: Hyper) -> Late:
    """The step size as read when the kernel runs (it changes between iterations)."""
    return Late("hp.lr", (("hp", hp),))


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
