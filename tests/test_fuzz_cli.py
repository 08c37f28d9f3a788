"""Fuzzing the command line: generated flags, TOML documents and damaged traces.

Whatever hypothesis makes, `tui-backprop` either works (exit 0) or prints exactly
one `error: ...` line with exit status 2 — never a traceback, never a hang.
Runs in-process (cli.main) so a few hundred cases fit in well under 30 s;
successful configs are kept small (widths below 1000) so none of them trains long.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui_backprop import cli

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

junk = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789.,-+eEx nai", max_size=4),
    st.sampled_from(["", "0", "1", "-1", "1e308", "1e-320", "nan", "inf", "2.0", "3,3"]),
)
FLAGS = {
    "--hidden": st.one_of(st.sampled_from(["3", "2,2", "0", "-3", "3,,3", "1000000"]),
                          st.text(alphabet="0123456789,", max_size=3)),
    "--activation": st.sampled_from(["sigmoid", "relu", "gelu", ""]),
    "--loss": st.sampled_from(["mse", "ce", "hinge"]),
    "--lr": junk, "--lr-decay": junk, "--reg": junk, "--clip": junk,
    "--batch-size": junk, "--limit": junk, "--outputs": junk, "--seed": junk,
    "--preset": st.sampled_from(["", "xor-3", "scratch-mlp", "nope"]),
    "--dataset": st.sampled_from(["xor", "spiral", "", "mnist", "missing.csv", "x.npz"]),
    "--dtype": st.sampled_from(["float32", "float16"]),
    "--iteration": junk,
}


def clean(code: int, err: str) -> None:
    """Success, or one error line with status 2."""
    assert "Traceback" not in err and "Warning" not in err, err
    if code != 0:
        assert code == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1, err


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(FLAGS)), st.just(None), max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: FLAGS[k] for k in keys})))
def test_generated_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         flags: dict[str, str]) -> None:
    flags.setdefault("--iteration", "2")
    if flags["--iteration"].strip().isdigit() and int(flags["--iteration"]) > 50:
        flags["--iteration"] = "50"  # a valid far iteration only costs time
    argv = ["export", "--out", str(tmp_path / "o.npz"), "--force"]
    for k, v in flags.items():
        argv.append(f"{k}={v}")
    clean(cli.main(argv), capsys.readouterr().err)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(),
                    st.text(max_size=6), st.sampled_from([0, 1, 2, 3, 2.0, 64, 1e12]))
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.lists(st.lists(st.integers(0, 9), max_size=2), max_size=2))
NAMES = ["hidden", "activation", "loss", "lr", "lr_decay", "reg", "reg_kind", "clip",
         "clip_kind", "batch_size", "bias", "init", "dtype", "dataset", "limit", "outputs",
         "seed", "preset", "window", "bogus"]
DETECT = ["explode_norm", "explode_factor", "vanish_norm", "spike_factor", "rise_iters",
          "saturation_share", "window", "nope"]


@FUZZ
@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=5),
       st.dictionaries(st.sampled_from(DETECT), values, max_size=3))
def test_generated_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        top: dict[str, object], detect: dict[str, object]) -> None:
    if isinstance(top.get("hidden"), int) and not isinstance(top["hidden"], bool):
        top["hidden"] = min(abs(top["hidden"]), 999) or top["hidden"]  # keep runs small
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    if detect:
        lines += ["[detect]"] + [f"{k} = {toml_value(v)}" for k, v in detect.items()]
    path = tmp_path / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    argv = ["export", "--config", str(path), "--iteration", "1", "--out",
            str(tmp_path / "o.npz"), "--force"]
    clean(cli.main(argv), capsys.readouterr().err)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 data: bytes) -> None:
    path = tmp_path / "run.toml"
    path.write_bytes(data)
    argv = ["export", "--config", str(path), "--iteration", "0", "--out",
            str(tmp_path / "o.npz"), "--force"]
    clean(cli.main(argv), capsys.readouterr().err)


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "run.trace"
    assert cli.main(["record", "--iterations", "300", "--checkpoint-every", "32",
                     "--hidden", "4", "--activation", "relu", "--loss", "ce",
                     "--out", str(path)]) == 0
    return path


@FUZZ
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                min_size=1, max_size=6), st.sampled_from(["info", "verify", "export"]))
def test_damaged_traces(small_trace: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str],
                        edits: list[tuple[float, int]], command: str) -> None:
    path = tmp_path / "bad.trace"
    shutil.copy(small_trace, path)
    data = bytearray(path.read_bytes())
    for where, byte in edits:
        data[int(where * len(data))] = byte
    path.write_bytes(bytes(data))
    argv = [command, str(path)] + (["--iteration", "250", "--out", str(tmp_path / "o.npz"),
                                     "--force"] if command == "export" else [])
    capsys.readouterr()
    code = cli.main(argv)
    captured = capsys.readouterr()
    err = "\n".join(line for line in captured.err.splitlines()
                    if not line.startswith("warning: "))  # re-execution noticed a change
    clean(code, err + "\n" if err else "")
