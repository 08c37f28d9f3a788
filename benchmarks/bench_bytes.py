"""Bytes written to the terminal per action, measured on a real pty (what SSH carries).

The app runs in a pseudo-terminal of the given size (TERM=xterm, as over `ssh -t`);
a reader thread counts every byte it writes.  For each action the script sends
the key(s), waits until the output has been quiet for 0.4 s, and records the
bytes written since the key.  Each action is repeated; the median is reported.
Run: `python benchmarks/bench_bytes.py` (about a minute).  Targets (issue 8):
one op step <= 4 KB at 80×24 and <= 8 KB at 120×40, p / i <= 16 KB at 120×40,
opening help or a prompt <= 32 KB at 120×40.
"""

from __future__ import annotations

import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIET = 0.4


class Pty:
    """The app on a pty of cols × rows; counts the bytes it writes."""

    def __init__(self, cols: int, rows: int, env: dict[str, str], args: list[str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "tui_backprop.cli", *args],
                                     stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=ROOT, start_new_session=True)
        os.close(slave)
        self.count = 0
        self.last = time.perf_counter()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.count += len(chunk)
                self.last = time.perf_counter()

    def settle(self, timeout: float = 20.0, first: bool = False) -> None:
        start = time.perf_counter()
        while first and self.count == 0 and time.perf_counter() - start < timeout:
            time.sleep(0.05)  # the app has not written anything yet
        while time.perf_counter() - start < timeout:
            time.sleep(0.05)
            with self.lock:
                if time.perf_counter() - self.last >= QUIET:
                    return

    def action(self, keys: str) -> int:
        """Bytes written in answer to `keys` (sent one at a time), until quiet."""
        self.settle()
        with self.lock:
            before = self.count
        for k in keys:
            os.write(self.master, k.encode())
            time.sleep(0.02)
        time.sleep(0.1)
        self.settle()
        with self.lock:
            return self.count - before

    def close(self) -> None:
        os.write(self.master, b"q")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


ESC = "\x1b"
CASES = [  # (label, keys before, keys measured, repeats)
    ("one op step (n)", "ii", "n", 8),
    ("next phase (p)", "ii", "p", 4),
    ("next iteration (i)", "ii", "i", 4),
    ("open help (?) and close it", "ii", "?" + ESC, 3),
    ("open the goto prompt (g) and cancel", "ii", "g" + ESC, 3),
]


def measure(cols: int, rows: int, no_color: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "NO_COLOR")}
    env.update(TERM="xterm", PYTHONPATH=str(ROOT))
    if no_color:
        env["NO_COLOR"] = "1"
    out: dict[str, float] = {}
    app = Pty(cols, rows, env, [])
    try:
        app.settle(30, first=True)
        out["first screen"] = app.count
        for label, before, keys, repeats in CASES:
            if before:
                app.action(before)
            out[label] = statistics.median(app.action(keys) for _ in range(repeats))
    finally:
        app.close()
    return out


def main() -> None:
    rows = {}
    for cols, lines in ((80, 24), (120, 40)):
        for mono in (False, True):
            rows[(cols, lines, mono)] = measure(cols, lines, mono)
    labels = list(next(iter(rows.values())))
    head = " | ".join(f"{c}×{r}{' NO_COLOR' if m else ''}" for c, r, m in rows)
    print(f"| action | {head} |")
    print("|---|" + "---|" * len(rows))
    for label in labels:
        cells = " | ".join(f"{rows[k][label] / 1024:.1f} KB" for k in rows)
        print(f"| {label} | {cells} |")


if __name__ == "__main__":
    main()
