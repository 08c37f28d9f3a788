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

_bounds = np.lib.array_utils.byte_bounds


def _arrays(u: Unit) -> list[np.ndarray]:
    """Every array a unit names (env values, bound methods' arrays, lists of arrays)."""
    out: list[np.ndarray] = []
    for v in u.env.values():
        for x in v if isinstance(v, list | tuple) else (v,):
            if isinstance(x, np.ndarray):
                out.append(x)
            elif isinstance(getattr(x, "__self__", None), np.ndarray):
                out.append(x.__self__)
    return out


def _opaque(u: Unit) -> bool:
    """A unit whose env holds something other than arrays and NumPy callables (a plain
    callable may read any buffer)."""
    for v in u.env.values():
        for x in v if isinstance(v, list | tuple) else (v,):
            if not (isinstance(x, np.ndarray | np.ufunc | int | float)
                    or isinstance(getattr(x, "__self__", None), np.ndarray)):
                return True
    return False


def _touches(u: Unit, x: np.ndarray) -> bool:
    return any(np.may_share_memory(x, y) for y in _arrays(u))


def _inside(v: np.ndarray, o: np.ndarray) -> bool:
    lo, hi = _bounds(v)
    olo, ohi = _bounds(o)
    return olo <= lo and hi <= ohi


def _fully_written_first(units: list[Unit], k: int, j: int, a: np.ndarray) -> bool:
    """Whether every read of a's memory up to call j of unit k (that call included)
    follows a write of it in the step: a's buffer carries nothing from the previous
    iteration, so it may hold something else between steps."""
    lo, hi = _bounds(a)
    covered: list[tuple[int, int]] = []

    def written(x: np.ndarray) -> bool:
        xl, xh = max(_bounds(x)[0], lo), min(_bounds(x)[1], hi)
        for cl, ch in sorted(covered):
            if cl <= xl < ch:
                xl = ch
        return xl >= xh

    steps: list[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]] | None] = []
    for i, u in enumerate(units[:k + 1]):
        calls = u.calls[:j + 1] if i == k else u.calls
        if u.calls is not None:
            for _, args in calls or ():
                steps.append((tuple(x for x in args[:-1] if isinstance(x, np.ndarray)),
                              (args[-1],)))
        elif i < k:
            steps.append(None if u.reads is None else (u.reads, u.writes or ()))
    for step in steps:
        if step is None:
            return False  # unknown reads: assume the worst
        reads, writes = step
        if any(np.may_share_memory(r, a) and not written(r) for r in reads):
            return False
        for w in writes:
            if np.may_share_memory(w, a):
                if not w.flags.c_contiguous:
                    return False
                covered.append((max(_bounds(w)[0], lo), min(_bounds(w)[1], hi)))
    return True


class _Images:
    """Views of out's memory re-placed on a's, one object per distinct layout."""

    def __init__(self, units: list[Unit], o: np.ndarray, a: np.ndarray) -> None:
        self.shift = _bounds(a)[0] - _bounds(o)[0]
        self.flat = a.reshape(-1) if a.flags.c_contiguous else None
        self.o, self.a = o, a
        self.known: dict[tuple, np.ndarray] = {}
        for u in units:
            for x in _arrays(u):
                self.known.setdefault(self._key(x), x)

    @staticmethod
    def _key(x: np.ndarray) -> tuple:
        return (x.__array_interface__["data"][0], x.shape, x.strides, x.dtype.str)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        if not np.may_share_memory(v, self.o):
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
        elif isinstance(getattr(v, "__self__", None), np.ndarray):
            self_ = image(v.__self__)
            v = v if self_ is v.__self__ else getattr(self_, v.__name__)
        env[name] = v
    reads = None if u.reads is None else tuple(image(x) for x in u.reads)
    writes = None if u.writes is None else tuple(image(x) for x in u.writes)
    return Unit(u.src, env, reads, writes, None, u.metric)


def _try(units: list[Unit], k: int, j: int, a: np.ndarray, keep: list[np.ndarray]
         ) -> list[Unit] | None:
    """units with call j of unit k writing into a instead of its out, or None."""
    fn, args = units[k].calls[j]  # type: ignore[index]
    o = args[-1]
    if (a is o or a.dtype != o.dtype or a.shape != o.shape or a.strides != o.strides
            or not (a.flags.c_contiguous and o.flags.c_contiguous) or np.may_share_memory(a, o)
            or any(np.may_share_memory(x, y) for x in (a, o) for y in keep)):
        return None
    later = units[k + 1:]
    if any(u.reads is None and _opaque(u) for u in units):
        return None  # a plain callable may touch any buffer: rename nothing
    rest = units[k].calls[j + 1:]  # type: ignore[index]
    if any(np.may_share_memory(x, a) for _, xs in rest for x in xs
           if isinstance(x, np.ndarray)) or any(_touches(u, a) for u in later):
        return None  # a is read or written again
    if any(u.reads is None and _touches(u, o) for u in later):
        return None  # a unit of unknown reads on out's memory
    if any(np.may_share_memory(x, o) and not (x.dtype == o.dtype and _inside(x, o))
           for u in later for x in _arrays(u)):
        return None  # a view that would have no image in a
    if any(_touches(u, o) for u in units[:k]) or any(
            np.may_share_memory(x, o) for _, xs in units[k].calls[:j]  # type: ignore[index]
            for x in xs if isinstance(x, np.ndarray)) or any(
            np.may_share_memory(x, o) for x in args[:-1] if isinstance(x, np.ndarray)):
        return None  # out's buffer is also used before (or read by the call): keep it
    if not _fully_written_first(units, k, j, a):
        return None
    image = _Images(units, o, a)
    return units[:k] + [_rewrite(units[k], image, j)] + [_rewrite(u, image) for u in later]


def reuse_dead_inputs(units: list[Unit], keep: list[np.ndarray]) -> list[Unit]:
    """The units with each elementwise output moved onto a dead input of its layout."""
    units = list(units)
    for k in range(len(units)):
        for j in range(len(units[k].calls or ())):
            fn, args = units[k].calls[j]  # type: ignore[index]
            if not isinstance(fn, np.ufunc) or not isinstance(args[-1], np.ndarray):
                continue
            for a in args[:-1]:
                if isinstance(a, np.ndarray):
                    got = _try(units, k, j, a, keep)
                    if got is not None:
                        units = got
                        break
    return units
