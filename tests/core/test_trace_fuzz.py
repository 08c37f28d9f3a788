"""Damaged traces: every kind of bad file is one `error:` line, never a traceback.

Each class of damage is made by hand from a real trace, then hundreds of random
byte flips and truncations go through the reader, `info` and `export`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.model.config import Config
from core.store.codec import pack
from core.store.recorder import Recorder
from core.store.replay import Replay
from core.store.trace import FORMAT_VERSION, TraceError, TraceReader
from tui_backprop import cli

ALL_WRONG = pack(np.full(64, 65535, "<u2"))  # 65535 of N rows right, in every iteration
CFG = Config(hidden=(6,), lr=200.0, activation="relu", loss="ce", init="he")  # has events


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("traces")
    out = {}
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", X=rng.standard_normal((30, 3)), y=rng.integers(0, 3, 30))
    for name, cfg in (("builtin", CFG), ("arrays", Config(hidden=(4,), dataset=str(
            folder / "data.npz"), loss="ce", lr=0.5))):
        rec = Recorder(folder / f"{name}.trace", cfg, block=64, every=16)
        rec.run(300)
        rec.close()
        out[name] = folder / f"{name}.trace"
    return out


def sql(*statements: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        con = sqlite3.connect(path)
        for s in statements:
            con.execute(s)
        con.commit()
        con.close()
    return damage


def write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def config_text(text: str) -> Callable[[Path], None]:
    return sql(f"UPDATE meta SET value = '{text}' WHERE key = 'config'")


def reblob(name: str, start: int, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Replace a block's stored blob and fix its CRC: damage the checksum cannot see."""
    def damage(path: Path) -> None:
        con = sqlite3.connect(path)
        (blob,) = con.execute("SELECT data FROM blocks WHERE name = ? AND start = ?",
                              (name, start)).fetchone()
        new = change(blob)
        con.execute("UPDATE blocks SET data = ?, crc = ? WHERE name = ? AND start = ?",
                    (new, zlib.crc32(new), name, start))
        con.commit()
        con.close()
    return damage


def deflate(data: bytes) -> bytes:
    z = zlib.compressobj(1, zlib.DEFLATED, -15)  # a raw stream, as core/store/codec.py stores
    return z.compress(data) + z.flush()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "nonexistent": (lambda p: p.unlink(), "no such file"),
    "zero-length": (write(b""), "empty file"),
    "not sqlite": (write(b"hello, I am a CSV file\n1,2,3\n"), "not an SQLite database"),
    "other sqlite": (lambda p: (p.unlink(), sql("CREATE TABLE t(x)")(p)),
                     "not a tui-backprop trace"),
    "truncated": (truncate, "damaged trace"),
    "header only": (lambda p: p.write_bytes(p.read_bytes()[:100]), "damaged trace"),
    "newer format": (sql(f"UPDATE meta SET value = '{FORMAT_VERSION + 1}' "
                         "WHERE key = 'format_version'"), "newer tui-backprop"),
    "missing table": (sql("DROP TABLE events"), "missing table 'events'"),
    "missing meta": (sql("DELETE FROM meta WHERE key = 'block_size'"), "block_size"),
    "wrong dtype": (sql("UPDATE blocks SET dtype = '<f4' WHERE name = 'loss'"),
                    "dtype <f4, expected <f8"),
    "object dtype": (sql("UPDATE blocks SET dtype = '|O' WHERE name = 'loss'"),
                     "unsupported dtype"),
    "shape vs bytes": (sql("UPDATE checkpoints SET shape = '[2, 7]' WHERE name = 'W1'"),
                       "bytes do not"),
    "short blob": (sql("UPDATE checkpoints SET data = substr(data, 1, 9) WHERE name = 'W1'"),
                   "bytes do not"),
    "short block": (sql("UPDATE blocks SET data = substr(data, 1, 9) WHERE name = 'grad_norm'"),
                    "checksum"),
    "short block, CRC fixed": (reblob("grad_norm", 0, lambda b: b[:9]), "block 0: "),
    "legacy block too long": (reblob("loss", 64, lambda b: b"\x02" + deflate(bytes(1000))),
                              "more than 512 bytes do not hold"),
    "plane too long": (reblob("loss", 64, lambda b: pack(np.zeros(1000))),
                       "block 64: more than 128 bytes do not hold a plane of 128"),
    "raw plane short": (reblob("loss", 0, lambda b: bytes([3, 0, 1, 8, 0]) + (504).to_bytes(
        4, "little") + bytes(504)), "a plane of 504 bytes, expected 512"),  # tag, order, ...
    "plane kind": (reblob("loss", 0, lambda b: b[:4] + b"\x09" + b[5:]),
                   "unknown plane kind 9"),
    "plane width": (reblob("grad_norm", 0, lambda b: b[:3] + b"\x03" + b[4:]),
                    "a plane of 3 bytes at byte 0 of a 8-byte value"),
    "planes short of the value": (reblob("loss", 0, lambda b: pack(np.zeros(64), 0, (4, 4))[:2]
                                         + b"\x01" + pack(np.zeros(64), 0, (4, 4))[3:9]
                                         + pack(np.zeros(64), 0, (4,))[9:]), "planes of 4 bytes"),
    "bytes after the planes": (reblob("loss", 0, lambda b: b + b"\0"), "where the planes take"),
    "plane table cut": (reblob("loss", 0, lambda b: b[:7]), "truncated block header"),
    "block codec": (reblob("loss", 0, lambda b: b"\x07" + b[1:]), "not a compressed"),
    "text blob": (sql("UPDATE blocks SET data = 'abc' WHERE name = 'loss'"), "not a blob"),
    "bad shape": (sql("UPDATE blocks SET shape = '[64, -1]' WHERE name = 'grad_norm'"),
                  "bad shape"),
    "NaN in config": (config_text(json.dumps(CFG.to_dict()).replace("200.0", "NaN")),
                      "NaN is not allowed"),
    "inf in config": (config_text(json.dumps(CFG.to_dict()).replace("200.0", "1e999")),
                      "lr must be finite"),
    "config not JSON": (config_text("{hidden"), "not valid JSON"),
    "config a JSON list": (config_text("[1, 2]"), "not a list"),
    "config float int": (config_text(json.dumps(CFG.to_dict()).replace('"seed": 0',
                                                                       '"seed": 0.0')),
                         "seed must be an integer"),
    "meta target text": (sql("UPDATE meta SET value = 'abc' WHERE key = 'target'"),
                         "meta target"),
    "meta status": (sql("UPDATE meta SET value = 'maybe' WHERE key = 'status'"),
                    "meta status"),
    "negative count": (sql("UPDATE blocks SET count = -64 WHERE start = 0"), "breaks the"),
    "gap in blocks": (sql("DELETE FROM blocks WHERE start = 64"), "breaks the"),
    "negative checkpoint": (sql("UPDATE checkpoints SET iteration = -16 WHERE iteration = 16"),
                            "outside the recorded run"),
    "checkpoint past the end": (sql("UPDATE checkpoints SET iteration = 301 "
                                    "WHERE iteration = 16"), "301, 'W1'"),
    "text checkpoint iteration": (sql("UPDATE checkpoints SET iteration = 'x' "
                                      "WHERE iteration = 16 AND name = 'W2'"),
                                  "'x', 'W2'"),
    "unknown parameter": (sql("UPDATE checkpoints SET name = 'W9' WHERE iteration = 32 "
                              "AND name = 'W1'"), "32, 'W9'"),
    "checkpoint dtype": (sql("UPDATE checkpoints SET dtype = '<f4' WHERE name = 'W2'"),
                         "checkpoint 0 W2: 96 bytes do not hold a <f4 array"),
    "missing checkpoint": (sql("DELETE FROM checkpoints WHERE name = 'W2' AND iteration = 32"),
                           "checkpoints are missing"),
    "negative event": (sql("UPDATE events SET iteration = -1"), "bad event row"),
    "unknown event kind": (sql("UPDATE events SET kind = 'boom'"), "bad event row"),
    "negative meta": (sql("UPDATE meta SET value = '-3' WHERE key = 'checkpoint_every'"),
                      "checkpoint_every"),
    "accuracy count": (sql(f"UPDATE blocks SET data = x'{ALL_WRONG.hex()}', dtype = '<u2', "
                           f"crc = {zlib.crc32(ALL_WRONG)} "
                           "WHERE name = 'correct' AND start = 0"), "counts out of range"),
    "flipped value": (sql("UPDATE blocks SET data = zeroblob(length(data)) "
                          "WHERE name = 'weight_norm' AND start = 128"), "checksum"),
}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(args)
    return code, capsys.readouterr().err


def assert_one_error_line(code: int, err: str, expect: str = "") -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expect in err


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_each_damage_class_is_one_error_line(kind: str, traces: dict[str, Path],
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.trace"
    shutil.copy(traces["builtin"], path)
    damage, expect = DAMAGE[kind]
    damage(path)
    with pytest.raises(TraceError, match=expect) as err:
        TraceReader(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert_one_error_line(*run_cli(["info", str(path)], capsys), expect)
    out = tmp_path / "out.npz"
    assert_one_error_line(*run_cli(["export", str(path), "--iteration", "3", "--out", str(out)],
                                   capsys), expect)
    assert not out.exists()


def test_the_first_damaged_block_is_the_one_named(traces: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Several blocks damaged past their CRC: the error names the earliest, as one line."""
    path = tmp_path / "run.trace"
    shutil.copy(traces["builtin"], path)
    reblob("loss", 256, lambda b: b"\x07" + b[1:])(path)
    reblob("grad_norm", 64, lambda b: b"\x02" + deflate(bytes(100)))(path)
    reblob("weight_norm", 128, lambda b: b[:9])(path)
    with pytest.raises(TraceError, match=r"block 64: 100 bytes do not hold") as err:
        TraceReader(path)
    assert "\n" not in str(err.value)
    assert_one_error_line(*run_cli(["info", str(path)], capsys), "block 64: 100 bytes")


def test_tampered_dataset_arrays_are_refused(traces: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "run.trace"
    shutil.copy(traces["arrays"], path)
    sql("UPDATE dataset SET data = zeroblob(length(data)) WHERE name = 'X'")(path)
    with pytest.raises(TraceError, match="checksum"):
        TraceReader(path)


def test_iteration_outside_the_recording(traces: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.npz"
    args = ["export", str(traces["builtin"]), "--iteration", "300", "--out", str(out)]
    assert_one_error_line(*run_cli(args, capsys), "outside the recorded range")
    assert_one_error_line(*run_cli(["replay", str(traces["builtin"]), "--iteration", "999"],
                                   capsys), "(0..299)")
    assert not out.exists()


def damaged_copies(src: Path, folder: Path, count: int, seed: int) -> list[Path]:
    """Random byte flips, zeroed runs and truncations of a real trace."""
    rng = np.random.default_rng(seed)
    data = src.read_bytes()
    paths = []
    for k in range(count):
        b = bytearray(data)
        how = k % 3
        if how == 0:
            for at in rng.integers(0, len(b), int(rng.integers(1, 9))):
                b[at] ^= 1 << int(rng.integers(8))
        elif how == 1:
            at = int(rng.integers(0, len(b)))
            n = min(int(rng.integers(1, 600)), len(b) - at)
            b[at:at + n] = bytes(n)
        else:
            b = b[: int(rng.integers(0, len(b)))]
        path = folder / f"d{seed}-{k}.trace"
        path.write_bytes(bytes(b))
        paths.append(path)
    return paths


@pytest.mark.parametrize("which", ["builtin", "arrays"])
def test_random_damage_never_raises_a_traceback(which: str, traces: dict[str, Path],
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.npz"
    opened = 0
    for path in damaged_copies(traces[which], tmp_path, 150, seed=len(which)):
        try:
            rp = Replay(path)
        except TraceError as exc:
            assert "\n" not in str(exc)
        else:  # damage inside values: it opens, and re-execution says where it differs
            opened += 1
            try:
                rp.jump(int(np.random.default_rng(opened).integers(rp.n)) if rp.n else -1)
            except TraceError as exc:  # a checkpoint's pages are read only when needed
                assert "\n" not in str(exc)
            rp.close()
        for args in (["info", str(path)],
                     ["export", str(path), "--iteration", "7", "--out", str(out), "--force"]):
            code, err = run_cli(args, capsys)
            if code != 0:
                assert_one_error_line(code, err)
    assert opened > 0
