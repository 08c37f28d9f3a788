"""Metrics from rows of one flat arena [h_L | h_L − y | params | grads] (trace format 5).

With a full batch, an MSE loss and an L2 (or no) penalty, everything the fast
path reports per iteration (loss, accuracy, per-layer ‖W‖ and ‖∇W‖, and with
them the finite check) is a function of that arena between the backward pass
and the update.  The fast path copies the arena into one row of a chunk per
iteration (one NumPy call) and computes the metrics of a whole chunk at once:
one square and one `np.add.reduceat` over segments (h_L − y is the loss op's own
buffer, h_L is there for the accuracy).

The stepper's loss and norm ops run the very same functions on a one-row view of
the live arena, so both agree bit for bit: `np.add.reduceat` sums each segment of
a row the same way whatever the number of rows (tested), and the combination
below is elementwise float64 arithmetic (what Python floats do).
"""

from __future__ import annotations

import numpy as np


def eligible(loss: str, reg: float, reg_kind: str, clip: float, clip_kind: str,
             full: bool, width: int) -> bool:
    """Whether a run's metrics come from arena rows (else per iteration, format 3 sums)."""
    return (full and loss == "mse" and (reg == 0 or reg_kind == "l2")
            and not (clip > 0 and clip_kind == "norm") and width <= MAX_WIDTH)


MAX_WIDTH = 4096  # arena entries per row: a 256-row chunk stays within 8 MB


class RowMetrics:
    """Segment layout of the arena [h_L | h_L − y | params | grads] and the metric
    formulas over its rows (h_L − y is the loss op's own buffer, so no subtraction)."""

    def __init__(self, arena: np.ndarray, labels: np.ndarray, k: int,
                 order: list[tuple[str, int]], coeff: float, decay: float = 0.0) -> None:
        """`order`: (parameter, size) in arena order (weights contiguous, see
        Program.param_order); gradients follow in the same order."""
        self.arena = arena
        n = len(labels)
        self.nk = nk = n * k
        self.n, self.k = n, k
        names = [p for p, _ in order]
        self.depth = depth = sum(p[0] == "W" for p in names)
        self.labels = labels
        self.half_n = 0.5 / n
        self.inv_n = 1.0 / n
        self.ones = np.ones(n)  # counts per row as a product: exact for 0/1 entries
        self.coeff = coeff
        # decay = c > 0: the arena holds the weights' data gradient; dL/dW adds c·W
        # (core/model/grad_ops.py, grad_w_op), and so do the norms here, with the same calls
        self.decay = decay
        sizes = [size for _, size in order]
        self.p_total = sum(sizes)
        self.w_total = sum(size for p, size in order if p[0] == "W")
        self.w_start = sum(sizes[:names.index("W1")])  # the weights are contiguous
        self.params = 2 * nk  # where the parameters start
        self.split = 2 * nk + self.p_total  # where the gradients start
        self.idx = np.cumsum([nk, nk, *sizes, *sizes])[:-1].astype(np.intp)  # h−y, params, grads
        self.n_par = len(order)
        self.w_pos = [names.index(f"W{l}") for l in range(1, depth + 1)]
        self.b_pos = [names.index(f"b{l}") for l in range(1, depth + 1)
                      ] if "b1" in names else []
        self.bias = bool(self.b_pos)

    def sums(self, rows: np.ndarray, lo: int, hi: int | None = None,
             scratch: bool = False) -> np.ndarray:
        """Σ squares per segment of rows[:, lo:hi] (lo, hi on segment boundaries), float64.

        `scratch`: the rows may be overwritten (a chunk), so no copy is made.
        """
        hi = rows.shape[1] if hi is None else hi
        sq = rows[:, lo:hi] if scratch else rows[:, lo:hi].copy()
        if self.decay and hi > self.split:  # dL/dW = data term + c·W, as grad_w_op forms it
            g0, w0 = self.split + self.w_start - lo, self.params + self.w_start
            g = sq[:, g0:g0 + self.w_total]
            w = rows[:, w0:w0 + self.w_total]
            np.add(g, np.multiply(w, self.decay), out=g)
        np.multiply(sq, sq, out=sq)
        idx = self.idx[(self.idx >= lo) & (self.idx < hi)] - lo
        return np.add.reduceat(sq, idx, axis=1).astype(np.float64)

    def loss_and_wsq(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(loss, Σ W² per layer) from sums over [h−y | params]: Σ(y−h)²/2N + λ/2N·Σ‖W‖²."""
        w_sq = s[:, [1 + p for p in self.w_pos]]
        loss = s[:, 0] * self.half_n
        if self.coeff:
            total = np.zeros(len(s))
            for l in range(self.depth):  # the running sum, in layer order
                total = total + w_sq[:, l]
            loss = loss + self.coeff * total
        return loss, w_sq

    def grad_norm(self, g: np.ndarray) -> np.ndarray:
        """Per-layer ‖∇‖ (weights and bias together) from sums over the gradient segments."""
        if not self.bias:
            return np.sqrt(g[:, self.w_pos])
        return np.sqrt((0.0 + g[:, self.w_pos]) + g[:, self.b_pos])

    def accuracy(self, rows: np.ndarray, nan: bool | None = None) -> np.ndarray:
        """Share of rows whose argmax output is the label, per arena row.

        np.argmax along a short last axis costs a call per row; without NaNs the same
        prediction (the first maximum wins) comes from K−1 column comparisons.  `nan`:
        whether any output may be NaN, if known (a NaN output makes Σ(h − y)² NaN).
        """
        h = rows[:, :self.nk].reshape(len(rows), self.n, self.k)
        if np.isnan(h).any() if nan is None else nan:  # argmax: the first NaN wins
            pred = h.argmax(2)
        elif self.k == 2:
            pred = h[:, :, 1] > h[:, :, 0]
        else:
            best = h[:, :, 0].copy()
            pred = np.zeros(best.shape, np.intp)
            for j in range(1, self.k):
                wins = h[:, :, j] > best
                np.copyto(pred, j, where=wins)
                np.copyto(best, h[:, :, j], where=wins)
        hits = np.equal(pred, self.labels).astype(np.float64).dot(self.ones)
        return hits * self.inv_n

    def into(self, rows: np.ndarray, loss: np.ndarray, acc: np.ndarray,
             grad_norm: np.ndarray, w_sq: np.ndarray) -> None:
        """Metrics of every row written into the arrays (the fast path's block slices).

        The rows are scratch: they are squared in place."""
        s = self.sums(rows, self.nk, scratch=True)  # leaves the outputs h as they were
        acc[:] = self.accuracy(rows, bool(np.isnan(s[:, 0]).any()))
        lo, ws = self.loss_and_wsq(s[:, :1 + self.n_par])
        loss[:] = lo
        w_sq[:] = ws
        grad_norm[:] = self.grad_norm(s[:, 1 + self.n_par:])
