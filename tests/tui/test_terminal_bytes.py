"""What reaches a real terminal: NO_COLOR means no colour escape at all (on a pty)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLOUR = re.compile(r"^(3[0-9]|4[0-9]|9[0-7]|10[0-7])$")


def _run(env_extra: dict[str, str], keys: bytes) -> bytes:
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLORTERM")}
    env.update(TERM="xterm", PYTHONPATH=str(ROOT), **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "tui_backprop.cli"], stdin=slave,
                            stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 60
    sent = False
    os.set_blocking(master, False)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            out += os.read(master, 65536)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
        if not sent and b"n: step one op" in out:
            for k in keys:
                os.write(master, bytes([k]))
                time.sleep(0.3)
            sent = True
    proc.kill() if proc.poll() is None else None
    os.close(master)
    return bytes(out)


def _sgr_params(data: bytes) -> set[str]:
    params = set()
    for seq in re.findall(rb"\x1b\[([0-9;]*)m", data):
        params.update(p.decode() for p in seq.split(b";") if p)
    return params


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_no_color_writes_no_colour_escapes() -> None:
    data = _run({"NO_COLOR": "1"}, b"iinnq")
    assert b"z1 = X" in data  # it drew the step view
    params = _sgr_params(data)
    assert not {p for p in params if COLOUR.match(p) or p in ("38", "48")}, params
    assert "1" in params or "7" in params  # bold / reverse remain
