"""One iteration as a list of named operations, built from the op catalog.

`build_program` turns a Config into `Op`s: z1, h1, …, L, dL/dh2, dh2/dz2, …,
updates.  Each Op knows its phase, formula text, the keys it reads, its output
shape, and how to bind itself to preallocated buffers.  Executing the bound
kernels in order *is* backprop; the stepper records each output, the fast path
runs only the ops the update needs (see `Program.live_ops`).
"""


from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from core import catalog as cat
from core.code import Code
from core.config import Config
from core.grad_ops import (
    clip_op,
    grad_input_op,
    grad_norm_op,
    grad_w_op,
    loss_dh_op,
    loss_dhdz_op,
    loss_dz_op,
    sgd_op,
)
from core.op import PHASES, Buffers, Hyper, Kernel, Op, cells, h_name

__all__ = ["PHASES", "Buffers", "Hyper", "Kernel", "Op", "Program", "build_program"]


@dataclass(frozen=True)
class Program:
    """The ops of a run: init ops once, then the same `ops` every iteration."""

    cfg: Config
    sizes: tuple[int, ...]  # D, hidden widths..., K
    n: int  # rows per batch
    init_ops: tuple[Op, ...]
    ops: tuple[Op, ...]

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1

    @property
    def params(self) -> tuple[str, ...]:
        """Parameter keys in layer order: W1, b1, W2, …"""
        names = []
        for l in range(1, self.depth + 1):
            names.append(f"W{l}")
            if self.cfg.bias:
                names.append(f"b{l}")
        return tuple(names)

    def param_shape(self, key: str) -> tuple[int, ...]:
        l = int(key[1:])
        return (self.sizes[l - 1], self.sizes[l]) if key[0] == "W" else (self.sizes[l],)

    def index(self, key: str) -> int:
        """Position of the op producing `key` (or named `key`) in `ops`."""
        for i, op in enumerate(self.ops):
            if key in (op.key, op.name):
                return i
        raise KeyError(key)

    def live_ops(self) -> tuple[Op, ...]:
        """Ops needed for the update, loss, norms and accuracy: the fast path's list."""
        needed = {f"h{self.depth}", "loss", "grad_norm"}
        keep: list[Op] = []
        for op in reversed(self.ops):
            if op.phase == "update" or op.key in needed:
                keep.append(op)
                needed.update(op.inputs)
        return tuple(reversed(keep))

    def allocate(self) -> Buffers:
        """Buffers for data, parameters and every op output (aliases for in-place ops)."""
        dt = np.dtype(self.cfg.dtype)
        d, k, n = self.sizes[0], self.sizes[-1], self.n
        buf: Buffers = {
            "X": np.zeros((n, d), dt),
            "y": np.zeros((n, k), dt),
            "labels": np.zeros(n, np.int64),
            "w_sq": np.full(self.depth, np.nan),  # Σ W² per layer, filled by an l2 loss
        }
        # flat arenas, weights first then biases: parameters, gradients, SGD steps and
        # L2 terms of all layers are one contiguous vector each (see core/fused.py)
        order = [p for p in self.params if p[0] == "W"] + [p for p in self.params
                                                             if p[0] == "b"]
        sizes = [int(np.prod(self.param_shape(p))) for p in order]
        total = sum(sizes)
        arenas = {kind: np.zeros(total, dt) for kind in ("", "dL_d", "step", "reg")}
        at = 0
        for p, size in zip(order, sizes, strict=True):
            shp = self.param_shape(p)
            for kind, arena in arenas.items():
                key = p if kind == "" else f"dL_d{p}" if kind == "dL_d" else f"{p}_{kind}"
                buf[key] = arena[at:at + size].reshape(shp)
            at += size
        buf["params"] = arenas[""]
        for op in self.init_ops + self.ops:
            if op.key not in buf:
                buf[op.key] = buf[op.target] if op.target else np.zeros(op.shape, dt)
        return buf


def build_program(cfg: Config, n_inputs: int, n_classes: int, batch_rows: int) -> Program:
    """Instantiate the catalog for this config's depth, widths and choices."""
    sizes = (n_inputs, *cfg.hidden, n_classes)
    depth = len(sizes) - 1
    n = batch_rows
    act = cat.ACTIVATIONS[cfg.activation]
    loss = cat.LOSSES[cfg.loss]
    reg = cat.REGULARIZERS[cfg.reg_kind] if cfg.reg > 0 else None
    dt = np.dtype(cfg.dtype)
    params = [f"W{l}" for l in range(1, depth + 1)]
    init_ops: list[Op] = []
    ops: list[Op] = []

    def shape(l: int) -> tuple[int, int]:
        return (n, sizes[l])

    # ---- init: one op per parameter, each with its own seeded stream
    for l in range(1, depth + 1):
        fi, fo = sizes[l - 1], sizes[l]
        text = cat.INIT_TEXT[cfg.init].format(W=f"W{l}", fan_in=fi, fan_out=fo)

        def bind_init(b: Buffers, hp: Hyper, l: int = l, fi: int = fi, fo: int = fo):
            w = b[f"W{l}"]
            return Code.opaque(lambda: cat.init_weights(
                cfg.init, np.random.default_rng([cfg.seed, 0x1417, l]), fi, fo, w))

        init_ops.append(Op(f"W{l}_init", f"init W{l}", "init", text, (), (fi, fo), l,
                           cfg.init, bind_init, target=f"W{l}"))
        if cfg.bias:
            def bind_b0(b: Buffers, hp: Hyper, l: int = l):
                arr = b[f"b{l}"]
                return Code.call(arr.fill, 0.0)

            init_ops.append(Op(f"b{l}_init", f"init b{l}", "init", f"b{l} = 0", (), (fo,), l,
                               "zeros", bind_b0, target=f"b{l}"))

    # ---- forward
    for l in range(1, depth + 1):
        src = h_name(l - 1)
        bias = f" + b{l}" if cfg.bias else ""
        ins = (src, f"W{l}") + ((f"b{l}",) if cfg.bias else ())

        def bind_z(b: Buffers, hp: Hyper, l: int = l, src: str = src):
            x, w, z = b[src], b[f"W{l}"], b[f"z{l}"]
            if cfg.bias:
                return Code.dot(x, w, z) + Code.call(np.add, z, b[f"b{l}"], out=z)
            return Code.dot(x, w, z)

        ops.append(Op(f"z{l}", f"z{l}", "forward", f"z{l} = {h_name(l - 1)}·W{l}{bias}", ins,
                      shape(l), l, "linear", bind_z))
        last = l == depth
        if last and loss.output == "softmax":
            def bind_h(b: Buffers, hp: Hyper, l: int = l):
                z, h = b[f"z{l}"], b[f"h{l}"]
                mx, sm = np.empty((n, 1), dt), np.empty((n, 1), dt)
                return cat.softmax(z, h, mx, sm)
            text, fam = f"h{l} = softmax(z{l})", "softmax"
        else:
            a = cat.ACTIVATIONS["sigmoid"] if last else act

            def bind_h(b: Buffers, hp: Hyper, l: int = l, a: cat.Activation = a):
                return a.forward(b[f"z{l}"], b[f"h{l}"])
            text, fam = f"h{l} = {a.symbol}(z{l})", a.name
        ops.append(Op(f"h{l}", f"h{l}", "forward", text, (f"z{l}",), shape(l), l, fam, bind_h))

    # ---- loss (data term + penalty)
    L = depth
    pen = f" + {reg.penalty_text}" if reg else ""
    loss_ins = ((f"z{L}", "labels") if loss.fused else (f"h{L}", "y")) + tuple(params)

    def bind_loss(b: Buffers, hp: Hyper) -> Code:
        ws = [b[p] for p in params]
        coeff = cfg.reg * reg.scale(n) if reg else 0.0
        env: dict[str, object] = {"out": cells(b["loss"]), "hp": hp, "float": float,
                                  "coeff": coeff}
        lines = []
        if loss.fused:
            z = b[f"z{L}"]
            mx, sm, tmp = np.empty((n, 1), dt), np.empty((n, 1), dt), np.empty_like(z)
            rows = np.arange(n) * sizes[-1]
            env["data"] = partial(cat.ce_value, z, rows, b["labels"], mx, sm, tmp)
            data = "data()"
        else:
            # (h − y) is left in the dL/dh buffer; the dL/dh op scales it by 1/N
            diff = b[f"dL_dh{L}"]
            env.update(sub=np.subtract, h=b[f"h{L}"], y=b["y"], diff=diff,
                       dd=diff.reshape(-1).dot, df=diff.reshape(-1), half_n=0.5 / n)
            data = "float(dd(df)) * half_n"  # Σ(y−h)²/2N (cat.mse_value's maths)
        if reg is not None:
            terms = []
            for i, w in enumerate(ws):
                if reg.name == "l2":  # Σ W² per layer is kept in w_sq: the fast path's ‖W‖
                    env[f"wd{i}"], env[f"wf{i}"] = w.reshape(-1).dot, w.reshape(-1)
                    lines.append(f"v{i} = float(wd{i}(wf{i}))")
                    lines.append(f"wsq[{i}] = v{i}")
                else:
                    env[f"pen{i}"] = partial(reg.penalty, w, np.empty_like(w))
                    lines.append(f"v{i} = pen{i}()")
                terms.append(f"v{i}")
            if reg.name == "l2":
                env["wsq"] = hp.w_sq = cells(b["w_sq"])
            total = "(0.0 + " + " + ".join(terms) + ")"  # the running sum, in layer order
            value = f"{data} + coeff * {total}"
        else:
            value = data
        if not loss.fused:
            lines.append("sub(h, y, diff)")
        lines.append(f"lv = {value}")
        lines.append("out[0] = lv")
        lines.append("hp.loss = lv")
        return Code.src("\n".join(lines), env)

    ops.append(Op("loss", "L", "loss", loss.value_text.format(h=f"h{L}") + pen, loss_ins, (),
                  0, loss.name, bind_loss))

    # ---- backward, layer L down to 1
    for l in range(L, 0, -1):
        hl, zl = f"h{l}", f"z{l}"
        if l == L:
            fmt = {"h": hl, "z": zl}
            ops.append(loss_dh_op(loss, l, shape(l), dt, n, fmt))
            ops.append(loss_dhdz_op(loss, l, shape(l), n, sizes[-1], fmt))
            ops.append(loss_dz_op(loss, l, shape(l), n, fmt))
        else:
            ops.append(grad_input_op(l, shape(l)))
            src = hl if act.deriv_from == "h" else zl
            deriv = act.derivative

            def bind_d(b: Buffers, hp: Hyper, l: int = l, src: str = src, deriv=deriv):
                return deriv(b[src], b[f"dh{l}_dz{l}"])

            ops.append(Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward",
                          f"dh{l}/dz{l} = " + act.deriv_text.format(h=hl, z=zl), (src,),
                          shape(l), l, act.name, bind_d))

            def bind_dz(b: Buffers, hp: Hyper, l: int = l):
                g, d, out = b[f"dL_dh{l}"], b[f"dh{l}_dz{l}"], b[f"dL_dz{l}"]
                return Code.call(np.multiply, g, d, out=out)

            ops.append(Op(f"dL_dz{l}", f"dL/dz{l}", "backward",
                          f"dL/dz{l} = dL/dh{l} ⊙ dh{l}/dz{l}", (f"dL_dh{l}", f"dh{l}_dz{l}"),
                          shape(l), l, act.name, bind_dz))
        ops.append(grad_w_op(cfg, reg, l, (sizes[l - 1], sizes[l]), n))
        if cfg.bias:
            def bind_db(b: Buffers, hp: Hyper, l: int = l):
                g, out = b[f"dL_dz{l}"], b[f"dL_db{l}"]
                # what np.sum(g, axis=0, out=out) calls, without its Python wrapper
                return Code.call(np.add.reduce, g, axis=0, out=out)

            ops.append(Op(f"dL_db{l}", f"dL/db{l}", "backward", f"dL/db{l} = Σₙ dL/dz{l}",
                          (f"dL_dz{l}",), (sizes[l],), l, "linear", bind_db))

    # ---- update: norms, optional clipping, SGD steps
    prog_params = [p for l in range(1, L + 1) for p in ([f"W{l}"] + ([f"b{l}"] if cfg.bias
                                                                       else []))]
    grads = [f"dL_d{p}" for p in prog_params]
    ops.append(grad_norm_op(prog_params, grads, L))
    upd_src = dict(zip(prog_params, grads, strict=True))

    def pshape_of(p: str) -> tuple[int, ...]:
        l = int(p[1:])
        return (sizes[l - 1], sizes[l]) if p[0] == "W" else (sizes[l],)

    if cfg.clip > 0:
        for p, g in zip(prog_params, grads, strict=True):
            ops.append(clip_op(cfg, p, g, pshape_of(p)))
            upd_src[p] = f"{g}_clip"
    order = [p for l in range(L, 0, -1) for p in ([f"W{l}"] + ([f"b{l}"] if cfg.bias else []))]
    for p in order:
        ops.append(sgd_op(p, upd_src[p], int(p[1:]), pshape_of(p)))
    return Program(cfg, sizes, n, tuple(init_ops), tuple(ops))
