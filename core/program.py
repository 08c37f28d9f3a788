"""One iteration as a list of named operations, built from the op catalog.

`build_program` turns a Config into `Op`s: z1, h1, …, L, dL/dh2, dh2/dz2, …,
updates.  Each Op knows its phase, formula text, the keys it reads, its output
shape, and how to bind itself to preallocated buffers.  Executing the bound
kernels in order *is* backprop; the stepper records each output, the fast path
runs only the ops the update needs (see `Program.live_ops`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from core import catalog as cat
from core.config import Config

Buffers = dict[str, np.ndarray]
PHASES = ("init", "forward", "loss", "backward", "update")


@dataclass
class Hyper:
    """Scalars that change between iterations, read by bound kernels."""

    lr: float = 0.0
    # Python-float copies of scalar outputs, so the fast path reads metrics
    # without NumPy item access (set by the loss and norm kernels)
    loss: float = 0.0
    # views over the w_sq and grad_norm buffers (set when those kernels are bound)
    w_sq: Sequence[float] = ()
    grad_norm: Sequence[float] = ()


Kernel = Callable[[Buffers, Hyper], Callable[[], None]]


@dataclass(frozen=True)
class Op:
    """One named operation of the program; `bind` makes its runnable kernel."""

    key: str  # array name (export key), e.g. "dL_dz2"
    name: str  # display name, e.g. "dL/dz2"
    phase: str
    formula: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    layer: int
    family: str  # catalog family: "linear", "sigmoid", "mse", "l2", "sgd", ...
    bind: Kernel = field(repr=False, compare=False)
    target: str = ""  # buffer written in place (params, clipped grads); "" = own buffer
    display_only: bool = False  # not needed to compute the update (fused elsewhere)


def _cells(arr: np.ndarray) -> memoryview:
    """A writable memoryview over a small contiguous float array.

    Writing Python floats through it costs ~0.1 µs against ~0.3-0.6 µs for NumPy
    item assignment: it matters on the fast path of a 2-10-2 net.
    """
    return memoryview(arr.reshape(-1)).cast("B").cast(arr.dtype.char)


def _h(l: int) -> str:
    return "X" if l == 0 else f"h{l}"


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
        for key in self.params:
            buf[key] = np.zeros(self.param_shape(key), dt)
        for op in self.init_ops + self.ops:
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
            return lambda: cat.init_weights(
                cfg.init, np.random.default_rng([cfg.seed, 0x1417, l]), fi, fo, w)

        init_ops.append(Op(f"W{l}_init", f"init W{l}", "init", text, (), (fi, fo), l,
                           cfg.init, bind_init, target=f"W{l}"))
        if cfg.bias:
            def bind_b0(b: Buffers, hp: Hyper, l: int = l):
                arr = b[f"b{l}"]
                return lambda: arr.fill(0.0)

            init_ops.append(Op(f"b{l}_init", f"init b{l}", "init", f"b{l} = 0", (), (fo,), l,
                               "zeros", bind_b0, target=f"b{l}"))

    # ---- forward
    for l in range(1, depth + 1):
        src = _h(l - 1)
        bias = f" + b{l}" if cfg.bias else ""
        ins = (src, f"W{l}") + ((f"b{l}",) if cfg.bias else ())

        def bind_z(b: Buffers, hp: Hyper, l: int = l, src: str = src):
            x, w, z = b[src], b[f"W{l}"], b[f"z{l}"]
            if cfg.bias:
                bb = b[f"b{l}"]

                def run() -> None:
                    np.matmul(x, w, out=z)
                    np.add(z, bb, out=z)
                return run
            return partial(np.matmul, x, w, out=z)

        ops.append(Op(f"z{l}", f"z{l}", "forward", f"z{l} = {_h(l - 1)}·W{l}{bias}", ins,
                      shape(l), l, "linear", bind_z))
        last = l == depth
        if last and loss.output == "softmax":
            def bind_h(b: Buffers, hp: Hyper, l: int = l):
                z, h = b[f"z{l}"], b[f"h{l}"]
                mx, sm = np.empty((n, 1), dt), np.empty((n, 1), dt)
                return partial(cat.softmax, z, h, mx, sm)
            text, fam = f"h{l} = softmax(z{l})", "softmax"
        else:
            a = cat.ACTIVATIONS["sigmoid"] if last else act

            def bind_h(b: Buffers, hp: Hyper, l: int = l, a: cat.Activation = a):
                z, h, f = b[f"z{l}"], b[f"h{l}"], a.forward
                return partial(f, z, h)
            text, fam = f"h{l} = {a.symbol}(z{l})", a.name
        ops.append(Op(f"h{l}", f"h{l}", "forward", text, (f"z{l}",), shape(l), l, fam, bind_h))

    # ---- loss (data term + penalty)
    L = depth
    pen = f" + {reg.penalty_text}" if reg else ""
    loss_ins = ((f"z{L}", "labels") if loss.fused else (f"h{L}", "y")) + tuple(params)

    def bind_loss(b: Buffers, hp: Hyper):
        out, wsq = _cells(b["loss"]), _cells(b["w_sq"])
        ws = [b[p] for p in params]
        flats = [w.reshape(-1) for w in ws]
        tmps = [np.empty_like(w) for w in ws]
        coeff = cfg.reg * reg.scale(n) if reg else 0.0
        l2 = reg is not None and reg.name == "l2"
        if loss.fused:
            z = b[f"z{L}"]
            mx, sm, tmp = np.empty((n, 1), dt), np.empty((n, 1), dt), np.empty_like(z)
            rows = np.arange(n) * sizes[-1]
            labels = b["labels"]
            data = partial(cat.ce_value, z, rows, labels, mx, sm, tmp)
        else:
            # (h − y) is left in the dL/dh buffer; the dL/dh op scales it by 1/N
            diff = b[f"dL_dh{L}"]
            data = partial(cat.mse_value, b[f"h{L}"], b["y"], diff, diff.reshape(-1))

        if reg is None:
            def run() -> None:
                out[0] = hp.loss = data()
        elif l2:  # Σ W² per layer is kept in w_sq: the fast path's ‖W‖ for free
            hp.w_sq = wsq

            def run() -> None:
                total = 0.0
                for i, f in enumerate(flats):
                    wsq[i] = v = float(f.dot(f))
                    total += v
                out[0] = hp.loss = data() + coeff * total
        else:
            def run() -> None:
                total = 0.0
                for w, t in zip(ws, tmps, strict=True):
                    total += reg.penalty(w, t)
                out[0] = hp.loss = data() + coeff * total
        return run

    ops.append(Op("loss", "L", "loss", loss.value_text.format(h=f"h{L}") + pen, loss_ins, (),
                  0, loss.name, bind_loss))

    # ---- backward, layer L down to 1
    for l in range(L, 0, -1):
        hl, zl = f"h{l}", f"z{l}"
        if l == L:
            fmt = {"h": hl, "z": zl}
            ops.append(_loss_dh(loss, l, shape(l), dt, n, fmt))
            ops.append(_loss_dhdz(loss, l, shape(l), n, sizes[-1], fmt))
            ops.append(_loss_dz(loss, l, shape(l), n, fmt))
        else:
            ops.append(_grad_input(l, shape(l)))
            src = hl if act.deriv_from == "h" else zl
            deriv = act.derivative

            def bind_d(b: Buffers, hp: Hyper, l: int = l, src: str = src, deriv=deriv):
                s, out = b[src], b[f"dh{l}_dz{l}"]
                return partial(deriv, s, out)

            ops.append(Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward",
                          f"dh{l}/dz{l} = " + act.deriv_text.format(h=hl, z=zl), (src,),
                          shape(l), l, act.name, bind_d))

            def bind_dz(b: Buffers, hp: Hyper, l: int = l):
                g, d, out = b[f"dL_dh{l}"], b[f"dh{l}_dz{l}"], b[f"dL_dz{l}"]
                return partial(np.multiply, g, d, out=out)

            ops.append(Op(f"dL_dz{l}", f"dL/dz{l}", "backward",
                          f"dL/dz{l} = dL/dh{l} ⊙ dh{l}/dz{l}", (f"dL_dh{l}", f"dh{l}_dz{l}"),
                          shape(l), l, act.name, bind_dz))
        ops.append(_grad_w(cfg, reg, l, (sizes[l - 1], sizes[l]), n))
        if cfg.bias:
            def bind_db(b: Buffers, hp: Hyper, l: int = l):
                g, out = b[f"dL_dz{l}"], b[f"dL_db{l}"]
                return partial(np.sum, g, axis=0, out=out)

            ops.append(Op(f"dL_db{l}", f"dL/db{l}", "backward", f"dL/db{l} = Σₙ dL/dz{l}",
                          (f"dL_dz{l}",), (sizes[l],), l, "linear", bind_db))

    # ---- update: norms, optional clipping, SGD steps
    prog_params = [p for l in range(1, L + 1) for p in ([f"W{l}"] + ([f"b{l}"] if cfg.bias
                                                                       else []))]
    grads = [f"dL_d{p}" for p in prog_params]
    ops.append(_grad_norm(prog_params, grads, L))
    upd_src = dict(zip(prog_params, grads, strict=True))

    def pshape_of(p: str) -> tuple[int, ...]:
        l = int(p[1:])
        return (sizes[l - 1], sizes[l]) if p[0] == "W" else (sizes[l],)

    if cfg.clip > 0:
        for p, g in zip(prog_params, grads, strict=True):
            ops.append(_clip(cfg, p, g, pshape_of(p)))
            upd_src[p] = f"{g}_clip"
    order = [p for l in range(L, 0, -1) for p in ([f"W{l}"] + ([f"b{l}"] if cfg.bias else []))]
    for p in order:
        ops.append(_sgd(p, upd_src[p], int(p[1:]), pshape_of(p)))
    return Program(cfg, sizes, n, tuple(init_ops), tuple(ops))


def _loss_dh(loss: cat.Loss, l: int, shp: tuple[int, int], dt: np.dtype, n: int,
             fmt: dict[str, str]) -> Op:
    inv = 1.0 / n

    def bind(b: Buffers, hp: Hyper):
        h, y, out = b[f"h{l}"], b["y"], b[f"dL_dh{l}"]
        if loss.fused:  # −y/(N h), written only where y ≠ 0 so 0/0 never appears
            def run() -> None:
                out.fill(0.0)
                np.divide(y, h, out=out, where=y != 0)
                np.multiply(out, -inv, out=out)
            return run

        # the loss op (always run just before) left h − y in this buffer
        return partial(np.multiply, out, inv, out=out)

    return Op(f"dL_dh{l}", f"dL/dh{l}", "backward", loss.dh_text.format(**fmt),
              (f"h{l}", "y"), shp, l, loss.name, bind, display_only=loss.fused)


def _loss_dhdz(loss: cat.Loss, l: int, shp: tuple[int, int], n: int, k: int,
               fmt: dict[str, str]) -> Op:
    if loss.fused:
        def bind(b: Buffers, hp: Hyper):
            h, out = b[f"h{l}"], b[f"dh{l}_dz{l}"]
            return partial(cat.softmax_jacobian, h, out)
        return Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward", loss.dhdz_text.format(**fmt),
                  (f"h{l}",), (n, k, k), l, "softmax", bind, display_only=True)

    def bind_s(b: Buffers, hp: Hyper):
        h, out = b[f"h{l}"], b[f"dh{l}_dz{l}"]
        return partial(cat._sigmoid_d, h, out)
    return Op(f"dh{l}_dz{l}", f"dh{l}/dz{l}", "backward", loss.dhdz_text.format(**fmt),
              (f"h{l}",), shp, l, "sigmoid", bind_s)


def _loss_dz(loss: cat.Loss, l: int, shp: tuple[int, int], n: int, fmt: dict[str, str]) -> Op:
    inv = 1.0 / n
    if loss.fused:
        def bind(b: Buffers, hp: Hyper):
            h, y, out = b[f"h{l}"], b["y"], b[f"dL_dz{l}"]

            def run() -> None:
                np.subtract(h, y, out=out)
                np.multiply(out, inv, out=out)
            return run
        ins: tuple[str, ...] = (f"h{l}", "y")
    else:
        def bind(b: Buffers, hp: Hyper):
            g, d, out = b[f"dL_dh{l}"], b[f"dh{l}_dz{l}"], b[f"dL_dz{l}"]
            return partial(np.multiply, g, d, out=out)
        ins = (f"dL_dh{l}", f"dh{l}_dz{l}")
    return Op(f"dL_dz{l}", f"dL/dz{l}", "backward", loss.dz_text.format(**fmt), ins, shp, l,
              loss.name, bind)


def _grad_input(l: int, shp: tuple[int, int]) -> Op:
    """dL/dh{l} = dL/dz{l+1}·W{l+1}ᵀ: the linear layer's derivative w.r.t. its input."""
    def bind(b: Buffers, hp: Hyper):
        g, wt, out = b[f"dL_dz{l + 1}"], b[f"W{l + 1}"].T, b[f"dL_dh{l}"]
        return partial(np.matmul, g, wt, out=out)
    return Op(f"dL_dh{l}", f"dL/dh{l}", "backward", f"dL/dh{l} = dL/dz{l + 1}·W{l + 1}ᵀ",
              (f"dL_dz{l + 1}", f"W{l + 1}"), shp, l, "linear", bind)


def _grad_w(cfg: Config, reg: cat.Regularizer | None, l: int, shp: tuple[int, int],
            n: int) -> Op:
    """dL/dW{l} = h{l−1}ᵀ·dL/dz{l} (+ the penalty's gradient)."""
    src = _h(l - 1)
    extra = " + " + reg.grad_text.format(W=f"W{l}") if reg else ""
    ins = (src, f"dL_dz{l}") + ((f"W{l}",) if reg else ())
    coeff = cfg.reg / n

    def bind(b: Buffers, hp: Hyper):
        xt, g, w, out = b[src].T, b[f"dL_dz{l}"], b[f"W{l}"], b[f"dL_dW{l}"]
        if reg is None:
            return partial(np.matmul, xt, g, out=out)
        tmp = np.empty_like(w)
        if reg.name == "l2":
            def run() -> None:
                np.matmul(xt, g, out=out)
                np.multiply(w, coeff, out=tmp)
                np.add(out, tmp, out=out)
        else:
            def run() -> None:
                np.matmul(xt, g, out=out)
                np.sign(w, out=tmp)
                np.multiply(tmp, coeff, out=tmp)
                np.add(out, tmp, out=out)
        return run

    return Op(f"dL_dW{l}", f"dL/dW{l}", "backward",
              f"dL/dW{l} = {_h(l - 1)}ᵀ·dL/dz{l}{extra}", ins, shp, l, "linear", bind)


def _grad_norm(params: list[str], grads: list[str], depth: int) -> Op:
    """Per-layer ‖∇‖ (weights and bias together); one norm is also the finite check."""
    def bind(b: Buffers, hp: Hyper):
        hp.grad_norm = out = _cells(b["grad_norm"])
        layers = [[b[g].reshape(-1) for p, g in zip(params, grads, strict=True)
                   if int(p[1:]) == l] for l in range(1, depth + 1)]
        if all(len(fs) == 1 for fs in layers):
            flats = [fs[0] for fs in layers]

            def run() -> None:
                for i, f in enumerate(flats):
                    out[i] = math.sqrt(float(f.dot(f)))
            return run

        def run_bias() -> None:
            for i, fs in enumerate(layers):
                out[i] = math.sqrt(sum(float(f.dot(f)) for f in fs))
        return run_bias

    return Op("grad_norm", "‖dL/dW‖", "update", "‖dL/dWₗ‖ = √(Σ dL/dWₗ²) per layer",
              tuple(grads), (depth,), 0, "norm", bind)


def _clip(cfg: Config, p: str, g: str, shp: tuple[int, ...]) -> Op:
    c = cfg.clip
    name = g.replace("_", "/", 1)
    if cfg.clip_kind == "norm":
        text = f"clip({name}) = {name}·min(1, {c:g}/‖g‖)  (‖g‖ over all layers)"

        def bind(b: Buffers, hp: Hyper):
            grad, norms = b[g], b["grad_norm"]

            def run() -> None:
                total = math.sqrt(float(np.dot(norms, norms)))
                if total > c:  # NaN/inf compare False: nothing to rescale
                    np.multiply(grad, c / total, out=grad)
            return run
        ins: tuple[str, ...] = (g, "grad_norm")
    else:
        text = f"clip({name}) = min(max({name}, −{c:g}), {c:g})"

        def bind(b: Buffers, hp: Hyper):
            grad = b[g]
            return partial(np.clip, grad, -c, c, out=grad)
        ins = (g,)
    return Op(f"{g}_clip", f"clip {name}", "update", text, ins, shp,
              int(p[1:]), f"clip-{cfg.clip_kind}", bind, target=g)


def _sgd(p: str, g: str, l: int, shp: tuple[int, ...]) -> Op:
    """p ← p − η·g, in place on the parameter buffer."""
    def bind(b: Buffers, hp: Hyper):
        w, grad = b[p], b[g]
        tmp = np.empty_like(w)

        def run() -> None:
            np.multiply(grad, hp.lr, out=tmp)
            np.subtract(w, tmp, out=w)
        return run
    gname = g.replace("_clip", "").replace("_", "/", 1)
    shown = f"clip({gname})" if g.endswith("_clip") else gname
    return Op(f"{p}_new", f"update {p}", "update", f"{p} ← {p} − η·{shown}", (p, g),
              shp, l, "sgd", bind, target=p)
