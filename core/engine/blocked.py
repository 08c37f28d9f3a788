"""Large elementwise runs executed one cache-sized block at a time (strip-mining).

A run of cheap elementwise calls over big arrays (784-512-10's σ' and δ₁ on 512×512
values, its L2 term and SGD step on 400k weights) makes one pass over memory per
call: every call reads its inputs back from L3 or RAM, and the chain of calls is
bound by memory traffic.  Run a block of `BLOCK` elements through all the calls
before the next block, and every call after the first finds its inputs in L2.

Every element still goes through the same operations in the same order, so the
bits do not change: in an elementwise call, element i of the output depends on
element i of the inputs only.  That holds for the run as a whole as long as two
arrays of the run are either the same memory or do not overlap at all (a view
shifted against another would read an element another block has not written
yet); runs where that fails are left as they are.

Small arrays stay in cache anyway, and splitting them would only add calls: runs
over fewer than `BLOCK_MIN` elements are left alone.
"""

from __future__ import annotations

import numpy as np

from core.model.code import Late, Unit, conflict, const_arg, positional_out

BLOCK_MIN = 1 << 16  # elements: a run over fewer stays in the 512 KB L2 anyway
BLOCK = 1 << 13  # elements per block: 64 KB of float64 per array, 3-4 arrays fit L2
# calls bound by memory traffic; an exp or tanh costs ~5 ns an element whatever the
# cache, and blocking a run with one only adds calls (measured 784-512-10: blocking
# the sigmoid too lost ~1% of what blocking the L2 term and the step alone gains)
CHEAP = frozenset((np.add, np.subtract, np.multiply, np.divide, np.negative, np.positive,
                   np.maximum, np.minimum, np.absolute, np.sign, np.greater, np.less,
                   np.greater_equal, np.less_equal, np.equal, np.copysign))


def _run_size(u: Unit) -> int | None:
    """The one size of every array u's elementwise calls touch (None: not blockable)."""
    if u.calls is None or not all(fn in CHEAP for fn, _ in u.calls):
        return None
    arrays = [a for _, args in u.calls for a in args if isinstance(a, np.ndarray)]
    sizes = {a.size for a in arrays}
    if len(sizes) != 1 or not all(a.flags.c_contiguous for a in arrays):
        return None
    return sizes.pop()


def _regions(calls: list[tuple[object, tuple[object, ...]]]) -> list[np.ndarray] | None:
    """The distinct memory regions of the calls' arrays as flat views, or None when
    two of them overlap without being the same memory."""
    regions: list[np.ndarray] = []
    for _, args in calls:
        for a in args:
            if not isinstance(a, np.ndarray):
                continue
            flat = a.reshape(-1)
            for r in regions:
                if not np.may_share_memory(r, flat):
                    continue
                if (r.__array_interface__["data"][0] != flat.__array_interface__["data"][0]
                        or r.dtype != flat.dtype):
                    return None
                break
            else:
                regions.append(flat)
    return regions


def _region_of(a: np.ndarray, regions: list[np.ndarray]) -> int:
    ptr = a.__array_interface__["data"][0]
    return next(k for k, r in enumerate(regions) if r.__array_interface__["data"][0] == ptr)


def blocked_unit(run: list[Unit], block: int) -> Unit | None:
    """The calls of `run` (consecutive elementwise units on arrays of one size) as one
    unit looping over blocks, or None if they cannot be split safely."""
    calls = [c for u in run for c in u.calls or ()]
    regions = _regions(calls)
    if regions is None:
        return None
    size = regions[0].size
    bounds = [(lo, min(lo + block, size)) for lo in range(0, size, block)]
    env: dict[str, object] = {"blocks": [tuple(r[lo:hi] for r in regions)
                                         for lo, hi in bounds]}
    names: dict[int, str] = {}

    def name(v: object, fn: object, out: object) -> str:
        if isinstance(v, Late):
            env.update(v.env)
            return v.src
        if isinstance(v, np.ndarray):
            return f"x{_region_of(v, regions)}_"
        if id(v) not in names:
            names[id(v)] = f"k{len(names)}"
            env[names[id(v)]] = const_arg(fn, v, out)
        return names[id(v)]

    lines = [f"for {', '.join(f'x{k}_' for k in range(len(regions)))}, in blocks:"]
    for fn, args in calls:
        *ins, out = args
        fname = name(fn, None, None)
        out_src = name(out, fn, out) if positional_out(fn) else f"out={name(out, fn, out)}"
        lines.append(f"    {fname}({', '.join([*(name(v, fn, out) for v in ins), out_src])})")
    reads = tuple(a for u in run for a in u.reads or ())
    writes = tuple(a for u in run for a in u.writes or ())
    return Unit("\n".join(lines), env, reads, writes)


def block_runs(units: list[Unit], block: int | None = None,
               least: int | None = None) -> list[Unit]:
    """`units` with each run of two or more cheap elementwise calls over `least`+ elements
    (default BLOCK_MIN) replaced by one unit looping over blocks of `block` (BLOCK).  A run
    may reach past a unit it does not touch (the per-layer norms between the L2 term and
    the step), which then runs after it."""
    block = BLOCK if block is None else block
    least = BLOCK_MIN if least is None else least
    out: list[Unit] = []
    k = 0
    while k < len(units):
        size = _run_size(units[k])
        if size is None or size < least:
            out.append(units[k])
            k += 1
            continue
        run, passed = [units[k]], []
        j = k + 1
        while j < len(units):
            u = units[j]
            if _run_size(u) == size and not any(conflict(x, u) for x in passed):
                run.append(u)
            elif u.reads is not None and u.writes is not None and len(passed) < 2:
                passed.append(u)
            else:
                break
            j += 1
        while passed and passed[-1] is units[j - 1]:  # trailing ones were never passed
            passed.pop()
            j -= 1
        k = j
        merged = blocked_unit(run, block) if sum(len(u.calls or ()) for u in run) > 1 else None
        out.extend(([merged] if merged else run) + passed)
    return out
