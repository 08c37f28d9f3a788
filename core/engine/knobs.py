"""Knobs: training settings a paused run may change, and the schedule that records them.

A run is its starting `Config` plus a schedule of knob changes [(iteration, Config)],
strictly increasing, each Config valid (built through `Config.replace`).  Iteration i
runs with the last config whose start is <= i; the parameters carry over unchanged.
Only the settings below may change: they alter how the next update is computed,
never the shapes of the parameters, so one state flows through every segment.

Learning-rate decay keeps using the global iteration (lr_i = lr / (1 + decay·i)),
so a schedule adds no second clock: a trace derives every lr from it alone.

The detectors run unchanged across a change: their windows and medians span it.
That is deliberate (a flag right after a change is usually the change's effect,
and the "knob" event beside it says so), with two consequences: a lower lr
shrinks the update, not ‖∇W‖, so it does not read as "vanish"; adding
regularization adds its penalty to the loss, which can read as a "spike".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.inspect.detectors import Event
from core.model.config import Config, ConfigError

KNOBS = ("lr", "lr_decay", "reg", "reg_kind", "clip", "clip_kind", "batch_size")
INTEGER = frozenset({"batch_size"})
TEXT = frozenset({"reg_kind", "clip_kind"})
KIND = "knob"  # the Event kind of a knob change
OP = "update"  # the op a knob event is shown against
Schedule = list[tuple[int, Config]]


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def changed(old: Config, new: Config) -> dict[str, Any]:
    """Knob values of `new` that differ from `old`."""
    return {k: getattr(new, k) for k in KNOBS if getattr(new, k) != getattr(old, k)}


def describe(old: Config, new: Config) -> str:
    """'lr 2.3 → 1, reg 0 → 0.01': what a knob change did, for events and dialogs."""
    return ", ".join(f"{k.replace('_', ' ')} {_fmt(getattr(old, k))} → {_fmt(v)}"
                     for k, v in changed(old, new).items())


def event(iteration: int, old: Config, new: Config) -> Event:
    """The Event that marks a knob change in the flags strip, a trace and a replay."""
    return Event(iteration, OP, KIND, describe(old, new))


def apply(cfg: Config, changes: dict[str, Any]) -> Config:
    """`cfg` with knob changes, validated; anything but a knob is refused."""
    extra = [k for k in changes if k not in KNOBS]
    if extra:
        raise ConfigError(f"{extra[0]} is not a knob (knobs: {', '.join(KNOBS)})")
    return cfg.replace(**changes)


def parse(cfg: Config, texts: dict[str, str]) -> Config:
    """Typed field texts (from the knobs dialog) -> a validated Config; one-line errors."""
    changes: dict[str, Any] = {}
    for name, text in texts.items():
        text = text.strip()
        label = name.replace("_", " ")
        if not text:
            raise ConfigError(f"{label}: empty")
        if name in TEXT:
            changes[name] = text.lower()
            continue
        try:
            value: float = int(text) if name in INTEGER else float(text)
        except ValueError:
            kind = "a whole number" if name in INTEGER else "a number"
            raise ConfigError(f"{label}: {text!r} is not {kind}") from None
        changes[name] = value
    return apply(cfg, changes)


def config_at(base: Config, knobs: Sequence[tuple[int, Config]], i: int) -> Config:
    """The config iteration i runs with."""
    cfg = base
    for start, c in knobs:
        if start > i:
            break
        cfg = c
    return cfg


def check(base: Config, knobs: Sequence[tuple[int, Config]]) -> None:
    """A schedule must be strictly increasing, from iteration 0, with knob-only changes."""
    prev, last = base, -1
    for start, cfg in knobs:
        if type(start) is not int or start <= last:
            raise ConfigError(f"knob changes must be at increasing iterations >= 0, got {start!r}")
        if apply(prev, changed(prev, cfg)) != cfg:  # apply validates the knob values
            raise ConfigError(f"the change at iteration {start} is not a knob change")
        prev, last = cfg, start


def to_json(base: Config, knobs: Sequence[tuple[int, Config]]) -> str:
    """[[iteration, {knob: value}], ...]: each change relative to the one before."""
    out, prev = [], base
    for start, cfg in knobs:
        out.append([start, changed(prev, cfg)])
        prev = cfg
    return json.dumps(out)


def from_json(base: Config, text: str) -> Schedule:
    """Inverse of to_json, validated (ConfigError on anything malformed)."""
    try:
        rows = json.loads(text, parse_constant=lambda name: math.nan)
    except (json.JSONDecodeError, RecursionError):
        raise ConfigError("knob schedule is not valid JSON") from None
    if not isinstance(rows, list):
        raise ConfigError("knob schedule must be a list")
    knobs: Schedule = []
    prev = base
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[1], dict)):
            raise ConfigError(f"bad knob change {row!r:.60}")
        prev = apply(prev, row[1])
        knobs.append((row[0], prev))
    check(base, knobs)
    return knobs


def lr_column(base: Config, knobs: Sequence[tuple[int, Config]], start: int,
              count: int) -> np.ndarray:
    """Per-iteration lr of [start, start+count), as the fast path computes it, bit for bit."""
    its = np.arange(start, start + count)
    out = np.empty(count)
    for a, b, cfg in segments(base, knobs, start, start + count):
        out[a - start:b - start] = cfg.lr / (1.0 + cfg.lr_decay * its[a - start:b - start])
    return out


def segments(base: Config, knobs: Sequence[tuple[int, Config]], lo: int, hi: int
             ) -> list[tuple[int, int, Config]]:
    """(a, b, config) pieces of [lo, hi) that each run with one config."""
    bounds = [(0, base), *knobs]
    out = []
    for j, (start, cfg) in enumerate(bounds):
        end = bounds[j + 1][0] if j + 1 < len(bounds) else hi
        a, b = max(lo, start), min(hi, end)
        if a < b:
            out.append((a, b, cfg))
    return out


def batch_rows(cfg: Config, rows: int) -> int:
    """Rows per batch of a config over a dataset of `rows` (the accuracy denominator)."""
    return rows if cfg.batch_size == 0 or cfg.batch_size >= rows else cfg.batch_size


def batch_rows_column(base: Config, knobs: Sequence[tuple[int, Config]], rows: int,
                      start: int, count: int) -> np.ndarray:
    """Per-iteration rows per batch: the denominator of a trace's accuracy counts."""
    out = np.empty(count)
    for a, b, cfg in segments(base, knobs, start, start + count):
        out[a - start:b - start] = batch_rows(cfg, rows)
    return out
