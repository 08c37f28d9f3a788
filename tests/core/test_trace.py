"""Saved traces: what is recorded equals the live run, and replay re-executes it exactly."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.engine.history import History, MetricsBlock
from core.engine.machine import SAT_EVERY, Machine
from core.engine.stepper import Stepper
from core.inspect.detectors import scan
from core.model.config import Config, Detect
from core.model.datasets import Dataset
from core.store.recorder import Recorder, scan_tail
from core.store.replay import Replay
from core.store.trace import TraceError, TraceReader, encode_block

SEED_CFG = Config(hidden=(10,), lr=1e-3, reg=1e-4, limit=50)
NAN_CFG = Config(hidden=(6,), lr=200.0, activation="relu", loss="ce", init="he")
MINIBATCH_CFG = Config(hidden=(4, 3), lr=2.0, batch_size=10, bias=True, activation="tanh",
                       dataset="spiral", clip=5.0)
SPIKY_CFG = Config(hidden=(8,), lr=3.0, activation="relu", loss="ce", batch_size=16, limit=64)
TOUCHY_CFG = SPIKY_CFG.replace(detect={"window": 32, "spike_factor": 1.02, "rise_iters": 2,
                                       "explode_factor": 1.3})  # events everywhere
COLUMNS = ("loss", "acc", "lr", "grad_norm", "weight_norm", "saturation")


def record(path: Path, cfg: Config, n: int, data: Dataset | None = None, **kw) -> Path:
    rec = Recorder(path, cfg, data, target=n, **kw)
    rec.run(n)
    rec.close()
    return path


def live_history(cfg: Config, n: int, data: Dataset | None = None) -> Stepper:
    s = Stepper(cfg, data)
    s.run_until(lambda ev: None, max_iters=n)
    return s


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("cfg,n", [(SEED_CFG, 700), (NAN_CFG, 700), (MINIBATCH_CFG, 1500),
                                   (SPIKY_CFG, 1000), (TOUCHY_CFG, 1000)])
def test_recorded_metrics_and_events_equal_the_live_run(tmp_path: Path, cfg: Config,
                                                        n: int) -> None:
    # small blocks: the recorder scans for events in its trimmed window many times
    path = record(tmp_path / "run.trace", cfg, n, block=128, every=32)
    live = live_history(cfg, n)
    with TraceReader(path) as tr:
        assert tr.n == n and tr.status == "complete"
        for name in COLUMNS:
            a, b = (getattr(h.view(0, n), name) for h in (tr.history, live.history))
            assert np.array_equal(a, b, equal_nan=True), name
        assert tr.events == live.events
        assert tr.checkpoints == [*range(0, n, 32), n]
    if cfg is NAN_CFG:
        assert any(e.kind == "nan" and "produced the first NaN" in e.detail  # located
                   for e in live.events)


SPIKE_AT, EXPLODE_AT = 900, 1200  # injected: far past the recorder's trimmed window


def _inject_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Machine.run_fast report a loss spike and an exploding gradient at fixed iterations.

    The detectors must find events long after the recorder trimmed its window (~130
    rows).  Where a real run has its events depends on the CPU's rounding, so the
    events are put into the metrics stream itself: live and recorded runs see the same
    stream, and the expected iterations do not depend on any trajectory.
    """
    real = Machine.run_fast

    def run_fast(self: Machine, count: int, metrics: bool = True) -> MetricsBlock | None:
        block = real(self, count, metrics)
        if block is None:  # re-executed iterations: their metrics are known
            return None
        for at, col, factor in ((SPIKE_AT, "loss", 10.0), (EXPLODE_AT, "grad_norm", 1e3)):
            if block.start <= at < block.start + len(block):
                getattr(block, col)[at - block.start] *= factor
        return block

    monkeypatch.setattr(Machine, "run_fast", run_fast)


def test_events_long_after_the_window_was_trimmed_are_recorded_as_live(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _inject_events(monkeypatch)
    n = 1500
    path = record(tmp_path / "run.trace", SEED_CFG, n, block=128, every=32)
    live = live_history(SEED_CFG, n)
    with TraceReader(path) as tr:
        assert tr.events == live.events
        assert np.array_equal(tr.history.view(0, n).loss, live.history.view(0, n).loss)
    found = {(e.iteration, e.kind) for e in live.events}
    assert (SPIKE_AT, "spike") in found and (EXPLODE_AT, "explode") in found, live.events


@pytest.mark.parametrize("window", [32, 64, 100])
def test_scanning_the_kept_tail_finds_the_events_of_a_full_scan(window: int) -> None:
    """The recorder keeps only scan_tail(...) onwards: detectors must not see a difference."""
    rng = np.random.default_rng(window)
    n, depth = 4000, 3
    det = Detect(window=window, rise_iters=5, spike_factor=1.3, explode_factor=2.0,
                 saturation_share=0.8)
    b = MetricsBlock.empty(0, n, depth)
    b.loss[:] = np.exp(rng.normal(0, 0.3, n)) * np.where(rng.random(n) < 0.01, 5, 1)
    b.loss[rng.random(n) < 0.002] = np.nan
    b.acc[:], b.lr[:] = 0.5, 0.1
    b.grad_norm[:] = np.exp(rng.normal(0, 0.4, (n, depth))) * np.where(
        rng.random((n, depth)) < 0.01, 10, 1)
    b.weight_norm[:] = 1.0
    rows = np.arange(n) % SAT_EVERY == 0
    b.saturation[rows] = rng.uniform(0.5, 1.0, (rows.sum(), depth - 1))
    full = History(depth, n)
    full.append(b)
    ops = ["dL/dW1", "dL/dW2", "dL/dW3"]
    found = 0
    for start in range(0, n, 250):
        stop = min(n, start + 250)
        base = scan_tail(start, det)
        tail = History(depth, n)
        tail.append(replace(full.view(base, stop), start=0))
        shifted = [replace(e, iteration=e.iteration + base)
                   for e in scan(tail, start - base, stop - base, det, ops)]
        assert shifted == scan(full, start, stop, det, ops), start
        found += len(shifted)
    assert found > 20


@pytest.mark.parametrize("cfg", [SEED_CFG, MINIBATCH_CFG,
                                 Config(hidden=(5,), dtype="float32", loss="ce", lr=0.5)])
def test_replay_shows_exactly_what_a_live_run_shows(tmp_path: Path, cfg: Config) -> None:
    path = record(tmp_path / "run.trace", cfg, 300, every=16)
    rp, live = Replay(path), Stepper(cfg)
    for it, op in [(0, 0), (250, "dL/dW1"), (17, -1), (299, 3), (31, 0), (16, "h1"), (290, -1)]:
        rp.jump(it, op)
        live.jump(it, op)
        assert rp.position == live.position
        assert np.array_equal(rp.value, live.value) and rp.value.dtype == live.value.dtype
    for _ in range(40):  # stepping back across iteration boundaries
        rp.back()
        live.back()
        assert np.array_equal(rp.value, live.value)
    assert rp.divergence is None and rp.n == 300


def test_replay_stops_at_the_end_of_the_recording(tmp_path: Path) -> None:
    rp = Replay(record(tmp_path / "run.trace", SEED_CFG, 50))
    rp.jump(49, -1)
    assert not rp.step() and not rp.next_iteration() and rp.position == (49, 15)
    rp.jump(49, 0)
    rp.next_phase()
    rp.next_phase()
    rp.next_phase()
    rp.next_phase()  # already in the last phase: stays on the last op
    assert rp.position == (49, 15)
    with pytest.raises(ValueError, match="outside the recorded range 0..49"):
        rp.jump(50)
    rp.jump(10)
    rp.run(1000)
    assert rp.position == (49, 0)
    rp.step()
    rp.run(5)  # nothing left to run: the cursor stays
    assert rp.position == (49, 1)
    rp.jump(10)
    assert rp.run_until(max_iters=1000) is None and rp.iteration == 49


def _edit(path: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(path)
    con.execute(sql, args)
    con.commit()
    con.close()


def test_replay_names_the_first_iteration_that_diverges(tmp_path: Path) -> None:
    path = record(tmp_path / "run.trace", SEED_CFG, 200, block=64, every=32)
    with TraceReader(path) as tr:
        loss = tr.history.view(0, 200).loss.copy()
    loss[70] += 1e-12  # a recorded value this machine will not reproduce
    _, _, data, crc = encode_block(loss[64:128])  # as another machine might have recorded it
    _edit(path, "UPDATE blocks SET data = ?, crc = ? WHERE start = 64 AND name = 'loss'",
          data, crc)
    rp = Replay(path)
    rp.jump(60)
    rp.jump(100, "L")  # re-executed from the checkpoint at 96: 70 is not checked
    assert rp.divergence is None
    rp.jump(80, "L")  # from 64: through 70
    assert rp.divergence and "iteration 70" in rp.divergence and "loss" in rp.divergence
    assert [e.iteration for e in rp.events if e.kind == "diverged"] == [70]


def test_a_damaged_checkpoint_shows_as_divergence_after_it(tmp_path: Path) -> None:
    path = record(tmp_path / "run.trace", SEED_CFG, 200, every=32)
    with TraceReader(path) as tr:
        w = tr.checkpoint(96)["W1"]
    data = (w * 1.001).tobytes()
    _edit(path, "UPDATE checkpoints SET data = ?, crc = ? WHERE iteration = 96 AND name = 'W1'",
          data, zlib.crc32(data))
    rp = Replay(path)
    rp.jump(100)
    assert rp.divergence and "iteration 96" in rp.divergence


def test_a_flipped_bit_in_stored_values_is_an_error(tmp_path: Path) -> None:
    path = record(tmp_path / "run.trace", SEED_CFG, 200, every=32)
    _edit(path, "UPDATE checkpoints SET data = zeroblob(length(data)) WHERE iteration = 96 "
          "AND name = 'W2'")
    rp = Replay(path)  # checkpoints are read when needed
    with pytest.raises(TraceError, match="checkpoint 96 W2: data does not match its checksum"):
        rp.jump(100)
    _edit(path, "UPDATE blocks SET data = zeroblob(length(data)) WHERE name = 'loss'")
    with pytest.raises(TraceError, match="block 0: data does not match its checksum"):
        TraceReader(path)


def test_checkpoints_are_every_stored_row_found_by_a_table_scan(tmp_path: Path) -> None:
    """Opening lists checkpoints from aggregates of one scan; each must load the very
    row a plain query finds, parameters in stored order."""
    path = record(tmp_path / "run.trace", MINIBATCH_CFG, 300, every=16)
    con = sqlite3.connect(path)
    rows = con.execute("SELECT iteration, name, data FROM checkpoints ORDER BY rowid").fetchall()
    con.close()
    with TraceReader(path) as tr:
        assert tr.checkpoints == sorted({it for it, _, _ in rows}) and len(tr.checkpoints) > 10
        for it, name, data in rows:
            assert tr.checkpoint(it)[name].tobytes() == data
        assert list(tr.checkpoint(0)) == [name for it, name, _ in rows if it == 0]
        with pytest.raises(TraceError, match="damaged trace"):
            tr.checkpoint(17)  # not a checkpoint
    # a shape spelled another way is not what the recorder writes, yet valid: it opens
    _edit(path, "UPDATE checkpoints SET shape = '[2,4]' WHERE name = 'W1'")
    with TraceReader(path) as tr:
        assert tr.checkpoint(32)["W1"].shape == (2, 4)
        assert tr.checkpoints == sorted({it for it, _, _ in rows})


def test_user_dataset_is_stored_so_replay_needs_no_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 3, 40)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    cfg = Config(hidden=(5,), dataset=str(tmp_path / "data.npz"), limit=30, loss="ce")
    path = record(tmp_path / "run.trace", cfg, 120, every=8)
    os.remove(tmp_path / "data.npz")
    rp = Replay(path)
    rp.jump(117, "dL/dW1")
    live = Stepper(cfg, Dataset("d", X, y, 3))
    live.jump(117, "dL/dW1")
    assert np.array_equal(rp.value, live.value) and rp.divergence is None
    assert rp.machine.X.shape == (30, 3)


def test_reading_never_changes_the_file(tmp_path: Path) -> None:
    path = record(tmp_path / "run.trace", SEED_CFG, 100)
    before = digest(path)
    rp = Replay(path)
    rp.jump(99, -1)
    rp.close()
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["run.trace"]  # no -wal/-shm left behind


def test_an_unclosed_recording_is_readable_and_reading_leaves_it_alone(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run.trace", SEED_CFG, block=64, every=32)
    rec.run(100)
    rec.commit()
    rec.run(50)  # not committed: a kill here loses these
    main, wal = tmp_path / "run.trace", tmp_path / "run.trace-wal"
    before = digest(main), digest(wal)
    with TraceReader(main) as tr:
        assert tr.n == 100 and tr.status == "recording"
    assert (digest(main), digest(wal)) == before
    rec.close()


def test_recorder_refuses_to_overwrite_and_force_keeps_old_until_new_is_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = record(tmp_path / "run.trace", SEED_CFG, 30)
    before = digest(path)
    with pytest.raises(TraceError, match="exists; pass --force"):
        Recorder(path, SEED_CFG)

    def fail(*a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    rec = Recorder(path, SEED_CFG.replace(seed=1), force=True)
    rec.run(10)
    assert digest(path) == before  # --force replaces at the first commit with iterations
    with pytest.raises(TraceError, match="cannot write .*No space left on device.*unchanged"):
        rec.close()
    assert digest(path) == before and sorted(os.listdir(tmp_path)) == ["run.trace"]
    monkeypatch.undo()
    record(path, SEED_CFG.replace(seed=1), 20, force=True)
    with TraceReader(path) as tr:
        assert tr.n == 20 and tr.cfg.seed == 1


def test_recorder_memory_is_bounded(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run.trace", SEED_CFG, block=256, every=64)
    rec.run(5000)
    assert len(rec.hist) <= 256 + 4 * SEED_CFG.detect.window + SEED_CFG.detect.rise_iters
    rec.close()
    with TraceReader(tmp_path / "run.trace") as tr:
        assert tr.n == 5000


def test_checkpoint_spacing_follows_net_size(tmp_path: Path) -> None:
    small = Recorder(tmp_path / "a.trace", SEED_CFG)
    big = Recorder(tmp_path / "b.trace", Config(hidden=(256,), dataset="random"),
                   Dataset("r", np.zeros((256, 64)), np.arange(256) % 10, 10))
    assert small.every >= 256 and big.every < small.every
    small.close()
    big.close()
