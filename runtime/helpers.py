"""Functions that generated code calls at run time.

Each is a registered primitive (it has rules, so generated code can be differentiated
again) and carries a Numba implementation, registered by `register_numba()` (called by
`ad.jit` and by the Numba tests) so that `numba.njit` of generated code finds it.
"""

from __future__ import annotations

import numpy as np


def stop_gradient(x):
    """Identity whose derivative is zero (x may be a pytree)."""
    from s2sad.runtime import pytree
    return pytree.tree_map(lambda v: v, x)


def zero_tangent(x):
    """A zero shaped like `x` (0.0 / 0j for scalars, zeros_like for arrays)."""
    if isinstance(x, np.ndarray):
        return np.zeros_like(x) if x.dtype.kind in "fc" else np.zeros(x.shape)
    if isinstance(x, (complex, np.complexfloating)):
        return 0j
    if isinstance(x, list):
        return [zero_tangent(v) for v in x]
    return 0.0


def unbroadcast(g, like):
    """Sum `g` down to the shape of `like` (the transpose of NumPy broadcasting).

    A real `like` takes the real part of a complex `g` (the transpose of the implicit
    real -> complex promotion).
    """
    shape = np.shape(like)
    g = np.asarray(g) if np.ndim(g) else g
    nd = np.ndim(g)
    if nd > len(shape):
        g = np.sum(g, axis=tuple(range(nd - len(shape))))
    if len(shape):
        axes = tuple(i for i, (s, gs) in enumerate(zip(shape, np.shape(g))) if s == 1 and gs != 1)
        if axes:
            g = np.sum(g, axis=axes, keepdims=True)
    if np.iscomplexobj(g) and not np.iscomplexobj(like):
        g = np.real(g)
    if np.shape(g) != shape:
        g = np.broadcast_to(g, shape)
    if not shape:
        g = g[()] if isinstance(g, np.ndarray) else g
    return g


_NUMBA_DONE = False


def register_numba():
    """Give every helper a Numba implementation (idempotent)."""
    global _NUMBA_DONE
    if _NUMBA_DONE:
        return
    _NUMBA_DONE = True
    from numba.extending import overload

    from numba import types

    @overload(stop_gradient)
    def _stop_gradient(x):
        def impl(x):
            return x
        return impl

    @overload(zero_tangent)
    def _zero_tangent(x):
        if isinstance(x, types.Array):
            if isinstance(x.dtype, (types.Float, types.Complex)):
                return lambda x: np.zeros_like(x)
            return lambda x: np.zeros(x.shape)
        if isinstance(x, types.Complex):
            return lambda x: 0j
        return lambda x: 0.0


def clip_inside(a, lo, hi):
    """Mask of the elements np.clip(a, lo, hi) passes through (None bounds allowed)."""
    m = np.ones(np.shape(a), dtype=bool)
    if lo is not None:
        m = m & (a > lo)
    if hi is not None:
        m = m & (a < hi)
    return m


def clip_below(a, lo):
    if lo is None:
        return np.zeros(np.shape(a), dtype=bool)
    return a <= lo


def clip_above(a, hi):
    if hi is None:
        return np.zeros(np.shape(a), dtype=bool)
    return a >= hi


def basis(x, j):
    """The j-th standard basis vector shaped like `x` (1.0 for a scalar)."""
    if np.ndim(x) == 0:
        return 1.0
    e = np.zeros(np.size(x))
    e[j] = 1.0
    return e.reshape(np.shape(x))


def jac_stack(cols, y, x):
    """Columns d y / d x_j (j over x's elements) -> an array of shape y.shape + x.shape."""
    shape = np.shape(y) + np.shape(x)
    if not cols:
        return np.zeros(shape)
    return np.reshape(np.stack([np.asarray(c) for c in cols], axis=-1), shape)


def zeros_jac(y, x):
    """The Jacobian of an output that does not depend on x."""
    return np.zeros(np.shape(y) + np.shape(x))
