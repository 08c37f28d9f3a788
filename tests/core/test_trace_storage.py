"""Trace storage: compressed metric blocks, old formats, the optional SQL metrics table."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.engine.machine import SAT_EVERY
from core.engine.stepper import Stepper
from core.model.config import Config
from core.store.codec import pack, unpack
from core.store.metrics_table import column_names
from core.store.recorder import Recorder
from core.store.replay import Replay
from core.store.trace import FORMAT_VERSION, TraceReader

DATA = Path(__file__).parent / "data"
SEED_CFG = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)
NAN_CFG = Config(hidden=(6,), lr=200.0, activation="relu", loss="ce", init="he")
MINIBATCH_CFG = Config(hidden=(4, 3), lr=2.0, batch_size=10, bias=True, activation="tanh",
                       dataset="spiral", lr_decay=1e-3)
RECORD = {"seed": (SEED_CFG, 2000, 256), "nan": (NAN_CFG, 900, 256),  # (cfg, n, block)
          "minibatch": (MINIBATCH_CFG, 1300, 256), "odd blocks": (SEED_CFG, 1000, 100)}


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(st.sampled_from(["<f8", "<f4", "|u1", "<u2", "<u4", "<i8"]),
                  hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40)),
       st.integers(0, 2), st.booleans())
def test_codec_round_trips_every_bit(arr: np.ndarray, order: int, bytewise: bool) -> None:
    """Planar blobs, as the writer lays them out and with one plane per byte."""
    widths = (1,) * arr.dtype.itemsize if bytewise else None
    back = unpack(pack(arr, order, widths), arr.dtype.str, arr.shape)  # NaN payloads too
    assert back.shape == arr.shape and back.dtype == arr.dtype
    assert back.tobytes() == arr.tobytes()


@pytest.mark.parametrize("widths", [(8,), (4, 4), (2, 2, 4), (4, 2, 2), (1, 1, 2, 4)])
def test_every_plane_layout_of_a_float64_decodes(widths: tuple[int, ...]) -> None:
    rng = np.random.default_rng(3)
    arr = np.cumsum(rng.normal(size=(500, 2)), axis=0) ** 2  # smooth: some planes deflate
    arr[7, 1], arr[9, 0] = np.nan, -np.inf
    blob = pack(arr, 1, widths)
    assert blob[2] == len(widths) and list(blob[3::6][:len(widths)]) == list(widths)
    assert unpack(blob, "<f8", arr.shape).tobytes() == arr.tobytes()


def pack_legacy(arr: np.ndarray, order: int) -> bytes:
    """A blob as formats 3-6 wrote it (the writer of commit 2e33c00): deltas of the given
    order, zig-zag, byte shuffle, one raw deflate stream."""
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    k = a.dtype.itemsize
    u = a.reshape(len(a), int(np.prod(a.shape[1:], dtype=np.int64))).view(f"<u{k}")
    for _ in range(order):
        d = u.copy()
        np.subtract(u[1:], u[:-1], out=d[1:])
        u = d
    if order and k > 1:
        s = u.view(f"<i{k}")
        u = ((s << 1) ^ (s >> (8 * k - 1))).view(u.dtype)
    planes = u.reshape(-1).view(np.uint8).reshape(-1, k).T
    z = zlib.compressobj(1, zlib.DEFLATED, -15)
    return bytes([order]) + z.compress(np.ascontiguousarray(planes)) + z.flush()


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(st.sampled_from(["<f8", "<f4", "|u1", "<u2", "<i8"]),
                  hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40)),
       st.integers(0, 2))
def test_legacy_blobs_still_decode_every_bit(arr: np.ndarray, order: int) -> None:
    back = unpack(pack_legacy(arr, order), arr.dtype.str, arr.shape)
    assert back.tobytes() == arr.tobytes()


def per_block(path: Path) -> dict[str, np.ndarray]:
    """Every metric column, one block at a time with the codec alone (raw before format 3)."""
    con = sqlite3.connect(path)
    packed = int(dict(con.execute("SELECT key, value FROM meta"))["format_version"]) >= 3
    cols: dict[str, list[np.ndarray]] = {}
    for name, dtype, shape, data in con.execute(
            "SELECT name, dtype, shape, data FROM blocks ORDER BY start"):
        dims = tuple(json.loads(shape))
        arr = unpack(data, dtype, dims) if packed else np.frombuffer(data, dtype).reshape(dims)
        cols.setdefault(name, []).append(arr)
    con.close()
    return {k: np.concatenate(v) for k, v in cols.items()}


@pytest.mark.parametrize("name", [*RECORD, "format1.trace", "format2.trace", "format5.trace",
                                  "format6.trace"])
def test_the_reader_gives_every_bit_a_plain_per_block_decode_gives(name: str,
                                                                   tmp_path: Path) -> None:
    """The reader decodes blocks straight into one array per column and places sampled
    saturation rows by slicing (blocks of 100 start off the SAT_EVERY grid): each must
    hold what its stored block decodes to alone."""
    path = tmp_path / "run.trace"
    if name in RECORD:
        cfg, n, block = RECORD[name]
        record(path, cfg, n, block=block, every=64)
    else:
        shutil.copy(DATA / name, path)
    ref = per_block(path)
    with TraceReader(path) as tr:
        h, rows = tr.history.view(), tr.batch_rows(0, tr.n)
    assert h.loss.tobytes() == ref["loss"].tobytes()  # NaN payloads too
    assert h.grad_norm.tobytes() == ref["grad_norm"].tobytes()
    assert h.weight_norm.tobytes() == ref["weight_norm"].tobytes()
    assert h.acc.tobytes() == (ref["correct"] * (1.0 / rows)).tobytes()
    sampled = np.arange(len(h.loss)) % SAT_EVERY == 0
    assert h.saturation[sampled].tobytes() == ref["saturation"].tobytes()
    assert np.isnan(h.saturation[~sampled]).all()
    assert len(h.loss) > 3 * 256 or name.startswith("format")
    assert np.isnan(h.loss).any() == (name == "nan")  # NaN payloads are exercised


def raw_blocks(path: Path) -> dict[str, np.ndarray]:
    """Metric columns of an old (raw) trace, decoded here without the reader."""
    con = sqlite3.connect(path)
    cols: dict[str, list[np.ndarray]] = {}
    for name, dtype, shape, data in con.execute(
            "SELECT name, dtype, shape, data FROM blocks ORDER BY start"):
        cols.setdefault(name, []).append(np.frombuffer(data, dtype).reshape(json.loads(shape)))
    con.close()
    return {k: np.concatenate(v) for k, v in cols.items()}


@pytest.mark.parametrize("name,version", [("format1.trace", "1"), ("format2.trace", "2")])
def test_old_format_traces_still_open(name: str, version: str, tmp_path: Path) -> None:
    path = tmp_path / name
    shutil.copy(DATA / name, path)  # written by the recorder before format 3
    raw = raw_blocks(path)
    with sqlite3.connect(path) as con:
        assert dict(con.execute("SELECT key, value FROM meta"))["format_version"] == version
    with TraceReader(path) as tr:
        h = tr.history.view()
        assert tr.n == len(raw["loss"]) and tr.version == int(version)
        assert np.array_equal(h.loss, raw["loss"])
        assert np.array_equal(h.grad_norm, raw["grad_norm"])
        assert np.array_equal(h.weight_norm, raw["weight_norm"])
        assert np.array_equal(h.acc, raw["correct"] * (1.0 / tr.batch_rows(0, tr.n)))
        assert np.array_equal(h.saturation[::SAT_EVERY], raw["saturation"])
        assert (version == "2") == bool(tr.knobs)
    rp = Replay(path)
    rp.jump(rp.n - 1, "dL/dW1")
    assert rp.value.shape == rp.program.ops[rp.op_index(rp.n - 1, "dL/dW1")].shape
    rp.close()


@pytest.mark.parametrize("name,version", [("format1.trace", 1), ("format2.trace", 2),
                                          ("format5.trace", 5), ("format6.trace", 6)])
def test_old_traces_replay_identically_or_say_why_they_differ(name: str, version: int,
                                                              tmp_path: Path) -> None:
    """Formats 5 and 6 changed the arithmetic: re-executing an older trace either gives its
    recorded numbers or reports the divergence, naming the format.  Format 7 changed only
    the storage, so a format-6 trace (written by the format-6 recorder, legacy blobs)
    replays without divergence."""
    path = tmp_path / name
    shutil.copy(DATA / name, path)
    rp = Replay(path)
    try:
        for it in (0, rp.n - 1):
            rp.jump(it, 0)
            if rp.divergence is None:  # then the re-executed row is the recorded one
                row, rec = rp.history.view(it, it + 1), TraceReader(path).history.view(it, it + 1)
                assert np.array_equal(row.loss, rec.loss)
        if rp.divergence is not None:
            assert rp.divergence.startswith("re-execution differs from the recording")
            assert f"the trace is format {version}" in rp.divergence
            assert any(e.kind == "diverged" for e in rp.events)
        assert (rp.divergence is None) == (version == 6)
    finally:
        rp.close()


def record(path: Path, cfg: Config, n: int, **kw) -> Path:
    rec = Recorder(path, cfg, target=n, **kw)
    rec.run(n)
    rec.close()
    return path


def test_a_format_5_trace_opens_and_its_replay_names_the_change(tmp_path: Path) -> None:
    """Written by the format-5 recorder (seed preset, 600 iterations): it opens as it was
    recorded, and since format 6 forms the hidden σ' another way, its replay diverges
    and says so, rather than passing off re-executed digits as the recording."""
    path = tmp_path / "format5.trace"
    shutil.copy(DATA / "format5.trace", path)
    with TraceReader(path) as tr:
        assert tr.version == 5 and tr.n == 600
        h = tr.history.view()
        assert np.isfinite(h.loss).all() and h.loss[-1] < h.loss[0]
    rp = Replay(path)
    try:
        rp.jump(rp.n - 1, 0)
        assert rp.divergence is not None and "the trace is format 5" in rp.divergence
        assert "format 6: " in rp.divergence and "format 5: " not in rp.divergence
        # the recorded metrics are still what the history shows
        assert np.array_equal(rp.history.view().loss, h.loss)
    finally:
        rp.close()


def test_new_traces_are_format_7_and_their_blocks_are_compressed(tmp_path: Path) -> None:
    path = record(tmp_path / "run.trace", SEED_CFG, 5000, block=1024)
    with sqlite3.connect(path) as con:
        version = dict(con.execute("SELECT key, value FROM meta"))["format_version"]
        stored = con.execute("SELECT sum(length(data)) FROM blocks").fetchone()[0]
    assert version == str(FORMAT_VERSION) == "7"
    with TraceReader(path) as tr:
        h = tr.history.view()
        raw = h.loss.nbytes + h.grad_norm.nbytes + h.weight_norm.nbytes + tr.n  # + 1 B counts
        live = Stepper(SEED_CFG)
        live.run_until(lambda ev: None, max_iters=5000)
        for name in ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation"):
            assert np.array_equal(getattr(h, name), getattr(live.history.view(), name),
                                  equal_nan=True), name
    # smooth metrics: the high bytes of bit-pattern differences deflate to runs (the low,
    # noisy bytes stay raw): ~0.5 of raw over these 5000 fast-changing iterations, ~0.35
    # over a million
    assert stored < 0.6 * raw


@pytest.mark.parametrize("cfg", [SEED_CFG, NAN_CFG, Config(hidden=(4, 3), lr=0.5, bias=True)])
def test_the_sql_metrics_table_holds_the_recorded_metrics(tmp_path: Path, cfg: Config) -> None:
    path = record(tmp_path / "run.trace", cfg, 700, block=256, sql_metrics=True)
    with TraceReader(path) as tr:
        h, depth = tr.history.view(), tr.program.depth
    con = sqlite3.connect(path)  # plain sqlite3: no code of ours reads the table
    rows = con.execute("SELECT * FROM metrics ORDER BY iteration").fetchall()
    names = [d[0] for d in con.execute("SELECT * FROM metrics LIMIT 0").description]
    assert names == column_names(depth)
    table = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)
    assert np.array_equal(table[:, 0], np.arange(700))
    expect = np.column_stack([h.loss, h.acc, h.lr, h.grad_norm, h.weight_norm, h.saturation])
    assert np.array_equal(table[:, 1:], expect, equal_nan=True)
    cut = float(np.nanmedian(h.loss))
    got = [r[0] for r in con.execute(f"select iteration, loss from metrics where loss > {cut!r}")]
    assert got == np.flatnonzero(h.loss > cut).tolist() and got
    con.close()


def test_an_unclosed_recording_has_sql_rows_up_to_its_last_commit(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run.trace", SEED_CFG, block=64, every=32, sql_metrics=True)
    rec.run(100)
    rec.commit()
    rec.run(30)
    con = sqlite3.connect(f"{(tmp_path / 'run.trace').as_uri()}?mode=ro", uri=True)
    assert con.execute("SELECT count(*), max(iteration) FROM metrics").fetchone() == (100, 99)
    con.close()
    rec.close()
    with TraceReader(tmp_path / "run.trace") as tr:
        assert tr.n == 130
