"""The tight NumPy reference loops the fast path is measured against.

Same maths as an MLP (sigmoid hidden and output layers, MSE + L2 loss, optional
biases) trained by full-batch SGD, written as the fastest plain NumPy we could:
straight-line statements for the net's depth (no loop over layers, no branch: what
one writes by hand for a fixed net); parameters and gradients each in one flat
vector (views per layer, weights contiguous); every buffer preallocated; bound
`ndarray.dot` / ufuncs with positional `out`, constants as 0-d arrays, 1/x as a
division; names local to the loop; the 1/N folded into the step size; the L2
penalty as a weight decay (W·(1 − η·λ/N) over all weights in one call, then
P − η/N·G); layer 1's bias folded into one product ([1 | X]·[b1; W1], and
[db1; dW1] = [1 | X]ᵀ·dz1); no metrics at all.

`VARIANTS` holds the slower forms the benchmark times beside it (np.matmul instead
of a bound dot, per-layer updates instead of flat vectors, Python-float constants and
np.reciprocal instead of 0-d arrays and a division, the L2 term formed before the
step) to show the chosen form is the fastest; each returns its
NumPy calls per iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Loop = Callable[[int], None]


def _views(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    views, at = [], 0
    for s in shapes:
        size = int(np.prod(s))
        views.append(flat[at:at + size].reshape(s))
        at += size
    return views


def make_tight_loop(X: np.ndarray, Y: np.ndarray, params: list[np.ndarray], lr: float,
                    reg: float, *, bias: bool = False, flat: bool = True,
                    bound_dot: bool = True, consts: bool = True,
                    decay: bool = True) -> tuple[Loop, int]:
    """Return (run(iterations), NumPy calls per iteration); run trains a copy of `params`.

    `params` is [W1, b1, W2, b2, ...] with biases, else [W1, W2, ...].  The loop is
    generated as source (one statement per NumPy call) so that the variants differ only
    in the forms they name; `run.params` holds the trained [W1, b1, ...] views.
    """
    n, dt = X.shape[0], X.dtype
    ws_in = params[::2] if bias else params
    bs_in = params[1::2] if bias else []
    depth = len(ws_in)
    # arena order: [b1 | W1 | W2 | … | b2 | …]: [b1; W1] is one matrix, the weights are
    # contiguous (one weight-decay call)
    order = ([bs_in[0]] if bias else []) + list(ws_in) + list(bs_in[1:])
    total = sum(p.size for p in order)
    P, G, T = (np.zeros(total, dt) for _ in range(3))
    pv, gv = _views(P, [p.shape for p in order]), _views(G, [p.shape for p in order])
    for v, p in zip(pv, order, strict=True):
        v[...] = p
    off = 1 if bias else 0
    ws, gws = pv[off:off + depth], gv[off:off + depth]
    bs = ([pv[0]] + pv[off + depth:]) if bias else []
    gbs = ([gv[0]] + gv[off + depth:]) if bias else []
    w_lo = pv[0].size if bias else 0
    w_hi = w_lo + sum(w.size for w in ws)
    env: dict[str, object] = {
        "neg": np.negative, "exp": np.exp, "add": np.add, "div": np.divide,
        "rec": np.reciprocal, "sub": np.subtract, "mul": np.multiply, "mm": np.matmul,
        "Y": Y, "P": P, "G": G, "T": T, "Wf": P[w_lo:w_hi], "ones_dot": np.ones(n, dt).dot}
    step_lr, keep = lr / n, 1.0 - lr * reg / n  # G holds N·∇: η/N·G is η·∇
    if consts:  # 0-d arrays: NumPy skips converting a Python float (same bits)
        env.update(one=np.array(1.0, dt), lr_=np.array(step_lr, dt), keep=np.array(keep, dt),
                   reg_=np.array(reg, dt))
    else:
        env.update(one=1.0, lr_=step_lr, keep=keep, reg_=reg)
    acts = [X] + [np.empty((n, w.shape[1]), dt) for w in ws]
    lines: list[str] = []

    def dot(a: np.ndarray, name_a: str, b: str, out: str) -> str:
        if bound_dot:
            env[f"{name_a}_dot"] = a.dot
            return f"{name_a}_dot({b}, {out})"
        env[name_a] = a
        return f"mm({name_a}, {b}, {out})"

    for l in range(depth):  # forward
        env[f"h{l}"] = acts[l + 1]
        if l == 0 and bias:  # [1 | X]·[b1; W1]
            env["xa"] = np.concatenate([np.ones((n, 1), dt), X], axis=1)
            env["bw1"] = P[:pv[0].size + ws[0].size].reshape(-1, ws[0].shape[1])
            lines.append(dot(env["xa"], "xa", "bw1", "h0"))
        else:
            env[f"w{l}"] = ws[l]
            lines.append(dot(acts[l], f"a{l}", f"w{l}", f"h{l}"))
            if bias:
                env[f"b{l}"] = bs[l]
                lines.append(f"add(h{l}, b{l}, h{l})")
        lines += [f"neg(h{l}, h{l})", f"exp(h{l}, h{l})", f"add(h{l}, one, h{l})",
                  f"div(one, h{l}, h{l})" if consts else f"rec(h{l}, h{l})"]
    env["g"] = np.empty_like(acts[depth])
    lines.append(f"sub(h{depth - 1}, Y, g)")
    grad = "g"
    for l in range(depth - 1, -1, -1):  # backward
        env[f"t{l}"], env[f"d{l}"] = np.empty_like(acts[l + 1]), np.empty_like(acts[l + 1])
        lines += [f"sub(one, h{l}, t{l})", f"mul(t{l}, h{l}, t{l})", f"mul({grad}, t{l}, d{l})"]
        if l == 0 and bias:
            env["gbw1"] = G[:gv[0].size + gws[0].size].reshape(-1, gws[0].shape[1])
            lines.append(dot(env["xa"].T, "xaT", "d0", "gbw1"))
        else:
            env[f"gw{l}"] = gws[l]
            lines.append(dot(acts[l].T, f"aT{l}", f"d{l}", f"gw{l}"))
            if bias:
                env[f"gb{l}"] = gbs[l]
                lines.append(f"ones_dot(d{l}, gb{l})")
        if l:
            env[f"wT{l}"], env[f"g{l}"] = ws[l].T, np.empty_like(acts[l])
            lines.append(dot(env[f"d{l}"], f"d{l}", f"wT{l}", f"g{l}"))
            grad = f"g{l}"
    if decay:  # W·(1 − η·λ/N) − η/N·G: the L2 term is never formed
        lines.append("mul(Wf, keep, Wf)")
    else:  # G += λ·W, then the step
        env["Gw"], env["Tw"] = G[w_lo:w_hi], T[w_lo:w_hi]
        lines += ["mul(Wf, reg_, Tw)", "add(Gw, Tw, Gw)"]
    if flat:
        lines += ["mul(G, lr_, T)", "sub(P, T, P)"]
    else:
        for i, (p, gp) in enumerate(zip(pv, gv, strict=True)):
            env[f"p{i}"], env[f"gp{i}"], env[f"tp{i}"] = p, gp, np.empty_like(p)
            lines += [f"mul(gp{i}, lr_, tp{i})", f"sub(p{i}, tp{i}, p{i})"]
    src = "def run(iterations):\n" + "".join(f"    {k} = _{k}\n" for k in env)
    src += "    for _ in range(iterations):\n" + "".join(f"        {ln}\n" for ln in lines)
    ns: dict[str, object] = {f"_{k}": v for k, v in env.items()}
    exec(compile(src, "<reference>", "exec"), ns)  # noqa: S102 - our own statements
    run = ns["run"]
    run.params = [p for l in range(depth)  # type: ignore[attr-defined]  # [W1, b1, …]
                  for p in ((ws[l], bs[l]) if bias else (ws[l],))]
    return run, len(lines)


VARIANTS: dict[str, dict[str, bool]] = {
    "reference (straight-line, flat, bound dot, 0-d constants, weight decay)": {},
    "float constants, np.reciprocal": {"consts": False},
    "L2 term then step": {"decay": False},
    "np.matmul": {"bound_dot": False},
    "per-layer updates": {"flat": False, "decay": False},
}
