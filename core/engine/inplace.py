"""In-place outputs for the fast path: an elementwise call writes over an input
that nothing reads again, so the step touches fewer distinct buffers.

The stepper keeps every op's output in its own buffer because the UI shows them
all at once; the fast path shows none, so a buffer whose value is dead can take
the next value.  At 2-50-2 (N=300) the hidden layer's σ' = e·h·h lands in e and
δ₁ = g₁·σ' lands in g₁: three 120 KB buffers where there were five, which fit
the 512 KB L2 cache here (3.5% of an iteration; the tight reference has four).

Renaming only: every element goes through the same operations in the same
order, so the result is bit-identical.  A call `out = f(..., a, ...)` takes a's
buffer when
- a and out are distinct arrays of one dtype, shape and strides;
- nothing after the call (in its unit or a later one) touches a's memory;
- out's memory is touched by nothing before the call (nor read by it), and a's is
  fully written before it is read in the step (neither carries a value from the last iteration);
- neither overlaps an array the loop reads around the step (`keep`: the metric
  arena, the outputs argmax and saturation samples read, the parameters);
- every later array on out's memory lies inside out (so it has an image in a).
Later references to out's memory are then rewritten to the same places in a's,
reusing an existing array object where one has that exact layout: NumPy's
overlap check is fast only when `out` is the very object it reads.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from core.model.code import Unit, unit_from_calls

_byte_bounds = np.lib.array_utils.byte_bounds


class _Mem:
    """Byte bounds of arrays and the arrays of units, computed once per pass (the pass
    asks thousands of overlap questions; NumPy's may_share_memory answers from the same
    bounds, at ~1 µs a question)."""

    def __init__(self) -> None:
        self._b: dict[int, tuple[np.ndarray, int, int]] = {}
        self._a: dict[int, tuple[Unit, list[np.ndarray]]] = {}

    def bounds(self, x: np.ndarray) -> tuple[int, int]:
        got = self._b.get(id(x))
        if got is None:
            got = self._b[id(x)] = (x, *_byte_bounds(x))  # x kept: its id stays its own
        return got[1], got[2]

    def overlap(self, x: np.ndarray, y: np.ndarray) -> bool:
        xl, xh = self.bounds(x)
        yl, yh = self.bounds(y)
        return xl < yh and yl < xh

    def arrays(self, u: Unit) -> list[np.ndarray]:
        """Every array a unit names (env values, bound methods' arrays, lists of arrays)."""
        got = self._a.get(id(u))
        if got is None:
            out: list[np.ndarray] = []
            for v in u.env.values():
                if isinstance(v, list | tuple):  # e.g. a chunk's rows: their base stands in
                    bases = {id(b): b for b in (x.base if isinstance(x.base, np.ndarray)
                                                 else x for x in v if isinstance(x, np.ndarray))}
                    out.extend(bases.values())
                elif isinstance(v, np.ndarray):
                    out.append(v)
                elif isinstance(getattr(v, "__self__", None), np.ndarray):
                    out.append(v.__self__)
            got = self._a[id(u)] = (u, out)
        return got[1]

    def touches(self, u: Unit, x: np.ndarray) -> bool:
        return any(self.overlap(x, y) for y in self.arrays(u))

    def inside(self, v: np.ndarray, o: np.ndarray) -> bool:
        lo, hi = self.bounds(v)
        olo, ohi = self.bounds(o)
        return olo <= lo and hi <= ohi


def _opaque(u: Unit) -> bool:
    """A unit whose env holds something other than arrays and NumPy callables (a plain
    callable may read any buffer)."""
    for v in u.env.values():
        for x in v if isinstance(v, list | tuple) else (v,):
            if not (isinstance(x, np.ndarray | np.ufunc | int | float)
                    or isinstance(getattr(x, "__self__", None), np.ndarray)):
                return True
    return False


def _fully_written_first(mem: _Mem, units: list[Unit], k: int, j: int, a: np.ndarray
                         ) -> bool:
    """Whether every read of a's memory up to call j of unit k (that call included)
    follows a write of it in the step: a's buffer carries nothing from the previous
    iteration, so it may hold something else between steps."""
    lo, hi = mem.bounds(a)
    covered: list[tuple[int, int]] = []

    def written(x: np.ndarray) -> bool:
        xl, xh = mem.bounds(x)
        xl, xh = max(xl, lo), min(xh, hi)
        for cl, ch in sorted(covered):
            if cl <= xl < ch:
                xl = ch
        return xl >= xh

    steps: list[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]] | None] = []
    for i, u in enumerate(units[:k + 1]):
        if u.calls is not None:
            for _, args in (u.calls[:j + 1] if i == k else u.calls):
                steps.append((tuple(x for x in args[:-1] if isinstance(x, np.ndarray)),
                              (args[-1],)))
        elif i < k:
            steps.append(None if u.reads is None else (u.reads, u.writes or ()))
    for step in steps:
        if step is None:
            return False  # unknown reads: assume the worst
        reads, writes = step
        if any(mem.overlap(r, a) and not written(r) for r in reads):
            return False
        for w in writes:
            if mem.overlap(w, a):
                if not w.flags.c_contiguous:
                    return False
                wl, wh = mem.bounds(w)
                covered.append((max(wl, lo), min(wh, hi)))
    return True


class _Images:
    """Views of out's memory re-placed on a's, one object per distinct layout."""

    def __init__(self, mem: _Mem, units: list[Unit], o: np.ndarray, a: np.ndarray) -> None:
        self.mem, self.o, self.a = mem, o, a
        self.shift = mem.bounds(a)[0] - mem.bounds(o)[0]
        self.known: dict[tuple, np.ndarray] = {}
        for u in units:
            for x in mem.arrays(u):
                self.known.setdefault(self._key(x), x)

    @staticmethod
    def _key(x: np.ndarray) -> tuple:
        return (x.__array_interface__["data"][0], x.shape, x.strides, x.dtype.str)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        if not self.mem.overlap(v, self.o):
            return v
        addr = v.__array_interface__["data"][0] + self.shift
        key = (addr, v.shape, v.strides, v.dtype.str)
        if key not in self.known:
            start = (addr - self.a.__array_interface__["data"][0]) // v.itemsize
            base = self.a.reshape(-1)[start:]
            self.known[key] = np.lib.stride_tricks.as_strided(base, v.shape, v.strides)
        return self.known[key]


def _rewrite(u: Unit, image: _Images, from_call: int = 0) -> Unit:
    """Unit u with out's memory replaced by a's (calls before `from_call` untouched)."""
    if u.calls is not None:
        calls = tuple((fn, tuple(image(x) if isinstance(x, np.ndarray) and i >= from_call
                                 else x for x in args)) if i >= from_call else (fn, args)
                      for i, (fn, args) in enumerate(u.calls))
        return replace(unit_from_calls(calls), metric=u.metric)
    env: dict[str, object] = {}
    for name, v in u.env.items():
        if isinstance(v, np.ndarray):
            v = image(v)
        elif isinstance(v, list) and any(isinstance(x, np.ndarray) for x in v):
            v = [image(x) if isinstance(x, np.ndarray) else x for x in v]
        elif isinstance(getattr(v, "__self__", None), np.ndarray):
            self_ = image(v.__self__)
            v = v if self_ is v.__self__ else getattr(self_, v.__name__)
        env[name] = v
    reads = None if u.reads is None else tuple(image(x) for x in u.reads)
    writes = None if u.writes is None else tuple(image(x) for x in u.writes)
    return Unit(u.src, env, reads, writes, None, u.metric)


def _try(mem: _Mem, units: list[Unit], k: int, j: int, a: np.ndarray,
         keep: list[np.ndarray]) -> list[Unit] | None:
    """units with call j of unit k writing into a instead of its out, or None."""
    fn, args = units[k].calls[j]  # type: ignore[index]
    o = args[-1]
    if (a is o or a.dtype != o.dtype or a.shape != o.shape or a.strides != o.strides
            or not (a.flags.c_contiguous and o.flags.c_contiguous) or mem.overlap(a, o)
            or any(mem.overlap(x, y) for x in (a, o) for y in keep)):
        return None
    later = units[k + 1:]
    rest = units[k].calls[j + 1:]  # type: ignore[index]
    if any(mem.overlap(x, a) for _, xs in rest for x in xs
           if isinstance(x, np.ndarray)) or any(mem.touches(u, a) for u in later):
        return None  # a is read or written again
    if any(u.reads is None and mem.touches(u, o) for u in later):
        return None  # a unit of unknown reads on out's memory
    if any(mem.overlap(x, o) and not (x.dtype == o.dtype and mem.inside(x, o))
           for u in later for x in mem.arrays(u)):
        return None  # a view that would have no image in a
    if any(mem.touches(u, o) for u in units[:k]) or any(
            mem.overlap(x, o) for _, xs in units[k].calls[:j]  # type: ignore[index]
            for x in xs if isinstance(x, np.ndarray)) or any(
            mem.overlap(x, o) for x in args[:-1] if isinstance(x, np.ndarray)):
        return None  # out's buffer is also used before (or read by the call): keep it
    if not _fully_written_first(mem, units, k, j, a):
        return None
    image = _Images(mem, units, o, a)
    return units[:k] + [_rewrite(units[k], image, j)] + [_rewrite(u, image) for u in later]


def reuse_dead_inputs(units: list[Unit], keep: list[np.ndarray]) -> list[Unit]:
    """The units with each elementwise output moved onto a dead input of its layout."""
    units = list(units)
    if any(u.reads is None and _opaque(u) for u in units):
        return units  # a plain callable may touch any buffer: rename nothing
    mem = _Mem()
    for k in range(len(units)):
        for j in range(len(units[k].calls or ())):
            fn, args = units[k].calls[j]  # type: ignore[index]
            if not isinstance(fn, np.ufunc) or not isinstance(args[-1], np.ndarray):
                continue
            for a in args[:-1]:
                if isinstance(a, np.ndarray):
                    got = _try(mem, units, k, j, a, keep)
                    if got is not None:
                        units = got
                        break
    return units
