"""The decision boundary: the network's predicted class over a grid covering the data.

This is the article's central plot.  The grid is classified by the program's
own forward kernels — a Program built for n = grid points with only its
forward ops bound — so the picture is exactly what the network computes, in
the run's dtype, with no second copy of the maths.  Models are cached per
(config, n), so re-drawing after a step costs one forward pass.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from core.engine.machine import Frame
from core.model.config import Config
from core.model.program import Hyper, build_program

MARGIN = 0.08  # share of the data's range added on every side


class NotTwoD(ValueError):
    """The dataset's inputs are not 2-D: there is no plane to draw."""


@dataclass(frozen=True)
class Boundary:
    """Predicted classes on a pixel grid, with the training points on it."""

    classes: np.ndarray  # (rows, cols) int: row 0 is the top (largest y)
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1
    pixels: np.ndarray  # (N, 2) int: the pixel (row, col) of each training point
    labels: np.ndarray  # (N,) true class of each point
    n_classes: int
    accuracy: float  # on all training points, at these parameters


class ForwardModel:
    """Forward-only kernels of a config for a fixed number of rows, reused across calls."""

    def __init__(self, cfg: Config, n_inputs: int, n_classes: int, rows: int) -> None:
        prog = build_program(cfg, n_inputs, n_classes, rows)
        dt = np.dtype(cfg.dtype)
        ops = [op for op in prog.ops if op.phase == "forward"]
        self.buf: dict[str, np.ndarray] = {"X": np.zeros((rows, n_inputs), dt)}
        for p in prog.params:
            self.buf[p] = np.zeros(prog.param_shape(p), dt)
        for op in ops:
            self.buf[op.key] = np.zeros(op.shape, dt)
        self.kernels = [op.bind(self.buf, Hyper()) for op in ops]
        self.out = self.buf[f"h{prog.depth}"]
        self.rows = rows

    def predict(self, params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Predicted class (argmax of the output layer) of each row of X."""
        for p, arr in params.items():
            if p in self.buf:
                self.buf[p][...] = arr
        self.buf["X"][...] = X
        with np.errstate(all="ignore"):  # a diverged network still gets a picture
            for k in self.kernels:
                k()
        return self.out.argmax(axis=1)


_MODELS: OrderedDict[tuple, ForwardModel] = OrderedDict()


def model(cfg: Config, n_inputs: int, n_classes: int, rows: int) -> ForwardModel:
    """A cached ForwardModel (a few per config: the grid and the training points)."""
    key = (cfg, n_inputs, n_classes, rows)
    if key in _MODELS:
        _MODELS.move_to_end(key)
    else:
        _MODELS[key] = ForwardModel(cfg, n_inputs, n_classes, rows)
        if len(_MODELS) > 6:
            _MODELS.popitem(last=False)
    return _MODELS[key]


def frame_params(frame: Frame) -> dict[str, np.ndarray]:
    """Parameters at the start of the frame's iteration; for the init frame, the initial ones."""
    if frame.params:
        return frame.params
    return {op.target: out for op, out in zip(frame.ops, frame.outputs, strict=False)
            if op.target}


def extent(X: np.ndarray, margin: float = MARGIN) -> tuple[float, float, float, float]:
    """The data's bounding box with a margin (a flat axis gets ±1)."""
    lo, hi = X.min(axis=0).astype(float), X.max(axis=0).astype(float)
    span = np.where(hi > lo, hi - lo, 2.0)
    lo, hi = np.where(hi > lo, lo, lo - 1.0), np.where(hi > lo, hi, hi + 1.0)
    return (float(lo[0] - margin * span[0]), float(hi[0] + margin * span[0]),
            float(lo[1] - margin * span[1]), float(hi[1] + margin * span[1]))


def grid_points(box: tuple[float, float, float, float], rows: int, cols: int) -> np.ndarray:
    """Pixel centres, row-major, row 0 at the top (largest y): shape (rows·cols, 2)."""
    x0, x1, y0, y1 = box
    xs = x0 + (np.arange(cols) + 0.5) * ((x1 - x0) / cols)
    ys = y1 - (np.arange(rows) + 0.5) * ((y1 - y0) / rows)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.reshape(-1), gy.reshape(-1)])


def pixel_of(points: np.ndarray, box: tuple[float, float, float, float], rows: int,
             cols: int) -> np.ndarray:
    """(row, col) of the pixel each point falls in (clamped to the grid)."""
    x0, x1, y0, y1 = box
    c = np.floor((points[:, 0] - x0) / (x1 - x0) * cols).astype(int)
    r = np.floor((y1 - points[:, 1]) / (y1 - y0) * rows).astype(int)
    return np.column_stack([np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)])


def decision_boundary(cfg: Config, params: dict[str, np.ndarray], X: np.ndarray,
                      labels: np.ndarray, n_classes: int, rows: int, cols: int,
                      margin: float = MARGIN) -> Boundary:
    """Classify a rows × cols pixel grid covering X (plus a margin) with the network."""
    if X.shape[1] != 2:
        raise NotTwoD(f"decision boundary needs 2-D inputs; this dataset has {X.shape[1]}")
    rows, cols = max(1, rows), max(1, cols)
    box = extent(X, margin)
    grid = model(cfg, 2, n_classes, rows * cols).predict(params, grid_points(box, rows, cols))
    on_data = model(cfg, 2, n_classes, len(X)).predict(params, X)
    acc = float(np.count_nonzero(on_data == labels)) / max(1, len(X))
    return Boundary(grid.reshape(rows, cols).copy(), box, pixel_of(X, box, rows, cols),
                    np.asarray(labels), n_classes, acc)
