"""Functions for test_checkpoint (a module, so s2sad can read their source)."""

import numpy as np

import s2sad as ad


@ad.checkpoint
def step(x, a, dt):
    return x + dt * (a * np.sin(x) - x ** 3)


def rec_plain(x0, a, n):
    x = x0
    for i in range(n):
        x = x + 0.01 * (a * np.sin(x) - x ** 3)
    return np.sum(x ** 2)


def rec_module(x0, a, n):
    x = x0
    for i in range(n):
        x = step(x, a, 0.01)
    return np.sum(x ** 2)


def rec_nested(x0, a, n):
    @ad.checkpoint
    def body(x):
        return x + 0.01 * (a * np.sin(x) - x ** 3)
    x = x0
    for i in range(n):
        x = body(x)
    return np.sum(x ** 2)


def _body(x, a):
    return x + 0.01 * (a * np.sin(x) - x ** 3)


def rec_inline(x0, a, n):
    x = x0
    for i in range(n):
        x = ad.checkpoint(_body)(x, a)
    return np.sum(x ** 2)


@ad.checkpoint
def two_outputs(x, y):
    return np.sin(x) * y, np.cos(y) * x


def uses_two_outputs(x, y):
    u, v = two_outputs(x, y)
    for i in range(3):
        u, v = two_outputs(u, v)
    return np.sum(u * v)


def uses_two_outputs_plain(x, y):
    u, v = np.sin(x) * y, np.cos(y) * x
    for i in range(3):
        u, v = np.sin(u) * v, np.cos(v) * u
    return np.sum(u * v)


@ad.checkpoint
def matrix_layer(W, h):
    return np.tanh(W @ h)


def mlp(W, h0):
    h = h0
    for i in range(4):
        h = matrix_layer(W, h)
    return np.sum(h ** 2)
