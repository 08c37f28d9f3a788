"""The command line as a user meets it: real subprocesses, real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.engine.stepper import Stepper
from core.model.config import Config
from tui_backprop.cli import export_names, main

EXE = [sys.executable, "-m", "tui_backprop.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_export_writes_every_named_matrix_of_the_iteration(tmp_path: Path) -> None:
    out = tmp_path / "s.npz"
    res = run("export", "--preset", "xor-3", "--iteration", "5", "--out", str(out))
    assert res.returncode == 0, res.stderr
    with np.load(out, allow_pickle=False) as f:
        got = dict(f)
    from core.model.presets import preset_config

    s = Stepper(preset_config("xor-3"))
    s.jump(5, 0)
    expected = s.frame.arrays()
    assert sorted(got) == sorted(export_names(2, preset_config("xor-3").bias))
    for k, v in got.items():
        assert np.array_equal(v, expected[k]), k
    # W1 is the weight *before* iteration 5's update: what z1 was computed with
    assert np.allclose(got["X"] @ got["W1"] + got["b1"], got["z1"])
    # the chain rule holds between the exported factors (to rounding: a full-batch MSE
    # run computes dL/dz2 directly with the 1/N folded in, as softmax·CE does)
    assert np.allclose(got["dL_dh2"] * got["dh2_dz2"], got["dL_dz2"], rtol=1e-13, atol=0)


def test_export_with_biases_and_depth(tmp_path: Path) -> None:
    out = tmp_path / "deep.npz"
    assert main(["export", "--hidden", "4,3", "--bias", "--loss", "ce", "--iteration", "0",
                 "--out", str(out)]) == 0
    with np.load(out) as f:
        assert set(f.files) == set(export_names(3, True))
        assert f["dh3_dz3"].shape == (300, 2, 2)  # softmax Jacobian per row


def test_export_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "s.npz"
    out.write_bytes(b"precious")
    res = run("export", "--iteration", "0", "--out", str(out))
    assert_one_line_error(res, "exists", "--force")
    assert out.read_bytes() == b"precious"
    assert run("export", "--iteration", "0", "--out", str(out), "--force").returncode == 0
    assert np.load(out)["loss"].shape == ()


def test_presets_lists_every_preset() -> None:
    from core.model.presets import PRESETS

    res = run("presets")
    assert res.returncode == 0
    for name in PRESETS:
        assert name in res.stdout


def test_presets_listing_shows_each_presets_validated_network_and_rate() -> None:
    """The listing reads the presets' changes (no Config, for start-up): what it shows
    must be what the validated Config of each preset has."""
    from core.model.datasets import make_dataset
    from core.model.presets import PRESETS, preset_config

    res = run("presets")
    heads = [line for line in res.stdout.splitlines() if " · " in line]
    assert len(heads) == len(PRESETS)
    for name, head in zip(PRESETS, heads, strict=True):
        cfg = preset_config(name)
        data = make_dataset(cfg.dataset, cfg.seed, cfg.outputs)
        net = "-".join(str(w) for w in (data.X.shape[1], *cfg.hidden,
                                        cfg.outputs or data.n_classes))
        assert head.startswith(name)
        assert f" {net} {cfg.dataset} " in head and f"lr={cfg.lr:g}" in head, head


def test_help_documents_each_run_option() -> None:
    res = run("export", "--help")
    for flag in ("--preset", "--config", "--hidden", "--activation", "--loss", "--lr",
                 "--lr-decay", "--reg", "--reg-kind", "--clip", "--batch-size", "--bias",
                 "--no-bias", "--init", "--dtype", "--dataset", "--seed"):
        assert flag in res.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("args, words", [
    (["--preset", "nope"], ["unknown preset", "xor-3"]),
    (["--hidden", "-3"], ["hidden width", ">= 1"]),
    (["--hidden", "3,x"], ["'x'"]),
    (["--lr", "0"], ["lr", "> 0"]),
    (["--lr", "-1"], ["lr"]),
    (["--lr", "nan"], ["lr", "finite"]),
    (["--activation", "gelu"], ["activation"]),
    (["--batch-size", "-2"], ["batch_size"]),
    (["--dataset", "mnist"], ["unknown dataset"]),
    (["--dataset", "missing.csv"], ["missing.csv"]),
    (["--outputs", "1"], ["outputs"]),
    (["--bogus"], ["unrecognized"]),
])
def test_bad_run_options_give_one_line(args: list[str], words: list[str], tmp_path: Path) -> None:
    out = tmp_path / "x.npz"
    res = run("export", *args, "--iteration", "0", "--out", str(out))
    assert_one_line_error(res, *words)
    assert not out.exists()


def test_bad_data_files(tmp_path: Path) -> None:
    ragged = write(tmp_path / "ragged.csv", "1,2,0\n3,4\n")
    words = write(tmp_path / "words.csv", "1,2,0\n3,four,1\n")
    np.savez(tmp_path / "nox.npz", A=np.zeros((3, 2)), y=np.zeros(3))
    np.savez(tmp_path / "wide.npz", X=np.zeros((4, 2)), y=np.array([0, 1, 2, 3]))
    for path, w in [(ragged, ["line 2"]), (words, ["four"]), (tmp_path / "nox.npz", ["'X'"])]:
        assert_one_line_error(run("export", "--dataset", str(path), "--iteration", "0",
                                  "--out", str(tmp_path / "o.npz")), *w)
    assert_one_line_error(run("export", "--dataset", str(tmp_path / "wide.npz"), "--outputs",
                              "2", "--iteration", "0", "--out", str(tmp_path / "o.npz")),
                          "4 classes", "output width")
    assert not (tmp_path / "o.npz").exists()


def test_toml_config_and_flag_precedence(tmp_path: Path) -> None:
    toml = write(tmp_path / "run.toml", 'preset = "xor-3"\nlr = 0.25\nhidden = [4, 2]\n'
                 '[detect]\nexplode_factor = 5.0\n')
    from tui_backprop.cli import build_parser
    from tui_backprop.options import config_from_args

    args = build_parser().parse_args(["export", "--config", str(toml), "--lr", "0.5",
                                      "--iteration", "0", "--out", "o.npz"])
    cfg = config_from_args(args)
    assert cfg.hidden == (4, 2) and cfg.lr == 0.5 and cfg.detect.explode_factor == 5.0
    bad = write(tmp_path / "bad.toml", "lr = 'fast'\n")
    assert_one_line_error(run("export", "--config", str(bad), "--iteration", "0", "--out",
                              str(tmp_path / "o.npz")), "bad.toml", "lr")
    broken = write(tmp_path / "broken.toml", "lr = = 1\n")
    assert_one_line_error(run("export", "--config", str(broken), "--iteration", "0", "--out",
                              str(tmp_path / "o.npz")), "broken.toml")


def test_a_csv_dataset_trains(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,label\n" + "\n".join(
        f"{a},{b},{c},{k}" for (a, b, c), k in zip(X, y, strict=True)))
    cfg = Config(hidden=(4,), dataset=str(path), lr=2.0)
    s = Stepper(cfg)
    s.run(200)
    loss = s.history.view().loss
    assert loss[-1] < loss[0]


def test_nan_during_training_is_not_an_error(tmp_path: Path) -> None:
    res = run("export", "--hidden", "3", "--activation", "relu", "--loss", "ce", "--lr",
              "1e100", "--iteration", "4", "--out", str(tmp_path / "n.npz"))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert not np.isfinite(np.load(tmp_path / "n.npz")["loss"])
