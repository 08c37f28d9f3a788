"""The names a run setting can take, and the error a bad setting raises.

Apart from `core/model/config.py` (a dataclass: importing `dataclasses` pulls in
`inspect`, ~7 ms) so the command line can build its parser and print `--help` or
the presets at the start-up cost of a bare argparse script.
"""

from __future__ import annotations

ACTIVATIONS = ("sigmoid", "tanh", "relu")
LOSSES = ("mse", "ce")
REG_KINDS = ("l2", "l1")
INITS = ("uniform", "xavier", "he")
CLIP_KINDS = ("norm", "value")
DTYPES = ("float64", "float32")


class ConfigError(ValueError):
    """An impossible or malformed configuration; the message is one line."""
