"""Say in words what kind of mistake a wrong gradient looks like.

Given the analytic entries a user's `backward` returned and the matching central
differences, fit `analytic ≈ a·numeric + b` (least squares over the checked
entries).  When the fit explains the discrepancy, a and b name the mistake: a
missing 1/N (a ≈ N), a factor 2 or ½, a flipped sign (a ≈ −1), a constant added
to every entry (b ≠ 0: a scalar broadcast).  Otherwise look for a zero
gradient, a transposed one, or errors confined to some rows or columns, and
fall back to "a per-entry factor" (a missing chain-rule term such as σ′(z)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXPLAINED = 0.01  # the fit explains the error if its residual is <= 1% of |analytic - numeric|
NAME_TOL = 0.03  # a within 3% of a "nice" value is called by that value


@dataclass(frozen=True)
class Fit:
    scale: float
    offset: float
    explained: bool
    weight: float = 0.0  # coefficient of the parameter itself, when that term was fitted
    residual: float = 0.0  # |analytic - fit| / |analytic - numeric|


def fit_line(analytic: np.ndarray, numeric: np.ndarray,
             param: np.ndarray | None = None) -> Fit | None:
    """Least-squares analytic ≈ scale·numeric + offset (+ weight·param); None if degenerate.

    The optional third term absorbs a part of the gradient proportional to the
    parameter itself (a regularization gradient), which a wrong data term does not
    touch: with λ·W in both, "missing 1/N" is a·n + (1−a)·λW, not a·n.
    """
    cols = [numeric, np.ones_like(numeric)] + ([] if param is None else [param])
    if len(numeric) < len(cols) + 1 or np.ptp(numeric) == 0:
        return None
    A = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(A, analytic, rcond=None)
    resid = np.linalg.norm(analytic - A @ coef)
    diff = np.linalg.norm(analytic - numeric)
    weight = 0.0 if param is None else float(coef[2])
    rel = float(resid / diff) if diff > 0 else 0.0
    return Fit(float(coef[0]), float(coef[1]), rel <= EXPLAINED, weight, rel)


def _near(x: float, target: float) -> bool:
    return abs(x - target) <= NAME_TOL * abs(target)


def name_scale(a: float, n_rows: int, n_cols: int = 0) -> str | None:
    """Words for a scale factor, or None if it is not a recognisable one."""
    text = _scale_words(a, n_rows)
    if n_cols > 1 and n_cols != n_rows and _near(a, n_cols):
        k = (f"{n_cols} = K (columns of y): a mean over all N·K entries of the loss "
             f"differentiated as a mean over N only")
        text = f"{text}; or {k}" if text else f"a ≈ {k}"
    return text


def _scale_words(a: float, n_rows: int) -> str | None:
    if _near(a, -1):
        return "a ≈ −1: the sign is flipped"
    if _near(a, 2):
        return "a ≈ 2: twice the true gradient (a factor 2 too many, e.g. d(½x²) taken as 2x)"
    if _near(a, 0.5):
        return "a ≈ ½: half the true gradient (a missing factor 2, e.g. d(x²) = 2x)"
    if n_rows > 2 and _near(a, n_rows):
        return f"a ≈ {n_rows} = N (rows in the batch): a missing 1/N (mean taken as a sum)"
    if n_rows > 2 and _near(a, 1 / n_rows):
        return f"a ≈ 1/{n_rows} = 1/N: an extra 1/N (the mean divided twice)"
    if abs(a) >= 1.5 and _near(a, round(a)):
        return f"a ≈ {round(a)}: an extra constant factor {round(a)}"
    if 0 < a < 0.7 and _near(1 / a, round(1 / a)):
        return f"a ≈ 1/{round(1 / a)}: a missing constant factor {round(1 / a)}"
    return None


def describe(analytic: np.ndarray, numeric: np.ndarray, index: np.ndarray,
             shape: tuple[int, ...], failed: np.ndarray, n_rows: int, full: np.ndarray,
             floor: float, param: np.ndarray | None = None, n_cols: int = 0
             ) -> tuple[Fit | None, str]:
    """The fit over the checked entries and a one-line diagnosis of a FAIL.

    Args:
        analytic, numeric: the checked entries (1-D, same order as `index`).
        index: their flat indices into `shape`.
        failed: which of them fail the threshold.
        n_rows, n_cols: rows in the batch (for "a missing 1/N"), columns of y.
        full: the whole analytic gradient (for "zero gradient" and transposition).
        floor: the magnitude below which a value counts as zero.
        param: the parameter's values at the checked entries (for the λ·W term).
    """
    fit = fit_line(analytic, numeric)
    if fit is not None and not fit.explained and param is not None and np.ptp(param) > 0:
        fit3 = fit_line(analytic, numeric, param)
        if fit3 is not None and fit3.explained:
            fit = fit3
    elif fit is not None and param is not None and np.ptp(param) > 0:
        # explained already, but a λ·W term may explain it far better (and change a, b)
        fit3 = fit_line(analytic, numeric, param)
        if fit3 is not None and fit3.residual < 0.1 * fit.residual:
            fit = fit3
    if not np.any(full):
        return fit, "zero gradient: backward returns all zeros (never computed or overwritten?)"
    if np.abs(numeric).max() <= floor:
        return fit, ("the loss does not depend on this parameter (numeric gradient ≈ 0) "
                     "but backward returns a non-zero gradient")
    if len(shape) == 2 and shape[0] == shape[1] and shape[0] > 1:
        rows, cols = np.unravel_index(index, shape)
        at_t = full.T[rows, cols]
        if np.all(np.abs(at_t - numeric) <= 1e-4 * np.maximum(np.abs(numeric), floor)):
            return fit, "transposed gradient: backward returns the transpose of the true one"
    if fit is not None and fit.explained:
        words = _fit_words(fit, numeric, param, n_rows, floor, n_cols)
        if words:
            return fit, "analytic ≈ a·numeric + b with " + "; ".join(words)
    significant = np.abs(numeric) > floor
    part = _partial(index, shape, failed, significant)
    if part:
        return fit, part
    ratio = analytic / np.where(numeric == 0, np.nan, numeric)
    ratio = ratio[np.isfinite(ratio) & significant]
    if len(ratio) and np.all(np.abs(ratio - np.median(ratio)) <= NAME_TOL * abs(np.median(ratio))):
        a = float(np.median(ratio))
        return fit, ("analytic ≈ a·numeric on every checked entry with "
                     + (name_scale(a, n_rows, n_cols) or f"a ≈ {a:.4g}: a wrong constant factor"))
    if len(ratio) >= 2:
        lo, hi = np.percentile(ratio, [10, 90])
        return fit, (f"no single scale or offset fits (analytic/numeric ranges {lo:.3g} … "
                     f"{hi:.3g}): a wrong or missing per-entry factor, e.g. a chain-rule term "
                     f"such as an activation's derivative")
    return fit, "analytic and numeric gradients differ"


def _fit_words(fit: Fit, numeric: np.ndarray, param: np.ndarray | None, n_rows: int,
               floor: float, n_cols: int = 0) -> list[str]:
    words = []
    rms = max(float(np.sqrt(np.mean(numeric ** 2))) * max(1.0, abs(fit.scale)), floor)
    if not _near(fit.scale, 1.0):
        words.append(name_scale(fit.scale, n_rows, n_cols)
                     or f"a ≈ {fit.scale:.4g}: a wrong constant factor")
    if abs(fit.offset) > 0.01 * rms:
        words.append(f"b ≈ {fit.offset:.4g} ≠ 0: the same constant is added to every entry "
                     f"(a scalar broadcast, e.g. λ·ΣW² where λ·W was meant)")
    if param is not None and fit.weight and abs(fit.weight) * float(
            np.sqrt(np.mean(param ** 2))) > 0.01 * rms and _near(fit.scale, 1.0):
        words.append(f"plus {fit.weight:.3g}·(the parameter): a term proportional to the "
                     f"parameter (the regularization gradient λ·W?) is wrong or missing")
    return words


def _partial(index: np.ndarray, shape: tuple[int, ...], failed: np.ndarray,
             significant: np.ndarray) -> str | None:
    """'entries wrong only in rows …' when failures are confined to some rows/columns.

    Only entries with a clearly non-zero true gradient count as evidence that a
    row is right (a saturated unit's zero row matches whatever the bug is).
    """
    ok = ~failed & significant
    if not ok.any() or not failed.any():
        return None
    if len(shape) == 1:
        bad = np.unique(index[failed])
        if len(bad) * 2 > len(index):
            return None
        return f"entries wrong only at indices {_list(bad)} (the other checked entries match)"
    if len(shape) != 2:
        return None
    rows, cols = np.unravel_index(index, shape)
    for axis, coord, n in (("rows", rows, shape[0]), ("columns", cols, shape[1])):
        bad = np.unique(coord[failed])
        good = np.unique(coord[ok])
        if len(np.intersect1d(bad, good)) == 0 and len(good) and len(bad) * 2 <= n:
            return (f"entries wrong only in {axis} {_list(bad)} of {n} "
                    f"(every checked entry in the other {axis} matches)")
    return None


def _list(values: np.ndarray, most: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:most])
    return shown + (f", … ({len(values)} in all)" if len(values) > most else "")
