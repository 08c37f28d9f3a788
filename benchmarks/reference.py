"""The tight NumPy reference loops the fast path is measured against.

Same maths as an MLP (sigmoid hidden and output layers, MSE + L2 loss, optional
biases) trained by full-batch SGD, written as the fastest plain NumPy we could:
parameters and gradients each in one flat vector (views per layer); every buffer
preallocated; bound `ndarray.dot` / ufuncs with positional `out`, constants as 0-d
arrays, 1/x as a division; names local to the loop; the 1/N folded into the step
size; the L2 penalty as a weight decay (P·(1 − η·λ/N) − η/N·G: the update is three
calls whatever the depth); layer 1's bias folded into one product ([X | 1]·[W1; b1],
and [dW1; db1] = [X | 1]ᵀ·dz1); no metrics at all.

`VARIANTS` holds the slower forms the benchmark times beside it (np.matmul
instead of a bound dot, per-layer updates instead of flat vectors, Python-float
constants and np.reciprocal instead of 0-d arrays and a division, the L2 term
formed before the step) to show the chosen form is the fastest; each loop returns
its NumPy calls per iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Loop = Callable[[int], None]


def _arena(shapes: list[tuple[int, ...]], dt: np.dtype) -> tuple[np.ndarray, list[np.ndarray]]:
    flat = np.zeros(sum(int(np.prod(s)) for s in shapes), dt)
    views, at = [], 0
    for s in shapes:
        size = int(np.prod(s))
        views.append(flat[at:at + size].reshape(s))
        at += size
    return flat, views


def make_tight_loop(X: np.ndarray, Y: np.ndarray, params: list[np.ndarray], lr: float,
                    reg: float, *, bias: bool = False, flat: bool = True,
                    bound_dot: bool = True, consts: bool = True,
                    decay: bool = True, fold_bias: bool = True) -> tuple[Loop, int]:
    """Return (run(iterations), NumPy calls per iteration); run trains a copy of `params`.

    `params` is [W1, b1, W2, b2, ...] with biases, else [W1, W2, ...].
    """
    n, dt = X.shape[0], X.dtype
    shapes = [p.shape for p in params]
    P, pv = _arena(shapes, dt)
    G, gv = _arena(shapes, dt)
    T, tv = _arena(shapes, dt)
    for v, p in zip(pv, params, strict=True):
        v[...] = p
    step = 2 if bias else 1
    ws, gws = pv[::step], gv[::step]
    bs, gbs = (pv[1::2], gv[1::2]) if bias else ([], [])
    depth = len(ws)
    ones = np.ones(n, dt)  # Σₙ as a product: far cheaper than np.sum(axis=0) here
    acts = [X] + [np.empty((n, w.shape[1]), dt) for w in ws]
    dz = [np.empty((n, w.shape[1]), dt) for w in ws]
    tz = [np.empty((n, w.shape[1]), dt) for w in ws]
    dh = [np.empty((n, w.shape[1]), dt) for w in ws]
    mm = np.matmul
    dots = [a.dot for a in acts] if bound_dot else None
    tdots = [a.T.dot for a in acts]
    fws, gfws = list(ws), list(gws)  # what the layer's products read and write
    badd = [bias] * depth  # whether the layer adds its bias (and sums its gradient)
    if bias and fold_bias:  # [X | 1]·[W1; b1]: b1 follows W1 in the arena, X is fixed
        d1, h1 = ws[0].shape
        xa = np.concatenate([X, np.ones((n, 1), dt)], axis=1)
        fws[0], gfws[0] = P[:(d1 + 1) * h1].reshape(d1 + 1, h1), G[:(d1 + 1) * h1].reshape(
            d1 + 1, h1)
        acts[0] = xa
        dots = [a.dot for a in acts] if bound_dot else None
        tdots[0] = xa.T.dot
        badd[0] = False
    dzdots = [d.dot for d in dz]
    wts = [w.T for w in ws]
    neg, exp, rec, sub, mul, add, isub = (np.negative, np.exp, np.reciprocal, np.subtract,
                                          np.multiply, np.add, np.subtract)
    step_lr = lr / n  # 1/N folded: G holds N·∇, so η/N·(G + λW) is η·(∇ + λ/N·W)
    one: float | np.ndarray = 1.0
    if consts:  # constants as 0-d arrays (NumPy skips converting a Python float: same
        # bits, ~0.2-0.3 µs less per call) and 1/x as a division (np.reciprocal is slower)
        one, reg, step_lr = (np.array(v, dt) for v in (1.0, reg, step_lr))
    div = np.divide
    # weight decay: P·(1 − η·λ/N) − η/N·G, the L2 term never formed (one call fewer)
    keep = np.array(1.0 - float(lr) * float(reg) / n, dt) if consts else 1.0 - lr * reg / n
    per_layer = list(zip(pv, gv, tv, strict=True))
    layers = list(range(depth))
    back = list(range(depth - 1, -1, -1))

    def run(iterations: int) -> None:
        for _ in range(iterations):
            for l in layers:
                h = acts[l + 1]
                if bound_dot:
                    dots[l](fws[l], h)
                else:
                    mm(acts[l], fws[l], h)
                if badd[l]:
                    add(h, bs[l], h)
                neg(h, h)
                exp(h, h)
                add(h, one, h)
                if consts:
                    div(one, h, h)
                else:
                    rec(h, h)
            g = acts[depth]
            sub(g, Y, dh[depth - 1])
            g = dh[depth - 1]
            for l in back:
                h, d, t = acts[l + 1], dz[l], tz[l]
                sub(one, h, t)
                mul(t, h, t)
                mul(g, t, d)
                if bound_dot:
                    tdots[l](d, gfws[l])
                else:
                    mm(acts[l].T, d, gfws[l])
                if badd[l]:
                    ones.dot(d, gbs[l])
                if l:
                    g = dh[l - 1]
                    if bound_dot:
                        dzdots[l](wts[l], g)
                    else:
                        mm(d, wts[l], g)
            if flat and decay:
                if bias:
                    for w in ws:
                        mul(w, keep, w)
                else:
                    mul(P, keep, P)
                mul(G, step_lr, T)
                isub(P, T, P)
            elif flat:
                if bias:  # λ applies to weights only
                    for w, gw, t in zip(ws, gws, tv[::2], strict=True):
                        mul(w, reg, t)
                        add(gw, t, gw)
                else:
                    mul(P, reg, T)
                    add(G, T, G)
                mul(G, step_lr, T)
                isub(P, T, P)
            else:
                for w, gw, t in zip(ws, gws, tv[::step], strict=True):
                    mul(w, reg, t)
                    add(gw, t, gw)
                for p, gp, t in per_layer:
                    mul(gp, step_lr, t)
                    isub(p, t, p)

    run.params = pv  # type: ignore[attr-defined]  # for checking it trains the same net
    calls = depth * (1 + 4) + sum(badd) + 1  # forward, then h − y
    calls += depth * (3 + 1) + sum(badd) + (depth - 1)  # backward
    if flat and decay:
        calls += (depth if bias else 1) + 2
    elif flat:
        calls += (2 * depth if bias else 2) + 2
    else:
        calls += 2 * depth + 2 * len(params)
    return run, calls


VARIANTS: dict[str, dict[str, bool]] = {
    "reference (flat, bound dot, 0-d constants, weight decay)": {"flat": True,
                                                                  "bound_dot": True},
    "flat, bound dot, float constants": {"flat": True, "bound_dot": True, "consts": False,
                                         "decay": False},
    "flat, bound dot, L2 term then step": {"flat": True, "bound_dot": True, "decay": False},
    "flat, np.matmul": {"flat": True, "bound_dot": False},
    "per-layer, bound dot": {"flat": False, "bound_dot": True, "decay": False},
    "per-layer, np.matmul": {"flat": False, "bound_dot": False, "decay": False},
}
