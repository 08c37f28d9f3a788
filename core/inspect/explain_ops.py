"""The element forms of every op kind, for `core/inspect/explain.py`.

One function per kind of op (init, z, h, softmax, loss, dL/dh, dh/dz, the
softmax Jacobian, dL/dz, dL/dW, dL/db, ‖∇‖, clipping, SGD).  Each reads the
entry's inputs from the frame, prints them with the catalog's formula text and
recomputes the entry in float64 with the catalog's element forms, in the
kernel's order of operations (sums go through `explain_terms`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from core.inspect.explain_terms import (
    Ctx,
    Index,
    Part,
    Ref,
    Result,
    compose,
    num,
    one,
    par,
    products,
    sum_of,
)
from core.model import catalog as cat
from core.model.program import Op


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
    parts = [products(ctx, f"Σₖ {ctx.label(src, (n, 'k'))}·{ctx.label(w, ('k', j))}",
                      src, ctx.arr(src)[n, :], lambda k: (n, k), w, ctx.arr(w)[:, j],
                      lambda k: (k, j))]
    if ctx.cfg.bias:
        b = f"b{op.layer}"
        parts.append(one(ctx, ctx.label(b, (j,)), par(v := ctx.get(b, (j,))), v,
                         [Ref(b, (j,), v)]))
    return compose(parts)


def _activation(ctx: Ctx, op: Op, ix: Index) -> Result:
    if op.family == "softmax":
        return _softmax(ctx, op, ix)
    act, z = cat.ACTIVATIONS[op.family], op.inputs[0]
    v = ctx.get(z, ix)
    return compose([one(ctx, f"{act.symbol}({ctx.label(z, ix)})", f"{act.symbol}({num(v)})",
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
    part = sum_of(ctx, "", e, [row], lambda k: [(z, (n, k))], lambda s: f"exp({s} − m)", None)
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
        data = sum_of(ctx, f"Σₙ −log {ctx.label(h, ('n', 'yₙ'))}", terms,
                      [zrows.sum(axis=1)], lambda r: [(h, (r, int(labels[r])))],
                      lambda s: loss.term_text.format(h=s), None)
        bad = tuple(Ref(z, (int(r), int(k)), float(zv[r, k]))
                    for r, k in zip(*np.nonzero(~np.isfinite(zrows)), strict=True))[:8]
        data = Part(data.general, data.sym, data.num, data.total, data.scale, True, bad,
                    data.culprit)
        note = (f"−log {h}[n,yₙ] = log Σₖ exp {z}[n,k] − {z}[n,yₙ] (log-sum-exp: finite "
                f"whenever {z} is)")
    else:
        k_out = hv.shape[1]
        terms = loss.terms(hv, zv, ctx.arr("y")).reshape(-1)
        data = sum_of(ctx, f"Σₙₖ ({ctx.label('y', ('n', 'k'))} − {ctx.label(h, ('n', 'k'))})²",
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
    res = compose([one(ctx, sym, nums, value, [Ref(h, ix, hv), Ref("y", ix, yv)])], notes)
    return res


def _act_d(ctx: Ctx, op: Op, ix: Index) -> Result:
    act, src = cat.ACTIVATIONS[op.family], op.inputs[0]
    v = ctx.get(src, ix)
    zh = {"h": ctx.label(src, ix), "z": ctx.label(src, ix)}
    value = act.scalar_d(v, v)  # the derivative reads only `src` (h or z, per deriv_from)
    res = compose([one(ctx, act.deriv_text.format(**zh),
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
    return compose([one(ctx, sym, nums, value, [Ref(h, (n, i), hi), Ref(h, (n, j), hj)])],
                   (note,), ctx.label(op.key, ix))


def _dz(ctx: Ctx, op: Op, ix: Index) -> Result:
    if op.family == "ce":  # fused softmax·CE
        h = op.inputs[0]
        hv, yv = ctx.get(h, ix), ctx.get("y", ix)
        return compose([one(ctx, f"({ctx.label(h, ix)} − {ctx.label('y', ix)})/N",
                            f"({num(hv)} − {num(yv)})/{ctx.n}",
                            cat.scalar_fused_dz(hv, yv, 1.0 / ctx.n),
                            [Ref(h, ix, hv), Ref("y", ix, yv)])])
    g, d = op.inputs
    gv, dv = ctx.get(g, ix), ctx.get(d, ix)
    return compose([one(ctx, f"{ctx.label(g, ix)}·{ctx.label(d, ix)}",
                        f"{par(gv)}·{par(dv)}", gv * dv, [Ref(g, ix, gv), Ref(d, ix, dv)])])


def _dh_in(ctx: Ctx, op: Op, ix: Index) -> Result:
    n, j = ix
    g, w = op.inputs
    return compose([products(ctx, f"Σₖ {ctx.label(g, (n, 'k'))}·{ctx.label(w, (j, 'k'))}",
                             g, ctx.arr(g)[n, :], lambda k: (n, k), w, ctx.arr(w)[j, :],
                             lambda k: (j, k))])


def _dw(ctx: Ctx, op: Op, ix: Index) -> Result:
    i, j = ix
    src, g = op.inputs[0], op.inputs[1]
    parts = [products(ctx, f"Σₙ {ctx.label(src, ('n', i))}·{ctx.label(g, ('n', j))}",
                      src, ctx.arr(src)[:, i], lambda r: (r, i), g, ctx.arr(g)[:, j],
                      lambda r: (r, j))]
    notes: tuple[str, ...] = (f"N = {ctx.n} rows",)
    if ctx.cfg.reg > 0:
        reg, w = cat.REGULARIZERS[ctx.cfg.reg_kind], op.inputs[2]
        wv = ctx.get(w, ix)
        label = ctx.label(w, ix) if reg.name == "l2" else f"sign({ctx.label(w, ix)})"
        shown = par(wv) if reg.name == "l2" else f"sign({num(wv)})"
        parts.append(one(ctx, f"λ·{label}/N", f"{num(ctx.cfg.reg)}·{shown}/{ctx.n}",
                         reg.scalar_grad(wv, ctx.cfg.reg / ctx.n), [Ref(w, ix, wv)]))
        notes += (f"λ = {num(ctx.cfg.reg)} ({reg.name})",)
    return compose(parts, notes)


def _db(ctx: Ctx, op: Op, ix: Index) -> Result:
    (j,) = ix
    g = op.inputs[0]
    col = ctx.arr(g)[:, j].astype(np.float64)
    return compose([sum_of(ctx, f"Σₙ {ctx.label(g, ('n', j))}", col, [col],
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
        s = sum_of(ctx, " + ".join(f"Σ {ctx.name(k)}²" for k in keys), allv * allv, [allv], at,
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
    return compose([one(ctx, f"min(max({label}, −c), c)",
                        f"min(max({num(gv)}, {num(-c)}), {num(c)})",
                        cat.clip_value(gv, c), [Ref(g, ix, gv)])],
                   (f"c = {num(c)}",), ctx.label(op.key, ix))


def _sgd(ctx: Ctx, op: Op, ix: Index) -> Result:
    p, g = op.inputs
    wv, gv = ctx.get(p, ix), ctx.get(g, ix)
    res = compose([one(ctx, f"{ctx.label(p, ix)} − η·{ctx.label(g, ix)}",
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
