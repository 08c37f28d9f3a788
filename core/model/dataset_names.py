"""Names, descriptions and shapes of the built-in datasets, without NumPy.

Kept apart from `core/model/datasets.py` (which generates them with NumPy) so the
command line can print its help and the presets without importing NumPy:
start-up time is the user's first impression (`tests/core/test_startup.py`
checks these shapes against the generated data).
"""

from __future__ import annotations

BUILTIN: dict[str, str] = {
    "xor": "300 gaussian points, class = XOR of the coordinate signs (2 classes)",
    "xor4": "the 4-row XOR truth table (2 classes, no randomness)",
    "moons": "300 points on two interleaving half circles, noise 0.1 (2 classes)",
    "circles": "300 points on concentric circles r=1 and r=0.5, noise 0.05 (2 classes)",
    "spiral": "300 points on the CS231n three-arm spiral (3 classes)",
    "blobs": "300 points in three gaussian blobs, std 0.8 (3 classes)",
}

# (features, classes) of each built-in dataset
SHAPES: dict[str, tuple[int, int]] = {
    "xor": (2, 2), "xor4": (2, 2), "moons": (2, 2), "circles": (2, 2), "spiral": (2, 3),
    "blobs": (2, 3),
}
