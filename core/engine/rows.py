"""Metrics from rows of one flat arena [h_L | params | grads] (trace format 6).

With a full batch, an MSE loss and an L2 (or no) penalty, everything the fast
path reports per iteration (loss, accuracy, per-layer ‖W‖ and ‖∇W‖, and with
them the finite check) is a function of that arena between the backward pass
and the update.  The fast path copies the arena into one row of a chunk per
iteration (one NumPy call) and computes the metrics of a whole chunk at once:
the accuracy from h_L, then h_L − y (the loss op's own subtraction, so the same
bits), one square and one `np.add.reduceat` over the segments [h − y | params |
grads].  h − y is not copied: recomputing it a chunk at a time costs less than
moving it every iteration.

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
    """Segment layout of the arena [h_L | params | grads] and the metric formulas over
    its rows; sums read the first segment as h_L − y."""

    def __init__(self, arena: np.ndarray, y: np.ndarray, labels: np.ndarray,
                 order: list[tuple[str, int]], coeff: float, decay: float = 0.0) -> None:
        """`order`: (parameter, size) in arena order (weights contiguous, see
        Program.param_order); gradients follow in the same order.  `y`: the one-hot
        targets (N, K), read when the sums run."""
        self.arena = arena
        n, k = y.shape
        self.nk = nk = n * k
        self.n, self.k = n, k
        self.y = y.reshape(-1)
        names = [p for p, _ in order]
        self.depth = depth = sum(p[0] == "W" for p in names)
        self.labels = labels
        self.two = k == 2 and bool(np.isin(labels, (0, 1)).all())  # see _share
        self.sign = np.where(labels == 1, 1.0, -1.0)
        self.n0 = float(np.count_nonzero(labels == 0))
        self.half_n = 0.5 / n
        self.inv_n = 1.0 / n
        self.ones = np.ones(nk)  # Σ h as a product: NaN iff an output is (never ±inf)
        self.coeff = coeff
        # decay = c > 0: the arena holds the weights' data gradient; dL/dW adds c·W
        # (core/model/grad_ops.py, grad_w_op), and so do the norms here, with the same calls
        self.decay = decay
        sizes = [size for _, size in order]
        self.p_total = sum(sizes)
        self.w_total = sum(size for p, size in order if p[0] == "W")
        self.w_start = sum(sizes[:names.index("W1")])  # the weights are contiguous
        self.params = nk  # where the parameters start
        self.split = nk + self.p_total  # where the gradients start
        self.idx = np.cumsum([0, nk, *sizes, *sizes])[:-1].astype(np.intp)  # h−y, params, grads
        self.n_par = len(order)
        self.w_pos = [names.index(f"W{l}") for l in range(1, depth + 1)]
        self.b_pos = [names.index(f"b{l}") for l in range(1, depth + 1)
                      ] if "b1" in names else []
        self.bias = bool(self.b_pos)
        self._scratch: dict[str, np.ndarray] = {}

    def _buf(self, shape: tuple[int, ...], dtype: type, tag: str) -> np.ndarray:
        """A scratch array reused across chunks (no allocation per flush)."""
        if tag not in self._scratch or self._scratch[tag].shape != shape:
            self._scratch[tag] = np.empty(shape, dtype)
        return self._scratch[tag]

    def sums(self, rows: np.ndarray, lo: int, hi: int | None = None,
             scratch: bool = False) -> np.ndarray:
        """Σ squares per segment of [h − y | params | grads][:, lo:hi] (lo, hi on segment
        boundaries), float64.

        `scratch`: the rows may be overwritten (a chunk), so no copy is made.
        """
        hi = rows.shape[1] if hi is None else hi
        sq = rows[:, lo:hi] if scratch else rows[:, lo:hi].copy()
        if lo < self.nk:  # h − y, as the loss op forms it
            e = sq[:, :self.nk - lo]
            np.subtract(e, self.y[lo:self.nk], out=e)
        if self.decay and hi > self.split:  # dL/dW = data term + c·W, as grad_w_op forms it
            g0, w0 = self.split + self.w_start - lo, self.params + self.w_start
            g = sq[:, g0:g0 + self.w_total]
            w = rows[:, w0:w0 + self.w_total]  # not yet squared
            np.add(g, np.multiply(w, self.decay), out=g)
        flat = sq.reshape(-1) if sq.flags.c_contiguous else sq
        np.multiply(flat, flat, out=flat)
        idx = self.idx[(self.idx >= lo) & (self.idx < hi)] - lo
        return np.add.reduceat(sq, idx, axis=1).astype(np.float64, copy=False)

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

    def accuracy(self, rows: np.ndarray) -> np.ndarray:
        """Share of rows whose argmax output is the label, per arena row (h_L first).

        The one-row form (the stepper's); `into` computes the same for a chunk, taking
        its NaN rows from the sums instead of a product with ones.
        """
        pred = self._predict(rows)
        nan = np.flatnonzero(np.isnan(rows[:, :self.nk].dot(self.ones)))
        return self._share(pred, rows, nan)

    def _predict(self, rows: np.ndarray) -> np.ndarray:
        """The argmax prediction of rows without NaN outputs: K−1 column comparisons
        (np.argmax along a short axis costs a call per row), the first maximum winning.
        Two classes: float 1.0 where class 1 wins, for the product in `_share`."""
        c = len(rows)
        h = rows[:, :self.nk].reshape(c, self.n, self.k)
        if self.two:
            return np.greater(h[:, :, 1], h[:, :, 0], out=self._buf((c, self.n), float, "hit"))
        best = h[:, :, 0].copy()
        pred = np.zeros(best.shape, np.intp)
        for j in range(1, self.k):
            wins = h[:, :, j] > best
            np.copyto(pred, j, where=wins)
            np.copyto(best, h[:, :, j], where=wins)
        return pred

    def _share(self, pred: np.ndarray, rows: np.ndarray, nan: np.ndarray) -> np.ndarray:
        """Share of correct predictions per row.  Rows in `nan` hold a NaN output (their
        first segment may be h or (h − y)²: the NaNs sit in the same places) and take
        np.argmax's rule, where the first NaN wins.

        Two classes: correct = N₀ + Σⱼ sⱼ·predⱼ with sⱼ = ±1 for label 1 / 0, one
        product whose terms and sums are small integers, so exact in any order."""
        if len(nan):
            h = rows[nan, :self.nk].reshape(len(nan), self.n, self.k)
            fixed = np.where(np.isnan(h).any(2), np.isnan(h).argmax(2), pred[nan])
        if self.two:
            share = (pred.dot(self.sign) + self.n0) * self.inv_n
        else:
            share = np.count_nonzero(pred == self.labels, axis=1) * self.inv_n
        if len(nan):
            share[nan] = np.count_nonzero(fixed == self.labels, axis=1) * self.inv_n
        return share

    def into(self, rows: np.ndarray, loss: np.ndarray, acc: np.ndarray,
             grad_norm: np.ndarray, w_sq: np.ndarray) -> None:
        """Metrics of every row written into the arrays (the fast path's block slices).

        The rows are scratch: h becomes h − y, then everything is squared in place.
        Σ(h − y)² is NaN exactly where an output is (h is a sigmoid's, in [0, 1]
        or NaN), so those rows come from the sums."""
        pred = self._predict(rows)
        s = self.sums(rows, 0, scratch=True)
        acc[:] = self._share(pred, rows, np.flatnonzero(np.isnan(s[:, 0])))
        lo, ws = self.loss_and_wsq(s[:, :1 + self.n_par])
        loss[:] = lo
        w_sq[:] = ws
        grad_norm[:] = self.grad_norm(s[:, 1 + self.n_par:])
