"""Central finite differences against the analytic gradients of the op catalog.

The check re-runs the program's own forward and loss kernels with one entry
nudged by ±ε, in float64 whatever the run's dtype, from the parameters and
batch of a materialized frame.  Big matrices are sampled so a check stays well
under a second.  ReLU kinks crossed by the nudge are reported and skipped, as
a one-sided kink makes any finite difference meaningless there; so are
weights within ε of 0 under an l1 penalty (the kink of |W|).  Errors are
relative to each entry but floored at 0.1% of the matrix's largest entry and
so that the finite-difference roundoff (~10·ε_mach·|L|/ε) maps to the
threshold: near-zero entries (deep sigmoid nets have dL/dz1 ~ 1e-8) otherwise
fail on pure roundoff, while any larger discrepancy still fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.engine.machine import Frame, Machine

THRESHOLD = 1e-5  # max relative error that counts as a pass in float64
FLOOR = 1e-8  # |a|+|n| below this counts as an exact zero
NOISE = 10.0  # (L(w+ε) − L(w−ε))/2ε carries roundoff up to ~ this × machine-ε × |L| / ε
SCALE_FLOOR = 1e-3  # errors are relative to max(|a|+|n|, 0.1% of the matrix's largest |a|)


def error_floor(base_loss: float, eps: float, scale: float, threshold: float = THRESHOLD
                ) -> float:
    """What |analytic| + |numeric| is floored at before dividing: an absolute error at the
    finite-difference roundoff (~NOISE·ε_mach·|L|/ε) counts as exactly the threshold, and
    entries below 0.1% of the largest (`scale`) are judged against that 0.1%."""
    noise = NOISE * np.finfo(np.float64).eps * max(abs(base_loss), 1.0) / eps
    return max(FLOOR, noise / threshold, SCALE_FLOOR * scale)


def relative_errors(ana: np.ndarray, num: np.ndarray, floor: float) -> np.ndarray:
    """|a − n| / max(|a| + |n|, floor) per entry; 0 where both are ~0 (below FLOOR)."""
    denom = np.abs(ana) + np.abs(num)
    return np.where(denom < FLOOR, 0.0, np.abs(ana - num) / np.maximum(denom, floor))


class NotApplicable(ValueError):
    """Gradcheck asked of something it cannot check (a forward op, a NaN state)."""


@dataclass(frozen=True)
class GradcheckResult:
    key: str  # the analytic array checked, e.g. "dL_dW1"
    wrt: str  # what was nudged, e.g. "W1"
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: np.ndarray  # sampled analytic entries
    numeric: np.ndarray  # matching finite differences
    rel_error: np.ndarray  # full-shape map, NaN where not sampled / skipped
    checked: int
    skipped_kinks: int
    eps: float
    threshold: float = THRESHOLD
    nonfinite: int = 0  # entries whose difference was NaN/Inf (the loss overflows at w ± ε)

    @property
    def passed(self) -> bool:
        """At least one entry compared, and every compared entry within the threshold.

        A NaN difference counts as an infinite error (it confirms nothing), and a
        check whose every entry was skipped at a kink has no verdict: neither passes.
        """
        return self.checked > 0 and self.max_rel_error <= self.threshold


def checkable(key: str) -> str:
    """What a gradient key is taken with respect to: dL_dW1 -> W1, dL_dz2 -> z2."""
    if key.startswith("dL_d") and key[4] in "Wbz" and key[5:].isdigit():
        return key[4:]
    raise NotApplicable(f"gradcheck applies to dL/dW, dL/db and dL/dz ops, not {key}")


def gradcheck(machine: Machine, frame: Frame, key: str, *, eps: float = 1e-5,
              max_entries: int = 64, seed: int = 0) -> GradcheckResult:
    """Compare `frame`'s analytic `key` (e.g. "dL_dW1") with central differences."""
    wrt = checkable(key)
    if frame.iteration < 0:
        raise NotApplicable("gradcheck needs an iteration, not the init ops")
    if any(not np.isfinite(v).all() for v in frame.params.values()):
        raise NotApplicable(f"iteration {frame.iteration} has NaN/Inf parameters")
    cfg64 = machine.cfg if machine.cfg.dtype == "float64" else machine.cfg.replace(
        dtype="float64")
    m = Machine(cfg64, machine.data)
    for name, arr in frame.params.items():
        m.buf[name][...] = arr
    if not m.full:  # full batch: the clone's buffers already are the data
        for name in ("X", "y", "labels"):
            m.buf[name][...] = frame.batch[name]
    m.hp.lr = cfg64.lr_at(frame.iteration)
    ops = m.program.ops
    with np.errstate(all="ignore"):
        for op, k in zip(ops, m.kernels, strict=True):
            k()
            if op.key == key:
                break
        analytic_full = m.buf[key].copy()
        if not np.isfinite(analytic_full).all():
            raise NotApplicable(f"{key} has NaN/Inf at iteration {frame.iteration}")
        loss_at = m.program.index("loss")
        first = 0 if wrt[0] in "Wb" else m.program.index(wrt) + 1
        target = m.buf[wrt]
        base_loss = abs(float(m.buf["loss"]))  # the loss op ran before any gradient op
        kinks = [m.buf[f"z{l}"] for l in range(1, m.program.depth)
                 if cfg64.activation == "relu"]
        base_mask = [z > 0 for z in kinks]
        # |W| of an l1 penalty has its kink at 0: a nudge across it is no derivative either
        l1_kink = cfg64.reg > 0 and cfg64.reg_kind == "l1" and wrt[0] == "W"
        forward = m.kernels[first:loss_at + 1]
        loss = m.buf["loss"]

        def loss_with(flat_index: int, delta: float) -> tuple[float, bool]:
            old = target.flat[flat_index]
            if l1_kink and abs(old) < abs(delta):
                return float("nan"), True
            target.flat[flat_index] = old + delta
            for k in forward:
                k()
            val = float(loss)
            crossed = any(((z > 0) != b).any() for z, b in zip(kinks, base_mask, strict=True))
            target.flat[flat_index] = old
            return val, crossed

        floor = error_floor(base_loss, eps, float(np.abs(analytic_full).max()))
        size = target.size
        rng = np.random.default_rng(seed)
        picks = np.arange(size) if size <= max_entries else np.sort(
            rng.choice(size, max_entries, replace=False))
        rel = np.full(target.shape, np.nan)
        a_list, n_list = [], []
        skipped = nonfinite = 0
        worst, worst_err = (0,) * target.ndim, 0.0
        for idx in picks:
            lp, c1 = loss_with(int(idx), eps)
            lm, c2 = loss_with(int(idx), -eps)
            if c1 or c2:
                skipped += 1
                continue
            num = (lp - lm) / (2 * eps)
            ana = float(analytic_full.flat[idx])
            if not math.isfinite(num):
                err = math.inf
                nonfinite += 1
            else:
                err = float(relative_errors(np.float64(ana), np.float64(num), floor))
            rel.flat[idx] = err
            a_list.append(ana)
            n_list.append(num)
            if err >= worst_err:
                worst_err, worst = err, tuple(int(i) for i in np.unravel_index(idx, target.shape))
    return GradcheckResult(key, wrt, worst_err, worst, np.array(a_list), np.array(n_list), rel,
                           len(a_list), skipped, eps, nonfinite=nonfinite)
