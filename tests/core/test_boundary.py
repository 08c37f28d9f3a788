"""Decision boundary: the grid's classes against a forward pass written here, independently."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from core.engine.stepper import Stepper
from core.inspect.boundary import NotTwoD, decision_boundary, extent, frame_params, pixel_of
from core.model.config import Config
from core.model.presets import preset_config
from tui_backprop.renderables.boundary import DecisionBoundary

ACT = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh,
       "relu": lambda z: np.maximum(z, 0)}


def oracle(cfg: Config, params: dict, x: np.ndarray) -> np.ndarray:
    """The network's class of each row of x, from the parameters, without the engine."""
    h = x
    depth = len(cfg.hidden) + 1
    for l in range(1, depth + 1):
        z = h @ params[f"W{l}"] + (params[f"b{l}"] if cfg.bias else 0.0)
        if l < depth:
            h = ACT[cfg.activation](z)
        elif cfg.loss == "ce":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
        else:
            h = ACT["sigmoid"](z)
    return h.argmax(axis=1)


@pytest.mark.parametrize("cfg", [
    preset_config("xor-3"),
    Config(hidden=(8, 8), activation="relu", loss="ce", dataset="spiral", bias=True, lr=0.5),
    Config(hidden=(6,), activation="tanh", dataset="moons", dtype="float32", lr=0.5),
], ids=["xor-3", "spiral-relu-ce", "moons-tanh-f32"])
def test_grid_classes_match_an_independent_forward_pass(cfg: Config) -> None:
    s = Stepper(cfg)
    s.jump(60, 0)
    m, params = s.machine, frame_params(s.frame)
    rows, cols = 30, 50
    b = decision_boundary(m.cfg, params, m.X, m.labels, m.data.n_classes, rows, cols)
    assert b.classes.shape == (rows, cols)
    x0, x1, y0, y1 = b.extent
    rng = np.random.default_rng(1)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    for r, c in [(0, 0), (rows - 1, cols - 1), *rng.integers(0, [rows, cols], (40, 2))]:
        pt = np.array([[x0 + (c + 0.5) * (x1 - x0) / cols, y1 - (r + 0.5) * (y1 - y0) / rows]])
        assert b.classes[r, c] == oracle(cfg, p64, pt)[0], (r, c)
    acc = np.mean(oracle(cfg, p64, m.X.astype(np.float64)) == m.labels)
    assert abs(b.accuracy - acc) < 0.02  # float32 runs may flip a point on the boundary


def test_the_grid_covers_the_data_with_a_margin() -> None:
    X = np.array([[0.0, -1.0], [2.0, 3.0], [1.0, 1.0]])
    x0, x1, y0, y1 = extent(X, 0.1)
    assert (x0, x1) == pytest.approx((-0.2, 2.2)) and (y0, y1) == pytest.approx((-1.4, 3.4))
    px = pixel_of(X, (x0, x1, y0, y1), 10, 12)
    assert px[0].tolist() == [9, 1] and px[1].tolist() == [0, 11]  # y grows upwards


def test_the_initial_parameters_come_from_the_init_ops() -> None:
    s = Stepper(preset_config("xor-3"))
    params = frame_params(s.frame)
    s.jump(0, 0)
    for k, v in s.frame.params.items():
        assert np.array_equal(params[k], v)


def test_inputs_that_are_not_2d_say_so() -> None:
    X = np.zeros((20, 784))
    with pytest.raises(NotTwoD, match="decision boundary needs 2-D inputs; this dataset has 784"):
        decision_boundary(Config(), {}, X, np.zeros(20, int), 10, 10, 10)


def render(b, width: int, height: int, system: str | None) -> tuple[str, Console]:
    console = Console(file=io.StringIO(), width=width, height=height, record=True,
                      color_system=system, force_terminal=system is not None)
    console.print(DecisionBoundary(b), height=height)
    return console.export_text(clear=False), console


def test_render_fits_its_box_in_colour_and_without() -> None:
    s = Stepper(preset_config("xor-3"))
    s.jump(300, 0)
    m = s.machine
    b = decision_boundary(m.cfg, frame_params(s.frame), m.X, m.labels, 2, 2 * 23, 80)
    mono, _ = render(b, 80, 24, None)
    lines = mono.rstrip("\n").split("\n")
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert "0" in mono and "1" in mono and "█" in mono  # points as digits, class 1 filled
    assert lines[-1].startswith("[ ]0 [█]1 acc ") and "fill = prediction" in lines[-1]
    _, c16 = render(b, 80, 24, "standard")
    styles = {str(seg.style) for seg in c16._record_buffer if seg.style}
    assert "on blue" in styles and "on red" in styles  # named ANSI colours: 16-colour safe
    assert any(s.startswith("blue on red") or s.startswith("red on blue") for s in styles)
