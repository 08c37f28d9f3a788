"""Kernels as Python statements, so one source runs op by op *and* fused.

An op's kernel is a `Code`: a few `Unit`s, each a line or two of Python over
named objects (arrays, bound NumPy functions, scalars).  Called on its own (the
stepper, gradcheck) a Code compiles its statements into one function; the fast
path (`core/engine/fused.py`) pastes the units of every live op into a single generated
loop.  Both run the very same NumPy calls on the very same buffers, so the
fast path and the stepper agree bit for bit by construction, and there is no
second hand-written copy of the maths.

A unit made by `Code.call` also knows the arrays it reads and writes, and
whether it is a plain elementwise call: the fuser may then move it later and
merge it with its twins on adjacent slices of one flat arena (the L2 terms and
SGD steps of all layers become one call each, with the same per-element maths).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

_IDENT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Late:
    """An argument read when the statement runs (e.g. the step size `hp.lr`)."""

    src: str  # an expression over env names
    env: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Unit:
    """Statements over env names; `calls` is set for a single-NumPy-call-per-line unit."""

    src: str
    env: dict[str, object]
    reads: tuple[np.ndarray, ...] | None = None  # None: unknown, a barrier to reordering
    writes: tuple[np.ndarray, ...] | None = None
    calls: tuple[tuple[object, tuple[object, ...]], ...] | None = None  # elementwise ufuncs
    metric: bool = False  # computes metrics only: the fast path does it a chunk at a time

    def signature(self) -> tuple | None:
        """What must match for two units to merge: functions, scalars, array pattern."""
        if self.calls is None:
            return None
        seen: list[int] = []
        sig: list[object] = []
        for fn, args in self.calls:
            parts: list[object] = [id(fn)]
            for a in args:
                if isinstance(a, np.ndarray):
                    if id(a) not in seen:
                        seen.append(id(a))
                    parts.append(("A", seen.index(id(a)), a.dtype.str))
                elif isinstance(a, Late):
                    parts.append(("L", a.src, tuple(id(v) for _, v in a.env)))
                else:
                    parts.append(("S", type(a).__name__, repr(a)))
            sig.append(tuple(parts))
        return tuple(sig)

    def arrays(self) -> list[np.ndarray]:
        """Distinct arrays of the calls, in first-use order."""
        out: list[np.ndarray] = []
        for _, args in self.calls or ():
            for a in args:
                if isinstance(a, np.ndarray) and all(a is not b for b in out):
                    out.append(a)
        return out


def root(a: np.ndarray) -> np.ndarray:
    """The buffer a view was cut from."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def span(a: np.ndarray) -> tuple[int, int, int] | None:
    """(id of the root buffer, first element, end element) of a contiguous view."""
    r = root(a)
    if not (a.flags.c_contiguous and r.flags.c_contiguous and r.dtype == a.dtype):
        return None
    start = (a.__array_interface__["data"][0] - r.__array_interface__["data"][0])
    start //= a.itemsize
    return id(r), start, start + a.size


def conflict(a: Unit, u: Unit) -> bool:
    """True if swapping a and u (a first) could change a result."""
    if a.reads is None or a.writes is None or u.reads is None or u.writes is None:
        return True
    return _overlap(a.writes, u.reads + u.writes) or _overlap(a.reads, u.writes)


def _overlap(xs: tuple[np.ndarray, ...], ys: tuple[np.ndarray, ...]) -> bool:
    return any(np.may_share_memory(x, y) for x in xs for y in ys)


def positional_out(fn: object) -> bool:
    """Whether `fn` takes `out` positionally (ufuncs; NumPy deprecates it for max/min)."""
    return isinstance(fn, np.ufunc) and fn not in (np.maximum, np.minimum)


def const_arg(fn: object, v: object, out: np.ndarray | None) -> object:
    """A Python number passed to a ufunc, as a 0-d array of the output's dtype.

    Same bits (a Python float is cast to the output dtype exactly as a 0-d array of
    that dtype is), but NumPy skips its scalar conversion: ~0.2-0.3 µs per call.
    """
    if (isinstance(fn, np.ufunc) and isinstance(out, np.ndarray) and out.dtype.kind == "f"
            and isinstance(v, float | int) and not isinstance(v, bool)):
        return np.array(v, dtype=out.dtype)
    return v


def _is_elementwise(fn: object, arrays: list[np.ndarray], out: np.ndarray | None) -> bool:
    return (isinstance(fn, np.ufunc) and fn.signature is None and fn.nout == 1
            and out is not None and all(a.shape == out.shape and a.flags.c_contiguous
                                        for a in arrays))


def unit_from_calls(calls: tuple[tuple[object, tuple[object, ...]], ...]) -> Unit:
    """A unit of single elementwise calls (fn, (*inputs, out)), its source generated."""
    env: dict[str, object] = {}
    lines: list[str] = []
    reads: list[np.ndarray] = []
    writes: list[np.ndarray] = []
    names: dict[int, str] = {}

    def name(v: object, fn: object = None, out: object = None) -> str:
        if isinstance(v, Late):
            env.update(v.env)
            return v.src
        if id(v) not in names:
            names[id(v)] = f"v{len(names)}"
            env[names[id(v)]] = const_arg(fn, v, out)  # type: ignore[arg-type]
        return names[id(v)]

    for fn, args in calls:
        *ins, out = args
        out_src = name(out) if positional_out(fn) else f"out={name(out)}"
        lines.append(f"{name(fn)}({', '.join([*(name(v, fn, out) for v in ins), out_src])})")
        reads.extend(a for a in ins if isinstance(a, np.ndarray))
        writes.append(out)  # type: ignore[arg-type]
    return Unit("\n".join(lines), env, tuple(reads), tuple(writes), calls)


class Code:
    """A kernel made of units; calling it runs them (compiled once, on first call)."""

    __slots__ = ("units", "_fn")

    def __init__(self, units: tuple[Unit, ...]) -> None:
        self.units = units
        self._fn = None

    @staticmethod
    def src(text: str, env: dict[str, object], reads: tuple[np.ndarray, ...] | None = None,
            writes: tuple[np.ndarray, ...] | None = None) -> Code:
        """Free-form statements: a barrier the fuser never moves code across, unless every
        array they read and write is declared."""
        return Code((Unit(text.strip(), dict(env), reads, writes),))

    @staticmethod
    def opaque(fn: object) -> Code:
        """A plain callable, called as is (rare kernels not worth inlining)."""
        return Code((Unit("k()", {"k": fn}),))

    @staticmethod
    def metric(fn: object) -> Code:
        """A callable computing metrics only (loss value, norms): the stepper runs it, the
        fast path leaves it out and computes the same from arena rows (core/engine/rows.py)."""
        return Code((Unit("k()", {"k": fn}, metric=True),))

    @staticmethod
    def call(fn: object, *args: object, out: np.ndarray | None = None, **kw: object) -> Code:
        """One NumPy call; ufuncs take `out` positionally (cheaper than a keyword)."""
        env: dict[str, object] = {"f": fn}
        parts: list[str] = []
        arrays: list[np.ndarray] = []
        for i, a in enumerate(args):
            if isinstance(a, Late):
                env.update(a.env)
                parts.append(a.src)
                continue
            env[f"a{i}"] = const_arg(fn, a, out)
            parts.append(f"a{i}")
            if isinstance(a, np.ndarray):
                arrays.append(a)
        for k, v in kw.items():
            env[f"k_{k}"] = v
            parts.append(f"{k}=k_{k}")
        writes: tuple[np.ndarray, ...] = ()
        if out is not None:
            env["o"] = out
            parts.append("o" if positional_out(fn) and not kw else "out=o")
            writes = (out,)
        calls = None
        if not kw and _is_elementwise(fn, arrays, out):
            calls = ((fn, (*args, out)),)
        unit = Unit(f"f({', '.join(parts)})", env, tuple(arrays), writes, calls)
        return Code((unit,))

    @staticmethod
    def dot(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> Code:
        """a·b into out through the bound `ndarray.dot` (same bits as np.matmul here,
        half its call overhead)."""
        unit = Unit("f(b, o)", {"f": a.dot, "b": b, "o": out}, (a, b), (out,))
        return Code((unit,))

    def as_metric(self) -> Code:
        """The same statements, left out of the fast path (shown or measured only)."""
        return Code(tuple(replace(u, metric=True) for u in self.units))

    def __add__(self, other: Code) -> Code:
        return Code(_join(self.units, other.units))

    def __call__(self) -> None:
        if self._fn is None:
            self._fn = compile_units(self.units, "kernel")
        self._fn()


def _join(a: tuple[Unit, ...], b: tuple[Unit, ...]) -> tuple[Unit, ...]:
    """Two unit lists as one; a pair of single elementwise calls on the same arrays
    becomes one multi-call unit (so an update step merges as a whole)."""
    if (len(a) == 1 and len(b) == 1 and a[0].calls and b[0].calls
            and _share(a[0].arrays(), b[0].arrays())):
        u, v = a[0], b[0]
        env = dict(u.env)
        src_v = _rename(v.src, v.env, f"_j{len(u.calls)}", env)
        return (Unit(u.src + "\n" + src_v, env, _cat(u.reads, v.reads),
                     _cat(u.writes, v.writes), u.calls + v.calls),)
    return a + b


def _share(xs: list[np.ndarray], ys: list[np.ndarray]) -> bool:
    return any(x is y for x in xs for y in ys)


def _cat(x: tuple | None, y: tuple | None) -> tuple | None:
    return None if x is None or y is None else x + y


def _rename(src: str, env: dict[str, object], suffix: str, into: dict[str, object]) -> str:
    """`src` with every env name suffixed (so units can share one namespace)."""
    for name, value in env.items():
        into[name + suffix] = value
    return _IDENT.sub(lambda m: m.group(1) + suffix if m.group(1) in env else m.group(1), src)


def render(units: tuple[Unit, ...] | list[Unit], tag: str) -> tuple[list[str], dict[str, object]]:
    """Statement lines and the namespace of several units (names suffixed per unit)."""
    lines: list[str] = []
    env: dict[str, object] = {}
    for k, u in enumerate(units):
        lines.extend(_rename(u.src, u.env, f"_{tag}{k}", env).splitlines())
    return lines, env


def compile_units(units: tuple[Unit, ...], name: str) -> object:
    """One function running the units in order; env values bound as defaults (fast locals)."""
    lines, env = render(units, "u")
    return build_function(name, [], lines, env)


def build_function(name: str, params: list[str], body: list[str],
                   env: dict[str, object]) -> object:
    """def name(params, *, <env names>=<values>): body -- compiled from source."""
    names = sorted(env)
    sig = ", ".join(params + (["*"] + [f"{n}={n}" for n in names] if names else []))
    src = f"def {name}({sig}):\n" + "\n".join("    " + ln for ln in body or ["pass"])
    ns: dict[str, object] = dict(env)
    exec(compile(src, f"<{name}>", "exec"), ns)  # noqa: S102 - source built from our ops
    return ns[name]
