"""The op catalog: each operation's maths defined once, forward beside derivative.

A family (an activation, a loss, a regularizer) keeps its forward rule, its
derivative, the formula text the UI prints and a scalar form for element
drill-down together, the way micrograd keeps each op's backward beside its
forward.  `core/model/program.py` instantiates these into named per-layer `Op`s;
the stepper, the fast path, gradcheck, the trace and the UI all run or read
those same objects and never re-derive the maths.

Kernels are written for the fast path: they work in place on preallocated
buffers with `out=` so one NumPy call does one piece of maths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.model.code import Code

Array = np.ndarray
Vec = Callable[[Array, Array], Code]


# --------------------------------------------------------------------------- activations
# Each kernel returns a `Code` (core/model/code.py): statements the stepper runs op by op
# and the fast path inlines into its generated loop.
def _sigmoid(z: Array, out: Array) -> Code:
    return (Code.call(np.negative, z, out=out) + Code.call(np.exp, out, out=out)
            + Code.call(np.add, out, 1.0, out=out) + Code.call(np.divide, 1.0, out, out=out))


def sigmoid_scaled(z: Array, out: Array, e: Array, n: int) -> Code:
    """σ(z) for a full-batch MSE output, leaving e = exp(−z)/N in `e` for `mse_dz_scaled`.

    exp(−z − ln N) = exp(−z)/N and σ = (1/N)/(1/N + exp(−z)/N): the same four calls as
    `_sigmoid`, with the 1/N of the loss's gradient folded in (σ differs in the last bits).
    """
    inv = 1.0 / n
    return (Code.call(np.subtract, -math.log(n), z, out=e) + Code.call(np.exp, e, out=e)
            + Code.call(np.add, e, inv, out=out) + Code.call(np.divide, inv, out, out=out))


def sigmoid_factor(e: Array, h: Array, out: Array) -> Code:
    """σ'(z) = h(1 − h) as e·h·h, where e = exp(−z) was kept by the forward pass
    (`sigmoid_kept`, or exp(−z)/N by `sigmoid_scaled`): 1 − h = e·h.

    Every layer's factor is the same two calls, so with the layers' e, h and factor
    buffers adjacent the fast path makes them two calls for all layers together
    (core/engine/fused.py); (1 − h)·h would be a different pair of calls for the output.
    """
    return Code.call(np.multiply, e, h, out=out) + Code.call(np.multiply, out, h, out=out)


def sigmoid_kept(z: Array, out: Array, e: Array) -> Code:
    """σ(z) = 1/(1 + exp(−z)), the same four calls as `_sigmoid` (same bits), keeping
    exp(−z) in `e` for `sigmoid_factor`."""
    return (Code.call(np.negative, z, out=e) + Code.call(np.exp, e, out=e)
            + Code.call(np.add, e, 1.0, out=out) + Code.call(np.divide, 1.0, out, out=out))


def mse_dz_scaled(diff: Array, h: Array, e: Array, tmp: Array, out: Array) -> Code:
    """dL/dz = (h − y)/N ⊙ h(1 − h) as (h − y) ⊙ (exp(−z)/N)·h·h: 1 − h = exp(−z)·h, so
    h(1 − h)/N = (exp(−z)/N)·h², and the 1/N costs no call (see `sigmoid_scaled`).

    Two units, not one: the factor is `sigmoid_factor`, the twin of hidden layers'."""
    return Code(sigmoid_factor(e, h, tmp).units
                + Code.call(np.multiply, diff, tmp, out=out).units)


def _sigmoid_d(h: Array, out: Array) -> Code:  # h(1-h), from the output
    return Code.call(np.subtract, 1.0, h, out=out) + Code.call(np.multiply, out, h, out=out)


def _tanh(z: Array, out: Array) -> Code:
    return Code.call(np.tanh, z, out=out)


def _tanh_d(h: Array, out: Array) -> Code:  # 1-h^2, from the output
    return Code.call(np.multiply, h, h, out=out) + Code.call(np.subtract, 1.0, out, out=out)


def _relu(z: Array, out: Array) -> Code:
    return Code.call(np.maximum, z, 0.0, out=out)


def _relu_d(z: Array, out: Array) -> Code:  # 1 where z > 0, from the input
    return Code.call(np.heaviside, z, 0.0, out=out)


def _sig_scalar(z: float) -> float:
    try:  # like the kernel: exp(−z) overflowing to inf gives exactly 0
        return 1.0 / (1.0 + math.exp(-z))
    except OverflowError:
        return 0.0


def _relu_d_scalar(z: float, h: float) -> float:
    return z if z != z else (1.0 if z > 0 else 0.0)  # heaviside keeps NaN


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity and its derivative, as maths and as text."""

    name: str
    symbol: str  # how the formula writes it: σ, tanh, relu
    deriv_text: str  # derivative in terms of {h} / {z}
    deriv_from: str  # "h" or "z": which array the derivative reads
    forward: Vec
    derivative: Vec
    scalar: Callable[[float], float]
    scalar_d: Callable[[float, float], float]  # (z, h) -> dh/dz
    saturated_text: str
    # the forms that keep exp(−z) for the derivative (z, out, e) and (e, h, out), used
    # where every layer's derivative can then be one call (see `sigmoid_factor`)
    forward_kept: Callable[[Array, Array, Array], Code] | None = None
    derivative_kept: Callable[[Array, Array, Array], Code] | None = None

    def saturated(self, h: Array) -> Array:
        """Boolean mask of saturated (sigmoid/tanh) or dead (relu) outputs."""
        masks = [cmp(f(h) if f else h, t) for f, cmp, t in SATURATION[self.name]]
        return masks[0] if len(masks) == 1 else masks[0] | masks[1]

    def saturated_counter(self, h: Array) -> Callable[[], int]:
        """count() = the number of `saturated` entries of h now, with masks allocated once:
        the fast path samples it every SAT_EVERY iterations (a sigmoid's two conditions
        are disjoint, so their counts add up to the count of their union; NaN is in
        neither).  Thresholds are 0-d arrays of h's dtype: compared as `saturated`
        compares a Python float (in float32, 0.01 rounds)."""
        parts = [(f, np.empty_like(h) if f else h, cmp, np.array(t, h.dtype),
                  np.empty(h.shape, bool)) for f, cmp, t in SATURATION[self.name]]
        cnz = np.count_nonzero

        def count() -> int:
            total = 0
            for f, x, cmp, t, mask in parts:
                if f:
                    f(h, x)
                cmp(x, t, mask)
                total += cnz(mask)
            return total
        return count


# (transform or None, comparison, threshold): an output is saturated (dead) when any holds
SATURATION: dict[str, tuple[tuple[Callable | None, np.ufunc, float], ...]] = {
    "sigmoid": ((None, np.less, 0.01), (None, np.greater, 0.99)),
    "tanh": ((np.absolute, np.greater, 0.99),),
    "relu": ((None, np.less_equal, 0.0),),
}


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", "σ", "{h}(1−{h})", "h", _sigmoid, _sigmoid_d, _sig_scalar,
                          lambda z, h: h * (1.0 - h), "outputs below 0.01 or above 0.99",
                          sigmoid_kept, sigmoid_factor),
    "tanh": Activation("tanh", "tanh", "1−{h}²", "h", _tanh, _tanh_d, math.tanh,
                       lambda z, h: 1.0 - h * h, "|outputs| above 0.99"),
    "relu": Activation("relu", "relu", "[{z}>0]", "z", _relu, _relu_d, lambda z: max(z, 0.0),
                       _relu_d_scalar, "outputs stuck at 0"),
}


# --------------------------------------------------------------------------- output layer + loss
@dataclass(frozen=True)
class Loss:
    """A loss with the output activation it is paired with.

    `mse` pairs with a sigmoid output as in the article; `ce` pairs with
    softmax and computes dL/dz directly ((h−y)/N), which is the product of the
    two chain-rule factors but never forms 0/0 when a probability underflows.
    """

    name: str
    output: str  # output activation: "sigmoid" | "softmax"
    value_text: str
    dh_text: str  # dL/dh of the output
    dhdz_text: str
    dz_text: str
    fused: bool  # True: dL/dz computed directly, dL/dh and dh/dz are display-only
    # element forms, for drill-down: the kernels' arithmetic on one entry
    scalar_dh: Callable[[float, float, float], float]  # (h, y, 1/N) -> dL/dh
    dh_scalar_text: str  # dL/dh of one entry, in {h}, {y}, {n}
    terms: Callable[[Array, Array, Array], Array]  # (h, z, y or labels) -> data terms
    term_text: str  # one data term, in {h}, {y}, {z}
    data_scale: Callable[[int], float]  # Σ terms · this = the data term of L


def _mse_dh(h: float, y: float, inv: float) -> float:  # the loss left h − y; then ·1/N
    return (h - y) * inv


def _ce_dh(h: float, y: float, inv: float) -> float:  # written only where y ≠ 0
    if y == 0:
        return 0.0
    q = y / h if h != 0 else math.copysign(math.inf, y) * math.copysign(1.0, h)
    return q * -inv


def scalar_fused_dz(h: float, y: float, inv: float) -> float:
    """dL/dz of one entry under softmax·CE: (h − y)·1/N, as the kernel computes it."""
    return (h - y) * inv


def mse_terms(h: Array, z: Array, y: Array) -> Array:
    """(y − h)² per entry, in float64: Σ of these / 2N is the data term."""
    d = h.astype(np.float64) - y
    return d * d


def ce_terms(h: Array, z: Array, labels: Array) -> Array:
    """−log h[n, yₙ] per row via log-sum-exp of z (finite whenever z is), in float64."""
    z = z.astype(np.float64)
    with np.errstate(all="ignore"):  # NaN/inf rows are data, shown as such
        m = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return lse - z[np.arange(len(z)), labels]


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", "sigmoid", "L = Σ(y−{h})²/2N", "dL/d{h} = −(y−{h})/N",
                "d{h}/d{z} = {h}(1−{h})", "dL/d{z} = dL/d{h} ⊙ d{h}/d{z}", fused=False,
                scalar_dh=_mse_dh, dh_scalar_text="−({y} − {h})/{n}", terms=mse_terms,
                term_text="({y} − {h})²", data_scale=lambda n: 0.5 / n),
    "ce": Loss("ce", "softmax", "L = −Σ y·log {h} / N", "dL/d{h} = −y/(N·{h})",
               "d{h}/d{z} = diag({h}) − {h}{h}ᵀ (per row)",
               "dL/d{z} = ({h} − y)/N  (softmax·CE fused)", fused=True,
               scalar_dh=_ce_dh, dh_scalar_text="−{y}/({n}·{h})", terms=ce_terms,
               term_text="−log {h}", data_scale=lambda n: 1.0 / n),
}


def softmax(z: Array, out: Array, mx: Array, sums: Array) -> Code:
    """Row softmax with the max subtracted first so exp cannot overflow.

    `ufunc.reduce` is what np.max / np.sum call (same bits, without their wrappers).
    """
    return (Code.call(np.maximum.reduce, z, axis=1, keepdims=True, out=mx)
            + Code.call(np.subtract, z, mx, out=out) + Code.call(np.exp, out, out=out)
            + Code.call(np.add.reduce, out, axis=1, keepdims=True, out=sums)
            + Code.call(np.true_divide, out, sums, out=out))


def mse_value(h: Array, y: Array, diff: Array, flat: Array) -> float:
    """Σ(y−h)² / 2N, leaving h − y in `diff` (`flat` is its 1-D view)."""
    np.subtract(h, y, out=diff)
    return float(flat.dot(flat)) * (0.5 / h.shape[0])


def ce_value(z: Array, rows: Array, labels: Array, mx: Array, sums: Array, tmp: Array) -> float:
    """−Σ log softmax(z)[label] / N via log-sum-exp: finite whenever z is.

    `rows` holds n·K for each row n, so rows + labels indexes the true class.
    """
    np.max(z, axis=1, keepdims=True, out=mx)
    np.subtract(z, mx, out=tmp)
    np.exp(tmp, out=tmp)
    np.sum(tmp, axis=1, keepdims=True, out=sums)
    np.log(sums, out=sums)
    picked = np.take(z.reshape(-1), rows + labels)
    return float(sums.sum() + mx.sum() - picked.sum()) / z.shape[0]


def softmax_jacobian(h: Array, out: Array) -> None:
    """Per-row Jacobian diag(h) − h hᵀ, shape (N, K, K): display only."""
    np.multiply(h[:, :, None], h[:, None, :], out=out)
    np.negative(out, out=out)
    k = h.shape[1]
    out.reshape(h.shape[0], k * k)[:, :: k + 1] += h


# --------------------------------------------------------------------------- regularizers
@dataclass(frozen=True)
class Regularizer:
    """A weight penalty: its loss term and its gradient term, per weight matrix."""

    name: str
    penalty_text: str  # the term added to L
    grad_text: str  # the term added to dL/dW

    def penalty(self, w: Array, tmp: Array) -> float:
        """Σ W² (l2) or Σ |W| (l1) of one matrix, before the λ·scale factor."""
        if self.name == "l2":
            flat = w.reshape(-1)
            return float(flat.dot(flat))
        np.abs(w, out=tmp)
        return float(tmp.sum())

    def grad_term(self, w: Array, coeff: float, out: Array) -> Code:
        """A kernel writing coeff·W (l2) or coeff·sign(W) (l1) into `out`: the term added
        to dL/dW (coeff = λ/N).  Elementwise: the fast path merges it across layers."""
        if self.name == "l2":
            return Code.call(np.multiply, w, coeff, out=out)
        return Code.call(np.sign, w, out=out) + Code.call(np.multiply, out, coeff, out=out)

    def scale(self, n: int) -> float:
        """Factor turning Σ-penalties into the loss term: λ·(this)."""
        return 1.0 / (2 * n) if self.name == "l2" else 1.0 / n

    def terms(self, w: Array) -> Array:
        """W² (l2) or |W| (l1) per entry, in float64: the summands of the penalty."""
        w = w.astype(np.float64)
        return w * w if self.name == "l2" else np.abs(w)

    def scalar_grad(self, w: float, coeff: float) -> float:
        """One entry of `grad`: coeff·w (l2) or coeff·sign(w) (l1)."""
        if self.name == "l2":
            return w * coeff
        return coeff * (w if w != w else float(np.sign(w)))


REGULARIZERS: dict[str, Regularizer] = {
    "l2": Regularizer("l2", "λ·Σ‖W‖²/2N", "λ·{W}/N"),
    "l1": Regularizer("l1", "λ·Σ|W|/N", "λ·sign({W})/N"),
}


# --------------------------------------------------------------------------- initializers
def init_weights(scheme: str, rng: np.random.Generator, fan_in: int, fan_out: int,
                 out: Array) -> None:
    """Fill `out` with initial weights; the article's scheme is `uniform`."""
    if scheme == "uniform":  # U(−1, 1)/√fan_in, as in the article
        out[...] = rng.uniform(-1.0, 1.0, size=(fan_in, fan_out)) / math.sqrt(fan_in)
    elif scheme == "xavier":  # Glorot uniform
        a = math.sqrt(6.0 / (fan_in + fan_out))
        out[...] = rng.uniform(-a, a, size=(fan_in, fan_out))
    else:  # He normal
        out[...] = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)


def init_scalar(scheme: str, w: float, fan_in: int, fan_out: int
                ) -> tuple[str, str, str, float, float]:
    """One initial weight as (symbols, numbers with {d} for the draw, law, draw, value).

    The seeded draw is recovered from the weight by undoing the scheme's scale.
    """
    if scheme == "uniform":
        u = w * math.sqrt(fan_in)
        return (f"u/√{fan_in}", f"{{d}}/√{fan_in}", "u ~ U(−1,1): one seeded draw", u,
                u / math.sqrt(fan_in))
    if scheme == "xavier":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return ("u", "{d}", f"u ~ U(±{a:.4g}), {a:.4g} = √(6/({fan_in}+{fan_out})): one "
                "seeded draw", w, w)
    s = math.sqrt(2.0 / fan_in)
    return (f"ε·√(2/{fan_in})", f"{{d}}·{s:.4g}", "ε ~ N(0,1): one seeded draw", w / s,
            (w / s) * s)


INIT_TEXT = {
    "uniform": "{W} ~ U(−1,1)/√{fan_in}",
    "xavier": "{W} ~ U(±√(6/({fan_in}+{fan_out})))",
    "he": "{W} ~ N(0,1)·√(2/{fan_in})",
}


# --------------------------------------------------------------------------- clipping and SGD
# Element forms of the update ops bound in core/model/program.py (`_clip`, `_sgd`).
def clip_norm_scale(total: float, c: float) -> float:
    """The factor clip-by-norm multiplies every gradient by: c/‖g‖ above c, else 1."""
    return c / total if total > c else 1.0  # NaN compares False: nothing rescaled


def clip_value(g: float, c: float) -> float:
    """np.clip(g, −c, c) on one entry (NaN stays NaN)."""
    return g if g != g else min(max(g, -c), c)


def sgd_step(w: float, g: float, lr: float) -> float:
    """w − η·g, with the kernel's order of operations (η·g first)."""
    return w - g * lr
