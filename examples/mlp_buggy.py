"""A buggy first MLP (2-8-2, tanh, mean squared error) for the README walkthrough.

Written as a newcomer would, in the tui-backprop contract; its backward has one
mistake that `tui-backprop check examples/mlp_buggy.py` names and
`tui-backprop debug examples/mlp_buggy.py` lets you step to.
"""
import numpy as np

LR = 0.2
SEED = 1


def init(rng):
    return {"W1": rng.normal(0, 0.5, (2, 8)), "b1": np.zeros(8),
            "W2": rng.normal(0, 0.5, (8, 2)), "b2": np.zeros(2)}


def forward(p, X):
    a1 = X @ p["W1"] + p["b1"]
    h1 = np.tanh(a1)
    out = h1 @ p["W2"] + p["b2"]
    return a1, h1, out


def loss(p, X, y):
    _, _, out = forward(p, X)
    return np.mean((out - y) ** 2)


def backward(p, X, y):
    N = X.shape[0]
    a1, h1, out = forward(p, X)
    dout = 2 * (out - y) / N
    dW2 = h1.T @ dout
    db2 = dout.sum(0)
    dh1 = dout @ p["W2"].T
    da1 = dh1 * (1 - h1 ** 2)
    dW1 = X.T @ da1
    db1 = da1.sum(0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
