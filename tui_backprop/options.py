"""Run options shared by every command, and how they become one Config.

Order of precedence: defaults < --preset < --config FILE.toml < individual flags.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from core.model.choices import (
    ACTIVATIONS,
    CLIP_KINDS,
    DTYPES,
    INITS,
    LOSSES,
    REG_KINDS,
    ConfigError,
)
from core.model.dataset_names import BUILTIN
from core.model.presets import DEFAULT_PRESET, PRESETS, fitted_changes, preset_config

if TYPE_CHECKING:
    from core.model.config import Config

# flag dest -> Config field
FLAGS: dict[str, str] = {
    "hidden": "hidden", "activation": "activation", "loss": "loss", "lr": "lr",
    "lr_decay": "lr_decay", "reg": "reg", "reg_kind": "reg_kind", "clip": "clip",
    "clip_kind": "clip_kind", "batch_size": "batch_size", "bias": "bias", "init": "init",
    "dtype": "dtype", "dataset": "dataset", "limit": "limit", "outputs": "outputs",
    "seed": "seed",
}


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Attach the run options (network, training, data) to a sub-command parser."""
    g = p.add_argument_group("run options")
    g.add_argument("--preset", metavar="NAME",
                   help=f"start from a preset (default {DEFAULT_PRESET}; see `presets`)")
    g.add_argument("--config", metavar="FILE.toml",
                   help="TOML file of settings (same names as these flags, with _)")
    g.add_argument("--hidden", metavar="W[,W...]",
                   help="hidden layer widths, e.g. 10 or 50,50")
    g.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation")
    g.add_argument("--loss", choices=LOSSES,
                   help="mse: Σ(y−h)²/2N with sigmoid outputs; ce: softmax cross-entropy")
    g.add_argument("--lr", type=float, metavar="η", help="learning rate (> 0)")
    g.add_argument("--lr-decay", type=float, metavar="D",
                   help="inverse-time decay: lr_i = lr/(1 + D·i); 0 = constant")
    g.add_argument("--reg", type=float, metavar="λ",
                   help="regularization strength λ (l2: λΣW²/2N, l1: λΣ|W|/N); 0 = off")
    g.add_argument("--reg-kind", choices=REG_KINDS, help="regularization kind")
    g.add_argument("--clip", type=float, metavar="C",
                   help="clip gradients at C (global norm, or per entry); 0 = off")
    g.add_argument("--clip-kind", choices=CLIP_KINDS, help="clip by global norm or by value")
    g.add_argument("--batch-size", type=int, metavar="B",
                   help="minibatch rows, reshuffled each epoch by the seed; 0 = full batch")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=None,
                   help="add bias vectors to every layer (the article has none)")
    g.add_argument("--init", choices=INITS,
                   help="uniform: U(−1,1)/√fan_in (article); xavier; he")
    g.add_argument("--dtype", choices=DTYPES, help="floating-point type of every array")
    g.add_argument("--dataset", metavar="NAME|PATH",
                   help=f"{', '.join(BUILTIN)}, or a .csv (last column = class) / .npz (X, y)")
    g.add_argument("--limit", type=int, metavar="N", help="use only the first N samples")
    g.add_argument("--outputs", type=int, metavar="K",
                   help="output units (default: the number of classes in the data)")
    g.add_argument("--seed", type=int, help="seed for init, data and batch order")


def config_from_args(args: argparse.Namespace) -> Config:
    """Build and validate the run's Config; raises ConfigError with a one-line message."""
    from core.model.config import Config, load_toml  # not at import: `--help` stays light

    base = preset_config(DEFAULT_PRESET if args.preset is None else args.preset)
    if args.config is not None:
        changes_file = _toml_changes(load_toml(args.config), args.config)
        try:
            base = Config.build(base, changes_file)
        except ConfigError as exc:
            raise ConfigError(f"{args.config}: {exc}") from None
    changes: dict[str, Any] = {}
    for dest, name in FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            changes[name] = value
    if not args.preset and not args.config:  # no preset named: defaults that learn
        changes = fitted_changes(changes)
    return Config.build(base, changes)


def run_from_args(args: argparse.Namespace, frames: int = 5) -> tuple[Config, Any]:
    """The Config and its dataset, refused before any buffer exists if it cannot fit."""
    cfg = config_from_args(args)
    return cfg, checked_data(cfg, frames)


def checked_data(cfg: Config, frames: int = 5) -> Any:
    """Load `cfg`'s dataset and refuse the run if its footprint exceeds available memory.

    `frames`: iterations held op by op at once (5 for the app's stepper, 1 headless).
    Raises ConfigError, DatasetError or LimitError (one line naming the figure).
    NumPy loads here, not at import: the CLI's start-up stays that of argparse.
    """
    from core.model.datasets import make_dataset
    from core.model.limits import check_memory, footprint
    from core.model.program import build_program

    data = make_dataset(cfg.dataset, cfg.seed, cfg.outputs)
    rows = len(data.labels) if cfg.limit == 0 else min(cfg.limit, len(data.labels))
    batch = rows if cfg.batch_size == 0 else min(cfg.batch_size, rows)
    program = build_program(cfg, data.X.shape[1], data.n_classes, batch)
    check_memory(footprint(program, rows, frames))
    return data


def _toml_changes(data: dict[str, Any], path: str) -> dict[str, Any]:
    data = dict(data)
    preset = data.pop("preset", None)
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ConfigError(f"{path}: unknown preset {preset!r}")
        merged = preset_config(preset).to_dict()
        merged.update(data)
        return merged
    return data
