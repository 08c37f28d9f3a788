"""Training data: small built-in 2-D toy problems and the user's own .csv/.npz files.

Everything that can go wrong with user data surfaces as a one-line DatasetError so the
CLI can print `error: <msg>` instead of a traceback.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from core.model.dataset_names import BUILTIN  # re-exported; kept apart so the CLI skips NumPy
from core.model.limits import MAX_CLASSES, MAX_CSV_BYTES, MAX_NPZ_BYTES, LimitError, open_regular

_SEED_SALT = 0xDA7A  # keeps the data stream independent of other uses of the same seed
_XY = tuple[np.ndarray, np.ndarray]  # X, labels
_Loaded = tuple[np.ndarray, np.ndarray, int]  # X, labels, minimum class count


class DatasetError(ValueError):
    """Bad dataset input; message is one line suitable for `error: <msg>` on the CLI."""


@dataclass(frozen=True, eq=False)  # eq=False: array fields make generated __eq__/__hash__ unusable
class Dataset:
    """Inputs plus integer class labels; one-hot targets are derived on demand."""

    name: str
    X: np.ndarray
    labels: np.ndarray
    n_classes: int

    def __post_init__(self) -> None:
        # Cheap invariant check so a hand-built Dataset with bad shapes fails early, not mid-step.
        if self.X.ndim != 2 or self.labels.shape != (self.X.shape[0],):
            shapes = f"X {self.X.shape} and labels {self.labels.shape}"
            raise DatasetError(f"{self.name}: {shapes} do not match")
        if self.n_classes < 2:
            raise DatasetError(f"{self.name}: need at least 2 classes")

    def onehot(self, dtype: DTypeLike = np.float64) -> np.ndarray:
        """(N, K) targets with y[n, labels[n]] = 1, for losses that want one-hot rows."""
        y = np.zeros((self.labels.shape[0], self.n_classes), dtype=dtype)
        y[np.arange(self.labels.shape[0]), self.labels] = 1
        return y


def _xor(rng: np.random.Generator) -> _XY:
    X = rng.standard_normal((300, 2))
    return X, ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(np.int64)


def _xor4(rng: np.random.Generator) -> _XY:
    return (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64),
            np.array([0, 1, 1, 0], dtype=np.int64))


def _shuffled(rng: np.random.Generator, X: np.ndarray, y: np.ndarray) -> _XY:
    p = rng.permutation(X.shape[0])
    return np.ascontiguousarray(X[p]), y[p].astype(np.int64)


def _moons(rng: np.random.Generator) -> _XY:
    t_out, t_in = np.linspace(0, np.pi, 150), np.linspace(0, np.pi, 150)
    X = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)],
                        np.c_[1 - np.cos(t_in), 0.5 - np.sin(t_in)]])
    X += rng.normal(scale=0.1, size=X.shape)
    return _shuffled(rng, X, np.repeat([0, 1], 150))


def _circles(rng: np.random.Generator) -> _XY:
    t = np.linspace(0, 2 * np.pi, 150, endpoint=False)
    ring = np.c_[np.cos(t), np.sin(t)]
    X = np.concatenate([ring, 0.5 * ring])
    X += rng.normal(scale=0.05, size=X.shape)
    return _shuffled(rng, X, np.repeat([0, 1], 150))


def _spiral(rng: np.random.Generator) -> _XY:
    parts = []
    for j in range(3):  # CS231n: radius grows while angle sweeps 4 radians per arm
        r = np.linspace(0.0, 1.0, 100)
        t = np.linspace(j * 4, (j + 1) * 4, 100) + 0.2 * rng.standard_normal(100)
        parts.append(np.c_[r * np.sin(t), r * np.cos(t)])
    return _shuffled(rng, np.concatenate(parts), np.repeat([0, 1, 2], 100))


def _blobs(rng: np.random.Generator) -> _XY:
    centres = np.array([[-2.0, -2.0], [2.0, -2.0], [0.0, 2.0]])
    X = np.repeat(centres, 100, axis=0) + rng.normal(scale=0.8, size=(300, 2))
    return _shuffled(rng, X, np.repeat([0, 1, 2], 100))


_GENERATORS: dict[str, Callable[[np.random.Generator], _XY]] = {
    "xor": _xor, "xor4": _xor4, "moons": _moons,
    "circles": _circles, "spiral": _spiral, "blobs": _blobs,
}

def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label_problem(v: float) -> str | None:
    """Why v is not usable as a class index, or None if it is."""
    if not math.isfinite(v) or v < 0 or v != math.floor(v):
        return "is not a non-negative integer class label"
    if v >= MAX_CLASSES:
        return f"is too large (at most {MAX_CLASSES} classes are supported)"
    return None


def _load_csv(path: str) -> _Loaded:
    feats: list[list[float]] = []
    labels: list[int] = []
    m = 0  # column count, fixed by the first non-blank row
    raw = open_regular(path, MAX_CSV_BYTES, "CSV file")
    with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                n = reader.line_num
                if all(not c.strip() for c in row):
                    continue
                if m == 0:
                    m = len(row)
                    if m < 2:
                        raise DatasetError(
                            f"{path}: need at least one feature column and a label column")
                    if not any(_is_number(c) for c in row):
                        continue  # header: only allowed as the first row
                if len(row) != m:
                    raise DatasetError(f"{path}: line {n} has {len(row)} columns, expected {m}")
                vals = []
                for c, cell in enumerate(row, start=1):
                    try:
                        vals.append(float(cell))
                    except ValueError:
                        raise DatasetError(
                            f"{path}: line {n}, column {c}: {cell!r} is not a number") from None
                    if c < m and not math.isfinite(vals[-1]):
                        raise DatasetError(f"{path}: line {n}, column {c}: non-finite value")
                problem = _label_problem(vals[-1])
                if problem:
                    raise DatasetError(f"{path}: line {n}, column {m}: label {row[-1]!r} {problem}")
                feats.append(vals[:-1])
                labels.append(int(vals[-1]))
        except csv.Error as e:
            raise DatasetError(f"{path}: line {reader.line_num}: {e}") from None
    if not feats:
        raise DatasetError(f"{path}: no data rows")
    return np.array(feats, dtype=np.float64), np.array(labels, dtype=np.int64), 0


def _npz_labels(path: str, y: np.ndarray, n_rows: int) -> tuple[np.ndarray, int]:
    """Integer labels (and minimum class count) from a (N,), (N, 1) or one-hot (N, K) y."""
    if y.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: y must be numeric, got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise DatasetError(f"{path}: y must be 1-D labels or 2-D one-hot, got shape {y.shape}")
    if y.shape[0] != n_rows:
        raise DatasetError(f"{path}: y has {y.shape[0]} rows but X has {n_rows}")
    if y.ndim == 2 and y.shape[1] >= 2:
        ok = np.all((y == 0) | (y == 1), axis=1) & (np.sum(y == 1, axis=1) == 1)
        if not ok.all():
            raise DatasetError(f"{path}: y row {int(np.argmin(ok))} is not one-hot")
        if y.shape[1] > MAX_CLASSES:
            raise DatasetError(f"{path}: y has {y.shape[1]} columns "
                               f"(at most {MAX_CLASSES} classes are supported)")
        return np.argmax(y, axis=1).astype(np.int64), y.shape[1]
    flat = y.reshape(-1).astype(np.float64)  # (N, 1) is taken as a column of labels
    for i, v in enumerate(flat.tolist()):  # O(N) Python loop only to name the first bad entry
        problem = _label_problem(v)
        if problem:
            raise DatasetError(f"{path}: y[{i}] = {v!r} {problem}")
    return flat.astype(np.int64), 0


def _load_npz(path: str) -> _Loaded:
    with open_regular(path, MAX_NPZ_BYTES, ".npz file") as fh:
        try:
            with np.load(fh, allow_pickle=False) as npz:
                keys = set(npz.files)
                arrays = {k: np.asarray(npz[k]) for k in ("X", "y") if k in keys}
        except Exception:  # corrupt zip, pickled/object arrays, truncation, ...
            raise DatasetError(f"cannot read {path}: not a valid .npz file") from None
    for key in ("X", "y"):
        if key not in arrays:
            raise DatasetError(f"{path}: missing array {key!r}")
    X, y = arrays["X"], arrays["y"]
    if X.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DatasetError(f"{path}: X must be 2-D (N, D), got shape {X.shape}")
    if X.shape[0] == 0:
        raise DatasetError(f"{path}: no data rows")
    if X.shape[1] == 0:
        raise DatasetError(f"{path}: X has no feature columns")
    X = np.ascontiguousarray(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DatasetError(f"{path}: X[{r}, {c}] is a non-finite value")
    return (X, *_npz_labels(path, y, X.shape[0]))


def _load_file(path: str, loader: Callable[[str], _Loaded]) -> _Loaded:
    """Run loader, turning every failure into a one-line DatasetError naming the path."""
    try:
        return loader(path)
    except DatasetError:
        raise
    except LimitError as e:
        raise DatasetError(str(e)) from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"cannot read {path}: not UTF-8 text") from None
    except Exception as e:  # last resort: no traceback may reach the user
        msg = " ".join(str(e).split()) or type(e).__name__
        raise DatasetError(f"cannot read {path}: {msg}") from None


def make_dataset(name_or_path: str, seed: int, n_classes: int = 0) -> Dataset:
    """Build a built-in dataset or load a .csv/.npz file; n_classes > 0 is the output width."""
    name = name_or_path
    if name in BUILTIN:
        if seed < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {seed}")
        X, labels = _GENERATORS[name](np.random.default_rng([seed, _SEED_SALT]))
        k_min = 0
    elif name.lower().endswith(".csv"):
        X, labels, k_min = _load_file(name, _load_csv)
    elif name.lower().endswith(".npz"):
        X, labels, k_min = _load_file(name, _load_npz)
    else:
        raise DatasetError(f"unknown dataset {name!r}; choose one of "
                           f"{', '.join(BUILTIN)} or give a .csv/.npz path")
    k = max(k_min, int(labels.max()) + 1)
    if n_classes > 0:
        if k > n_classes:
            raise DatasetError(
                f"{name}: labels need {k} classes but the output width is {n_classes}")
        k = n_classes
    present = np.unique(labels)
    if k < 2 or len(present) < 2:
        raise DatasetError(f"{name}: labels have only one class (every label is "
                           f"{int(present[0])}); need at least 2")
    return Dataset(name=name, X=np.ascontiguousarray(X, dtype=np.float64),
                   labels=np.ascontiguousarray(labels, dtype=np.int64), n_classes=k)
