"""Config validation: every impossible setting is refused with a one-line reason."""

from __future__ import annotations

import pytest

from core.model.config import Config, ConfigError, parse_hidden


def test_round_trip_through_plain_data() -> None:
    cfg = Config(hidden=(5, 4), activation="tanh", loss="ce", reg=0.1, reg_kind="l1",
                 bias=True, lr=0.3, lr_decay=0.01, clip=2.0, clip_kind="value",
                 batch_size=16, dtype="float32", seed=7)
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("text, widths", [("3", (3,)), ("50,50", (50, 50)), (" 4 , 2 ", (4, 2)),
                                          (7, (7,)), ([2, 3], (2, 3))])
def test_hidden_widths_parse(text, widths) -> None:
    assert parse_hidden(text) == widths


@pytest.mark.parametrize("changes, words", [
    ({"hidden": "0"}, "hidden width"),
    ({"hidden": ""}, "hidden width"),
    ({"hidden": True}, "hidden"),
    ({"lr": 0}, "lr"),
    ({"lr": float("inf")}, "finite"),
    ({"lr": "0.1"}, "number"),
    ({"reg": -1}, "reg"),
    ({"clip": -0.5}, "clip"),
    ({"batch_size": 2.5}, "integer"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"bias": "yes"}, "bias"),
    ({"nonsense": 1}, "unknown setting"),
    ({"detect": {"window": 1}}, "window"),
    ({"detect": {"nope": 1}}, "unknown detector"),
    ({"saturation_share": 2}, "saturation_share"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.0}, "seed must be an integer"),
    ({"outputs": 2.0}, "outputs must be an integer"),
    ({"limit": 10.0}, "limit must be an integer"),
    ({"batch_size": 2.0}, "batch_size must be an integer"),
    ({"outputs": 10**6}, "outputs must be <= 1024"),
    ({"seed": 2**63}, "seed must be <="),
    ({"hidden": [True]}, "hidden width True"),
    ({"hidden": [3.0]}, "hidden width 3.0"),
    ({"hidden": [3] * 33}, "at most 32"),
    ({"lr_decay": 1e308}, "lr_decay must be <= 1e+100"),
    ({"detect": {"window": 2**62}}, "window must be <="),
    ({"detect": {"window": 1e12}}, "window must be an integer"),
    ({"detect": {"rise_iters": 2**40}}, "rise_iters must be <="),
    ({"detect": 3}, "detect must be a table"),
])
def test_impossible_configs_are_refused(changes, words) -> None:
    with pytest.raises(ConfigError) as err:
        Config.build(Config(), changes)
    msg = str(err.value)
    assert words in msg and "\n" not in msg


def test_lr_decay_is_inverse_time() -> None:
    cfg = Config(lr=1.0, lr_decay=0.5)
    assert [cfg.lr_at(i) for i in range(3)] == [1.0, 1.0 / 1.5, 0.5]


def test_changes_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="not a list"):
        Config.from_dict([1, 2])  # a trace whose stored config is a JSON list


def test_largest_allowed_values_stay_finite() -> None:
    """The bounds exist so lr/(1+decay*i) never overflows for any addressable iteration."""
    import math

    from core.model.limits import FLOAT_MAX, MAX_ITERATION

    cfg = Config.build(Config(), {"lr": FLOAT_MAX, "lr_decay": FLOAT_MAX})
    assert math.isfinite(cfg.lr_decay * MAX_ITERATION) and cfg.lr_at(MAX_ITERATION) > 0


def test_memory_estimate_refuses_with_the_figures() -> None:
    from core.model.limits import LimitError, check_memory, footprint
    from core.model.program import build_program

    cfg = Config(hidden=(1000, 1000))
    fp = footprint(build_program(cfg, 2, 2, 300), 300)
    params = (2 * 1000 + 1000 * 1000 + 1000 * 2) * 8
    assert fp.params == params and fp.total > 5 * params  # buffers, frames, checkpoints too
    check_memory(fp, available=fp.total)  # exactly enough is enough
    with pytest.raises(LimitError, match=r"needs about .* MiB .* only 1.0 MiB is available"):
        check_memory(fp, available=2**20)
