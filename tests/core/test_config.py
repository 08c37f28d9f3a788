"""Config validation: every impossible setting is refused with a one-line reason."""

from __future__ import annotations

import pytest

from core.config import Config, ConfigError, parse_hidden


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
])
def test_impossible_configs_are_refused(changes, words) -> None:
    with pytest.raises(ConfigError) as err:
        Config.build(Config(), changes)
    msg = str(err.value)
    assert words in msg and "\n" not in msg


def test_lr_decay_is_inverse_time() -> None:
    cfg = Config(lr=1.0, lr_decay=0.5)
    assert [cfg.lr_at(i) for i in range(3)] == [1.0, 1.0 / 1.5, 0.5]
