"""The tight NumPy reference loops the fast path is measured against.

Same maths as an MLP (sigmoid hidden and output layers, MSE + L2 loss, optional
biases) trained by full-batch SGD, written as the fastest plain NumPy we could:
parameters and gradients each in one flat vector (views per layer), so the L2
gradient and the update are two calls each whatever the depth; every buffer
preallocated; bound `ndarray.dot` / ufuncs with positional `out`; names local to
the loop; the 1/N folded into the step size; no metrics at all.

`VARIANTS` holds the slower forms the benchmark times beside it (np.matmul
instead of a bound dot, per-layer updates instead of flat vectors) to show the
chosen form is the fastest; each loop returns its NumPy calls per iteration.
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
                    bound_dot: bool = True) -> tuple[Loop, int]:
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
    dzdots = [d.dot for d in dz]
    wts = [w.T for w in ws]
    neg, exp, rec, sub, mul, add, isub = (np.negative, np.exp, np.reciprocal, np.subtract,
                                          np.multiply, np.add, np.subtract)
    step_lr = lr / n  # 1/N folded: G holds N·∇, so η/N·(G + λW) is η·(∇ + λ/N·W)
    per_layer = list(zip(pv, gv, tv, strict=True))
    layers = list(range(depth))
    back = list(range(depth - 1, -1, -1))

    def run(iterations: int) -> None:
        for _ in range(iterations):
            for l in layers:
                h = acts[l + 1]
                if bound_dot:
                    dots[l](ws[l], h)
                else:
                    mm(acts[l], ws[l], h)
                if bias:
                    add(h, bs[l], h)
                neg(h, h)
                exp(h, h)
                add(h, 1.0, h)
                rec(h, h)
            g = acts[depth]
            sub(g, Y, dh[depth - 1])
            g = dh[depth - 1]
            for l in back:
                h, d, t = acts[l + 1], dz[l], tz[l]
                sub(1.0, h, t)
                mul(t, h, t)
                mul(g, t, d)
                if bound_dot:
                    tdots[l](d, gws[l])
                else:
                    mm(acts[l].T, d, gws[l])
                if bias:
                    ones.dot(d, gbs[l])
                if l:
                    g = dh[l - 1]
                    if bound_dot:
                        dzdots[l](wts[l], g)
                    else:
                        mm(d, wts[l], g)
            if flat:
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

    calls = depth * (1 + 4 + (1 if bias else 0)) + 1  # forward, then h − y
    calls += depth * (3 + 1 + (1 if bias else 0)) + (depth - 1)  # backward
    if flat:
        calls += (2 * depth if bias else 2) + 2
    else:
        calls += 2 * depth + 2 * len(params)
    return run, calls


VARIANTS: dict[str, dict[str, bool]] = {
    "reference (flat, bound dot)": {"flat": True, "bound_dot": True},
    "flat, np.matmul": {"flat": True, "bound_dot": False},
    "per-layer, bound dot": {"flat": False, "bound_dot": True},
    "per-layer, np.matmul": {"flat": False, "bound_dot": False},
}
