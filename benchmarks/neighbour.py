"""A memory-streaming neighbour process, to time the fast path as a busy shared machine sees it.

The fast path's metrics are memory work (an arena row copied per iteration, a chunk of
rows reduced at once) that the tight reference does not do, so a co-tenant that streams
memory slows the fast path more than the reference: on this project's 2-vCPU VM a
neighbour streaming 32 MB moved the seed ratio from ~0.99× to ~1.03–1.05×.
`python benchmarks/bench_fastpath.py --neighbour 32` reproduces that on purpose, so the
quiet and the contended figures can both be measured rather than guessed from the
day's noise.

Run alone:  python benchmarks/neighbour.py MB SECONDS
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def stream(mb: int, seconds: float) -> None:
    """Read and write `mb` MB over and over (two passes per round) for `seconds`."""
    a = np.ones(max(1, mb) * 131072)  # 131072 float64 = 1 MB
    b = np.empty_like(a)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        np.multiply(a, 1.0000001, out=b)
        np.add(b, 1.0, out=a)


@contextmanager
def neighbour(mb: int) -> Iterator[None]:
    """Run stream(mb) in another process for the duration of the block (no-op for mb ≤ 0)."""
    if mb <= 0:
        yield
        return
    proc = subprocess.Popen([sys.executable, __file__, str(mb), "86400"])
    try:
        time.sleep(0.5)  # let it allocate and start streaming
        yield
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    stream(int(sys.argv[1]), float(sys.argv[2]))
