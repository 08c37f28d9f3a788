"""A 2-10-2 MLP in plain NumPy, in the tui-backprop contract (README "Bring your own").

Sigmoid hidden layer, softmax + cross-entropy, L2 penalty ½·λ·ΣW².  It imports
nothing of tui-backprop:  `tui-backprop check examples/mlp.py` checks its
gradients, `tui-backprop debug examples/mlp.py` steps through it line by line.
"""

import numpy as np

LR = 0.5
ITERATIONS = 2000
SEED = 0
HIDDEN = 10
LAM = 1e-3


def init(rng):
    return {
        "W1": rng.standard_normal((2, HIDDEN)),
        "b1": np.zeros(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, 2)) / np.sqrt(HIDDEN),
        "b2": np.zeros(2),
    }


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def affine_forward(x, W, b):
    return x @ W + b


def affine_backward(dout, x, W):
    dx = dout @ W.T
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db


def softmax(scores):
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def loss(params, X, y):
    z1 = affine_forward(X, params["W1"], params["b1"])
    h1 = sigmoid(z1)
    scores = affine_forward(h1, params["W2"], params["b2"])
    probs = softmax(scores)
    data_loss = -np.sum(y * np.log(probs)) / len(X)
    reg = 0.5 * LAM * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))
    return data_loss + reg


def backward(params, X, y):
    N = len(X)
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    z1 = affine_forward(X, W1, b1)
    h1 = sigmoid(z1)
    scores = affine_forward(h1, W2, b2)
    probs = softmax(scores)
    dscores = (probs - y) / N
    dh1, dW2, db2 = affine_backward(dscores, h1, W2)
    dz1 = dh1 * h1 * (1 - h1)
    _, dW1, db1 = affine_backward(dz1, X, W1)
    dW2 += LAM * W2
    dW1 += LAM * W1
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
