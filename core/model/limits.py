"""Resource limits: what the engine refuses before it allocates, reads or loops.

Bad input must end in one line, never in a MemoryError, a hang or a run of days
without a word.  This module holds the bounds every entry point shares:

- numbers: every float setting is finite and at most FLOAT_MAX in size, so that
  lr / (1 + lr_decay * i) stays finite for every iteration below MAX_ITERATION
  (no NumPy overflow warning anywhere); integer settings take ints only
  (2.0 is refused with a message that says so: TOML and JSON both keep ints
  apart from floats, so an integral float is a typo, not a value);
- files: inputs must be regular files (a FIFO or a device would block or never
  end) below a size cap, opened without blocking;
- memory: a run's footprint is estimated from its program's shapes before any
  buffer exists, and refused above the memory the machine has available.
"""

from __future__ import annotations

import math
import os
import stat
from typing import IO, Any, NamedTuple

FLOAT_MAX = 1e100  # |every float setting|; 1e100 * 2**62 is still far below float64's max
MAX_ITERATION = 2**53  # iterations addressable by the CLI (exact in a float64 lr column)
MAX_CLASSES = 1024  # output units; guards one-hot targets against a stray huge label
MAX_WIDTH = 100_000  # units per hidden layer
MAX_LAYERS = 32  # hidden layers
MAX_ROWS = 10**9  # batch_size and limit (rows of data)
MAX_WINDOW = 2**20  # detector windows (rows the recorder keeps in RAM)
MAX_TOML_BYTES = 1 << 20
MAX_TOML_DEPTH = 4  # a run file has one level of tables ([detect]) and flat arrays
MAX_CSV_BYTES = 256 << 20
MAX_NPZ_BYTES = 2 << 30


class LimitError(ValueError):
    """A bound was exceeded; the message is one line naming the figure."""


def open_regular(path: str, max_bytes: int, what: str = "file") -> IO[bytes]:
    """Open a regular file for reading without ever blocking (a FIFO would hang open())."""
    fd = os.open(os.path.expanduser(path), os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LimitError(f"cannot read {path}: a {kind_of(st.st_mode)}, not a regular "
                             f"file (give a {what} on disk)")
        if st.st_size > max_bytes:
            raise LimitError(f"{path} is {st.st_size / 2**20:.1f} MiB; a {what} may be at "
                             f"most {max_bytes / 2**20:.0f} MiB")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def kind_of(mode: int) -> str:
    """'FIFO', 'character device', ... for messages about non-regular files."""
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def toml_depth(value: Any, depth: int = 0) -> int:
    """Nesting depth of parsed TOML (tables and arrays), stopping early past the bound."""
    if depth > MAX_TOML_DEPTH:
        return depth
    if isinstance(value, dict):
        return max((toml_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((toml_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


# ---------------------------------------------------------------------------- memory
class Footprint(NamedTuple):
    """Bytes a run needs, by part (an estimate: the sizes of the arrays it will hold).

    A NamedTuple, not a dataclass: the command line imports this module for its bounds,
    and `dataclasses` would cost `--help` ~7 ms (core/model/choices.py).
    """

    data: int
    params: int
    buffers: int
    frames: int
    checkpoints: int

    @property
    def total(self) -> int:
        return self.data + self.params + self.buffers + self.frames + self.checkpoints


def footprint(program: Any, data_rows: int, frames: int = 5) -> Footprint:
    """From a built (unallocated) Program: data, parameters, op buffers, frames, checkpoints.

    `frames` iterations are held op by op at once: the app's stepper caches 4 and
    builds one, and keeps checkpoints in RAM (its budget of 128 MiB, or 8 copies of
    the parameters when they are larger); headless commands (frames=1) keep two
    copies of the parameters at most.
    """
    item = 8 if program.cfg.dtype == "float64" else 4
    d, k = program.sizes[0], program.sizes[-1]
    data = data_rows * (d + k) * (8 + item) + data_rows * 16  # float64 + run dtype, labels
    params = sum(math.prod(program.param_shape(p)) for p in program.params) * item
    outputs = sum(math.prod(op.shape) for op in (*program.init_ops, *program.ops)) * item
    own = sum(math.prod(op.shape) for op in (*program.init_ops, *program.ops)
              if not op.target) * item
    batch = program.n * (d + k) * item
    buffers = 2 * (own + params + batch)  # the machine, and gradcheck's float64 copy
    frame = outputs + params + batch
    checkpoints = (max(8 * params, min(128 << 20, 4096 * params)) + max(2 * params, 16 << 20)
                   if frames > 1 else 2 * params)
    return Footprint(data, params, buffers, frames * frame, checkpoints)


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable, capped by RLIMIT_AS."""
    import resource

    avail = None
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            avail = None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        avail = soft if avail is None else min(avail, soft)
    return avail


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_memory(fp: Footprint, available: int | None = None) -> None:
    """Refuse a run whose footprint exceeds the memory available, naming both figures."""
    avail = available_memory() if available is None else available
    if avail is None or fp.total <= avail:
        return
    parts = ", ".join(f"{name} {gib(v)}" for name, v in (
        ("parameters", fp.params), ("buffers", fp.buffers), ("frames", fp.frames),
        ("data", fp.data), ("checkpoints", fp.checkpoints)) if v >= 2**20)
    raise LimitError(f"this run needs about {gib(fp.total)} of memory ({parts}) but only "
                     f"{gib(avail)} is available; use narrower layers, fewer rows or a "
                     "smaller batch")
