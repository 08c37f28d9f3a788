"""Tests for core.model.datasets: generators, file loaders and their error messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.model.datasets import BUILTIN, Dataset, DatasetError, make_dataset

EXPECTED = {  # name -> (N, K)
    "xor": (300, 2), "xor4": (4, 2), "moons": (300, 2),
    "circles": (300, 2), "spiral": (300, 3), "blobs": (300, 3),
}


def test_builtin_names_all_documented() -> None:
    assert set(BUILTIN) == set(EXPECTED)
    assert all(desc and "\n" not in desc for desc in BUILTIN.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_shapes_and_classes(name: str) -> None:
    ds = make_dataset(name, seed=3)
    n, k = EXPECTED[name]
    assert ds.name == name
    assert ds.X.shape == (n, 2) and ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
    assert ds.n_classes == k
    assert set(ds.labels.tolist()) == set(range(k))
    assert np.isfinite(ds.X).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_determinism(name: str) -> None:
    a, b = make_dataset(name, seed=7), make_dataset(name, seed=7)
    assert a.X.tobytes() == b.X.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    c = make_dataset(name, seed=8)
    if name == "xor4":
        assert np.array_equal(a.X, c.X)  # truth table has no randomness
    else:
        assert not np.array_equal(a.X, c.X)


def test_xor_labels_are_xor_of_signs() -> None:
    ds = make_dataset("xor", seed=11)
    expect = [int((x0 > 0) != (x1 > 0)) for x0, x1 in ds.X.tolist()]
    assert ds.labels.tolist() == expect
    assert np.array_equal(ds.X, np.random.default_rng([11, 0xDA7A]).standard_normal((300, 2)))


def test_xor4_truth_table() -> None:
    ds = make_dataset("xor4", seed=0)
    assert ds.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert ds.labels.tolist() == [0, 1, 1, 0]


def test_classes_balanced_and_geometry() -> None:
    for name, per in (("moons", 150), ("circles", 150), ("spiral", 100), ("blobs", 100)):
        assert np.bincount(make_dataset(name, 1).labels).tolist() == [per] * (300 // per)
    circ = make_dataset("circles", 1)
    radius = np.hypot(circ.X[:, 0], circ.X[:, 1])
    assert radius[circ.labels == 0].mean() == pytest.approx(1.0, abs=0.05)
    assert radius[circ.labels == 1].mean() == pytest.approx(0.5, abs=0.05)
    blobs = make_dataset("blobs", 1)
    assert blobs.X[blobs.labels == 2].mean(axis=0) == pytest.approx([0, 2], abs=0.3)
    # shuffled: labels are not sorted into contiguous runs
    assert (np.diff(make_dataset("spiral", 1).labels) != 0).sum() > 10


@pytest.mark.parametrize("name", ["xor", "spiral"])
def test_onehot(name: str) -> None:
    ds = make_dataset(name, seed=2)
    y = ds.onehot()
    assert y.shape == (300, ds.n_classes) and y.dtype == np.float64
    assert np.array_equal(y.sum(axis=1), np.ones(300))
    assert np.array_equal(y.argmax(axis=1), ds.labels)
    assert ds.onehot(np.float32).dtype == np.float32


def test_n_classes_handling() -> None:
    assert make_dataset("xor", 0, n_classes=4).n_classes == 4
    assert make_dataset("xor", 0, n_classes=4).onehot()[:, 2:].sum() == 0
    with pytest.raises(DatasetError, match="labels need 3 classes but the output width is 2"):
        make_dataset("spiral", 0, n_classes=2)


def test_unknown_name_and_bad_seed() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'nope'.*xor, xor4.*csv/.npz"):
        make_dataset("nope", 0)
    with pytest.raises(DatasetError, match="seed"):
        make_dataset("xor", -1)


def test_dataset_is_a_valueerror_and_rejects_bad_shapes() -> None:
    assert issubclass(DatasetError, ValueError)
    with pytest.raises(DatasetError):
        Dataset("x", np.zeros((3, 2)), np.zeros(4, dtype=np.int64), 2)


# ---------------------------------------------------------------- CSV


def _write(tmp_path: Path, text: str, name: str = "d.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("header", ["", "a,b,label\n"])
def test_csv_round_trip(tmp_path: Path, header: str) -> None:
    src = make_dataset("spiral", seed=5)
    pairs = zip(src.X.tolist(), src.labels.tolist(), strict=True)
    rows = "".join(f"{x0!r},{x1!r},{lab}\n" for (x0, x1), lab in pairs)
    path = _write(tmp_path, header + rows)
    ds = make_dataset(path, seed=0)
    assert ds.name == path
    assert np.array_equal(ds.X, src.X) and np.array_equal(ds.labels, src.labels)
    assert ds.n_classes == 3 and ds.X.flags.c_contiguous and ds.labels.dtype == np.int64


def test_csv_blank_lines_float_labels_upper_ext(tmp_path: Path) -> None:
    path = _write(tmp_path, "\nx,label\n1.5,0.0\n\n  \n-2,1.0\n", "D.CSV")
    ds = make_dataset(path, seed=0)
    assert ds.X.tolist() == [[1.5], [-2.0]] and ds.labels.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "no data rows"),
        ("a,b,c\n\n", "no data rows"),
        ("1,2,0\n3,1\n", "line 2 has 2 columns, expected 3"),
        ("1,2,0\n\n3,x,1\n", "line 3, column 2: 'x' is not a number"),
        ("1,2,0\nh1,h2,h3\n", "line 2, column 1: 'h1' is not a number"),  # header not first
        ("0\n1\n", "need at least one feature column and a label column"),
        ("1,nan,0\n", "line 1, column 2: non-finite value"),
        ("inf,1,0\n", "line 1, column 1: non-finite value"),
        ("1,2,1.5\n", "line 1, column 3: label '1.5'"),
        ("1,2,-1\n", "line 1, column 3: label '-1'"),
        ("1,2,nan\n", "line 1, column 3: label 'nan'"),
        ("1,2,inf\n", "line 1, column 3: label 'inf'"),
        ("1,2,1e9\n", "line 1, column 3: label '1e9' is too large"),
        ("1,2,0\n1,2,0\n", "labels have only one class"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DatasetError) as info:
        make_dataset(path, seed=0)
    msg = str(info.value)
    assert path in msg and pattern in msg and "\n" not in msg


def test_csv_unreadable(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.csv")
    with pytest.raises(DatasetError, match=r"cannot read .*missing\.csv: No such file"):
        make_dataset(missing, 0)
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(DatasetError, match="cannot read .*dir.csv"):
        make_dataset(str(folder), 0)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DatasetError, match="cannot read .*bin.csv"):
        make_dataset(str(binary), 0)


def test_csv_n_classes(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,0\n2,3\n")
    assert make_dataset(path, 0).n_classes == 4
    assert make_dataset(path, 0, n_classes=6).n_classes == 6
    with pytest.raises(DatasetError, match=r"d\.csv: labels need 4 classes .* width is 3"):
        make_dataset(path, 0, n_classes=3)


# ---------------------------------------------------------------- NPZ


def _npz(tmp_path: Path, name: str = "d.npz", **arrays: np.ndarray) -> str:
    p = tmp_path / name
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)
    return str(p)


def test_npz_integer_labels(tmp_path: Path) -> None:
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    path = _npz(tmp_path, X=X, y=np.array([0, 1, 2, 1], dtype=np.uint8))
    ds = make_dataset(path, 0)
    assert ds.X.dtype == np.float64 and np.array_equal(ds.X, X)
    assert ds.labels.tolist() == [0, 1, 2, 1] and ds.n_classes == 3


def test_npz_onehot_labels(tmp_path: Path) -> None:
    y = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float64)
    path = _npz(tmp_path, X=np.zeros((3, 5)), y=y)
    ds = make_dataset(path, 0)
    assert ds.labels.tolist() == [1, 0, 1]
    assert ds.n_classes == 4  # one-hot width wins even though classes 2, 3 are unused
    assert np.array_equal(ds.onehot(), y)
    with pytest.raises(DatasetError, match="labels need 4 classes but the output width is 2"):
        make_dataset(path, 0, n_classes=2)


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"y": np.array([0, 1])}, "missing array 'X'"),
        ({"X": np.zeros((2, 2))}, "missing array 'y'"),
        ({"X": np.zeros(2), "y": np.array([0, 1])}, "X must be 2-D"),
        ({"X": np.zeros((3, 2)), "y": np.array([0, 1])}, "y has 2 rows but X has 3"),
        ({"X": np.array([[1.0], [np.inf]]), "y": np.array([0, 1])}, "non-finite"),
        ({"X": np.array([["a"], ["b"]]), "y": np.array([0, 1])}, "X must be numeric"),
        ({"X": np.zeros((2, 1)), "y": np.array([0.0, 1.5])}, "y[1] = "),
        ({"X": np.zeros((2, 1)), "y": np.array([0, -1])}, "y[1] = "),
        ({"X": np.zeros((2, 1)), "y": np.array([np.nan, 1])}, "y[0] = "),
        ({"X": np.zeros((2, 1)), "y": np.array([[1, 0], [1, 1]])}, "y row 1 is not one-hot"),
        ({"X": np.zeros((2, 1)), "y": np.array([[1, 0], [0.5, 0.5]])}, "y row 1 is not one-hot"),
        ({"X": np.zeros((2, 1)), "y": np.zeros((2, 2, 2))}, "y must be 1-D labels or 2-D"),
        ({"X": np.zeros((2, 1)), "y": np.array([0, 0])}, "labels have only one class"),
        ({"X": np.zeros((0, 1)), "y": np.zeros(0)}, "no data rows"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], pattern: str) -> None:
    path = _npz(tmp_path, **arrays)
    with pytest.raises(DatasetError) as info:
        make_dataset(path, 0)
    msg = str(info.value)
    assert path in msg and pattern in msg and "\n" not in msg


def test_npz_object_array_needs_no_pickle(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=np.array([[1, 2], [3, 4]], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match=f"cannot read {path}: not a valid .npz file"):
        make_dataset(path, 0)


def test_npz_truncated_and_garbage(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=np.zeros((50, 2)), y=np.arange(50) % 2)
    size = os.path.getsize(path)
    for cut in (size // 3, size - 10):
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        with pytest.raises(DatasetError, match="not a valid .npz file"):
            make_dataset(path, 0)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip file")
    with pytest.raises(DatasetError, match="junk.npz: not a valid .npz file"):
        make_dataset(str(junk), 0)
    npy = tmp_path / "plain.npz"  # a bare .npy payload under an .npz name
    with npy.open("wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(DatasetError, match="plain.npz"):
        make_dataset(str(npy), 0)
    with pytest.raises(DatasetError, match="cannot read .*nothere.npz: No such file"):
        make_dataset(str(tmp_path / "nothere.npz"), 0)
