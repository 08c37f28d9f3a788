"""The SGD update with weight decay in two calls instead of three, for the fast path.

After the fuser, an L2 run's update is W ← W·d (the decay, over all weights), then
T ← G·η and P ← P − T (over all parameters).  With row metrics the weights and
the gradients are adjacent in one arena ([h_L | W | G] when there are no biases),
so the two multiplies are one call over [W | G] with a vector [d … d | η … η]:
W·d lands in W, G·η in G itself, and P − G finishes the step.  Elementwise, the
same products of the same numbers, so the same bits.

G's old value is dead by then: the arena row was copied before the update, nothing
after it reads G, and the next iteration writes G before it reads it (checked, not
assumed).  The vector's slices follow the step size's boxes: `Hyper.track` refills
them whenever the step size is set.  Not used with a decaying step size, whose
refill every iteration would cost about what the call saves.
"""

from __future__ import annotations

import numpy as np

from core.engine.inplace import _fully_written_first, _Mem, _opaque
from core.model.code import Late, Unit, root, span, unit_from_calls
from core.model.op import Hyper

Call = tuple[object, tuple[object, ...]]


def _box(s: object) -> np.ndarray | None:
    """The 0-d array a scalar argument reads (a Late step size or a constant), else None."""
    if isinstance(s, Late) and len(s.env) == 1 and isinstance(s.env[0][1], np.ndarray):
        s = s.env[0][1]
    return s if isinstance(s, np.ndarray) and s.ndim == 0 else None


def _adjacent(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The 1-D view covering a then b when b starts where a ends in one buffer."""
    sa, sb = span(a), span(b)
    if sa is None or sb is None or sa[0] != sb[0] or sa[2] != sb[1]:
        return None
    return root(a).reshape(-1)[sa[1]:sb[2]]


def _calls(units: list[Unit]) -> list[tuple[int, int, Call]]:
    return [(k, j, c) for k, u in enumerate(units) for j, c in enumerate(u.calls or ())]


def merge_update_pair(units: list[Unit], hp: Hyper) -> list[Unit]:
    """units with `W·d; G·η → T; P − T` as `[W | G]·[d | η]; P − G` where that is safe."""
    if any(u.reads is None and _opaque(u) for u in units):
        return units
    mem = _Mem()
    flat = _calls(units)
    for i in range(1, len(flat) - 1):
        (_, _, c1), (k2, j2, c2), (k3, _, c3) = flat[i - 1], flat[i], flat[i + 1]
        if c1[0] is not np.multiply or c2[0] is not np.multiply or c3[0] is not np.subtract:
            continue
        (w, d, w_out), (g, eta, t), (p, t_in, p_out) = c1[1], c2[1], c3[1]
        if not (w is w_out and p is p_out and t_in is t and isinstance(g, np.ndarray)
                and isinstance(t, np.ndarray) and g is not t):
            continue
        box_d, box_eta = _box(d), _box(eta)
        wg = _adjacent(w, g)
        if box_d is None or box_eta is None or wg is None:
            continue
        if any(mem.touches(u, t) for k, u in enumerate(units) if k not in (k2, k3)) or any(
                mem.overlap(x, t) for kk, _, (_, xs) in flat if kk in (k2, k3)
                for x in xs if x is not t and isinstance(x, np.ndarray)):
            continue  # T is not just this step's scratch
        later = flat[i + 2:]
        if any(mem.overlap(x, g) for _, _, (_, xs) in later for x in xs
               if isinstance(x, np.ndarray)) or any(
                mem.touches(u, g) for u in units[k3 + 1:]):
            continue  # G is read again after the update
        if not _fully_written_first(mem, units, k2, j2, g):
            continue  # G carries a value into the next iteration
        vec = np.empty(wg.size, wg.dtype)
        hp.track(vec, ((slice(0, w.size), box_d), (slice(w.size, wg.size), box_eta)))
        new = {i - 1: None, i: (np.multiply, (wg, vec, wg)), i + 1: (np.subtract, (p, g, p))}
        return _rebuild(units, flat, new)
    return units


def _rebuild(units: list[Unit], flat: list[tuple[int, int, Call]],
             new: dict[int, Call | None]) -> list[Unit]:
    """The units with the calls at flat positions replaced (None: dropped)."""
    per_unit: dict[int, list[Call]] = {}
    for pos, (k, _, c) in enumerate(flat):
        if pos in new:
            touched = per_unit.setdefault(k, [])
            if new[pos] is not None:
                touched.append(new[pos])  # type: ignore[arg-type]
        elif any(flat[q][0] == k for q in new):
            per_unit.setdefault(k, []).append(c)
    out: list[Unit] = []
    for k, u in enumerate(units):
        if k not in per_unit:
            out.append(u)
        elif per_unit[k]:
            out.append(unit_from_calls(tuple(per_unit[k])))
    return out
