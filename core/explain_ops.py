"""The element forms of every op kind, for `core/explain.py`.

One function per kind of op (init, z, h, softmax, loss, dL/dh, dh/dz, the
softmax Jacobian, dL/dz, dL/dW, dL/db, ‖∇‖, clipping, SGD).  Each reads the
entry's inputs from the frame, prints them with the catalog's formula text and
recomputes the entry in float64 with the catalog's element forms, in the
kernel's order of operations.  Sums go through `_sum`, which prints the first
few terms and computes the exact total (and finds non-finite terms) vectorized,
so a 60 000-row dL/dW costs one NumPy pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core import catalog as cat
from core.machine import Frame, Machine
from core.program import Op

Index = tuple[int, ...]
At = Callable[[int], list[tuple[str, Index]]]  # term number -> (key, index) of its factors


@dataclass(frozen=True)
class Ref:
    """One stored number an explanation reads: which array, which entry, its value."""

    key: str
    index: Index
    value: float


@dataclass(frozen=True)
class Result:
    """What an op kind returns: the lines before the stored value, and the recomputation."""

    lines: tuple[str, ...]
    value: float  # recomputed
    scale: float
    notes: tuple[str, ...] = ()
    target: str = ""
    arrow: str = "="
    bad: tuple[Ref, ...] = ()
    culprit: str = ""


def num(v: float, digits: int = 4) -> str:
    """A number as the drill-down prints it: 4 significant digits, a real minus sign."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "−inf"
    if v == 0:
        return "0"  # −0.0 too: its sign carries no information here
    s = f"{v:.{digits}g}"
    return "−" + s[1:] if s.startswith("-") else s


def par(v: float) -> str:
    """A number inside a product: negative ones in parentheses."""
    s = num(v)
    return f"({s})" if s.startswith("−") else s


def idx_text(index: tuple) -> str:
    return "[" + ",".join(str(i) for i in index) + "]" if index else ""


class Ctx:
    """The frame, the constants of the run, and the stored numbers printed so far."""

    def __init__(self, machine: Machine, frame: Frame, terms: int) -> None:
        self.frame = frame
        self.program = machine.program
        self.cfg = self.program.cfg
        self.lr = machine.cfg.lr_at(max(frame.iteration, 0))
        self.n = self.program.n
        self.terms = max(1, terms)
        self.shown: list[Ref] = []
        self._pos = {op.key: i for i, op in enumerate(frame.ops)}

    def position(self, key: str) -> int | None:
        """Index of the op that wrote `key` in this frame (None: parameter or data)."""
        return self._pos.get(key)

    def arr(self, key: str) -> np.ndarray:
        return self.frame.value(key)

    def name(self, key: str) -> str:
        if key.endswith("_clip"):
            return f"clip({self.name(key[:-5])})"
        if key.endswith(("_new", "_init")):
            return key.rsplit("_", 1)[0]
        pos = self._pos.get(key)
        return self.frame.ops[pos].name if pos is not None else key.replace("_", "/")

    def label(self, key: str, index: tuple) -> str:
        if key == "grad_norm" and index and isinstance(index[0], int):
            return f"‖dL/dW{index[0] + 1}‖"
        return self.name(key) + idx_text(index)

    def peek(self, key: str, index: Index) -> float:
        return float(self.arr(key)[index])

    def get(self, key: str, index: Index) -> float:
        """A stored number that will be printed (recorded in `shown`)."""
        v = self.peek(key, index)
        self.shown.append(Ref(key, index, v))
        return v


@dataclass(frozen=True)
class _Part:
    """A sum of terms or one term: general form, shown form, numbers, exact total."""

    general: str
    sym: str
    num: str
    total: float
    scale: float
    truncated: bool = False
    bad: tuple[Ref, ...] = ()
    culprit: str = ""


def _one(ctx: Ctx, sym: str, numbers: str, value: float, refs: list[Ref]) -> _Part:
    bad = tuple(r for r in refs if not math.isfinite(r.value))
    culprit = f"{sym} = {numbers}" if not math.isfinite(value) else ""
    return _Part(sym, sym, numbers, value, abs(value), False, bad, culprit)


def _sum(ctx: Ctx, general: str, terms: np.ndarray, factors: list[np.ndarray], at: At,
         sym: Callable[..., str], numf: Callable[..., str] | None) -> _Part:
    """Σ terms: the first ctx.terms printed, "… (n more terms)", the float64 total.

    `numf` prints a term from its factors' values; None prints the term's own value
    (terms derived from stored numbers, e.g. exp(z − m)).
    """
    with np.errstate(all="ignore"):
        total, scale = float(terms.sum()), float(np.abs(terms).sum())
    m = len(terms)
    k = m if m <= ctx.terms + 1 else ctx.terms  # "… (1 more term)" would be longer than it
    syms, nums = [], []
    for i in range(k):
        refs = at(i)
        syms.append(sym(*[ctx.label(key, ix) for key, ix in refs]))
        nums.append(numf(*[ctx.get(key, ix) for key, ix in refs]) if numf
                    else num(float(terms[i])))
    more = f" + … ({m - k} more terms)" if m > k else ""
    bad: list[Ref] = []
    culprit = ""
    broken = np.zeros(m, bool)
    for f in factors:
        broken |= ~np.isfinite(f)
    odd = broken if broken.any() else ~np.isfinite(terms)
    if odd.any():
        first = int(np.flatnonzero(odd)[0])
        refs = at(first)
        shown = (numf(*[ctx.peek(key, ix) for key, ix in refs]) if numf
                 else num(float(terms[first])))
        culprit = f"{sym(*[ctx.label(key, ix) for key, ix in refs])} = {shown}"
        for pos in np.flatnonzero(broken)[:8]:
            bad += [Ref(key, ix, v) for key, ix in at(int(pos))
                    if not math.isfinite(v := ctx.peek(key, ix))]
    elif not math.isfinite(total):
        culprit = f"the sum of {m} finite terms overflowed"
    return _Part(general, " + ".join(syms) + more, " + ".join(nums) + more, total, scale,
                 m > k, tuple(bad), culprit)


def _compose(parts: list[_Part], notes: tuple[str, ...] = (), target: str = "") -> Result:
    """Parts added left to right, as the kernels add them."""
    lines = []
    truncated = any(p.truncated for p in parts)
    if truncated:
        lines.append(" + ".join(p.general for p in parts))
    lines += [" + ".join(p.sym for p in parts), " + ".join(p.num for p in parts)]
    if truncated and len(parts) > 1:
        lines.append(" + ".join(num(p.total) if i == 0 else par(p.total)
                                for i, p in enumerate(parts)))
    total = 0.0
    with np.errstate(all="ignore"):
        for p in parts:
            total = float(np.float64(total) + p.total)
    bad = tuple(r for p in parts for r in p.bad)
    culprit = next((p.culprit for p in parts if p.culprit), "")
    return Result(tuple(lines), total, sum(p.scale for p in parts), notes, target, "=", bad,
                  culprit)


def _products(ctx: Ctx, general: str, a: str, av: np.ndarray, a_at: Callable[[int], Index],
              b: str, bv: np.ndarray, b_at: Callable[[int], Index]) -> _Part:
    """Σᵢ a[a_at(i)]·b[b_at(i)] over two stored vectors."""
    a64, b64 = av.astype(np.float64), bv.astype(np.float64)
    with np.errstate(all="ignore"):
        terms = a64 * b64
    return _sum(ctx, general, terms, [a64, b64], lambda i: [(a, a_at(i)), (b, b_at(i))],
                lambda x, y: f"{x}·{y}", lambda x, y: f"{par(x)}·{par(y)}")


# --------------------------------------------------------------------------- init, forward
def _init(ctx: Ctx, op: Op, ix: Index) -> Result:
    target = ctx.label(op.key, ix)
    if op.family == "zeros":
        return Result((), 0.0, 0.0, ("biases start at zero",), target)
    w = ctx.peek(op.key, ix)
    fi, fo = op.shape
    sym, fmt, law, draw, value = cat.init_scalar(op.family, w, fi, fo)
    return Result((sym, fmt.format(d=num(draw))), value, abs(value), (law,), target)


def _z(ctx: Ctx, op: Op, ix: Index) -> Result:
    n, j = ix
    src, w = op.inputs[0], f"W{op.layer}"
    parts = [_products(ctx, f"Σₖ {ctx.label(src, (n, 'k'))}·{ctx.label(w, ('k', j))}",
                       src, ctx.arr(src)[n, :], lambda k: (n, k), w, ctx.arr(w)[:, j],
                       lambda k: (k, j))]
    if ctx.cfg.bias:
        b = f"b{op.layer}"
        parts.append(_one(ctx, ctx.label(b, (j,)), par(v := ctx.get(b, (j,))), v,
                          [Ref(b, (j,), v)]))
    return _compose(parts)


def _activation(ctx: Ctx, op: Op, ix: Index) -> Result:
    if op.family == "softmax":
        return _softmax(ctx, op, ix)
    act, z = cat.ACTIVATIONS[op.family], op.inputs[0]
    v = ctx.get(z, ix)
    return _compose([_one(ctx, f"{act.symbol}({ctx.label(z, ix)})", f"{act.symbol}({num(v)})",
                          act.scalar(v), [Ref(z, ix, v)])])


def _softmax(ctx: Ctx, op: Op, ix: Index) -> Result:
    n, j = ix
    z = op.inputs[0]
    row = ctx.arr(z)[n, :].astype(np.float64)
    with np.errstate(all="ignore"):
        k_max = int(np.argmax(row))
        m = ctx.get(z, (n, k_max))
        e = np.exp(row - m)
        value = float(e[j] / e.sum())
    zj = ctx.get(z, ix)
    part = _sum(ctx, "", e, [row], lambda k: [(z, (n, k))], lambda s: f"exp({s} − m)", None)
    lines = (f"exp({ctx.label(z, ix)} − m)/Σₖ exp({ctx.label(z, (n, 'k'))} − m)",
             f"exp({num(zj)} − {par(m)})/Σₖ exp({ctx.label(z, (n, 'k'))} − {par(m)})",
             f"{num(float(e[j]))}/({part.num})")
    notes = (f"m = max {ctx.label(z, (n, ':'))} = {ctx.label(z, (n, k_max))} = {num(m)} "
             "(subtracted so exp cannot overflow)",)
    culprit = part.culprit if not math.isfinite(value) else ""
    return Result(lines, value, abs(value), notes, bad=part.bad, culprit=culprit)


# --------------------------------------------------------------------------- loss
def _loss(ctx: Ctx, op: Op, ix: Index) -> Result:
    cfg, n, depth = ctx.cfg, ctx.n, ctx.program.depth
    loss, h, z = cat.LOSSES[op.family], f"h{depth}", f"z{depth}"
    hv, zv = ctx.arr(h), ctx.arr(z)
    if loss.fused:  # per row, −log h[n, yₙ] through log-sum-exp of z (the kernel's rule)
        labels = ctx.arr("labels")
        terms = loss.terms(hv, zv, labels)
        zrows = zv.astype(np.float64)
        data = _sum(ctx, f"Σₙ −log {ctx.label(h, ('n', 'yₙ'))}", terms,
                    [zrows.sum(axis=1)], lambda r: [(h, (r, int(labels[r])))],
                    lambda s: loss.term_text.format(h=s), None)
        bad = tuple(Ref(z, (int(r), int(k)), float(zv[r, k]))
                    for r, k in zip(*np.nonzero(~np.isfinite(zrows)), strict=True))[:8]
        data = _Part(data.general, data.sym, data.num, data.total, data.scale, True, bad,
                     data.culprit)
        note = (f"−log {h}[n,yₙ] = log Σₖ exp {z}[n,k] − {z}[n,yₙ] (log-sum-exp: finite "
                f"whenever {z} is)")
    else:
        k_out = hv.shape[1]
        terms = loss.terms(hv, zv, ctx.arr("y")).reshape(-1)
        data = _sum(ctx, f"Σₙₖ ({ctx.label('y', ('n', 'k'))} − {ctx.label(h, ('n', 'k'))})²",
                    terms, [hv.reshape(-1).astype(np.float64)],
                    lambda i: [("y", divmod(i, k_out)), (h, divmod(i, k_out))],
                    lambda y, hh: loss.term_text.format(y=y, h=hh),
                    lambda y, hh: loss.term_text.format(y=num(y), h=par(hh)))
        note = f"N = {n} rows × {k_out} outputs"
    denom = round(1.0 / loss.data_scale(n))
    with np.errstate(all="ignore"):
        data_total = float(np.float64(data.total) * loss.data_scale(n))
    sym = [f"({data.general})/{denom}", f"({data.sym})/{denom}"]
    nums = [f"({data.num})/{denom}"]
    sums = [f"{num(data.total)}/{denom}"]
    value, scale = data_total, data.scale * loss.data_scale(n)
    if cfg.reg > 0:
        reg = cat.REGULARIZERS[cfg.reg_kind]
        ws = [p for p in ctx.program.params if p[0] == "W"]
        pen_sums = [float(reg.terms(ctx.arr(w)).sum()) for w in ws]
        each = " + ".join((f"Σ{w}²" if reg.name == "l2" else f"Σ|{w}|") for w in ws)
        pden = round(1.0 / reg.scale(n))
        with np.errstate(all="ignore"):
            pen = cfg.reg * reg.scale(n) * math.fsum(pen_sums)
        sym = [f"{s} + λ·({each})/{pden}" for s in sym]
        nums = [f"{nums[0]} + {num(cfg.reg)}·({' + '.join(num(v) for v in pen_sums)})/{pden}"]
        sums = [f"{sums[0]} + {num(cfg.reg)}·{num(math.fsum(pen_sums))}/{pden}",
                f"{num(data_total)} (data) + {num(pen)} (penalty)"]
        value, scale = value + pen, scale + abs(pen)
        note += f"; λ = {num(cfg.reg)} ({reg.name})"
    lines = sym[1:] if not data.truncated else sym
    culprit = data.culprit if not math.isfinite(value) else ""
    return Result((*lines, *nums, *sums), value, scale, (note,), "L", "=", data.bad, culprit)


# --------------------------------------------------------------------------- backward
def _dh_loss(ctx: Ctx, op: Op, ix: Index) -> Result:
    loss, h = cat.LOSSES[op.family], op.inputs[0]
    hv, yv = ctx.get(h, ix), ctx.get("y", ix)
    value = loss.scalar_dh(hv, yv, 1.0 / ctx.n)
    sym = loss.dh_scalar_text.format(y=ctx.label("y", ix), h=ctx.label(h, ix), n="N")
    nums = loss.dh_scalar_text.format(y=num(yv), h=par(hv), n=ctx.n)
    notes = ("y = 0: the kernel writes 0 here, never 0/0",) if loss.fused and yv == 0 else ()
    res = _compose([_one(ctx, sym, nums, value, [Ref(h, ix, hv), Ref("y", ix, yv)])], notes)
    return res


def _act_d(ctx: Ctx, op: Op, ix: Index) -> Result:
    act, src = cat.ACTIVATIONS[op.family], op.inputs[0]
    v = ctx.get(src, ix)
    zh = {"h": ctx.label(src, ix), "z": ctx.label(src, ix)}
    value = act.scalar_d(v, v)  # the derivative reads only `src` (h or z, per deriv_from)
    res = _compose([_one(ctx, act.deriv_text.format(**zh),
                         act.deriv_text.format(h=par(v), z=num(v)), value, [Ref(src, ix, v)])])
    # 1 − h² and h(1 − h) subtract numbers of size ~1: roundoff is relative to that
    return Result(res.lines, res.value, 1.0 + v * v if math.isfinite(v) else res.scale,
                  res.notes, res.target, res.arrow, res.bad, res.culprit)


def _jacobian(ctx: Ctx, op: Op, ix: Index) -> Result:
    n, i, j = ix
    h = op.inputs[0]
    hi, hj = ctx.get(h, (n, i)), ctx.get(h, (n, j)) if i != j else ctx.peek(h, (n, j))
    value = -(hi * hj) + (hi if i == j else 0.0)  # the kernel: −h hᵀ, then + h on the diagonal
    li, lj = ctx.label(h, (n, i)), ctx.label(h, (n, j))
    sym, nums = ((f"{li}·(1 − {li})", f"{par(hi)}·(1 − {par(hi)})") if i == j else
                 (f"−{li}·{lj}", f"−{par(hi)}·{par(hj)}"))
    note = f"∂{li}/∂{ctx.label(op.inputs[0].replace('h', 'z', 1), (n, j))} of row {n}"
    return _compose([_one(ctx, sym, nums, value, [Ref(h, (n, i), hi), Ref(h, (n, j), hj)])],
                    (note,), ctx.label(op.key, ix))


def _dz(ctx: Ctx, op: Op, ix: Index) -> Result:
    if op.family == "ce":  # fused softmax·CE
        h = op.inputs[0]
        hv, yv = ctx.get(h, ix), ctx.get("y", ix)
        return _compose([_one(ctx, f"({ctx.label(h, ix)} − {ctx.label('y', ix)})/N",
                              f"({num(hv)} − {num(yv)})/{ctx.n}",
                              cat.scalar_fused_dz(hv, yv, 1.0 / ctx.n),
                              [Ref(h, ix, hv), Ref("y", ix, yv)])])
    g, d = op.inputs
    gv, dv = ctx.get(g, ix), ctx.get(d, ix)
    return _compose([_one(ctx, f"{ctx.label(g, ix)}·{ctx.label(d, ix)}",
                          f"{par(gv)}·{par(dv)}", gv * dv, [Ref(g, ix, gv), Ref(d, ix, dv)])])


def _dh_in(ctx: Ctx, op: Op, ix: Index) -> Result:
    n, j = ix
    g, w = op.inputs
    return _compose([_products(ctx, f"Σₖ {ctx.label(g, (n, 'k'))}·{ctx.label(w, (j, 'k'))}",
                               g, ctx.arr(g)[n, :], lambda k: (n, k), w, ctx.arr(w)[j, :],
                               lambda k: (j, k))])


def _dw(ctx: Ctx, op: Op, ix: Index) -> Result:
    i, j = ix
    src, g = op.inputs[0], op.inputs[1]
    parts = [_products(ctx, f"Σₙ {ctx.label(src, ('n', i))}·{ctx.label(g, ('n', j))}",
                       src, ctx.arr(src)[:, i], lambda r: (r, i), g, ctx.arr(g)[:, j],
                       lambda r: (r, j))]
    notes: tuple[str, ...] = (f"N = {ctx.n} rows",)
    if ctx.cfg.reg > 0:
        reg, w = cat.REGULARIZERS[ctx.cfg.reg_kind], op.inputs[2]
        wv = ctx.get(w, ix)
        label = ctx.label(w, ix) if reg.name == "l2" else f"sign({ctx.label(w, ix)})"
        shown = par(wv) if reg.name == "l2" else f"sign({num(wv)})"
        parts.append(_one(ctx, f"λ·{label}/N", f"{num(ctx.cfg.reg)}·{shown}/{ctx.n}",
                          reg.scalar_grad(wv, ctx.cfg.reg / ctx.n), [Ref(w, ix, wv)]))
        notes += (f"λ = {num(ctx.cfg.reg)} ({reg.name})",)
    return _compose(parts, notes)


def _db(ctx: Ctx, op: Op, ix: Index) -> Result:
    (j,) = ix
    g = op.inputs[0]
    col = ctx.arr(g)[:, j].astype(np.float64)
    return _compose([_sum(ctx, f"Σₙ {ctx.label(g, ('n', j))}", col, [col],
                          lambda r: [(g, (r, j))], lambda s: s, par)])


# --------------------------------------------------------------------------- update
def _norm(ctx: Ctx, op: Op, ix: Index) -> Result:
    l = ix[0] + 1
    keys = [k for k in op.inputs if k[4:].lstrip("Wb") == str(l)]
    flats = [ctx.arr(k).astype(np.float64).reshape(-1) for k in keys]
    shapes = [ctx.arr(k).shape for k in keys]
    starts = np.cumsum([0] + [len(f) for f in flats])
    allv = np.concatenate(flats)

    def at(i: int) -> list[tuple[str, Index]]:
        p = int(np.searchsorted(starts, i, side="right")) - 1
        return [(keys[p], tuple(int(x) for x in np.unravel_index(i - starts[p], shapes[p])))]

    with np.errstate(all="ignore"):
        s = _sum(ctx, " + ".join(f"Σ {ctx.name(k)}²" for k in keys), allv * allv, [allv], at,
                 lambda x: f"{x}²", lambda x: f"{par(x)}²")
        value = math.sqrt(s.total) if s.total == s.total else s.total
    lines = ((f"√({s.general})",) if s.truncated else ()) + (f"√({s.sym})", f"√({s.num})",
                                                             f"√{num(s.total)}")
    return Result(lines, value, value, (f"layer {l}: every gradient entry of "
                                        f"{' and '.join(ctx.name(k) for k in keys)}",),
                  ctx.label("grad_norm", ix), "=", s.bad, s.culprit)


def _clip_norm(ctx: Ctx, op: Op, ix: Index) -> Result:
    g, c = op.inputs[0], ctx.cfg.clip
    gv = ctx.get(g, ix)
    norms = [ctx.get("grad_norm", (l,)) for l in range(ctx.program.depth)]
    total = math.sqrt(math.fsum(v * v for v in norms))
    s = cat.clip_norm_scale(total, c)
    value = gv * s if total > c else gv
    label = ctx.label(g, ix)
    lines = (f"{label}·min(1, c/‖g‖)", f"{par(gv)}·min(1, {num(c)}/{num(total)})",
             f"{par(gv)}·{num(s)}")
    parts = " + ".join(f"{ctx.label('grad_norm', (l,))}²" for l in range(len(norms)))
    note = (f"‖g‖ = √({parts}) = √({' + '.join(f'{num(v)}²' for v in norms)}) = {num(total)}"
            f" over all layers; c = {num(c)}")
    bad = tuple(Ref(k, i, v) for k, i, v in [(g, ix, gv)] + [("grad_norm", (l,), v) for l, v in
                                                             enumerate(norms)]
                if not math.isfinite(v))
    culprit = f"{lines[0]} = {lines[2]}" if not math.isfinite(value) else ""
    return Result(lines, value, abs(value), (note,), ctx.label(op.key, ix), "=", bad, culprit)


def _clip_value(ctx: Ctx, op: Op, ix: Index) -> Result:
    g, c = op.inputs[0], ctx.cfg.clip
    gv = ctx.get(g, ix)
    label = ctx.label(g, ix)
    return _compose([_one(ctx, f"min(max({label}, −c), c)",
                          f"min(max({num(gv)}, {num(-c)}), {num(c)})",
                          cat.clip_value(gv, c), [Ref(g, ix, gv)])],
                    (f"c = {num(c)}",), ctx.label(op.key, ix))


def _sgd(ctx: Ctx, op: Op, ix: Index) -> Result:
    p, g = op.inputs
    wv, gv = ctx.get(p, ix), ctx.get(g, ix)
    res = _compose([_one(ctx, f"{ctx.label(p, ix)} − η·{ctx.label(g, ix)}",
                         f"{num(wv)} − {num(ctx.lr)}·{par(gv)}",
                         cat.sgd_step(wv, gv, ctx.lr), [Ref(p, ix, wv), Ref(g, ix, gv)])])
    cfg, it = ctx.cfg, max(ctx.frame.iteration, 0)
    eta = (f"η = {num(ctx.lr)}" if not cfg.lr_decay else
           f"η = {num(cfg.lr)}/(1 + {num(cfg.lr_decay)}·{it}) = {num(ctx.lr)}")
    return Result(res.lines, res.value, abs(wv) + abs(ctx.lr * gv),
                  (f"{eta} at iteration {it}; {p} on the right is its value before this "
                   "update",), ctx.label(p, ix), "←", res.bad, res.culprit)


def kind(op: Op) -> str:
    """Which element form an op uses."""
    key = op.key
    if op.phase == "init":
        return "init"
    if op.phase == "forward":
        return "z" if key.startswith("z") else "h"
    if key == "loss":
        return "loss"
    if op.family.startswith("clip"):
        return op.family
    if key.startswith("dL_dh"):
        return "dh_loss" if op.family in cat.LOSSES else "dh_in"
    if key.startswith("dh"):
        return "jacobian" if len(op.shape) == 3 else "act_d"
    if key.startswith("dL_dz"):
        return "dz"
    if key.startswith("dL_dW"):
        return "dw"
    if key.startswith("dL_db"):
        return "db"
    if key == "grad_norm":
        return "norm"
    return "sgd"


KINDS: dict[str, Callable[[Ctx, Op, Index], Result]] = {
    "init": _init, "z": _z, "h": _activation, "loss": _loss, "dh_loss": _dh_loss,
    "dh_in": _dh_in, "act_d": _act_d, "jacobian": _jacobian, "dz": _dz, "dw": _dw, "db": _db,
    "norm": _norm, "clip-norm": _clip_norm, "clip-value": _clip_value, "sgd": _sgd,
}
