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

from core.engine.rows import RowMetrics, eligible
from core.model import catalog as cat
from core.model.code import Code
from core.model.config import Config
from core.model.grad_ops import (
    clip_op,
    folded_dz_ops,
    grad_input_op,
    grad_norm_op,
    grad_w_op,
    loss_dh_op,
    loss_dhdz_op,
    loss_dz_op,
    sgd_op,
)
from core.model.op import PHASES, Buffers, Hyper, Kernel, Op, cells, h_name

__all__ = ["PHASES", "Buffers", "Hyper", "Kernel", "Op", "Program", "build_program"]


@dataclass(frozen=True)
class Program:
    """The ops of a run: init ops once, then the same `ops` every iteration."""

    cfg: Config
    sizes: tuple[int, ...]  # D, hidden widths..., K
    n: int  # rows per batch
    init_ops: tuple[Op, ...]
    ops: tuple[Op, ...]
    row_metrics: bool = False  # metrics from rows of the arena [h_L | params | grads]
    decay: float = 0.0  # > 0: the L2 term is applied as a weight decay (core/model/grad_ops.py)

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

    def param_order(self) -> list[str]:
        """Parameters in arena order: weights first, then biases; with row metrics b1
        comes first, so [b1; W1] is one matrix (z1 = [1 | X]·[b1; W1], one product)."""
        ws = [p for p in self.params if p[0] == "W"]
        bs = [p for p in self.params if p[0] == "b"]
        if self.row_metrics and bs:
            return [bs[0], *ws, *bs[1:]]
        return ws + bs

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
            if op.display_only:  # its value is computed elsewhere (e.g. inside dL/dz)
                continue
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
        # flat arenas: parameters, gradients, SGD steps and L2 terms of all layers are
        # one contiguous vector each (see core/engine/fused.py)
        order = self.param_order()
        sizes = [int(np.prod(self.param_shape(p))) for p in order]
        total = sum(sizes)
        arenas = {kind: np.zeros(total, dt) for kind in ("", "dL_d", "step", "reg")}
        if self.row_metrics:  # one arena [h1 | … | h_L | params | grads]: from h_L on it
            # is the metric arena (core/engine/rows.py); the layers' h, exp(−z) and σ'
            # buffers are adjacent, so their σ' = e·h·h is one pair of calls for all
            # layers in the fast path (cat.sigmoid_factor, core/engine/fused.py)
            shapes = [(n, width) for width in self.sizes[1:]]
            hs = sum(a * b for a, b in shapes)
            rows = np.zeros(hs + 2 * total, dt)
            exps, factors = np.zeros(hs, dt), np.zeros(hs, dt)
            at = 0
            for l, shp in enumerate(shapes, 1):
                last = l == self.depth
                size = shp[0] * shp[1]
                buf[f"h{l}"] = rows[at:at + size].reshape(shp)
                buf[f"eN{l}" if last else f"e{l}"] = exps[at:at + size].reshape(shp)
                buf[f"tN{l}" if last else f"dh{l}_dz{l}"] = factors[at:at + size].reshape(shp)
                at += size
            arenas[""], arenas["raw_d"] = rows[hs:hs + total], rows[hs + total:]
            if not self.decay:  # else dL/dW (data term + penalty) is shown, not stepped
                arenas["dL_d"] = arenas["raw_d"]
            buf["metric_rows"] = rows[hs - n * k:]
        at = 0
        for p, size in zip(order, sizes, strict=True):
            shp = self.param_shape(p)
            for kind, arena in arenas.items():
                if kind == "raw_d" and p[0] == "b" and self.decay:
                    kind = "dL_d"  # biases have no penalty: their raw gradient is dL/db
                key = p if kind == "" else f"{kind}{p}" if kind.endswith("_d") else f"{p}_{kind}"
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
    n_par = sum(sizes[l - 1] * sizes[l] + (sizes[l] if cfg.bias else 0)
                for l in range(1, depth + 1))
    # a batch of all rows (batch_size == n is ambiguous here: it counts as a mini-batch)
    full = cfg.batch_size == 0 or cfg.batch_size > n
    use_rows = eligible(cfg.loss, cfg.reg, cfg.reg_kind, cfg.clip, cfg.clip_kind, full,
                        n * sizes[-1] + 2 * n_par)

    # with row metrics and an L2 penalty, the update applies it as a weight decay
    decay = cfg.reg / n if use_rows and reg is not None and cfg.clip == 0 else 0.0

    def ones_x(b: Buffers) -> np.ndarray:
        """[1 | X], made once per set of buffers (full batch: X never changes)."""
        if "X1" not in b:
            b["X1"] = np.concatenate([np.ones((n, 1), dt), b["X"]], axis=1)
        return b["X1"]

    def joined(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The two adjacent arena slices [first; second] as one matrix."""
        base = first.__array_interface__["data"][0] + first.nbytes
        assert second.__array_interface__["data"][0] == base and first.base is second.base
        return first.base[first_offset(first):first_offset(first) + first.size + second.size
                          ].reshape(-1, second.shape[-1])

    def first_offset(a: np.ndarray) -> int:
        return (a.__array_interface__["data"][0] - a.base.__array_interface__["data"][0]
                ) // a.itemsize

    def arena_order() -> list[str]:
        ws, bs = [f"W{l}" for l in range(1, depth + 1)], [f"b{l}" for l in range(1, depth + 1)]
        return ([bs[0], *ws, *bs[1:]] if use_rows else ws + bs) if cfg.bias else ws

    def rows_of(b: Buffers, hp: Hyper) -> RowMetrics:
        """The run's RowMetrics, made once per set of buffers."""
        if hp.rows is None or hp.rows.arena is not b["metric_rows"]:
            coeff = cfg.reg * reg.scale(n) if reg else 0.0
            order = [(p, b[p].size) for p in arena_order()]
            hp.rows = RowMetrics(b["metric_rows"], b["y"], b["labels"], order, coeff, decay)
        return hp.rows

    def shape(l: int) -> tuple[int, int]:
        return (n, sizes[l])

    # full-batch MSE with row metrics: the 1/N of dL/dh is folded into the output's
    # sigmoid, dL/dz_L is computed directly and dL/dh_L, dh_L/dz_L are shown only
    # sigmoid hidden layers keep exp(−z), so every layer's σ' is e·h·h.  Both forms read
    # exp(−z), which overflows for z < −709 in float64 (then e·h·h is inf·0 = NaN where
    # h(1−h) is 0) but already for z < −88 in float32: float32 runs keep h(1−h)
    fold = use_rows and loss.name == "mse" and dt == np.float64
    kept = fold and act.forward_kept is not None and act.derivative_kept is not None

    def scratch(b: Buffers, name: str) -> np.ndarray:
        """An internal buffer of the output layer's shape, shared by the ops binding it."""
        key = f"{name}{depth}"
        if key not in b:
            b[key] = np.zeros(shape(depth), dt)
        return b[key]

    def exp_of(b: Buffers, l: int) -> np.ndarray:
        """exp(−z_l) kept by a hidden sigmoid (Program.allocate lays them out adjacent;
        other buffer sets, e.g. the boundary's forward pass, get their own here)."""
        if f"e{l}" not in b:
            b[f"e{l}"] = np.zeros(shape(l), dt)
        return b[f"e{l}"]

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
            if cfg.bias and l == 1 and "metric_rows" in b:  # [1 | X]·[b1; W1] (a run's
                # own buffers: the batch is fixed, b1 precedes W1 in the arena)
                return Code.dot(ones_x(b), joined(b["b1"], w), z)
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

            def bind_h(b: Buffers, hp: Hyper, l: int = l, a: cat.Activation = a,
                       last: bool = last):
                if last and fold:  # keeps exp(−z)/N for dL/dz (cat.mse_dz_scaled)
                    return cat.sigmoid_scaled(b[f"z{l}"], b[f"h{l}"], scratch(b, "eN"), n)
                if kept:  # keeps exp(−z) for dh/dz (cat.sigmoid_factor)
                    return a.forward_kept(b[f"z{l}"], b[f"h{l}"], exp_of(b, l))
                return a.forward(b[f"z{l}"], b[f"h{l}"])
            text, fam = f"h{l} = {a.symbol}(z{l})", a.name
        ops.append(Op(f"h{l}", f"h{l}", "forward", text, (f"z{l}",), shape(l), l, fam, bind_h))

    # ---- loss (data term + penalty)
    L = depth
    pen = f" + {reg.penalty_text}" if reg else ""
    loss_ins = ((f"z{L}", "labels") if loss.fused else (f"h{L}", "y")) + tuple(params)

    def bind_loss_rows(b: Buffers, hp: Hyper) -> Code:
        rm = rows_of(b, hp)
        one = b["metric_rows"][None, :]
        out, wsq = cells(b["loss"]), cells(b["w_sq"])
        hp.w_sq = wsq

        def value() -> None:
            lv, ws = rm.loss_and_wsq(rm.sums(one, 0, rm.split))
            hp.loss = out[0] = float(lv[0])
            for i, v in enumerate(ws[0].tolist()):
                wsq[i] = v
        h, y, diff = b[f"h{L}"], b["y"], scratch(b, "diff") if fold else b[f"dL_dh{L}"]
        # h − y is left in the dL/dh buffer (the dL/dh op scales it by 1/N), or, folded,
        # in its own buffer for dL/dz
        return Code.call(np.subtract, h, y, out=diff) + Code.metric(value)

    def bind_loss(b: Buffers, hp: Hyper) -> Code:
        if use_rows:
            return bind_loss_rows(b, hp)
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
            if fold:
                ops.extend(folded_dz_ops(loss, l, shape(l), n, fmt, scratch))
            else:
                ops.append(loss_dh_op(loss, l, shape(l), dt, n, fmt))
                ops.append(loss_dhdz_op(loss, l, shape(l), n, sizes[-1], fmt))
                ops.append(loss_dz_op(loss, l, shape(l), n, fmt))
        else:
            ops.append(grad_input_op(l, shape(l)))
            src = hl if act.deriv_from == "h" else zl
            deriv = act.derivative

            def bind_d(b: Buffers, hp: Hyper, l: int = l, src: str = src, deriv=deriv):
                if kept:  # e·h·h, the output layer's twin (cat.sigmoid_factor)
                    return act.derivative_kept(exp_of(b, l), b[src], b[f"dh{l}_dz{l}"])
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
        fold_b = cfg.bias and l == 1 and use_rows  # [db1; dW1] = [1 | X]ᵀ·dL/dz1
        ops.append(grad_w_op(cfg, reg, l, (sizes[l - 1], sizes[l]), n, decay > 0,
                             (lambda b: (ones_x(b).T, joined(b["dL_db1"], b[
                                 "raw_dW1" if decay else "dL_dW1"]))) if fold_b else None))
        if fold_b:  # computed with dL/dW1 just before: shown only
            ops.append(Op("dL_db1", "dL/db1", "backward", "dL/db1 = Σₙ dL/dz1", ("dL_dz1",),
                          (sizes[1],), 1, "linear", lambda b, hp: Code(()),
                          display_only=True))
        elif cfg.bias:
            def bind_db(b: Buffers, hp: Hyper, l: int = l):
                g, out = b[f"dL_dz{l}"], b[f"dL_db{l}"]
                # Σₙ as 1ᵀ·g: a BLAS product, far cheaper than np.sum(axis=0) here
                return Code.dot(np.ones(n, g.dtype), g, out)

            ops.append(Op(f"dL_db{l}", f"dL/db{l}", "backward", f"dL/db{l} = Σₙ dL/dz{l}",
                          (f"dL_dz{l}",), (sizes[l],), l, "linear", bind_db))

    # ---- update: norms, optional clipping, SGD steps
    prog_params = [p for l in range(1, L + 1) for p in ([f"W{l}"] + ([f"b{l}"] if cfg.bias
                                                                       else []))]
    grads = [f"dL_d{p}" for p in prog_params]
    ops.append(grad_norm_op(prog_params, grads, L, rows_of if use_rows else None))
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
        ops.append(sgd_op(p, upd_src[p], int(p[1:]), pshape_of(p), decay if p[0] == "W" else 0.0))
    return Program(cfg, sizes, n, tuple(init_ops), tuple(ops), use_rows, decay)
