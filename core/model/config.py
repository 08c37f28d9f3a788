"""The one validated run configuration: network, training knobs, detectors.

Every entry point (presets, TOML files, CLI flags, knobs in the TUI) produces a
`Config` through `Config.build`, so validation lives in exactly one place and
the rest of the engine can trust the object it is given.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.model import choices
from core.model.choices import ConfigError  # re-exported: the engine imports it from here
from core.model.limits import (
    FLOAT_MAX,
    MAX_CLASSES,
    MAX_LAYERS,
    MAX_ROWS,
    MAX_TOML_BYTES,
    MAX_TOML_DEPTH,
    MAX_WIDTH,
    MAX_WINDOW,
    LimitError,
    open_regular,
    toml_depth,
)

__all__ = ["Config", "ConfigError", "Detect", "load_toml", "parse_hidden"]



@dataclass(frozen=True)
class Detect:
    """Thresholds of the detectors (see core/inspect/detectors.py for their meaning)."""

    explode_norm: float = 1e3  # absolute gradient-norm ceiling per layer
    explode_factor: float = 10.0  # or k x the running median of that norm
    vanish_norm: float = 1e-7  # gradient norm floor per layer
    spike_factor: float = 1.5  # loss above this x its minimum over the last `window`
    rise_iters: int = 10  # loss rising this many iterations in a row
    saturation_share: float = 0.9  # share of saturated/dead hidden units
    window: int = 64  # iterations in the running-median window


@dataclass(frozen=True)
class Config:
    """Everything that determines a run; same Config + seed -> identical arrays."""

    hidden: tuple[int, ...] = (3,)
    activation: str = "sigmoid"
    loss: str = "mse"
    reg: float = 0.0
    reg_kind: str = "l2"
    bias: bool = False
    init: str = "uniform"
    lr: float = 0.1
    lr_decay: float = 0.0  # lr_i = lr / (1 + lr_decay * i)
    clip: float = 0.0  # 0 = off
    clip_kind: str = "norm"
    batch_size: int = 0  # 0 = full batch
    dtype: str = "float64"
    dataset: str = "xor"
    limit: int = 0  # use only the first `limit` samples (0 = all)
    outputs: int = 0  # output width (0 = number of classes in the data)
    seed: int = 0
    detect: Detect = field(default_factory=Detect)

    @property
    def depth(self) -> int:
        """Number of weight layers (hidden layers + output layer)."""
        return len(self.hidden) + 1

    def lr_at(self, iteration: int) -> float:
        """Learning rate of an iteration under inverse-time decay."""
        return self.lr / (1.0 + self.lr_decay * iteration)

    def replace(self, **changes: Any) -> Config:
        """A validated copy with some fields changed."""
        return Config.build(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for TOML/JSON/trace storage."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Config:
        """Inverse of to_dict, validated."""
        return Config.build(Config(), data)

    @staticmethod
    def build(base: Config, changes: dict[str, Any]) -> Config:
        """Apply `changes` (from TOML, CLI or knobs) to `base` and validate."""
        if not isinstance(changes, dict):
            raise ConfigError(f"settings must be a table of names and values, not a "
                              f"{type(changes).__name__}")
        known = {f.name for f in dataclasses.fields(Config)}
        plain: dict[str, Any] = {}
        det = dict(dataclasses.asdict(base.detect))
        for key, value in changes.items():
            if not isinstance(key, str):
                raise ConfigError(f"setting names are text, got {key!r}")
            key = key.replace("-", "_")
            if key == "detect":
                if not isinstance(value, dict):
                    raise ConfigError("detect must be a table of thresholds")
                for dk, dv in value.items():
                    dk = str(dk).replace("-", "_")
                    if dk not in det:
                        raise ConfigError(f"unknown detector setting {dk!r}")
                    det[dk] = dv
            elif key in det:
                det[key] = value
            elif key not in known:
                raise ConfigError(f"unknown setting {key!r}")
            else:
                plain[key] = value
        if "hidden" in plain:
            plain["hidden"] = parse_hidden(plain["hidden"])
        cfg = dataclasses.replace(base, **plain, detect=Detect(**_check_detect(det)))
        _validate(cfg)
        return cfg


def parse_hidden(value: Any) -> tuple[int, ...]:
    """'10' / '50,50' / 3 / [50, 50] -> (widths...), each a positive integer.

    Widths are ints (or digit strings from the command line): 3.0 and true are refused,
    like every integer setting (see _number).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"hidden must be widths like 3 or 50,50, got {value!r:.40}")
    if len(items) > MAX_LAYERS:
        raise ConfigError(f"hidden has {len(items)} layers; at most {MAX_LAYERS} are supported")
    widths = []
    for item in items:
        if isinstance(item, str) and re.fullmatch(r"[+-]?[0-9]{1,9}", item):
            width = int(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            width = item
        else:
            raise ConfigError(f"hidden width {item!r:.40} is not an integer")
        if width < 1:
            raise ConfigError(f"hidden width must be >= 1, got {width}")
        if width > MAX_WIDTH:
            raise ConfigError(f"hidden width {width} is too large (max {MAX_WIDTH})")
        widths.append(width)
    if not widths:
        raise ConfigError("need at least one hidden layer")
    return tuple(widths)


def _number(name: str, value: Any, *, lo: float | None = None, strict: bool = False,
            integer: bool = False, hi: float = FLOAT_MAX) -> float:
    """A checked number.  Integer settings take ints only: 2.0 is refused, with a hint."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r:.40}")
    if integer and not isinstance(value, int):
        hint = f"; write {int(value)}" if math.isfinite(value) and value.is_integer() else ""
        raise ConfigError(f"{name} must be an integer, got the float {value!r}{hint}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    if lo is not None and (value <= lo if strict else value < lo):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {lo:g}, got {value:g}")
    if value > hi:
        raise ConfigError(f"{name} must be <= {hi:g}, got {value:g}" if isinstance(hi, float)
                          else f"{name} must be <= {hi}, got {value}")
    return value


def _check_detect(det: dict[str, Any]) -> dict[str, Any]:
    for name in ("explode_norm", "explode_factor", "spike_factor", "vanish_norm"):
        _number(name, det[name], lo=0.0, strict=True)
    _number("saturation_share", det["saturation_share"], lo=0.0, strict=True, hi=1)
    _number("rise_iters", det["rise_iters"], lo=2, integer=True, hi=MAX_WINDOW)
    # saturation is sampled every 32 iterations (machine.SAT_EVERY): a window must see a sample
    _number("window", det["window"], lo=32, integer=True, hi=MAX_WINDOW)
    return det


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}; got {value!r}")


def _validate(cfg: Config) -> None:
    _choice("activation", cfg.activation, choices.ACTIVATIONS)
    _choice("loss", cfg.loss, choices.LOSSES)
    _choice("reg_kind", cfg.reg_kind, choices.REG_KINDS)
    _choice("init", cfg.init, choices.INITS)
    _choice("clip_kind", cfg.clip_kind, choices.CLIP_KINDS)
    _choice("dtype", cfg.dtype, choices.DTYPES)
    _number("lr", cfg.lr, lo=0.0, strict=True)
    _number("lr_decay", cfg.lr_decay, lo=0.0)
    _number("reg", cfg.reg, lo=0.0)
    _number("clip", cfg.clip, lo=0.0)
    _number("batch_size", cfg.batch_size, lo=0, integer=True, hi=MAX_ROWS)
    _number("limit", cfg.limit, lo=0, integer=True, hi=MAX_ROWS)
    _number("outputs", cfg.outputs, lo=0, integer=True, hi=MAX_CLASSES)
    _number("seed", cfg.seed, lo=0, integer=True, hi=2**63 - 1)
    if cfg.outputs == 1:
        raise ConfigError("outputs must be >= 2 (one unit per class)")
    if not isinstance(cfg.bias, bool):
        raise ConfigError(f"bias must be true or false, got {cfg.bias!r}")
    if not isinstance(cfg.dataset, str) or not cfg.dataset or len(cfg.dataset) > 4096:
        raise ConfigError("dataset must be a name or a .csv/.npz path")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML run file into a dict of changes (validated by Config.build).

    Only a regular file of at most MAX_TOML_BYTES, nested at most MAX_TOML_DEPTH deep.
    """
    import tomllib  # here, not at the top: `--help` and `presets` never parse TOML (5 ms)

    if not str(path):
        raise ConfigError("--config needs a file name")
    try:
        with open_regular(str(path), MAX_TOML_BYTES, "TOML file") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"cannot read {path}: no such file") from None
    except LimitError as exc:
        raise ConfigError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested deeper than {MAX_TOML_DEPTH} levels") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
                          ) from None
    if toml_depth(data) > MAX_TOML_DEPTH:
        raise ConfigError(f"{path}: nested deeper than {MAX_TOML_DEPTH} levels")
    return data
