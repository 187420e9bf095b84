"""Workloads of the reference texts (and loop-heavy ones), written with NumPy."""

import numpy as np

rng = np.random.default_rng(0)

W = np.array([-2.4424558, -2.0356805, 0.20554423])
b = 1.2956359
inputs = np.array([[0.52, 1.12, 0.77], [0.88, -1.08, 0.15],
                   [0.52, 0.06, -1.30], [0.74, -2.49, 1.39]])


def sigmoid(x):
    return 0.5 * (np.tanh(x / 2) + 1)


def predict(W, b, inputs):
    return sigmoid(np.dot(inputs, W) + b)


def predict_W(W):
    return predict(W, b, inputs)


def polynomial(x):
    return x ** 3 + 2 * x ** 2 - 3 * x + 1


def value_fn(theta, state):
    return np.dot(theta, state)


s_tm1 = np.array([1., 2., -1.])
r_t = 1.0
s_t = np.array([2., 1., 0.])


def td_loss(theta):
    v_tm1 = value_fn(theta, s_tm1)
    target = r_t + value_fn(theta, s_t)
    return -0.5 * ((target - v_tm1) ** 2)


def log1pexp(x):
    return np.log(1. + np.exp(x))


def tanh_sq_sum(X):
    return np.sum(np.tanh(X) ** 2)


X300 = rng.normal(size=(300, 400))


def recurrence(x0, a, n=1000, dt=0.01):
    x = x0
    for i in range(n):
        x = x + dt * (a * np.sin(x) - x ** 3)
    return x ** 2


x0_vec = rng.normal(size=64) * 0.5


def _step(x, a, dt):
    return x + dt * (a * np.sin(x) - x ** 3)


def recurrence_checkpointed(x0, a, n=1000, dt=0.01):
    """The recurrence with its loop body under ad.checkpoint (saves x per step only)."""
    import s2sad as ad
    step = ad.checkpoint(_step)
    x = x0
    for i in range(n):
        x = step(x, a, dt)
    return np.sum(x ** 2)


def recurrence_sum(x0, a, n=1000, dt=0.01):
    """The recurrence, summed (a scalar for vector x0)."""
    x = x0
    for i in range(n):
        x = x + dt * (a * np.sin(x) - x ** 3)
    return np.sum(x ** 2)
