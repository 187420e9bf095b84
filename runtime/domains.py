"""Input domains for the registry-wide tests of primitive rules.

A domain is a callable ``(rng, complex) -> value``; `Example` inputs are domains. Values
stay away from singular points (log of positives, arcsin inside (-1, 1), ...).
"""

from __future__ import annotations

import numpy as np


class Domain:
    differentiable = True

    def __init__(self, fn, label, differentiable=True):
        self.fn = fn
        self.label = label
        self.differentiable = differentiable

    def __call__(self, rng, complex_=False):
        return self.fn(rng, complex_)

    def __repr__(self):
        return self.label


def _shape(shape):
    return tuple(shape)


def real(*shape, lo=-2.0, hi=2.0):
    def fn(rng, c):
        x = rng.uniform(lo, hi, _shape(shape))
        if c:
            x = x + 1j * rng.uniform(lo, hi, _shape(shape))
        return x if shape else (complex(x) if c else float(x))
    return Domain(fn, f"real{shape}")


def pos(*shape, lo=0.5, hi=2.0):
    def fn(rng, c):
        x = rng.uniform(lo, hi, _shape(shape))
        if c:
            x = x + 1j * rng.uniform(-0.5, 0.5, _shape(shape))
        return x if shape else (complex(x) if c else float(x))
    return Domain(fn, f"pos{shape}")


def unit(*shape):
    """Inside (-0.9, 0.9): arcsin, arctanh, ..."""
    def fn(rng, c):
        x = rng.uniform(-0.9, 0.9, _shape(shape))
        if c:
            x = 0.7 * x + 0.2j * rng.uniform(-1, 1, _shape(shape))
        return x if shape else (complex(x) if c else float(x))
    return Domain(fn, f"unit{shape}")


def above1(*shape):
    """In (1.2, 3): arccosh."""
    def fn(rng, c):
        x = rng.uniform(1.2, 3.0, _shape(shape))
        if c:
            x = x + 0.3j * rng.uniform(-1, 1, _shape(shape))
        return x if shape else (complex(x) if c else float(x))
    return Domain(fn, f"above1{shape}")


def away(*shape, gap=0.3):
    """Real values with |x| > gap and away from integers+0.5 (round, floor...)."""
    def fn(rng, c):
        x = rng.uniform(gap, 2.0, _shape(shape)) * rng.choice([-1.0, 1.0], _shape(shape))
        x = np.floor(x) + 0.25 + 0.5 * rng.uniform(0, 1, _shape(shape))
        return x if shape else float(x)
    return Domain(fn, f"away{shape}")


def spd(n):
    """Symmetric (Hermitian) positive definite n x n matrix."""
    def fn(rng, c):
        a = rng.normal(size=(n, n))
        if c:
            a = a + 1j * rng.normal(size=(n, n))
        return a @ a.conj().T + n * np.eye(n)
    return Domain(fn, f"spd({n})")


def wellcond(n, m=None):
    """A well-conditioned square (or n x m) matrix."""
    def fn(rng, c):
        a = rng.normal(size=(n, m or n)) * 0.3
        if c:
            a = a + 0.3j * rng.normal(size=(n, m or n))
        if m is None:
            a = a + 2.0 * np.eye(n)
        return a
    return Domain(fn, f"wellcond({n})")


def lower(n):
    """A well-conditioned lower-triangular matrix."""
    def fn(rng, c):
        a = np.tril(rng.normal(size=(n, n)) * 0.3) + 2.0 * np.eye(n)
        if c:
            a = a + 0.3j * np.tril(rng.normal(size=(n, n)))
        return a
    return Domain(fn, f"lower({n})")


def ints(lo, hi, *shape):
    def fn(rng, c):
        x = rng.integers(lo, hi, _shape(shape))
        return x if shape else int(x)
    return Domain(fn, f"ints{shape}", differentiable=False)


def bools(*shape):
    def fn(rng, c):
        x = rng.uniform(size=_shape(shape)) > 0.5
        return x if shape else bool(x)
    return Domain(fn, f"bools{shape}", differentiable=False)


def const(value):
    return Domain(lambda rng, c: value, f"const({value!r})", differentiable=False)


def distinct(*shape):
    """Real values with distinct magnitudes (max/min/sort have unique winners)."""
    def fn(rng, c):
        n = int(np.prod(shape)) if shape else 1
        x = (rng.permutation(n) + rng.uniform(0.1, 0.4, n)) * 0.5 - n / 4
        x = x.reshape(shape) if shape else float(x[0])
        return x
    return Domain(fn, f"distinct{shape}")
