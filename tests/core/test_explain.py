"""Element drill-down: every op kind, its shown numbers against the stored matrices.

The oracle is the frame itself: every number an explanation prints must be the
stored entry it names, the printed result must be the op's stored output, and
the float64 recomputation from the shown inputs must agree with what the
kernel wrote — on presets, on hand-picked configs that reach every op kind, and
on random configs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.engine.stepper import Stepper
from core.inspect.explain import explain, grid_index, num
from core.inspect.explain_ops import KINDS, kind
from core.model.config import Config
from core.model.presets import preset_config

NAN = Config(hidden=(3,), activation="relu", loss="ce", lr=1e8)  # z2 overflows at it 21
CONFIGS = [
    preset_config("xor-3"),
    preset_config("scratch-mlp"),
    preset_config("xor-50-clip"),
    preset_config("xor-50-l1"),
    Config(hidden=(4, 3), activation="relu", loss="ce", reg=0.01, reg_kind="l1", clip=0.05,
           bias=True, dataset="spiral", batch_size=32, init="xavier"),
    Config(hidden=(4,), activation="tanh", reg=0.01, clip=0.01, clip_kind="value",
           dtype="float32", init="he", lr_decay=0.1),
]


def picks(shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[int, ...]]:
    """The first entry, the last one and a random one."""
    if not shape:
        return [()]
    last = tuple(s - 1 for s in shape)
    rand = tuple(int(rng.integers(s)) for s in shape)
    return list(dict.fromkeys([(0,) * len(shape), last, rand]))


def within_print(a: float, b: float, digits: int = 4) -> bool:
    """a and b differ by less than one unit of the last printed digit of b."""
    return abs(a - b) < 10.0 ** (math.floor(math.log10(abs(b))) - digits + 1)


def check_frame(s: Stepper, seen: set[str], terms: int = 3) -> None:
    """Every op of the cursor's frame, at a few entries, against the stored arrays."""
    frame = s.frame
    rng = np.random.default_rng(frame.iteration + 7)
    for op, out in zip(frame.ops, frame.outputs, strict=True):
        seen.add(kind(op))
        for index in picks(out.shape, rng):
            e = explain(s.machine, frame, op.key, index, terms=terms)
            stored = float(out[index])
            where = f"{op.name}{list(index)} at it {frame.iteration}"
            assert e.lines[-1] == num(stored, 6), where
            assert e.agrees, (where, e.recomputed, stored)
            if math.isfinite(stored) and abs(stored) > 1e-6 * e.scale:
                assert within_print(e.recomputed, stored), (where, e.recomputed, stored)
            text = " ".join(e.lines + e.notes)
            for ref in e.shown:
                assert float(frame.value(ref.key)[ref.index]) == ref.value, (where, ref)
                assert num(ref.value) in text, (where, ref)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.activation}-{c.loss}-{c.dtype}")
def test_every_op_shows_the_stored_numbers(cfg: Config) -> None:
    s = Stepper(cfg)
    seen: set[str] = set()
    check_frame(s, seen)  # the init ops
    s.jump(3, 0)
    check_frame(s, seen)


def test_the_configs_reach_every_op_kind() -> None:
    seen: set[str] = set()
    for cfg in CONFIGS:
        s = Stepper(cfg)
        seen |= {kind(op) for op in s.frame.ops}
        s.jump(0, 0)
        seen |= {kind(op) for op in s.frame.ops}
    assert seen == set(KINDS)


combos = st.fixed_dictionaries({
    "activation": st.sampled_from(["sigmoid", "tanh", "relu"]),
    "loss": st.sampled_from(["mse", "ce"]),
    "reg_kind": st.sampled_from(["l2", "l1"]),
    "reg": st.sampled_from([0.0, 0.05]),
    "clip": st.sampled_from([0.0, 0.02, 5.0]),
    "clip_kind": st.sampled_from(["norm", "value"]),
    "bias": st.booleans(),
    "hidden": st.lists(st.integers(1, 5), min_size=1, max_size=2).map(tuple),
    "dataset": st.sampled_from(["xor", "moons", "blobs"]),
    "batch_size": st.sampled_from([0, 9]),
    "dtype": st.sampled_from(["float64", "float32"]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=12, deadline=None)
@given(combos, st.integers(0, 3), st.integers(1, 5))
def test_random_configs_show_the_stored_numbers(opts: dict, iteration: int, terms: int) -> None:
    s = Stepper(Config.build(Config(), {**opts, "limit": 40, "lr": 0.5}))
    s.jump(iteration, 0)
    check_frame(s, set(), terms)


def test_long_sums_show_the_first_terms_and_the_exact_total() -> None:
    s = Stepper(preset_config("xor-3"))
    s.jump(2, "dL/dW2")
    e = explain(s.machine, s.frame, "dL_dW2", (2, 0), terms=3)
    assert e.lines[0] == "Σₙ h1[n,2]·dL/dz2[n,0]"
    assert e.lines[1].startswith("h1[0,2]·dL/dz2[0,0] + h1[1,2]·dL/dz2[1,0] + ")
    assert e.lines[1].endswith("… (297 more terms)") and "… (297 more terms)" in e.lines[2]
    h1, g = s.frame.value("h1"), s.frame.value("dL_dz2")
    assert e.lines[2].startswith(f"{num(h1[0, 2])}·({num(g[0, 0])})" if g[0, 0] < 0
                                 else f"{num(h1[0, 2])}·{num(g[0, 0])}")
    assert e.lines[-1] == num(float(s.frame.value("dL_dW2")[2, 0]), 6)


def test_l2_gradient_and_loss_show_both_terms() -> None:
    s = Stepper(preset_config("scratch-mlp"))
    s.jump(1, "dL/dW2")
    e = explain(s.machine, s.frame, "dL_dW2", (0, 1))
    assert e.lines[0].endswith("+ λ·W2[0,1]/N") and "0.0001·" in e.lines[2]
    loss = explain(s.machine, s.frame, "loss", ())
    assert "(data) + " in loss.lines[-2] and "(penalty)" in loss.lines[-2]
    assert "λ·(ΣW1² + ΣW2²)/100" in loss.lines[0]


def test_update_reads_the_parameter_before_the_step() -> None:
    s = Stepper(preset_config("xor-3"))
    s.jump(4, "update W1")
    e = explain(s.machine, s.frame, "W1_new", (1, 2))
    w, g = s.frame.params["W1"][1, 2], s.frame.value("dL_dW1")[1, 2]
    assert e.arrow == "←" and e.lines[0] == "W1[1,2] − η·dL/dW1[1,2]"
    assert e.lines[1] == f"{num(w)} − 2.5·{num(g) if g >= 0 else '(' + num(g) + ')'}"


def test_nan_provenance_names_the_op_that_overflowed() -> None:
    s = Stepper(NAN)
    s.jump(21, "dL/dW1")
    e = explain(s.machine, s.frame, "dL_dW1", (0, 0))
    assert not e.finite and e.culprit.startswith("X[")
    prov = e.provenance
    assert prov[0].startswith("dL/dW1[0,0] = NaN ← X[")
    assert any(p.startswith("dL/dz1[") for p in prov)
    assert "z2 made it from finite inputs (overflow" in prov[-2]
    assert prov[-1] == "first NaN/Inf of iteration 21: z2"


def test_nan_parameters_point_to_an_earlier_iteration() -> None:
    s = Stepper(NAN)
    s.jump(22, "z1")
    e = explain(s.machine, s.frame, "z1", (0, 0))
    assert any("was already non-finite at the start of iteration 22" in p for p in e.provenance)


def test_leaves_say_what_they_are() -> None:
    s = Stepper(preset_config("xor-3"))
    s.jump(1, "z1")
    w = explain(s.machine, s.frame, "W1", (0, 1))
    assert "parameter at the start of iteration 1" in w.formula and w.lines == (
        num(float(s.frame.params["W1"][0, 1]), 6),)
    assert "input data" in explain(s.machine, s.frame, "X", (3, 0)).formula


def test_grid_cells_map_to_array_indices() -> None:
    assert grid_index((300, 3), 4, 2) == (4, 2)
    assert grid_index((5,), 0, 3) == (3,)
    assert grid_index((), 0, 0) == ()
    assert grid_index((10, 3, 3), 7, 1) == (2, 1, 1)  # rows = N·K
