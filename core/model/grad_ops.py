"""Builders of the backward and update ops: each chain-rule factor as one `Op`.

`core/model/program.py` calls these per layer; the maths each kernel runs comes from
the catalog (`core/model/catalog.py`), bound here to preallocated buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from core.engine.rows import RowMetrics
from core.model import catalog as cat
from core.model.code import Code
from core.model.config import Config
from core.model.op import Buffers, Hyper, Op, cells, decay_of, h_name, lr_of


def loss_dh_op(loss: cat.Loss, l: int, shp: tuple[int, int], dt: np.dtype, n: int,
             fmt: dict[str, str]) -> Op:
    inv = 1.0 / n

    def bind(b: Buffers, hp: Hyper):
        h, y, out = b[f"h{l}"], b["y"], b[f"dL_dh{l}"]
        if loss.fused:  # −y/(N h), written only where y ≠ 0 so 0/0 never appears
            def run() -> None:
                out.fill(0.0)
                np.divide(y, h, out=out, where=y != 0)
                np.multiply(out, -inv, out=out)
            return Code.opaque(run)  # display only: never on the fast path

        # the loss op (always run just before) left h − y in this buffer
        return Code.call(np.multiply, out, inv, out=out)

    return Op(f"dL_dh{l}", f"dL/dh{l}", "backward", loss.dh_text.format(**fmt),
              (f"h{l}", "y"), shp, l, loss.name, bind, display_only=loss.fused)


def loss_dhdz_op(loss: cat.Loss, l: int, shp: tuple[int, int], n: int, k: int,
               fmt: dict[str, str]) -> Op:
    if loss.fused:
        def bind(b: Buffers, hp: Hyper):
            h, out = b[f"h{l}"], b[f"dh{l}_dz{l}"]
            return Code.opaque(partial(cat.softmax_jacobian, h, out))
        return Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward", loss.dhdz_text.format(**fmt),
                  (f"h{l}",), (n, k, k), l, "softmax", bind, display_only=True)

    def bind_s(b: Buffers, hp: Hyper):
        h, out = b[f"h{l}"], b[f"dh{l}_dz{l}"]
        return cat._sigmoid_d(h, out)
    return Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward", loss.dhdz_text.format(**fmt),
              (f"h{l}",), shp, l, "sigmoid", bind_s)


def loss_dz_op(loss: cat.Loss, l: int, shp: tuple[int, int], n: int, fmt: dict[str, str]) -> Op:
    inv = 1.0 / n
    if loss.fused:
        def bind(b: Buffers, hp: Hyper):
            h, y, out = b[f"h{l}"], b["y"], b[f"dL_dz{l}"]

            return (Code.call(np.subtract, h, y, out=out)
                    + Code.call(np.multiply, out, inv, out=out))
        ins: tuple[str, ...] = (f"h{l}", "y")
    else:
        def bind(b: Buffers, hp: Hyper):
            g, d, out = b[f"dL_dh{l}"], b[f"dh{l}_dz{l}"], b[f"dL_dz{l}"]
            return Code.call(np.multiply, g, d, out=out)
        ins = (f"dL_dh{l}", f"dh{l}_dz{l}")
    return Op(f"dL_dz{l}", f"dL/dz{l}", "backward", loss.dz_text.format(**fmt), ins, shp, l,
              loss.name, bind)


def folded_dz_ops(loss: cat.Loss, l: int, shp: tuple[int, int], n: int,
                  fmt: dict[str, str], scratch: Callable[[Buffers, str], np.ndarray]
                  ) -> list[Op]:
    """dL/dh, dh/dz (shown only) and dL/dz = their product computed directly, for a
    full-batch MSE output whose sigmoid keeps exp(−z)/N (cat.sigmoid_scaled)."""
    inv = 1.0 / n

    def bind_dh(b: Buffers, hp: Hyper):  # the loss op left h − y in `diff`
        return Code.call(np.multiply, scratch(b, "diff"), inv, out=b[f"dL_dh{l}"])

    def bind_dhdz(b: Buffers, hp: Hyper):
        return cat._sigmoid_d(b[f"h{l}"], b[f"dh{l}_dz{l}"])

    def bind_dz(b: Buffers, hp: Hyper):
        return cat.mse_dz_scaled(scratch(b, "diff"), b[f"h{l}"], scratch(b, "eN"),
                                 scratch(b, "tN"), b[f"dL_dz{l}"])

    return [Op(f"dL_dh{l}", f"dL/dh{l}", "backward", loss.dh_text.format(**fmt),
               (f"h{l}", "y"), shp, l, loss.name, bind_dh, display_only=True),
            Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward", loss.dhdz_text.format(**fmt),
               (f"h{l}",), shp, l, "sigmoid", bind_dhdz, display_only=True),
            Op(f"dL_dz{l}", f"dL/dz{l}", "backward", loss.dz_text.format(**fmt),
               (f"dL_dh{l}", f"dh{l}_dz{l}"), shp, l, loss.name, bind_dz)]


def grad_input_op(l: int, shp: tuple[int, int]) -> Op:
    """dL/dh{l} = dL/dz{l+1}·W{l+1}ᵀ: the linear layer's derivative w.r.t. its input."""
    def bind(b: Buffers, hp: Hyper):
        g, wt, out = b[f"dL_dz{l + 1}"], b[f"W{l + 1}"].T, b[f"dL_dh{l}"]
        return Code.dot(g, wt, out)
    return Op(f"dL_dh{l}", f"dL/dh{l}", "backward", f"dL/dh{l} = dL/dz{l + 1}·W{l + 1}ᵀ",
              (f"dL_dz{l + 1}", f"W{l + 1}"), shp, l, "linear", bind)


def grad_w_op(cfg: Config, reg: cat.Regularizer | None, l: int, shp: tuple[int, int],
              n: int, decay: bool = False,
              with_bias: Callable[[Buffers], tuple[np.ndarray, np.ndarray]] | None = None
              ) -> Op:
    """dL/dW{l} = h{l−1}ᵀ·dL/dz{l} (+ the penalty's gradient).

    `decay` (L2, row metrics): the fast path keeps only the data term (in `raw_dW{l}`)
    and the update applies the penalty as a weight decay; the sum is formed for the
    stepper to show and, in core/engine/rows.py, for the norms, with the same two calls.
    `with_bias` (layer 1, row metrics): ([1 | X]ᵀ, [db1; dW1]): both in one product."""
    src = h_name(l - 1)
    extra = " + " + reg.grad_text.format(W=f"W{l}") if reg else ""
    ins = (src, f"dL_dz{l}") + ((f"W{l}",) if reg else ())
    coeff = cfg.reg / n

    def bind(b: Buffers, hp: Hyper):
        xt, g, w, out = b[src].T, b[f"dL_dz{l}"], b[f"W{l}"], b[f"dL_dW{l}"]
        if with_bias is not None:  # [db; dW] = [1 | x]ᵀ·g in one product, then as below
            x1t, both = with_bias(b)
            prod = Code.dot(x1t, g, both)
            if reg is None:
                return prod
            raw = b[f"raw_dW{l}"] if decay else out
            term = reg.grad_term(w, coeff, b[f"W{l}_reg"]) + Code.call(np.add, raw, b[
                f"W{l}_reg"], out=out)
            return prod + (term.as_metric() if decay else term)
        if reg is None:
            return Code.dot(xt, g, out)
        tmp = b[f"W{l}_reg"]  # a slice of a flat arena: the terms of all layers merge
        if decay:
            raw = b[f"raw_dW{l}"]
            return Code.dot(xt, g, raw) + (reg.grad_term(w, coeff, tmp) + Code.call(
                np.add, raw, tmp, out=out)).as_metric()
        return Code.dot(xt, g, out) + (reg.grad_term(w, coeff, tmp)
                                       + Code.call(np.add, out, tmp, out=out))

    return Op(f"dL_dW{l}", f"dL/dW{l}", "backward",
              f"dL/dW{l} = {h_name(l - 1)}ᵀ·dL/dz{l}{extra}", ins, shp, l, "linear", bind)


def grad_norm_op(params: list[str], grads: list[str], depth: int,
                 rows_of: Callable[[Buffers, Hyper], RowMetrics] | None = None) -> Op:
    """Per-layer ‖∇‖ (weights and bias together); one norm is also the finite check.

    With `rows_of` the norms come from the gradient segments of the metric arena
    (core/engine/rows.py): the fast path copies the arena here and computes them per chunk.
    """
    def bind(b: Buffers, hp: Hyper):
        hp.grad_norm = out = cells(b["grad_norm"])
        if rows_of is not None:
            rm = rows_of(b, hp)
            one = b["metric_rows"][None, :]

            def norms() -> None:
                for i, v in enumerate(rm.grad_norm(rm.sums(one, rm.split))[0].tolist()):
                    out[i] = v
            return Code.metric(norms)
        layers = [[b[g].reshape(-1) for p, g in zip(params, grads, strict=True)
                   if int(p[1:]) == l] for l in range(1, depth + 1)]
        env: dict[str, object] = {"out": out, "sqrt": math.sqrt, "float": float}
        lines = []
        for i, fs in enumerate(layers):
            terms = []
            for j, f in enumerate(fs):
                env[f"d{i}_{j}"], env[f"f{i}_{j}"] = f.dot, f
                terms.append(f"float(d{i}_{j}(f{i}_{j}))")
            # sum() of one float is that float; of two, (0 + a) + b: spelled out alike
            total = terms[0] if len(terms) == 1 else "0 + " + " + ".join(terms)
            lines.append(f"out[{i}] = sqrt({total})")
        # declared, so the blocked L2 term and step of a big net join up across it
        return Code.src("\n".join(lines), env, tuple(f for fs in layers for f in fs),
                        (b["grad_norm"],))

    return Op("grad_norm", "‖dL/dW‖", "update", "‖dL/dWₗ‖ = √(Σ dL/dWₗ²) per layer",
              tuple(grads), (depth,), 0, "norm", bind)


def clip_op(cfg: Config, p: str, g: str, shp: tuple[int, ...]) -> Op:
    c = cfg.clip
    name = g.replace("_", "/", 1)
    if cfg.clip_kind == "norm":
        text = f"clip({name}) = {name}·min(1, {c:g}/‖g‖)  (‖g‖ over all layers)"

        def bind(b: Buffers, hp: Hyper):
            grad, norms = b[g], b["grad_norm"]
            # NaN/inf compare False: nothing to rescale
            return Code.src("t = sqrt(float(nd(norms)))\nif t > c:\n    mul(grad, c / t, grad)",
                            {"sqrt": math.sqrt, "float": float, "nd": norms.dot,
                             "norms": norms, "c": c, "mul": np.multiply, "grad": grad})
        ins: tuple[str, ...] = (g, "grad_norm")
    else:
        text = f"clip({name}) = min(max({name}, −{c:g}), {c:g})"

        def bind(b: Buffers, hp: Hyper):
            grad = b[g]
            return Code.call(np.clip, grad, -c, c, out=grad)
        ins = (g,)
    return Op(f"{g}_clip", f"clip {name}", "update", text, ins, shp,
              int(p[1:]), f"clip-{cfg.clip_kind}", bind, target=g)


def sgd_op(p: str, g: str, l: int, shp: tuple[int, ...], decay: float = 0.0) -> Op:
    """p ← p − η·g, in place on the parameter buffer.

    `decay` = c > 0: g is c·p + the data term `raw_d{p}` and the step is computed as
    p·(1 − η·c) − η·raw (a weight decay: one call fewer than forming g first)."""
    def bind(b: Buffers, hp: Hyper):
        w, grad = b[p], b[f"raw_d{p}"] if decay else b[g]
        tmp = b[f"{p}_step"]  # a slice of a flat arena: the steps of all layers merge
        step = Code.call(np.multiply, grad, lr_of(hp, w.dtype), out=tmp) + Code.call(
            np.subtract, w, tmp, out=w)
        if decay:  # a unit of its own: the decays of all layers merge, and so do the steps
            return Code(Code.call(np.multiply, w, decay_of(hp, w.dtype, decay),
                                  out=w).units + step.units)
        return step
    gname = g.replace("_clip", "").replace("_", "/", 1)
    shown = f"clip({gname})" if g.endswith("_clip") else gname
    return Op(f"{p}_new", f"update {p}", "update", f"{p} ← {p} − η·{shown}", (p, g),
              shp, l, "sgd", bind, target=p)
