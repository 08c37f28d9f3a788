"""Bug variants of examples/mlp.py, made by replacing one line of the correct file.

Each variant names the parameters its bug breaks: derived from the maths of the
change, not from the checker's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mlp.py"


@dataclass(frozen=True)
class Variant:
    old: str
    new: str
    breaks: frozenset[str]
    words: str  # what the diagnosis must say


VARIANTS = {
    # loss = mean over N; without /N every data gradient is N times too big
    "missing_1_over_n": Variant("dscores = (probs - y) / N", "dscores = probs - y",
                                frozenset({"W1", "b1", "W2", "b2"}), "missing 1/N"),
    # only the W2 line is negated: dh1 (computed before it) and all else are right
    "sign_flip_w2": Variant("dW2 += LAM * W2", "dW2 = -(dW2 + LAM * W2)",
                            frozenset({"W2"}), "sign is flipped"),
    # d(½λΣW²)/dW = λW; the scalar λΣW² broadcast over every entry instead
    "lambda_sum_broadcast": Variant("dW1 += LAM * W1", "dW1 += LAM * np.sum(W1 ** 2)",
                                    frozenset({"W1"}), "same constant is added"),
    "transposed_w1": Variant('"W1": dW1,', '"W1": dW1.T,', frozenset({"W1"}), "transposed"),
    # the sigmoid derivative dropped from dz1: only the first layer's gradients change
    "missing_chain_factor": Variant("dz1 = dh1 * h1 * (1 - h1)", "dz1 = dh1",
                                    frozenset({"W1", "b1"}), "per-entry factor"),
    "doubled": Variant("dscores = (probs - y) / N", "dscores = 2 * (probs - y) / N",
                       frozenset({"W1", "b1", "W2", "b2"}), "a ≈ 2"),
    "zero_b2": Variant('"b2": db2}', '"b2": 0 * db2}', frozenset({"b2"}), "zero gradient"),
    "one_column": Variant("dW1 += LAM * W1", "dW1 += LAM * W1\n    dW1[:, 4] = 0",
                          frozenset({"W1"}), "only in columns 4 "),
}


def source(name: str | None = None, **replace: str) -> str:
    """The example's source with a variant's (or any) replacements applied."""
    src = EXAMPLE.read_text()
    pairs = dict(replace)
    if name is not None:
        v = VARIANTS[name]
        pairs[v.old] = v.new
    for old, new in pairs.items():
        assert src.count(old) == 1, old
        src = src.replace(old, new)
    return src


def write(tmp: Path, name: str | None = None, **replace: str) -> Path:
    path = tmp / f"{name or 'variant'}.py"
    path.write_text(source(name, **replace))
    return path
