"""Data, initial parameters and one training step of a user's program.

Shared by `check` (which trains to the requested iterations with the user's
own gradients) and the debug machine (which runs the same step under the
tracer), so both see the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.model.datasets import make_dataset
from core.user.loader import UserError, UserProgram, check_grads, check_params

DEFAULT_DATASET = "xor"


def resolve_data(prog: UserProgram, dataset: str | None, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """--dataset wins, then the file's data(), then the built-in xor set (y one-hot)."""
    if dataset is None and prog.has_data:
        out = prog.call("data")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise UserError(f"{prog.display}: data() must return (X, y), "
                            f"got {type(out).__name__}")
        X, y = out
        for name, arr in (("X", X), ("y", y)):
            if not isinstance(arr, np.ndarray):
                raise UserError(f"{prog.display}: data() must return NumPy arrays; {name} is "
                                f"{type(arr).__name__}")
            if not np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
                raise UserError(f"{prog.display}: data() must return numeric arrays; {name} has "
                                f"dtype {arr.dtype}")
        if X.ndim == 0 or y.ndim == 0 or len(X) != len(y) or len(X) == 0:
            raise UserError(f"{prog.display}: data() returned X {X.shape} and y {y.shape}: "
                            f"need the same non-zero number of rows")
        return X, y
    ds = make_dataset(dataset or DEFAULT_DATASET, seed)
    return ds.X, ds.onehot(np.float64)


def labels_of(y: np.ndarray) -> np.ndarray:
    """Integer class labels for accuracy: argmax of one-hot rows, else y itself."""
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(1)
    return np.asarray(y).reshape(len(y)).astype(np.int64, copy=False)


def init_params(prog: UserProgram, seed: int) -> dict[str, np.ndarray]:
    return check_params(prog, prog.call("init", np.random.default_rng(seed)))


def train_step(prog: UserProgram, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
               lr: float) -> dict[str, np.ndarray]:
    """backward, then update (the user's, or params[k] -= lr * grads[k]); returns grads."""
    _, grads = check_grads(prog, prog.call("backward", params, X, y), params)
    apply_update(prog, params, grads, lr)
    return grads


def apply_update(prog: UserProgram, params: dict[str, np.ndarray],
                 grads: dict[str, np.ndarray], lr: float) -> None:
    if prog.has_update:
        prog.call("update", params, grads, lr)
        return
    for k, g in grads.items():
        if g.shape != params[k].shape:
            raise UserError(f"{prog.display}: cannot update {k}: gradient shape {g.shape} "
                            f"!= parameter shape {params[k].shape}")
    with np.errstate(all="ignore"):
        for k, g in grads.items():
            params[k] -= lr * g


def copy_params(params: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in params.items()}
