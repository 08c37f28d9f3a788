"""Record a user file's training run, and read it back: source, data, metrics, checkpoints.

One `.npz` (written whole, through a temp file and a rename; read with
allow_pickle=False — never pickle) holding:
  format   'tui-backprop-user-1'
  meta     JSON: display path, resolved path, sha256 of the source, seed, lr, iterations,
           checkpoint_every, parameter names
  source   the file's bytes (uint8), so a replay re-executes exactly what was recorded
  X, y     the data the run used
  loss (n,), grad_norm (n, P), weight_norm (n, P)    per-iteration metrics to check against
  ckpt_iters (m,), ckpt_<j>_<p>                      parameters at the start of ckpt_iters[j]
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.user.loader import UserError, UserProgram
from core.user.machine import UserCodeError, UserMachine

FORMAT = "tui-backprop-user-1"


@dataclass
class Recording:
    meta: dict[str, Any]
    source: str
    X: np.ndarray
    y: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    weight_norm: np.ndarray
    checkpoints: dict[int, dict[str, np.ndarray]]

    @property
    def n(self) -> int:
        return len(self.loss)


def record(prog: UserProgram, m: UserMachine, iterations: int, every: int,
           should_stop: Any = None) -> Recording:
    """Run `iterations` from init (the user's code, untraced), keeping what replay needs."""
    m.init()
    ckpts: dict[int, dict[str, np.ndarray]] = {}
    blocks = []
    while m.pos < iterations and not (should_stop and should_stop()):
        if m.pos % every == 0:
            ckpts[m.pos] = m.snapshot()
        try:
            blocks.append(m.run_fast(min(every - m.pos % every, iterations - m.pos)))
        except UserCodeError as exc:
            raise UserError(str(exc).split(" (iteration")[0]) from None
        if m.error_at is not None:
            raise UserError(f"{m.error_text} (at iteration {m.error_at})")

    def cat(name: str) -> np.ndarray:
        if not blocks:
            return np.zeros((0,) if name == "loss" else (0, m.program.depth))
        return np.concatenate([getattr(b, name) for b in blocks])

    meta = {"display": prog.display, "path": prog.filename, "sha256": prog.sha256,
            "seed": m.cfg.seed, "lr": m.cfg.lr, "iterations": m.pos, "checkpoint_every": every,
            "params": list(m.program.params)}
    return Recording(meta, prog.source, m.X, m.y, cat("loss"), cat("grad_norm"),
                     cat("weight_norm"), ckpts)


def save(rec: Recording, path: str, force: bool) -> None:
    target = Path(path)
    if target.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "meta": np.array(json.dumps(rec.meta)),
        "source": np.frombuffer(rec.source.encode("utf-8"), np.uint8),
        "X": np.asarray(rec.X), "y": np.asarray(rec.y), "loss": rec.loss,
        "grad_norm": rec.grad_norm, "weight_norm": rec.weight_norm,
        "ckpt_iters": np.array(sorted(rec.checkpoints), np.int64)}
    names = rec.meta["params"]
    for j, it in enumerate(sorted(rec.checkpoints)):
        for pi, name in enumerate(names):
            arrays[f"ckpt_{j}_{pi}"] = rec.checkpoints[it][name]
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tui-backprop-", suffix=".npz", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, target)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def is_recording(path: str) -> bool:
    """Whether `path` is a user-file recording (an .npz whose format entry says so)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return "format" in f.files and str(f["format"]) == FORMAT
    except (OSError, ValueError, EOFError):
        return False


def read(path: str) -> Recording:
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
        meta = json.loads(str(d["meta"]))
        source = d["source"].tobytes().decode("utf-8")
        names = meta["params"]
        ckpts = {int(it): {name: d[f"ckpt_{j}_{pi}"] for pi, name in enumerate(names)}
                 for j, it in enumerate(d["ckpt_iters"])}
        rec = Recording(meta, source, d["X"], d["y"], d["loss"], d["grad_norm"],
                        d["weight_norm"], ckpts)
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError,
            json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable user-file recording ({exc})") from None
    if 0 not in rec.checkpoints or rec.grad_norm.shape != (rec.n, len(names)):
        raise UserError(f"{path}: damaged recording (checkpoints or metrics missing)")
    return rec
