"""Per-iteration metrics stored as growable column arrays.

A million iterations of a 2-layer net are a few tens of MB here, and the
trace stores them in blocks; one row object per iteration would be 10× that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLUMNS = ("loss", "acc", "lr")  # scalar columns; grad_norm/weight_norm/saturation are per layer
FIELDS = ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation")


@dataclass
class MetricsBlock:
    """Metrics of iterations [start, start + len) produced by one fast run."""

    start: int
    loss: np.ndarray  # (n,)
    acc: np.ndarray  # (n,)
    lr: np.ndarray  # (n,)
    grad_norm: np.ndarray  # (n, L)
    weight_norm: np.ndarray  # (n, L) ‖W‖ before the update
    saturation: np.ndarray  # (n, L-1) share of saturated/dead hidden units; NaN = not sampled

    def __len__(self) -> int:
        return len(self.loss)

    @staticmethod
    def empty(start: int, n: int, depth: int) -> MetricsBlock:
        return MetricsBlock(start, np.empty(n), np.empty(n), np.empty(n),
                            np.empty((n, depth)), np.empty((n, depth)),
                            np.full((n, depth - 1), np.nan))

    @staticmethod
    def concat(blocks: list[MetricsBlock]) -> MetricsBlock:
        """Consecutive blocks as one (the first itself when alone)."""
        if len(blocks) == 1:
            return blocks[0]
        return MetricsBlock(blocks[0].start, *(np.concatenate([getattr(b, c) for b in blocks])
                                               for c in FIELDS))

    def head(self, n: int) -> MetricsBlock:
        """The first n rows (a block cut short by a stop)."""
        return MetricsBlock(self.start, self.loss[:n], self.acc[:n], self.lr[:n],
                            self.grad_norm[:n], self.weight_norm[:n], self.saturation[:n])

    @property
    def update_ratio(self) -> np.ndarray:
        """η·‖∇W‖/‖W‖ per layer (before clipping): the classic 1e-3 health figure."""
        with np.errstate(all="ignore"):
            return self.lr[:, None] * self.grad_norm / self.weight_norm


class History:
    """Metrics of iterations 0..n-1, appended block by block."""

    def __init__(self, depth: int, capacity: int = 1024) -> None:
        self.depth = depth
        self.n = 0
        self.cuts = 0  # truncations that dropped rows: what was derived from them is stale
        self._data = MetricsBlock.empty(0, capacity, depth)

    def __len__(self) -> int:
        return self.n

    @staticmethod
    def wrap(block: MetricsBlock) -> History:
        """A history over a block starting at 0, without copying it (a trace's metrics)."""
        h = History(block.grad_norm.shape[1], 0)
        h._data, h.n = block, len(block)
        return h

    def append(self, block: MetricsBlock) -> None:
        """Add a block that starts exactly at the end; earlier rows are immutable."""
        if block.start != self.n:
            raise ValueError(f"block starts at {block.start}, history ends at {self.n}")
        need = self.n + len(block)
        cap = len(self._data)
        if need > cap:
            new = MetricsBlock.empty(0, max(need, 2 * cap), self.depth)
            for name in ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation"):
                getattr(new, name)[: self.n] = getattr(self._data, name)[: self.n]
            self._data = new
        for name in ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation"):
            getattr(self._data, name)[self.n: need] = getattr(block, name)
        self.n = need

    def truncate(self, n: int) -> None:
        """Forget iterations >= n (a knob change rewrites the future)."""
        if n < self.n:
            self.n = n
            self.cuts += 1

    def view(self, start: int = 0, stop: int | None = None) -> MetricsBlock:
        """Rows [start, stop) as views (no copy)."""
        stop = self.n if stop is None else min(stop, self.n)
        d = self._data
        return MetricsBlock(start, d.loss[start:stop], d.acc[start:stop], d.lr[start:stop],
                            d.grad_norm[start:stop], d.weight_norm[start:stop],
                            d.saturation[start:stop])
