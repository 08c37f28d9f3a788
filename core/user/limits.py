"""Default limits of the user-code commands, without NumPy (the CLI's help shows them)."""

from __future__ import annotations

THRESHOLD = 1e-5  # max relative error a checked gradient entry may have
MAX_ENTRIES = 32  # entries checked per sampled parameter (2 loss calls each)
TIME_LIMIT = 10.0  # seconds one call into user code may take (SIGALRM, main thread only)
