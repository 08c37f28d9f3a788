"""Load a user's backprop file and hold it to the contract (see README "Bring your own").

The user's file imports nothing of ours.  It is compiled under its own path, so
tracebacks and the line tracer see the user's own file:line; every call into it
goes through `UserProgram.call`, which turns any exception (or a call that runs
past the time limit) into one `UserError` line naming the user's file:line.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.user.limits import TIME_LIMIT  # noqa: F401  (re-exported)

REQUIRED = ("init", "loss", "backward")


class UserError(ValueError):
    """The user's file broke the contract or raised; the message is one line."""


class UserTimeout(Exception):
    """Raised inside user code by the alarm: the call took longer than the limit."""


@dataclass
class UserProgram:
    """A loaded, validated user file: its functions, constants and source."""

    display: str  # the path as the user typed it (used in messages)
    filename: str  # the resolved path the code was compiled under
    source: str
    sha256: str
    namespace: dict[str, Any]
    lr: float = 0.1
    iterations: int = 1000
    seed: int = 0
    time_limit: float = TIME_LIMIT
    has_update: bool = False
    has_data: bool = False
    _count: list[int] = field(default_factory=lambda: [0])

    def fn(self, name: str) -> Callable[..., Any]:
        return self.namespace[name]

    def call(self, name: str, *args: Any) -> Any:
        """Call the user's `name(*args)`; any failure becomes one UserError line."""
        try:
            with _deadline(self.time_limit, name):
                return self.namespace[name](*args)
        except UserError:
            raise
        except UserTimeout as exc:
            raise UserError(self.where(exc, f"TimeoutError: {name}() ran longer than "
                                            f"{self.time_limit:g} s (an endless loop?)")) from None
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - any error of the user's code is data here
            raise UserError(self.where(exc, f"{type(exc).__name__}: {exc}")) from None

    def where(self, exc: BaseException, text: str) -> str:
        """`FILE:LINE: text`, LINE being the deepest frame in the user's file."""
        line = self.error_line(exc)
        text = " ".join(text.split())  # one line, whatever the exception's message holds
        return f"{self.display}:{line}: {text}" if line else f"{self.display}: {text}"

    def error_line(self, exc: BaseException) -> int | None:
        line = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        return line


class _Watchdog:
    """One daemon thread raising UserTimeout in threads whose call ran too long.

    Signals reach only the main thread; the app runs long jobs in worker threads,
    where the exception is injected with PyThreadState_SetAsyncExc instead (it
    lands at the next Python bytecode, i.e. inside the user's loop).
    """

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def arm(self, seconds: float) -> int:
        tid = threading.get_ident()
        with self.lock:
            self.deadlines[tid] = time.monotonic() + seconds
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True,
                                               name="tui-backprop-watchdog")
                self.thread.start()
        return tid

    def disarm(self, tid: int) -> None:
        with self.lock:
            self.deadlines.pop(tid, None)

    def _loop(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self.lock:
                late = [t for t, d in self.deadlines.items() if now > d]
                for t in late:
                    del self.deadlines[t]
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t),
                                                               ctypes.py_object(UserTimeout))


WATCHDOG = _Watchdog()


class _deadline:
    """Raise UserTimeout in the running code after `seconds`.

    The main thread uses SIGALRM (exact, no helper thread); other threads the
    watchdog above.
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.main = threading.current_thread() is threading.main_thread()
        self.old: Any = None
        self.tid = 0

    def __enter__(self) -> None:
        if self.seconds <= 0:
            return
        if self.main:
            def fire(signum: int, frame: Any) -> None:
                raise UserTimeout()
            self.old = signal.signal(signal.SIGALRM, fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        else:
            self.tid = WATCHDOG.arm(self.seconds)

    def __exit__(self, *exc: object) -> None:
        if self.seconds <= 0:
            return
        if self.main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
        else:
            WATCHDOG.disarm(self.tid)


def load(path: str, *, time_limit: float = TIME_LIMIT) -> UserProgram:
    """Read, compile and run the user's file; check the required functions exist."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    if p.is_dir():
        raise UserError(f"{path}: is a directory, not a Python file")
    try:
        raw = p.read_bytes()
        source = raw.decode("utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    return load_source(source, path, str(p.resolve()), hashlib.sha256(raw).hexdigest(),
                       p.stem, time_limit=time_limit)


def load_source(source: str, display: str, filename: str, sha256: str, stem: str, *,
                time_limit: float = TIME_LIMIT) -> UserProgram:
    """Compile and run a user program's source (a file's, or one stored in a recording)."""
    path = display
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: SyntaxError: {exc.msg}") from None
    except ValueError as exc:  # e.g. null bytes
        raise UserError(f"{path}: cannot compile: {exc}") from None
    mod = types.ModuleType(f"tui_backprop_user_{stem}")
    mod.__file__ = filename
    prog = UserProgram(path, filename, source, sha256, mod.__dict__, time_limit=time_limit)
    sys.modules[mod.__name__] = mod  # dataclasses and pickling in user code look it up
    try:
        with _deadline(time_limit, "import"):
            exec(code, mod.__dict__)
    except UserTimeout as exc:
        raise UserError(prog.where(exc, f"TimeoutError: importing took longer than "
                                        f"{time_limit:g} s")) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit in a user file is an error too
        raise UserError(prog.where(exc, f"{type(exc).__name__}: {exc}")) from None
    for name in REQUIRED:
        if not callable(mod.__dict__.get(name)):
            raise UserError(f"{path}: missing required function {name}() "
                            f"(the contract needs init, loss and backward)")
    prog.has_update = callable(mod.__dict__.get("update"))
    prog.has_data = callable(mod.__dict__.get("data"))
    prog.lr = _constant(prog, "LR", prog.lr, positive=True)
    prog.iterations = int(_constant(prog, "ITERATIONS", prog.iterations, integer=True))
    prog.seed = int(_constant(prog, "SEED", prog.seed, integer=True))
    return prog


def _constant(prog: UserProgram, name: str, default: float, *, positive: bool = False,
              integer: bool = False) -> float:
    value = prog.namespace.get(name, default)
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value) == int(value) and value >= 0
    if ok:
        ok = math.isfinite(float(value)) and (not positive or value > 0)
    if not ok:
        kind = "a non-negative integer" if integer else "a positive number"
        raise UserError(f"{prog.display}: {name} must be {kind}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------- contract checks
def check_params(prog: UserProgram, params: Any) -> dict[str, np.ndarray]:
    """init()'s result: a non-empty dict of str -> floating NumPy array."""
    if not isinstance(params, dict) or not params:
        raise UserError(f"{prog.display}: init(rng) must return a non-empty dict of NumPy "
                        f"arrays, got {type(params).__name__}")
    for k, v in params.items():
        if not isinstance(k, str):
            raise UserError(f"{prog.display}: init(rng) returned a non-string key {k!r}")
        if not isinstance(v, np.ndarray) or not np.issubdtype(v.dtype, np.floating):
            what = f"a {v.dtype} array" if isinstance(v, np.ndarray) else type(v).__name__
            raise UserError(f"{prog.display}: init(rng) parameter {k!r} must be a floating "
                            f"NumPy array, got {what}")
    return params


def check_loss(prog: UserProgram, value: Any, iteration: int, allow_nan: bool = False) -> float:
    """loss()'s result: a scalar, finite unless `allow_nan` (the debugger flags NaN as data)."""
    arr = np.asarray(value) if isinstance(value, np.ndarray | np.number | float | int) else None
    if arr is None or isinstance(value, bool) or arr.size != 1 or arr.ndim > 1:
        what = (f"an array of shape {arr.shape}" if arr is not None
                else type(value).__name__)
        raise UserError(f"{prog.display}: loss() must return a scalar, got {what}")
    out = float(arr.reshape(()))
    if not math.isfinite(out) and not allow_nan:
        raise UserError(f"{prog.display}: loss() returned {out} at iteration {iteration}")
    return out


def check_grads(prog: UserProgram, result: Any, params: dict[str, np.ndarray]
                ) -> tuple[float | None, dict[str, np.ndarray]]:
    """backward()'s result: grads (or (loss, grads)) with exactly the parameter keys.

    Shapes are *not* checked here: a wrong shape is a FAIL of the check, not bad input.
    """
    loss = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        loss, result = result
    if not isinstance(result, dict):
        raise UserError(f"{prog.display}: backward() must return a dict of gradients "
                        f"(or (loss, grads)), got {type(result).__name__}")
    unknown = [k for k in result if k not in params]
    missing = [k for k in params if k not in result]
    if unknown:
        raise UserError(f"{prog.display}: backward() returned unknown keys "
                        f"{', '.join(map(repr, unknown))} (parameters: "
                        f"{', '.join(map(repr, params))})")
    if missing:
        raise UserError(f"{prog.display}: backward() is missing gradients for "
                        f"{', '.join(map(repr, missing))}")
    for k, v in result.items():
        if not isinstance(v, np.ndarray) or not np.issubdtype(v.dtype, np.number):
            what = f"a {v.dtype} array" if isinstance(v, np.ndarray) else type(v).__name__
            raise UserError(f"{prog.display}: backward() gradient {k!r} must be a NumPy "
                            f"array, got {what}")
    return (None if loss is None else float(np.asarray(loss).reshape(-1)[0])), result
