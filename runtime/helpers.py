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


_FLOATS = (float, np.float64)


def unbroadcast(g, like):
    """Sum `g` down to the shape of `like` (the transpose of NumPy broadcasting).

    A real `like` takes the real part of a complex `g` (the transpose of the implicit
    real -> complex promotion).
    """
    tg, tl = type(g), type(like)
    if tg in _FLOATS and tl in _FLOATS:  # the common scalar case, fast
        return g
    if tg is np.ndarray and tl is np.ndarray and g.shape == like.shape and \
            (g.dtype.kind == like.dtype.kind or (g.dtype.kind == "f" and like.dtype.kind == "f")):
        return g
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
    elif np.iscomplexobj(like) and not np.iscomplexobj(g):
        g = g + 0j
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

    _register_numba_core(overload, types)

    @overload(zero_tangent)
    def _zero_tangent(x):
        if isinstance(x, types.Array):
            if isinstance(x.dtype, (types.Float, types.Complex)):
                return lambda x: np.zeros_like(x)
            return lambda x: np.zeros(x.shape)
        if isinstance(x, types.Complex):
            return lambda x: 0j
        return lambda x: 0.0

    from s2sad.runtime.rules import constants, linalg, reductions, shapes
    reductions.register_numba()
    linalg.register_numba()
    shapes.register_numba()
    constants.register_numba()


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


def _real_like(g, like):
    """Cotangents of real values are real (the transpose of real -> complex promotion)."""
    if np.iscomplexobj(g) and not np.iscomplexobj(like):
        return np.real(g)
    return g


def own_copy(x):
    """`x` as an array (or list) of its own, scalars as they are: a tangent the primal
    holds as a fresh value (`y = x * 1.0`) whose rule folded to another tangent
    (`y_dot = x_dot`) must not share memory with it when either is written in place;
    a value the backward sweep reads after an in-place write is saved this way."""
    if isinstance(x, np.ndarray):
        return np.copy(x)
    return x.copy() if isinstance(x, list) else x


def broadcast_like(g, like):
    """The transpose of `unbroadcast`: broadcast g up to the shape of `like`."""
    shape = np.shape(like)
    if np.shape(g) == shape:
        return g
    return np.broadcast_to(g, shape)


def _m_t(a):
    return np.swapaxes(a, -1, -2) if np.ndim(a) >= 2 else a


def matmul_tx(g, x, y):
    """Cotangent of x in ``x @ y`` (NumPy's 1-d promotion rules included)."""
    ct = g
    if np.ndim(x) == 1 and np.ndim(y) == 1:
        r = ct * y
    elif np.ndim(x) == 1:
        r = np.matmul(y, ct[..., :, None])[..., 0] if np.ndim(y) > 2 else y @ ct
    elif np.ndim(y) == 1:
        r = ct[..., :, None] * y
    else:
        r = ct @ _m_t(y)
    return unbroadcast(r, x)


def matmul_ty(g, x, y):
    """Cotangent of y in ``x @ y``."""
    ct = g
    if np.ndim(x) == 1 and np.ndim(y) == 1:
        r = ct * x
    elif np.ndim(y) == 1:
        r = np.matmul(_m_t(x), ct[..., :, None])[..., 0] if np.ndim(x) > 2 else ct @ x
    elif np.ndim(x) == 1:
        r = x[:, None] * ct[..., None, :]
    else:
        r = _m_t(x) @ ct
    return unbroadcast(r, y)


def _is_basic(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    for i in items:
        if isinstance(i, (list, np.ndarray)) and not (isinstance(i, np.ndarray) and i.ndim == 0):
            return False
    return True


def getitem_t(g, x, idx):
    """The transpose of ``x[idx]``: g scattered (added) into zeros shaped like x."""
    ct = g
    kind = np.result_type(x).kind
    dtype = np.complex128 if kind == "c" else np.float64
    z = np.zeros(np.shape(x), dtype=dtype)
    ct = _real_like(ct, x)
    if _is_basic(idx):
        z[idx] = ct
    else:
        np.add.at(z, idx, ct)
    return z if np.ndim(x) else z[()]


def jac_unstack(g, y, x):
    """The transpose of `jac_stack`: the cotangent of each column."""
    n = int(np.size(x))
    flat = np.reshape(g, np.shape(y) + (n,))
    return [flat[..., j] for j in range(n)]


def shape_witness(a, b=None, c=None, d=None):
    """A zero-cost array (a broadcast view of one zero) with the shape and dtype the
    elementwise combination of the operands would have: the shape witness of a tangent
    that has no primal counterpart."""
    operands = [o for o in (a, b, c, d) if o is not None]
    shape = np.broadcast_shapes(*[np.shape(o) for o in operands])
    return np.broadcast_to(np.zeros((), np.result_type(*[_dtype_of(o) for o in operands])), shape)


def real_witness(x):
    """Shape witness of the real part of x."""
    return np.broadcast_to(np.zeros(()), np.shape(x))


def _dtype_of(o):
    if isinstance(o, np.ndarray):
        return o.dtype
    if isinstance(o, complex):
        return np.complex128
    if isinstance(o, (bool, int, float)):
        return np.float64
    return np.result_type(o)


def check_grad_output(y, holomorphic=False):
    """grad needs a real scalar output (or a complex one with holomorphic=True)."""
    if type(y) in _FLOATS and not holomorphic:
        return y  # the common case, fast
    shape = np.shape(y)
    if shape != ():
        raise TypeError(f"Gradient only defined for scalar-output functions. Output had shape: "
                        f"{shape}.")
    check_output_dtype(y, holomorphic, "grad")
    return y


def check_output_dtype(y, holomorphic, who):
    """JAX's output dtype rules for grad and jacrev (real outputs, or complex ones with
    holomorphic=True)."""
    if np.iscomplexobj(y) and not holomorphic:
        raise TypeError(f"{who} requires real-valued outputs (output dtype that is a sub-dtype "
                        f"of np.floating), but got {np.result_type(y).name}. For holomorphic "
                        f"differentiation, pass holomorphic=True. For differentiation of "
                        f"non-holomorphic functions involving complex outputs, use ad.vjp directly.")
    if holomorphic and not np.iscomplexobj(y):
        raise TypeError(f"{who} with holomorphic=True requires outputs with complex dtype, but "
                        f"got {np.result_type(y).name}.")
    return y


def ones_like_output(y):
    """The seed cotangent 1.0 in the output's dtype."""
    return np.ones_like(y)[()] if isinstance(y, np.ndarray) else (1.0 + 0j if isinstance(y, complex) else 1.0)


def jac_rows(rows, y, x):
    """Rows d y_i / d x (i over y's elements) -> an array of shape y.shape + x.shape."""
    shape = np.shape(y) + np.shape(x)
    if not rows:
        return np.zeros(shape)
    return np.reshape(np.stack([np.asarray(r) for r in rows], axis=0), shape)


def jac_unrows(g, y, x):
    """The transpose of `jac_rows`: the cotangent of each row."""
    n = int(np.size(y))
    flat = np.reshape(g, (n,) + np.shape(x))
    return [flat[i] for i in range(n)]



def _register_numba_core(overload, types):
    """Numba versions of the helpers reverse-mode code calls."""
    from numba.extending import register_jitable

    @register_jitable
    def _keep(v):
        return v

    @register_jitable
    def _to_real(v):
        return np.real(v)

    @register_jitable
    def _to_complex(v):
        return v + 0j

    def _is_complex(t):
        return isinstance(t, types.Complex) or (isinstance(t, types.Array) and isinstance(t.dtype, types.Complex))

    @overload(unbroadcast)
    def _unbroadcast(g, like):
        fix = _to_real if (_is_complex(g) and not _is_complex(like)) else \
            (_to_complex if (_is_complex(like) and not _is_complex(g)) else _keep)
        if not isinstance(like, types.Array):
            if isinstance(g, types.Array):
                return lambda g, like: fix(g.sum())
            return lambda g, like: fix(g)
        nd = like.ndim
        if not isinstance(g, types.Array):
            return lambda g, like: np.full(like.shape, fix(g))
        if g.ndim > nd:
            return lambda g, like: unbroadcast(g.sum(axis=0), like)
        if g.ndim < nd:
            def up(g, like):
                v = fix(g)
                out = np.zeros(like.shape, dtype=v.dtype)
                out[...] = v
                return out
            return up
        if nd == 1:
            def same1(g, like):
                out = fix(g)
                if like.shape[0] == 1 and out.shape[0] != 1:
                    r = np.empty(1, dtype=out.dtype)
                    r[0] = out.sum()
                    return r
                return out
            return same1

        def same(g, like):
            out = fix(g)
            for ax in range(nd):
                if like.shape[ax] == 1 and out.shape[ax] != 1:
                    out = np.expand_dims(out.sum(axis=ax), ax)
            return out
        return same

    def _promote(a_t, b_t):
        """(conversion of a, conversion of b) to one dtype, for Numba's dot/outer."""
        if _is_complex(a_t) == _is_complex(b_t):
            return _keep, _keep
        return (_keep, _to_complex) if _is_complex(a_t) else (_to_complex, _keep)

    def _ndim(t):
        return t.ndim if isinstance(t, types.Array) else 0

    @overload(matmul_tx)
    def _matmul_tx(g, x, y):
        fg, fy = _promote(g, y)
        nx, ny = _ndim(x), _ndim(y)
        if nx == 1 and ny == 1:
            return lambda g, x, y: unbroadcast(fg(g) * fy(y), x)
        if nx == 1 and ny == 2:
            return lambda g, x, y: unbroadcast(np.dot(np.ascontiguousarray(fy(y)), np.ascontiguousarray(fg(g))), x)
        if nx == 2 and ny == 1:
            return lambda g, x, y: unbroadcast(np.outer(fg(g), fy(y)), x)
        if nx == 2 and ny == 2:
            return lambda g, x, y: unbroadcast(
                np.dot(np.ascontiguousarray(fg(g)), np.ascontiguousarray(fy(y).T)), x)
        return None

    @overload(matmul_ty)
    def _matmul_ty(g, x, y):
        fg, fx = _promote(g, x)
        nx, ny = _ndim(x), _ndim(y)
        if nx == 1 and ny == 1:
            return lambda g, x, y: unbroadcast(fg(g) * fx(x), y)
        if nx == 2 and ny == 1:
            return lambda g, x, y: unbroadcast(np.dot(np.ascontiguousarray(fg(g)), np.ascontiguousarray(fx(x))), y)
        if nx == 1 and ny == 2:
            return lambda g, x, y: unbroadcast(np.outer(fx(x), fg(g)), y)
        if nx == 2 and ny == 2:
            return lambda g, x, y: unbroadcast(
                np.dot(np.ascontiguousarray(fx(x).T), np.ascontiguousarray(fg(g))), y)
        return None

    @overload(own_copy)
    def _own_copy(x):
        if isinstance(x, types.Array):
            return lambda x: np.copy(x)
        if isinstance(x, types.List):
            return lambda x: x.copy()
        return lambda x: x

    @overload(broadcast_like)
    def _broadcast_like(g, like):
        if not isinstance(like, types.Array):
            return lambda g, like: g
        if isinstance(g, types.Array) and g.ndim == like.ndim:
            def impl(g, like):
                if g.shape == like.shape:
                    return g
                out = np.empty(like.shape, dtype=g.dtype)
                out[...] = g
                return out
            return impl

        def impl2(g, like):
            out = np.empty(like.shape, dtype=np.asarray(g).dtype)
            out[...] = g
            return out
        return impl2

    @overload(shape_witness)
    def _shape_witness(a, b=None, c=None, d=None):
        # in compiled code the witness is a real zero array of the broadcast shape
        def impl(a, b=None, c=None, d=None):
            x = a * 0.0
            if b is not None:
                x = x + b * 0.0
            if c is not None:
                x = x + c * 0.0
            if d is not None:
                x = x + d * 0.0
            return x
        return impl

    @overload(real_witness)
    def _real_witness(x):
        if isinstance(x, types.Array):
            return lambda x: np.zeros(x.shape)
        return lambda x: 0.0

    @overload(ones_like_output)
    def _ones_like_output(y):
        if isinstance(y, types.Complex):
            return lambda y: 1.0 + 0j
        return lambda y: 1.0

    @overload(check_grad_output)
    def _check_grad_output(y, holomorphic=False):
        if isinstance(y, types.Array):
            def impl(y, holomorphic=False):
                raise TypeError("Gradient only defined for scalar-output functions.")
            return impl
        if isinstance(y, types.Complex):
            def implc(y, holomorphic=False):
                if not holomorphic:
                    raise TypeError("grad requires real-valued outputs; pass holomorphic=True")
                return y
            return implc
        return lambda y, holomorphic=False: y

    @overload(getitem_t)
    def _getitem_t(g, x, idx):
        cplx = _is_complex(x)
        if not isinstance(x, types.Array):
            return lambda g, x, idx: g
        fancy = isinstance(idx, types.Array)
        if fancy:
            def implf(g, x, idx):
                z = np.zeros(x.shape, dtype=np.complex128 if cplx else np.float64)
                for k in range(idx.shape[0]):
                    z[idx[k]] += g[k]
                return z
            return implf

        def impl(g, x, idx):
            z = np.zeros(x.shape, dtype=np.complex128 if cplx else np.float64)
            z[idx] = g
            return z
        return impl


class InterruptedBodyError(RuntimeError):
    """Reverse mode met an exception that interrupted a try body after differentiated work."""


def check_interrupted(started, raised):
    """In a handler of a differentiated try/except: the body's work can be replayed
    backwards only if it completed or left by an explicit raise."""
    if started and not raised:
        raise InterruptedBodyError(
            "an exception raised inside a NumPy operation interrupted a try body after "
            "differentiated work; reverse mode cannot replay a partly executed body "
            "(hint: compute what may raise first in the try body, or raise explicitly)")


def shortest(a, b):
    """The trip count of zip(...): the lesser of two sequence lengths."""
    return min(a, b)


def zeros_list(values):
    """A list of zeros shaped like the items of `values` (the cotangent of a list)."""
    return [zero_tangent(v) for v in values]


def add_lists(a, b):
    """The sum of two cotangents of one runtime list, item by item (`a + b` would
    concatenate them); items that are lists (tapes of an inner loop) add item by item too."""
    if len(a) != len(b):
        if not a or not b:  # a cotangent started empty (its list was not at hand)
            return list(a or b)
        raise ValueError(f"internal: list cotangents of lengths {len(a)} and {len(b)}")
    return [add_items(u, v) for u, v in zip(a, b)]


def add_items(a, b):
    """The sum of two cotangents of an item of a list passed in (a tape), whose items may
    be lists themselves (the tapes of an inner loop)."""
    if isinstance(a, list):
        return add_lists(a, b)
    return a + b
