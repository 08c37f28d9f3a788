"""The tight NumPy reference loop the fast path is measured against.

Same maths as a sigmoid MLP with MSE + L2 loss trained by full-batch SGD, the
fastest plain NumPy we could write: preallocated buffers, `out=` everywhere,
transposed views made once, the 1/N folded into one multiply, no metrics.
"""

from __future__ import annotations

import numpy as np


def make_tight_loop(X: np.ndarray, Y: np.ndarray, weights: list[np.ndarray], lr: float,
                    reg: float):
    """Return run(iterations) training `weights` in place; returns the last loss."""
    n = X.shape[0]
    ws = [w for w in weights]
    depth = len(ws)
    dt = X.dtype
    acts = [X] + [np.empty((n, w.shape[1]), dt) for w in ws]  # h0=X, h1..hL
    grads_z = [np.empty((n, w.shape[1]), dt) for w in ws]
    tmp_z = [np.empty((n, w.shape[1]), dt) for w in ws]
    grads_h = [np.empty((n, w.shape[1]), dt) for w in ws]
    dws = [np.empty_like(w) for w in ws]
    tmp_w = [np.empty_like(w) for w in ws]
    flats = [w.reshape(-1) for w in ws]
    act_t = [a.T for a in acts]
    w_t = [w.T for w in ws]
    diff = np.empty((n, ws[-1].shape[1]), dt)
    diff_flat = diff.reshape(-1)
    inv_n = 1.0 / n
    reg_loss = reg / (2 * n)
    reg_grad = reg / n

    def run(iterations: int) -> float:
        loss = 0.0
        for _ in range(iterations):
            for l in range(depth):
                h = acts[l + 1]
                np.matmul(acts[l], ws[l], out=h)
                np.negative(h, out=h)
                np.exp(h, out=h)
                h += 1.0
                np.reciprocal(h, out=h)
            out = acts[depth]
            np.subtract(out, Y, out=diff)
            sq = 0.0
            for f in flats:
                sq += float(f.dot(f))
            loss = float(diff_flat.dot(diff_flat)) * (0.5 * inv_n) + reg_loss * sq
            g = diff  # dL/dh_L * N
            for l in range(depth - 1, -1, -1):
                h, dz, t = acts[l + 1], grads_z[l], tmp_z[l]
                np.subtract(1.0, h, out=t)
                t *= h
                np.multiply(g, t, out=dz)
                if l == depth - 1:
                    dz *= inv_n
                np.matmul(act_t[l], dz, out=dws[l])
                np.multiply(ws[l], reg_grad, out=tmp_w[l])
                dws[l] += tmp_w[l]
                if l > 0:
                    g = grads_h[l - 1]
                    np.matmul(dz, w_t[l], out=g)
            for l in range(depth):
                np.multiply(dws[l], lr, out=tmp_w[l])
                ws[l] -= tmp_w[l]
        return loss

    return run
