"""The chain-rule factors of the op under the cursor, in the order its formula names them.

The article explains backprop by putting the numbers of every factor of a product
side by side (h1ᵀ · dL/dz2 = dL/dW2).  This module reads the op's formula text,
finds the arrays it names (longest name first, so `dL/dW2` is never read as
`W2`), and returns them in formula order with their role: transposed factors
(`h1ᵀ`) are given transposed, so row i of h1ᵀ times column j of dL/dz2 is what
makes dL/dW2[i,j].  Inputs the kernel reads but the formula does not name (the
penalty's W, the fused loss's z) follow.  The scalars the op uses (η at this
iteration, λ, N, the clip factor) are read from the run's config.  Pure NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

ALIASES = {"labels": "y"}  # arrays that are the same data as one the formula names


@dataclass(frozen=True)
class Factor:
    """One array of the op's formula as the op card shows it."""

    role: str  # "h1ᵀ", "dL/dz2", "ΔW2", "dL/dW2" (output)
    key: str  # the frame key of the underlying array
    array: np.ndarray | None  # as displayed (transposed for a ᵀ role); None = not computed
    output: bool = False
    transposed: bool = False
    note: str = ""  # "read by the fused kernel", "new − old"


@dataclass(frozen=True)
class Scalar:
    symbol: str
    value: float
    text: str  # "η = 2.3", "1/N = 1/300"


def _names(frame: Any) -> dict[str, str]:
    """Display name → frame key for everything a formula can name."""
    names: dict[str, str] = {"X": "X", "y": "y"}
    for key in frame.params:
        names[key] = key
    for op in frame.ops:
        if op.phase == "init":
            continue
        names.setdefault(op.name, op.key)
        if op.key.endswith("_clip"):
            names[f"clip({op.name.removeprefix('clip ')})"] = op.key
    return names


def _edge(text: str, i: int) -> bool:
    """Whether position i is not inside a word (a name must not touch a letter or digit)."""
    return i < 0 or i >= len(text) or not (text[i].isalnum() or text[i] in "_ₗ")


def tokens(text: str, names: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(name, key, transposed) of each array named in `text`, left to right, first use only."""
    order = sorted(names, key=len, reverse=True)
    found: list[tuple[str, str, bool]] = []
    seen: set[tuple[str, bool]] = set()
    i = 0
    while i < len(text):
        for name in order:
            if text.startswith(name, i) and _edge(text, i - 1) and (
                    _edge(text, i + len(name)) or text[i + len(name)] == "ᵀ"):
                j = i + len(name)
                t = j < len(text) and text[j] == "ᵀ"
                if (names[name], t) not in seen:
                    seen.add((names[name], t))
                    found.append((name, names[name], t))
                i = j + (1 if t else 0)
                break
        else:
            i += 1
    return found


def split_formula(formula: str) -> tuple[str, str, str]:
    """(left side, arrow, right side) of an op formula; arrow is '=', '←' or '~'."""
    for arrow in (" ← ", " = ", " ~ "):
        if arrow in formula:
            lhs, rhs = formula.split(arrow, 1)
            return lhs, arrow.strip(), rhs
    return formula, "", ""


def _array(frame: Any, key: str, upto: int) -> np.ndarray | None:
    """An input by key: an op output computed at or before `upto`, a parameter, batch data."""
    for i, op in enumerate(frame.ops):
        if op.key == key:
            return frame.outputs[i] if i <= upto and i < len(frame.outputs) else None
    if key in frame.params:
        return frame.params[key]
    return frame.batch.get(key)


def factors(frame: Any, index: int) -> tuple[Factor, ...]:
    """The inputs of op `index` in formula order, then its output (update ops add ΔW)."""
    op = frame.ops[index]
    out = frame.outputs[index] if index < len(frame.outputs) else None
    lhs, arrow, rhs = split_formula(op.formula)
    names = _names(frame)
    result: list[Factor] = []
    covered: set[str] = set()
    for name, key, t in tokens(rhs, names):
        if key == op.key and op.target == "":  # the formula names its own output (recursion)
            continue
        arr = _array(frame, key, index - 1)
        if arr is not None and t:
            arr = np.asarray(arr).T
        result.append(Factor(name + ("ᵀ" if t else ""), key, arr, transposed=t))
        covered.add(key)
    covered |= {k for k, v in ALIASES.items() if v in covered}
    for key in op.inputs:
        if key in covered:
            continue
        covered.add(key)
        arr = _array(frame, key, index - 1)
        name = next((n for n, k in names.items() if k == key and "(" not in n), key)
        if op.phase == "loss" and key in frame.params:
            note = "in the penalty"
        elif op.phase == "loss":
            note = "read by the fused kernel"
        else:
            note = "read"
        result.append(Factor(name, key, arr, note=note))
    if op.phase == "update" and op.target and op.target in frame.params and out is not None:
        old = frame.params[op.target]
        with np.errstate(all="ignore"):
            delta = np.subtract(out, old, dtype=np.float64)
        result.append(Factor(f"Δ{op.target}", op.target, delta, note="new − old"))
    role = op.name if op.phase not in ("update", "init") else lhs.strip() or op.name
    if op.phase == "update" and op.target in frame.params:
        role = f"{op.target} (new)"
    result.append(Factor(role, op.key, out, output=True))
    return tuple(result)


def scalars(frame: Any, index: int, cfg: Any, n: int) -> tuple[Scalar, ...]:
    """The scalars op `index` uses, with their values at this iteration."""
    op = frame.ops[index]
    text = op.formula
    out: list[Scalar] = []
    it = max(frame.iteration, 0)
    if "η" in text:
        lr = cfg.lr_at(it)
        decay = f" (= {cfg.lr:g}/(1+{cfg.lr_decay:g}·{it}))" if cfg.lr_decay else ""
        out.append(Scalar("η", lr, f"η = {lr:.4g}{decay}"))
    if "λ" in text:
        out.append(Scalar("λ", cfg.reg, f"λ = {cfg.reg:g}"))
    if "N" in text.replace("N(0,1)", ""):
        out.append(Scalar("N", float(n), f"N = {n} (1/N = {1 / n:.4g})"))
    if op.family == "clip-norm":
        c = cfg.clip
        norms = _array(frame, "grad_norm", index - 1)
        total = math.nan
        if norms is not None:
            with np.errstate(all="ignore"):
                total = float(np.sqrt(np.dot(norms, norms)))
        factor = min(1.0, c / total) if math.isfinite(total) and total > 0 else math.nan
        out.append(Scalar("c", c, f"c = {c:g}"))
        out.append(Scalar("‖g‖", total, f"‖g‖ = {total:.4g}"))
        out.append(Scalar("min(1, c/‖g‖)", factor, f"factor = {factor:.4g}"))
    elif op.family == "clip-value":
        out.append(Scalar("c", cfg.clip, f"c = ±{cfg.clip:g}"))
    return tuple(out)


# --------------------------------------------------------------------------- cursor → inputs
Mark = tuple[str, int, int]  # ("row", i, 0) | ("col", j, 0) | ("cell", i, j)


def marks(frame: Any, index: int, facs: tuple[Factor, ...], cell: tuple[int, int]
          ) -> dict[int, Mark]:
    """Which row / column / cell of each input factor the output element `cell` uses.

    Keys are positions in `facs`.  Products read a row of the left factor and a
    column of the right one; a bias and a column sum read column j; elementwise
    ops read the same cell; a row softmax reads row n.
    """
    op = frame.ops[index]
    i, j = cell
    ins = [(p, f) for p, f in enumerate(facs) if not f.output and f.array is not None]
    out_shape = next((f.array.shape for f in facs if f.output and f.array is not None), ())
    res: dict[int, Mark] = {}
    if op.key == "grad_norm" or not out_shape:
        return res
    lhs, _, rhs = split_formula(op.formula)
    product = "·" in rhs and op.family in ("linear",) and not op.key.startswith("dL_db")
    if op.key.startswith("dL_db"):
        for p, _f in ins:
            res[p] = ("col", j, 0)
        return res
    if product:
        first = True
        for p, f in ins:
            shape2 = f.array.reshape(1, -1).shape if f.array.ndim == 1 else f.array.shape
            if f.array.ndim == 1:  # a bias: entry j
                res[p] = ("col", j, 0)
            elif first:
                res[p] = ("row", i, 0)
                first = False
            elif shape2 == tuple(out_shape):  # the penalty's W, same shape as dL/dW
                res[p] = ("cell", i, j)
            else:
                res[p] = ("col", j, 0)
        return res
    if op.family == "softmax" and len(out_shape) == 2:
        for p, _f in ins:
            res[p] = ("row", i, 0)
        return res
    if len(out_shape) == 3:  # the softmax Jacobian, shown as N·K rows of K
        for p, f in ins:
            if f.array.ndim == 2:
                res[p] = ("row", i // out_shape[1], 0)
        return res
    for p, f in ins:
        if f.array.shape == tuple(out_shape) and len(out_shape) == 2:
            res[p] = ("cell", i, j)
        elif f.array.shape == tuple(out_shape) and len(out_shape) == 1:
            res[p] = ("col", j, 0)
    return res
