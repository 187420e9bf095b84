"""Functions defined in the ways capture must handle (kept in a file: s2sad reads source)."""

import functools

import numpy as np

pair = (lambda x: x * 3.0, lambda x: np.sin(x) * x)     # two lambdas on one line
nested_lambdas = lambda a: (lambda b: a * b * b)         # a lambda returning a lambda


def make_closure(scale, offset):
    table = np.array([1.0, 2.0, 3.0]) * offset

    def inner(x):
        return np.sum(x * table) * scale if False else x * table[0] * scale
    return inner


def with_defaults(x, power=2, *, shift=0.5):
    return (x + shift) ** power


def outer_with_nested(x):
    def square_plus(v, c=1.0):
        return v * v + c
    return square_plus(x) + square_plus(x, c=2.0) + square_plus(c=0.0, v=x)


partial_defaults = functools.partial(with_defaults, power=3)

K = 2.0


def uses_global(x):
    return K * x


SCALES = np.array([1.0, 2.0])


def rebound_captured(x):
    """A global array rebound to runtime values in a loop, then written in place."""
    y = SCALES
    for _ in range(3):
        y = y * x
    y[0] = 5.0
    return np.sum(y)
