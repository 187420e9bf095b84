"""Reductions, scans and sorting: sum, mean, prod, max/min (amax/amin), cumsum, cumprod,
var, std, median, sort, and the non-differentiable argmax, argmin, argsort, any, all,
count_nonzero.

Conventions (JAX's):
- max/min split the derivative evenly between tied extrema:
  ``d max(a) = sum(a_dot * (a == max)) / count(a == max)`` per reduced group;
- var/std of complex input are real: ``d |z|^2 = 2 Re(conj(z) dz)``;
- sort and median route the derivative through the elements they pick (a tie picks one);
- prod is exact at zeros to second order (products of the *other* elements and their
  derivatives, from exclusive prefix and suffix products: no division); cumprod to first
  order. Higher derivatives there divide by the element (see the LIMITATION notes).

Rules only call registered primitives, so derivatives can be differentiated again. The
module-level helpers below (`expand_reduced`, `prod_others`, `prod_others_tangent`,
`cumprod_tangent`,
`median_weights`, `sort_order`, `take_along`, and the transposes `rcumsum`,
`cumprod_tangent_t`, `take_along_t`) are primitives too, with Numba implementations
installed by `register_numba()`.

Reverse mode: every linear primitive here (sum, mean, cumsum, expand_reduced, rcumsum,
prod_others_tangent, cumprod_tangent, cumprod_tangent_t, take_along, take_along_t) has a transpose rule for its
linear parameter, under the bilinear pairing ``Re(sum(a * b))`` (no conjugation). Sums
transpose to broadcasts (`expand_reduced` + `broadcast_like`) and back (`np.sum`),
``cumsum`` to a reversed cumsum, ``take_along`` to a scatter-add. Inside rules the user's ``keepdims`` is
passed through but never introduced, and means are written as ``np.sum(..) / n``
(Numba has neither ``keepdims=True`` nor ``np.mean(x, axis=...)``).
"""

import operator

import numpy as np

from s2sad.runtime.domains import Domain, bools, const, distinct, ints, pos, real
from s2sad.runtime.helpers import broadcast_like, unbroadcast
from s2sad.runtime.registry import alias, register

try:  # NumPy >= 2
    from numpy.lib.array_utils import normalize_axis_tuple as _normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple as _normalize_axis_tuple


# ------------------------------------------------------------------ axis utilities

def _axes(ndim, axis):
    """The reduced axes as a sorted tuple of non-negative ints (axis None = all)."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (tuple, list)):
        axis = (operator.index(axis),)
    return tuple(sorted(_normalize_axis_tuple(tuple(axis), ndim)))


def _to_groups(a, axis):
    """View `a` as a 2-d array (others, reduced): one row per reduced group.

    Returns (groups, restore) where restore(g) maps an array shaped like `groups` back to
    the shape and axis order of `a`.
    """
    a = np.asarray(a)
    axes = _axes(a.ndim, axis)
    keep = [i for i in range(a.ndim) if i not in axes]
    perm = keep + list(axes)
    t = np.transpose(a, perm)
    m = int(np.prod([a.shape[i] for i in keep], dtype=np.int64))
    n = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    inverse = np.argsort(perm)

    def restore(g):
        return np.transpose(np.reshape(g, t.shape), inverse)
    return np.reshape(t, (m, n)), restore


def _float_dtype(*xs):
    """The dtype of a derivative of `xs`: their result type, at least floating."""
    return np.result_type(*[np.asarray(x).dtype for x in xs], np.float16)


# ------------------------------------------------------------------ helpers (primitives)

def expand_reduced(y, like, axis=None, keepdims=False):
    """Reshape `y`, a reduction of `like` over `axis`, so that it broadcasts against `like`
    (the shape ``keepdims=True`` would have given). ``keepdims=True`` or ``axis=None``
    (a scalar broadcasts already) return `y` unchanged."""
    if keepdims or axis is None:
        return y
    shape = np.shape(like)
    axes = _axes(len(shape), axis)
    return np.reshape(y, tuple(1 if i in axes else s for i, s in enumerate(shape)))


def prod_others(a, axis=None):
    """For each element of `a`, the product of the *other* elements of its reduced group
    (shaped like `a`): the derivative of ``np.prod(a, axis)``. Computed from exclusive
    prefix and suffix products, so it is exact when `a` contains zeros."""
    g, restore = _to_groups(a, axis)
    g = g.astype(_float_dtype(g), copy=False)
    left = np.ones_like(g)
    right = np.ones_like(g)
    if g.shape[1] > 1:
        left[:, 1:] = np.cumprod(g[:, :-1], axis=1)
        right[:, :-1] = np.cumprod(g[:, :0:-1], axis=1)[:, ::-1]
    r = restore(left * right)
    return r if np.ndim(a) else r[()]


def prod_others_tangent(a, t, axis=None):
    """The derivative of ``prod_others(a, axis)`` along `t` (linear in `t`):
    ``d_i = sum_{k != i} t_k prod_{j != i, k} a_j`` over each reduced group. With exclusive
    prefix and suffix products L, R (``prod_others = L R``), ``d = dL R + L dR``, where dL
    and dR are derivatives of cumulative products (`cumprod_tangent`), so it is exact when
    `a` contains zeros. The map t -> d is symmetric: it is its own transpose."""
    g, restore = _to_groups(a, axis)
    u, _ = _to_groups(np.broadcast_to(t, np.shape(a)), axis)
    dtype = _float_dtype(g, u)
    m, n = g.shape
    left, right = np.ones((m, n), dtype), np.ones((m, n), dtype)
    d_left, d_right = np.zeros((m, n), dtype), np.zeros((m, n), dtype)
    if n > 1:
        left[:, 1:] = np.cumprod(g[:, :-1], axis=1)
        right[:, :-1] = np.cumprod(g[:, :0:-1], axis=1)[:, ::-1]
        d_left[:, 1:] = cumprod_tangent(g[:, :-1], u[:, :-1], axis=1)
        d_right[:, :-1] = cumprod_tangent(g[:, :0:-1], u[:, :0:-1], axis=1)[:, ::-1]
    r = restore(d_left * right + left * d_right)
    return r if np.ndim(a) else r[()]


def cumprod_tangent(a, t, axis=None):
    """The derivative of ``np.cumprod(a, axis)`` along `t` (linear in `t`).

    Without zeros in `a` this is ``cumprod(a) * cumsum(t / a)``; with zeros the recurrence
    ``d_i = d_{i-1} a_i + p_{i-1} t_i`` (p = cumprod(a)) is run along the axis, which is exact.
    """
    a = np.asarray(a)
    t = np.asarray(t)
    if axis is None:
        a = np.ravel(a)
        t = np.ravel(t)
        axis = 0
    dtype = _float_dtype(a, t)
    if np.all(a != 0):
        return (np.cumprod(a, axis=axis) * np.cumsum(t / a, axis=axis)).astype(dtype, copy=False)
    am = np.moveaxis(a, axis, 0)
    tm = np.moveaxis(np.broadcast_to(t, a.shape), axis, 0)
    d = np.empty(am.shape, dtype=dtype)
    if am.shape[0]:
        p = am[0].astype(dtype)
        acc = tm[0].astype(dtype)
        d[0] = acc
        for i in range(1, am.shape[0]):
            acc = acc * am[i] + p * tm[i]
            p = p * am[i]
            d[i] = acc
    return np.moveaxis(d, 0, axis)


def median_weights(a, axis=None):
    """Weights w shaped like `a` with ``np.median(a, axis) == np.sum(w * a, axis)``: 1 at
    the middle element of each group (1/2 at the two middle ones for an even count)."""
    g, restore = _to_groups(a, axis)
    n = g.shape[1]
    order = np.argsort(g, axis=1, kind="stable")
    w = np.zeros(g.shape)
    if n:
        if n % 2:
            np.put_along_axis(w, order[:, n // 2:n // 2 + 1], 1.0, axis=1)
        else:
            np.put_along_axis(w, order[:, n // 2 - 1:n // 2 + 1], 0.5, axis=1)
    r = restore(w)
    return r if np.ndim(a) else r[()]


def take_along(x, idx, axis=-1):
    """``np.take_along_axis(x, idx, axis)`` (axis None: of the flattened x)."""
    return np.take_along_axis(np.asarray(x), idx, axis=axis)


def sort_order(a, axis=-1):
    """``np.argsort(a, axis, kind="stable")``: the permutation np.sort applies (a tie keeps
    the original order, so the tangent of a tie is deterministic)."""
    return np.argsort(a, axis=axis, kind="stable")


# Transposes of the linear helpers above (primitives too, for reverse mode).

def rcumsum(g, like, axis=None):
    """Reversed cumulative sum, ``out_i = sum_{j >= i} g_j`` along `axis`: the transpose of
    ``np.cumsum(like, axis)``. With ``axis=None``, `g` is the flat cumsum (``like.size``
    elements) and the result is shaped like `like`."""
    g = np.asarray(g)
    if axis is None:
        r = np.reshape(np.cumsum(np.ravel(g)[::-1])[::-1], np.shape(like))
        return r if r.ndim else r[()]
    return np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)


def cumprod_tangent_t(a, g, axis=None):
    """The transpose of ``cumprod_tangent(a, t, axis)`` in `t` (shaped like `a`; with
    ``axis=None`` `g` is flat). ``s_j = p_{j-1} u_j`` with exclusive prefix products
    ``p_{j-1} = a_0 ... a_{j-1}`` and ``u_j = g_j + a_{j+1} u_{j+1}``: exact at zeros.
    Without zeros: ``rcumsum(cumprod(a) * g) / a``."""
    a = np.asarray(a)
    shape = a.shape
    if axis is None:
        a = np.ravel(a)
        axis = 0
    g = np.reshape(np.asarray(g), a.shape) if np.ndim(g) != a.ndim else np.asarray(g)
    dtype = _float_dtype(a, g)
    if np.all(a != 0):
        r = np.flip(np.cumsum(np.flip(np.cumprod(a, axis=axis) * g, axis), axis=axis), axis) / a
        r = np.reshape(r.astype(dtype, copy=False), shape)
        return r if r.ndim else r[()]
    am = np.moveaxis(a, axis, 0)
    gm = np.moveaxis(np.broadcast_to(g, a.shape), axis, 0)
    n = am.shape[0]
    s = np.empty(am.shape, dtype=dtype)
    if n:
        u = gm[n - 1].astype(dtype)
        s[n - 1] = u
        for i in range(n - 2, -1, -1):
            u = gm[i] + am[i + 1] * u
            s[i] = u
        p = np.ones(am.shape[1:], dtype=dtype)
        for i in range(n):
            s[i] = s[i] * p
            p = p * am[i]
    r = np.reshape(np.moveaxis(s, 0, axis), shape)
    return r if r.ndim else r[()]


def take_along_t(g, x, idx, axis=-1):
    """The transpose of ``take_along(x, idx, axis)`` in `x`: `g` scatter-added into zeros
    shaped like `x` (repeated indices add up; dimensions `idx` broadcast over are summed).
    Real when `x` is real."""
    shape = np.shape(x)
    cplx = np.iscomplexobj(x)
    g = np.asarray(g)
    if np.iscomplexobj(g) and not cplx:
        g = g.real
    idx = np.asarray(idx)
    size = int(np.prod(shape, dtype=np.int64))
    if axis is None:
        flat = np.ravel(idx)
        flat = np.where(flat < 0, flat + size, flat)
        weights = np.ravel(np.broadcast_to(g, idx.shape))
    else:
        nd = len(shape)
        ax = _axes(nd, axis)[0]
        gshape = np.shape(g)
        index = []
        for d in range(nd):
            if d == ax:
                i = np.broadcast_to(idx, gshape)
                i = np.where(i < 0, i + shape[d], i)
            else:
                r = np.arange(gshape[d]) if shape[d] == gshape[d] else np.zeros(gshape[d], np.intp)
                i = np.reshape(r, tuple(-1 if k == d else 1 for k in range(nd)))
            index.append(np.broadcast_to(i, gshape))
        flat = np.ravel_multi_index(tuple(index), shape) if nd else np.zeros(0, np.intp)
        flat = np.ravel(flat)
        weights = np.ravel(g)
    if cplx:
        z = np.bincount(flat, np.real(weights), size) + 1j * np.bincount(flat, np.imag(weights), size)
    else:
        z = np.bincount(flat, weights.astype(np.float64, copy=False), size)
    z = np.reshape(z, shape)
    return z if z.ndim else z[()]


# ------------------------------------------------------------------ test domains

def distinct_c(*shape):
    """Distinct real parts (sort/median pick unique elements); small imaginary parts when
    complex (NumPy orders complex numbers by real part first)."""
    base = distinct(*shape)

    def fn(rng, c):
        x = base(rng, False)
        if c:
            x = x + 0.3j * rng.uniform(-1, 1, np.shape(x))
            return x if np.shape(x) else complex(x)
        return x
    return Domain(fn, f"distinct_c{shape}")


def nonzero_vals(*shape):
    """Real values with |x| in (0.5, 1.5) (prod, cumprod: away from zero, for the
    division-based second-order rules and to keep finite differences well scaled)."""
    def fn(rng, c):
        x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        if c:
            x = x + 0.3j * rng.uniform(-1, 1, shape)
        return x if shape else (complex(x) if c else float(x))
    return Domain(fn, f"nonzero_vals{shape}")


def with_zeros(*shape):
    """Nonzero values with exactly one zero per row of the last axis (exactness of the
    first-order prod/cumprod rules at zeros)."""
    def fn(rng, c):
        x = nonzero_vals(*shape)(rng, c)
        x = np.array(x)
        flat = x.reshape(-1, shape[-1])
        flat[np.arange(flat.shape[0]), rng.integers(0, shape[-1], flat.shape[0])] = 0
        return x
    return Domain(fn, f"with_zeros{shape}")


# tied maxima / minima (for max/min with a differentiable scale: max(c * s) = s * max(c))
_TIES = np.array([[1.0, 3.0, 3.0, -2.0],
                  [0.5, 0.5, 0.5, 0.5],
                  [-1.0, 2.0, -1.0, 2.0]])

# ------------------------------------------------------------------ sum, mean

sum_ = register("sum", np.sum, spelling="np.sum", params=("a", "axis", "keepdims"),
                defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",),
                linear=("a",))
sum_.example("np.sum(x)", x=real()) \
    .example("np.sum(x)", x=real(5)) \
    .example("np.sum(x, axis=1)", x=real(3, 4)) \
    .example("np.sum(x, 0)", x=real(3, 4)) \
    .example("np.sum(x, axis=-1)", x=real(2, 3, 4)) \
    .example("np.sum(x, axis=(0, 2))", x=real(2, 3, 4)) \
    .example("np.sum(x, axis=(-1, 0), keepdims=True)", x=real(2, 3, 4)) \
    .example("np.sum(x, keepdims=True)", x=real(3, 4)) \
    .example("np.sum(x * y, axis=0)", x=real(3, 4), y=real(4))


@sum_.defjvp
def _(a, a_dot, axis=None, keepdims=False):
    return np.sum(a_dot, axis=axis, keepdims=keepdims)


@sum_.deftranspose("a")
def _(ct, a, axis=None, keepdims=False):
    return broadcast_like(expand_reduced(ct, a, axis=axis, keepdims=keepdims), a)


mean = register("mean", np.mean, spelling="np.mean", params=("a", "axis", "keepdims"),
                defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",),
                linear=("a",))
mean.example("np.mean(x)", x=real()) \
    .example("np.mean(x)", x=real(5)) \
    .example("np.mean(x, axis=0)", x=real(5)) \
    .example("np.mean(x, axis=1)", x=real(3, 4)) \
    .example("np.mean(x, -2)", x=real(2, 3, 4)) \
    .example("np.mean(x, axis=(0, 2))", x=real(2, 3, 4)) \
    .example("np.mean(x, axis=0, keepdims=True)", x=real(3, 4)) \
    .example("np.mean(x, keepdims=True)", x=real(2, 3, 4))


@mean.defjvp
def _(out, a, a_dot, axis=None, keepdims=False):
    # np.sum / count rather than np.mean: Numba has no np.mean(x, axis=...)
    return np.sum(a_dot, axis=axis, keepdims=keepdims) * (np.size(out) / np.size(a))


@mean.deftranspose("a")
def _(ct, a, axis=None, keepdims=False):
    # ct is shaped like the output: np.size(ct) / np.size(a) = 1 / (elements per group)
    return broadcast_like(expand_reduced(ct * (np.size(ct) / np.size(a)), a, axis=axis,
                                         keepdims=keepdims), a)


# ------------------------------------------------------------------ prod

prod = register("prod", np.prod, spelling="np.prod", params=("a", "axis", "keepdims"),
                defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",))
prod.example("np.prod(x)", x=real()) \
    .example("np.prod(x)", x=nonzero_vals(5)) \
    .example("np.prod(x, axis=1)", x=nonzero_vals(3, 4)) \
    .example("np.prod(x, -1)", x=nonzero_vals(2, 3, 4)) \
    .example("np.prod(x, axis=(0, 2))", x=nonzero_vals(2, 3, 4)) \
    .example("np.prod(x, axis=0, keepdims=True)", x=nonzero_vals(3, 4)) \
    .example("np.prod(x, keepdims=True)", x=nonzero_vals(2, 3)) \
    .example("np.prod(x, axis=0)", x=nonzero_vals(4)) \
    .example("np.prod(x, axis=1)", x=with_zeros(3, 4)) \
    .example("np.prod(x)", x=with_zeros(4))


@prod.defjvp
def _(a, a_dot, axis=None, keepdims=False):
    # products of the other elements of each group: exact at zeros (no out / a)
    return np.sum(a_dot * prod_others(a, axis=axis), axis=axis, keepdims=keepdims)


prod_others_p = register("prod_others", prod_others, spelling="prod_others", params=("a", "axis"),
                         defaults={"axis": None},
                         doc="products of the other elements of each reduced group (d prod)")
# `h` is the helper itself, passed in as a constant (test functions only see `np`)
prod_others_p.example("h(x, axis=1)", h=const(prod_others), x=nonzero_vals(3, 4)) \
    .example("h(x)", h=const(prod_others), x=nonzero_vals(2, 3)) \
    .example("h(x, axis=(0, -1))", h=const(prod_others), x=nonzero_vals(2, 3, 2))


@prod_others_p.defjvp
def _(out, a, a_dot, axis=None):
    # exact at zeros: second derivatives of prod are exact too
    return prod_others_tangent(a, a_dot, axis=axis)


prod_others_tangent_p = register("prod_others_tangent", prod_others_tangent,
                                 spelling="prod_others_tangent", params=("a", "t", "axis"),
                                 defaults={"axis": None}, linear=("t",),
                                 doc="d prod_others(a, axis) along t (d^2 prod)")
prod_others_tangent_p.example("h(x, t, axis=1)", h=const(prod_others_tangent), x=nonzero_vals(3, 4),
                              t=real(3, 4)) \
    .example("h(x, t)", h=const(prod_others_tangent), x=nonzero_vals(2, 3), t=real(2, 3)) \
    .example("h(x, t, axis=(0, -1))", h=const(prod_others_tangent), x=nonzero_vals(2, 3, 2),
             t=real(2, 3, 2)) \
    .example("h(x, t, axis=-1)", h=const(prod_others_tangent), x=with_zeros(3, 4), t=real(3, 4),
             wrt=("t",))


@prod_others_tangent_p.defjvp
def _(out, a, t, a_dot, t_dot, axis=None):
    # Where a has no zeros, with O = prod_others(a) and r = t / a:
    # d_i = O_i (sum(r) - r_i), so its a-derivative is
    # prod_others_tangent(a, a_dot) (sum(r) - r) + O (sum(dr) - dr), dr = -r a_dot / a.
    # LIMITATION: divides by a, so third derivatives of prod at an exact zero are not
    # finite (first and second derivatives are exact).
    r = t / a
    dr = -r * a_dot / a
    return prod_others_tangent(a, t_dot, axis=axis) + \
        prod_others_tangent(a, a_dot, axis=axis) * (expand_reduced(np.sum(r, axis=axis), a, axis=axis) - r) + \
        prod_others(a, axis=axis) * (expand_reduced(np.sum(dr, axis=axis), a, axis=axis) - dr)


@prod_others_tangent_p.deftranspose("t")
def _(ct, a, t, axis=None):
    return unbroadcast(prod_others_tangent(a, ct, axis=axis), t)


# ------------------------------------------------------------------ max, min

def _chooser(np_fn, name):
    p = register(name, np_fn, spelling=f"np.{name}", params=("a", "axis", "keepdims"),
                 defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",),
                 complex=False)
    p.example(f"np.{name}(x)", x=real()) \
        .example(f"np.{name}(x)", x=distinct(6)) \
        .example(f"np.{name}(x, axis=0)", x=distinct(5)) \
        .example(f"np.{name}(x, axis=1)", x=distinct(3, 4)) \
        .example(f"np.{name}(x, 0)", x=distinct(3, 4)) \
        .example(f"np.{name}(x, axis=-1)", x=distinct(2, 3, 4)) \
        .example(f"np.{name}(x, axis=(0, 2))", x=distinct(2, 3, 4)) \
        .example(f"np.{name}(x, axis=(-1, 1), keepdims=True)", x=distinct(2, 3, 4)) \
        .example(f"np.{name}(x, keepdims=True)", x=distinct(3, 4)) \
        .example(f"np.{name}(c * s, axis=1)", c=const(_TIES), s=pos()) \
        .example(f"np.{name}(c * s)", c=const(_TIES[0]), s=pos())
    return p


def _chooser_jvp(out, a, a_dot, axis=None, keepdims=False):
    # JAX's convention: tied extrema share the derivative evenly.
    mask = a == expand_reduced(out, a, axis=axis, keepdims=keepdims)
    count = np.sum(mask, axis=axis, keepdims=keepdims)
    return np.sum(a_dot * mask, axis=axis, keepdims=keepdims) / count


max_ = _chooser(np.max, "max")
alias(np.amax, max_)
max_.defjvp(_chooser_jvp)
min_ = _chooser(np.min, "min")
alias(np.amin, min_)
min_.defjvp(_chooser_jvp)

expand_reduced_p = register("expand_reduced", expand_reduced, spelling="expand_reduced",
                            params=("y", "like", "axis", "keepdims"),
                            defaults={"axis": None, "keepdims": False}, linear=("y",),
                            doc="a reduction of `like` reshaped to broadcast against `like`")
expand_reduced_p.example("h(y, x, axis=1) * x", h=const(expand_reduced), y=real(3), x=real(3, 4)) \
    .example("h(y, x, axis=(0, -1)) + x", h=const(expand_reduced), y=real(3), x=real(2, 3, 4)) \
    .example("h(y, x, axis=0, keepdims=True) - x", h=const(expand_reduced), y=real(1, 4), x=real(3, 4)) \
    .example("h(y, x) * x", h=const(expand_reduced), y=real(), x=real(3, 2))


@expand_reduced_p.defjvp
def _(y, like, y_dot, axis=None, keepdims=False):
    return expand_reduced(y_dot, like, axis=axis, keepdims=keepdims)


@expand_reduced_p.deftranspose("y")
def _(ct, y, like, axis=None, keepdims=False):
    # expand_reduced only inserts size-1 axes (or is the identity when keepdims / axis=None):
    # summing over the inserted axes undoes it; with keepdims or axis=None the sum keeps
    # the shape of y (a scalar stays a scalar).
    return np.sum(ct, axis=axis, keepdims=keepdims)


# ------------------------------------------------------------------ scans

cumsum = register("cumsum", np.cumsum, spelling="np.cumsum", params=("a", "axis"),
                  defaults={"axis": None}, linear=("a",))
cumsum.example("np.cumsum(x)", x=real()) \
    .example("np.cumsum(x)", x=real(5)) \
    .example("np.cumsum(x)", x=real(3, 4)) \
    .example("np.cumsum(x, axis=1)", x=real(3, 4)) \
    .example("np.cumsum(x, 0)", x=real(3, 4)) \
    .example("np.cumsum(x, axis=-2)", x=real(2, 3, 4))


@cumsum.defjvp
def _(a, a_dot, axis=None):
    return np.cumsum(a_dot, axis=axis)


@cumsum.deftranspose("a")
def _(ct, a, axis=None):
    return rcumsum(ct, a, axis=axis)


rcumsum_p = register("rcumsum", rcumsum, spelling="rcumsum", params=("g", "like", "axis"),
                     defaults={"axis": None}, linear=("g",),
                     doc="reversed cumulative sum (the transpose of np.cumsum(like, axis))")
rcumsum_p.example("h(g, x)", h=const(rcumsum), g=real(5), x=real(5)) \
    .example("h(g, x)", h=const(rcumsum), g=real(6), x=real(2, 3)) \
    .example("h(g, x)", h=const(rcumsum), g=real(1), x=real()) \
    .example("h(g, x, axis=1)", h=const(rcumsum), g=real(3, 4), x=real(3, 4)) \
    .example("h(g, x, axis=-3)", h=const(rcumsum), g=real(2, 3, 4), x=real(2, 3, 4))


@rcumsum_p.defjvp
def _(g, like, g_dot, axis=None):
    return rcumsum(g_dot, like, axis=axis)


@rcumsum_p.deftranspose("g")
def _(ct, g, like, axis=None):
    # ct is shaped like `like`; np.cumsum flattens it again when axis is None
    return np.cumsum(ct, axis=axis)


cumprod = register("cumprod", np.cumprod, spelling="np.cumprod", params=("a", "axis"),
                   defaults={"axis": None})
cumprod.example("np.cumprod(x)", x=real()) \
    .example("np.cumprod(x)", x=nonzero_vals(5)) \
    .example("np.cumprod(x)", x=nonzero_vals(3, 4)) \
    .example("np.cumprod(x, axis=1)", x=nonzero_vals(3, 4)) \
    .example("np.cumprod(x, 0)", x=nonzero_vals(3, 4)) \
    .example("np.cumprod(x, axis=-2)", x=nonzero_vals(2, 3, 4)) \
    .example("np.cumprod(x, axis=-1)", x=with_zeros(3, 4)) \
    .example("np.cumprod(x)", x=with_zeros(5))


@cumprod.defjvp
def _(a, a_dot, axis=None):
    return cumprod_tangent(a, a_dot, axis=axis)


cumprod_tangent_p = register("cumprod_tangent", cumprod_tangent, spelling="cumprod_tangent",
                             params=("a", "t", "axis"), defaults={"axis": None}, linear=("t",),
                             doc="d cumprod(a, axis) along t")
cumprod_tangent_p.example("h(x, t, axis=1)", h=const(cumprod_tangent), x=nonzero_vals(3, 4),
                          t=real(3, 4)) \
    .example("h(x, t)", h=const(cumprod_tangent), x=nonzero_vals(2, 3), t=real(2, 3)) \
    .example("h(x, t, axis=0)", h=const(cumprod_tangent), x=nonzero_vals(4), t=real(4), wrt=("x",))


@cumprod_tangent_p.defjvp
def _(a, t, a_dot, t_dot, axis=None):
    # cumprod_tangent(a, t) = cumprod(a) * cumsum(t / a) where a has no zeros.
    # LIMITATION: the a-derivative divides by a, so second derivatives of cumprod at an
    # exact zero are not finite (first derivatives are exact).
    r = t / a
    return cumprod_tangent(a, t_dot, axis=axis) + \
        cumprod_tangent(a, a_dot, axis=axis) * np.cumsum(r, axis=axis) - \
        np.cumprod(a, axis=axis) * np.cumsum(r * a_dot / a, axis=axis)


@cumprod_tangent_p.deftranspose("t")
def _(ct, a, t, axis=None):
    return unbroadcast(cumprod_tangent_t(a, ct, axis=axis), t)


cumprod_tangent_t_p = register("cumprod_tangent_t", cumprod_tangent_t, spelling="cumprod_tangent_t",
                               params=("a", "g", "axis"), defaults={"axis": None}, linear=("g",),
                               doc="the transpose of cumprod_tangent(a, t, axis) in t")
cumprod_tangent_t_p.example("h(x, g, axis=1)", h=const(cumprod_tangent_t), x=nonzero_vals(3, 4),
                            g=real(3, 4)) \
    .example("h(x, g)", h=const(cumprod_tangent_t), x=nonzero_vals(2, 3), g=real(6)) \
    .example("h(x, g, axis=0)", h=const(cumprod_tangent_t), x=nonzero_vals(4), g=real(4)) \
    .example("h(x, g, axis=-1)", h=const(cumprod_tangent_t), x=with_zeros(3, 4), g=real(3, 4),
             wrt=("g",)) \
    .example("h(x, g, axis=0)", h=const(cumprod_tangent_t), x=nonzero_vals(4), g=real(4), wrt=("x",))


@cumprod_tangent_t_p.defjvp
def _(out, a, g, a_dot, g_dot, axis=None):
    # out_j = rcumsum(cumprod(a) * g)_j / a_j where a has no zeros.
    # LIMITATION: the a-derivative divides by a (as cumprod_tangent's), so it is not
    # finite at an exact zero of a.
    return cumprod_tangent_t(a, g_dot, axis=axis) + \
        (rcumsum(cumprod_tangent(a, a_dot, axis=axis) * g, a, axis=axis) - a_dot * out) / a


@cumprod_tangent_t_p.deftranspose("g")
def _(ct, a, g, axis=None):
    return unbroadcast(cumprod_tangent(a, ct, axis=axis), g)


# ------------------------------------------------------------------ var, std

def _moments(np_fn, name):
    p = register(name, np_fn, spelling=f"np.{name}", params=("a", "axis", "ddof", "keepdims"),
                 defaults={"axis": None, "ddof": 0, "keepdims": False},
                 keyword_only=("ddof", "keepdims"))
    p.example(f"np.{name}(x)", x=real(5)) \
        .example(f"np.{name}(x, axis=0, ddof=1)", x=real(5)) \
        .example(f"np.{name}(x, axis=1)", x=real(3, 4)) \
        .example(f"np.{name}(x, 0, ddof=1)", x=real(3, 4)) \
        .example(f"np.{name}(x, axis=-1, keepdims=True)", x=real(2, 3, 4)) \
        .example(f"np.{name}(x, axis=(0, 2), ddof=2)", x=real(2, 3, 4)) \
        .example(f"np.{name}(x, keepdims=True, ddof=1)", x=real(3, 4))
    return p


var = _moments(np.var, "var")
var.example("np.var(x)", x=real())  # 0 for a scalar: the derivative is 0 too


@var.defjvp
def _(out, a, a_dot, axis=None, ddof=0, keepdims=False):
    # var = sum |c|^2 / (n - ddof) with c = a - mean; d|c|^2 = 2 Re(conj(c) dc), and the
    # mean's own tangent drops out since sum(conj(c)) = 0 over each group.
    n = np.size(a) / np.size(out)
    c = a - expand_reduced(np.sum(a, axis=axis) / n, a, axis=axis)
    return 2 * np.sum(np.real(np.conj(c) * a_dot), axis=axis, keepdims=keepdims) / (n - ddof)


std = _moments(np.std, "std")  # no 0-d example: std = 0 there (sqrt is not differentiable)


@std.defjvp
def _(out, a, a_dot, axis=None, ddof=0, keepdims=False):
    # d std = d var / (2 std); infinite where std == 0 (as in JAX)
    n = np.size(a) / np.size(out)
    c = a - expand_reduced(np.sum(a, axis=axis) / n, a, axis=axis)
    return np.sum(np.real(np.conj(c) * a_dot), axis=axis, keepdims=keepdims) / ((n - ddof) * out)


# ------------------------------------------------------------------ median

median = register("median", np.median, spelling="np.median", params=("a", "axis", "keepdims"),
                  defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",))
median.example("np.median(x)", x=distinct_c()) \
    .example("np.median(x)", x=distinct_c(5)) \
    .example("np.median(x)", x=distinct_c(6)) \
    .example("np.median(x, axis=1)", x=distinct_c(3, 4)) \
    .example("np.median(x, 0)", x=distinct_c(3, 5)) \
    .example("np.median(x, axis=(0, -1))", x=distinct_c(2, 3, 3)) \
    .example("np.median(x, axis=-2, keepdims=True)", x=distinct_c(2, 3, 4))


@median.defjvp
def _(a, a_dot, axis=None, keepdims=False):
    return np.sum(a_dot * median_weights(a, axis=axis), axis=axis, keepdims=keepdims)


register("median_weights", median_weights, spelling="median_weights", params=("a", "axis"),
         defaults={"axis": None}, nondiff=True,
         doc="weights picking the middle element(s) of each group")

# ------------------------------------------------------------------ sort

sort = register("sort", np.sort, spelling="np.sort", params=("a", "axis", "kind"),
                defaults={"axis": -1, "kind": None})
sort.example("np.sort(x)", x=distinct_c(6)) \
    .example("np.sort(x)", x=distinct_c(3, 4)) \
    .example("np.sort(x, axis=0)", x=distinct_c(3, 4)) \
    .example("np.sort(x, 1)", x=distinct_c(2, 3, 4)) \
    .example("np.sort(x, axis=None)", x=distinct_c(3, 4)) \
    .example("np.sort(x, axis=-3, kind='stable')", x=distinct_c(2, 3, 4))


@sort.defjvp
def _(a, a_dot, axis=-1, kind=None):
    return take_along(a_dot, sort_order(a, axis=axis), axis=axis)


argsort = register("argsort", np.argsort, spelling="np.argsort", params=("a", "axis", "kind"),
                   defaults={"axis": -1, "kind": None}, nondiff=True)
argsort.example("np.argsort(x)", x=distinct(5)).example("np.argsort(x, axis=0)", x=distinct(3, 4))
register("sort_order", sort_order, spelling="sort_order", params=("a", "axis"), defaults={"axis": -1},
         nondiff=True, doc="np.argsort(a, axis, kind='stable') (Numba: any axis, not only 1-d)")

take_along_p = register("take_along", take_along, spelling="take_along", params=("x", "idx", "axis"),
                        defaults={"axis": -1}, linear=("x",),
                        doc="np.take_along_axis (axis None: of the flattened array)")
take_along_p.example("h(x, i)", h=const(take_along), x=real(3, 4),
                     i=const(np.array([[2, 0], [1, 1], [3, 0]]))) \
    .example("h(x, i, axis=None)", h=const(take_along), x=real(2, 3), i=const(np.array([5, 0, 2]))) \
    .example("h(x, i, axis=0)", h=const(take_along), x=real(3, 2), i=const(np.array([[2, 0]])))


@take_along_p.defjvp
def _(x, idx, x_dot, axis=-1):
    return take_along(x_dot, idx, axis=axis)


@take_along_p.deftranspose("x")
def _(ct, x, idx, axis=-1):
    return take_along_t(ct, x, idx, axis=axis)


take_along_t_p = register("take_along_t", take_along_t, spelling="take_along_t",
                          params=("g", "x", "idx", "axis"), defaults={"axis": -1}, linear=("g",),
                          doc="the transpose of take_along: scatter-add into zeros like x")
take_along_t_p.example("h(g, x, i)", h=const(take_along_t), g=real(3, 2), x=real(3, 4),
                       i=const(np.array([[2, 0], [1, 1], [3, 0]])), wrt=("g",)) \
    .example("h(g, x, i, axis=None)", h=const(take_along_t), g=real(4), x=real(2, 3),
             i=const(np.array([5, 0, 2, 5])), wrt=("g",)) \
    .example("h(g, x, i, axis=0)", h=const(take_along_t), g=real(2, 2), x=real(3, 2),
             i=const(np.array([[2, 0], [-1, 2]])), wrt=("g",))


@take_along_t_p.defjvp
def _(g, x, idx, g_dot, axis=-1):
    return take_along_t(g_dot, x, idx, axis=axis)


@take_along_t_p.deftranspose("g")
def _(ct, g, x, idx, axis=-1):
    return unbroadcast(take_along(ct, idx, axis=axis), g)


# ------------------------------------------------------------------ non-differentiable

for _fn, _name in ((np.argmax, "argmax"), (np.argmin, "argmin")):
    _p = register(_name, _fn, spelling=f"np.{_name}", params=("a", "axis", "keepdims"),
                  defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",),
                  nondiff=True, complex=False)
    _p.example(f"np.{_name}(x)", x=distinct(3, 4)) \
        .example(f"np.{_name}(x, axis=-1)", x=distinct(3, 4)) \
        .example(f"np.{_name}(x, 0, keepdims=True)", x=distinct(3, 4))

for _fn, _name in ((np.any, "any"), (np.all, "all")):
    _p = register(_name, _fn, spelling=f"np.{_name}", params=("a", "axis", "keepdims"),
                  defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",),
                  nondiff=True)
    _p.example(f"np.{_name}(x > 0)", x=real(3, 4)) \
        .example(f"np.{_name}(b, axis=(0, -1), keepdims=True)", b=bools(2, 3, 4))

count_nonzero = register("count_nonzero", np.count_nonzero, spelling="np.count_nonzero",
                         params=("a", "axis", "keepdims"),
                         defaults={"axis": None, "keepdims": False}, keyword_only=("keepdims",),
                         nondiff=True)
count_nonzero.example("np.count_nonzero(x > 0)", x=real(3, 4)) \
    .example("np.count_nonzero(k, axis=1)", k=ints(0, 3, 3, 4))


# ------------------------------------------------------------------ Numba implementations

_NUMBA_DONE = False


def register_numba():
    """Give this module's helpers Numba implementations (idempotent).

    Meant to be called from `s2sad.runtime.helpers.register_numba` (which `ad.jit` and the
    Numba tests call). `expand_reduced` handles every axis form; the others handle
    ``axis=None`` and an int axis (NumPy's own axis-tuple reductions are not in Numba).
    """
    global _NUMBA_DONE
    if _NUMBA_DONE:
        return
    _NUMBA_DONE = True
    from numba import types
    from numba.core.errors import TypingError
    from numba.extending import overload, register_jitable
    from numba.np.numpy_support import as_dtype
    from numba.np.unsafe.ndarray import to_fixed_tuple

    def is_none(t):
        return t is None or isinstance(t, types.NoneType) or \
            (isinstance(t, types.Omitted) and t.value is None)

    def flag(t, name):
        if isinstance(t, bool):  # the default, when the argument is left out
            return t
        if isinstance(t, types.Omitted):
            return bool(t.value)
        if isinstance(t, types.BooleanLiteral):
            return t.literal_value
        raise TypingError(f"{name} must be a constant True/False")

    def check_axis(axis, fn):
        if not (is_none(axis) or isinstance(axis, (int, types.Integer, types.Omitted))):
            raise TypingError(f"{fn}: axis must be None or an int under Numba")

    def float_dtype(*ts):
        return np.result_type(*[as_dtype(t.dtype if isinstance(t, types.Array) else t) for t in ts],
                              np.float16)

    @overload(expand_reduced)
    def _expand_reduced(y, like, axis=None, keepdims=False):
        if is_none(axis) or flag(keepdims, "keepdims") or not isinstance(y, types.Array):
            return lambda y, like, axis=None, keepdims=False: y
        nd = like.ndim
        if isinstance(axis, types.Integer):
            def impl(y, like, axis=None, keepdims=False):
                ax = axis + nd if axis < 0 else axis
                shape = np.empty(nd, np.int64)
                for i in range(nd):
                    shape[i] = 1 if i == ax else like.shape[i]
                return np.ascontiguousarray(y).reshape(to_fixed_tuple(shape, nd))
            return impl

        def impl_tuple(y, like, axis=None, keepdims=False):
            shape = np.empty(nd, np.int64)
            for i in range(nd):
                shape[i] = like.shape[i]
            for ax in axis:
                shape[ax + nd if ax < 0 else ax] = 1
            return np.ascontiguousarray(y).reshape(to_fixed_tuple(shape, nd))
        return impl_tuple

    # Row kernels: `g` is (groups, n), one reduced group per row.
    @register_jitable
    def rows_prod_others(g, out):
        m, n = g.shape
        for r in range(m):
            acc = 1.0
            for i in range(n):
                out[r, i] = acc
                acc = acc * g[r, i]
            acc = 1.0
            for i in range(n - 1, -1, -1):
                out[r, i] = out[r, i] * acc
                acc = acc * g[r, i]

    @register_jitable
    def rows_prod_others_tangent(g, u, out):
        # d_i = dL_i R_i + L_i dR_i with exclusive prefix (L) and suffix (R) products
        m, n = g.shape
        lefts = np.empty(n, out.dtype)
        for r in range(m):
            acc = 1.0
            d_acc = 0.0
            for i in range(n):
                lefts[i] = acc
                out[r, i] = d_acc
                d_acc = d_acc * g[r, i] + acc * u[r, i]
                acc = acc * g[r, i]
            acc = 1.0
            d_acc = 0.0
            for i in range(n - 1, -1, -1):
                out[r, i] = out[r, i] * acc + lefts[i] * d_acc
                d_acc = d_acc * g[r, i] + acc * u[r, i]
                acc = acc * g[r, i]

    @register_jitable
    def rows_cumprod_tangent(g, u, out):
        m, n = g.shape
        for r in range(m):
            if n == 0:
                continue
            out[r, 0] = u[r, 0]
            acc = out[r, 0]
            p = out[r, 0] * 0 + g[r, 0]
            for i in range(1, n):
                acc = acc * g[r, i] + p * u[r, i]
                p = p * g[r, i]
                out[r, i] = acc

    @register_jitable
    def rows_median_weights(g, out):
        m, n = g.shape
        out[:] = 0.0
        for r in range(m):
            if n == 0:
                continue
            order = np.argsort(g[r], kind="mergesort")
            if n % 2:
                out[r, order[n // 2]] = 1.0
            else:
                out[r, order[n // 2 - 1]] = 0.5
                out[r, order[n // 2]] = 0.5

    @register_jitable
    def rows_sort_order(g, out):
        for r in range(g.shape[0]):
            out[r] = np.argsort(g[r], kind="mergesort")

    @register_jitable
    def rows_take(x, idx, out):
        for r in range(idx.shape[0]):
            for j in range(idx.shape[1]):
                out[r, j] = x[r, idx[r, j]]

    @register_jitable
    def as_rows(m):
        n = m.shape[-1]
        return m.reshape((m.size // n if n else 0, n))

    @overload(prod_others)
    def _prod_others(a, axis=None):
        check_axis(axis, "prod_others")
        dt = float_dtype(a)
        if not isinstance(a, types.Array):
            return lambda a, axis=None: 1.0
        if is_none(axis):
            def impl(a, axis=None):
                g = np.ascontiguousarray(a).reshape((1, a.size))
                out = np.empty(g.shape, dt)
                rows_prod_others(g, out)
                return out.reshape(a.shape)
            return impl

        def impl_axis(a, axis=None):
            m = np.ascontiguousarray(np.moveaxis(a, axis, -1))
            out = np.empty(m.shape, dt)
            rows_prod_others(as_rows(m), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(prod_others_tangent)
    def _prod_others_tangent(a, t, axis=None):
        check_axis(axis, "prod_others_tangent")
        dt = float_dtype(a, t)
        if not isinstance(a, types.Array):
            return lambda a, t, axis=None: 0.0 * t
        if is_none(axis):
            def impl(a, t, axis=None):
                g = np.ascontiguousarray(a).reshape((1, a.size))
                u = np.ascontiguousarray(np.broadcast_to(t, a.shape)).reshape((1, a.size))
                out = np.empty(g.shape, dt)
                rows_prod_others_tangent(g, u, out)
                return out.reshape(a.shape)
            return impl

        def impl_axis(a, t, axis=None):
            m = np.ascontiguousarray(np.moveaxis(a, axis, -1))
            u = np.ascontiguousarray(np.moveaxis(np.broadcast_to(t, a.shape), axis, -1))
            out = np.empty(m.shape, dt)
            rows_prod_others_tangent(as_rows(m), as_rows(u), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(cumprod_tangent)
    def _cumprod_tangent(a, t, axis=None):
        check_axis(axis, "cumprod_tangent")
        dt = float_dtype(a, t)
        if not isinstance(a, types.Array):
            def impl_scalar(a, t, axis=None):
                out = np.empty(1, dt)
                out[0] = t
                return out
            return impl_scalar
        if is_none(axis):
            def impl(a, t, axis=None):
                g = np.ascontiguousarray(a).reshape((1, a.size))
                u = np.ascontiguousarray(t).reshape((1, a.size))
                out = np.empty(g.shape, dt)
                rows_cumprod_tangent(g, u, out)
                return out.reshape(a.size)
            return impl

        def impl_axis(a, t, axis=None):
            m = np.ascontiguousarray(np.moveaxis(a, axis, -1))
            u = np.ascontiguousarray(np.moveaxis(t, axis, -1))
            out = np.empty(m.shape, dt)
            rows_cumprod_tangent(as_rows(m), as_rows(u), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(median_weights)
    def _median_weights(a, axis=None):
        check_axis(axis, "median_weights")
        if not isinstance(a, types.Array):
            return lambda a, axis=None: 1.0
        if is_none(axis):
            def impl(a, axis=None):
                g = np.ascontiguousarray(a).reshape((1, a.size))
                out = np.empty(g.shape, np.float64)
                rows_median_weights(g, out)
                return out.reshape(a.shape)
            return impl

        def impl_axis(a, axis=None):
            m = np.ascontiguousarray(np.moveaxis(a, axis, -1))
            out = np.empty(m.shape, np.float64)
            rows_median_weights(as_rows(m), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(sort_order)
    def _sort_order(a, axis=-1):
        check_axis(axis, "sort_order")
        if is_none(axis):
            def impl(a, axis=-1):
                out = np.empty((1, a.size), np.int64)
                rows_sort_order(np.ascontiguousarray(a).reshape((1, a.size)), out)
                return out.reshape(a.size)
            return impl

        def impl_axis(a, axis=-1):
            m = np.ascontiguousarray(np.moveaxis(a, axis, -1))
            out = np.empty(m.shape, np.int64)
            rows_sort_order(as_rows(m), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(take_along)
    def _take_along(x, idx, axis=-1):
        check_axis(axis, "take_along")
        dt = as_dtype(x.dtype)
        if is_none(axis):
            def impl(x, idx, axis=-1):
                flat = np.ascontiguousarray(x).reshape((1, x.size))
                out = np.empty((1, idx.size), dt)
                rows_take(flat, np.ascontiguousarray(idx).reshape((1, idx.size)), out)
                return out.reshape(idx.size)
            return impl

        def impl_axis(x, idx, axis=-1):
            m = np.ascontiguousarray(np.moveaxis(x, axis, -1))
            i = np.ascontiguousarray(np.moveaxis(idx, axis, -1))
            out = np.empty(i.shape, dt)
            rows_take(m.reshape((i.size // i.shape[-1] if i.shape[-1] else 0, m.shape[-1])),
                      as_rows(i), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    # -- transposes of the linear helpers (reverse mode)

    @register_jitable
    def rows_rcumsum(g, out):
        m, n = g.shape
        for r in range(m):
            acc = g[r, 0] * 0
            for i in range(n - 1, -1, -1):
                acc = acc + g[r, i]
                out[r, i] = acc

    @register_jitable
    def rows_cumprod_tangent_t(a, g, out):
        # s_j = p_{j-1} u_j, u_j = g_j + a_{j+1} u_{j+1} (exact at zeros)
        m, n = a.shape
        for r in range(m):
            if n == 0:
                continue
            u = g[r, n - 1] + a[r, 0] * 0
            out[r, n - 1] = u
            for i in range(n - 2, -1, -1):
                u = g[r, i] + a[r, i + 1] * u
                out[r, i] = u
            p = a[r, 0] * 0 + 1
            for i in range(n):
                out[r, i] = out[r, i] * p
                p = p * a[r, i]

    @register_jitable
    def rows_take_t(g, idx, out):
        n = out.shape[1]
        for r in range(idx.shape[0]):
            for j in range(idx.shape[1]):
                k = idx[r, j]
                out[r, k + n if k < 0 else k] += g[r, j]

    @overload(rcumsum)
    def _rcumsum(g, like, axis=None):
        check_axis(axis, "rcumsum")
        dt = float_dtype(g)
        if not isinstance(g, types.Array):
            return lambda g, like, axis=None: g
        if is_none(axis):
            if isinstance(like, types.Array):
                def impl(g, like, axis=None):
                    out = np.empty((1, g.size), dt)
                    rows_rcumsum(np.ascontiguousarray(g).reshape((1, g.size)), out)
                    return out.reshape(like.shape)
                return impl

            def impl_scalar(g, like, axis=None):
                return g.sum()
            return impl_scalar

        def impl_axis(g, like, axis=None):
            m = np.ascontiguousarray(np.moveaxis(g, axis, -1))
            out = np.empty(m.shape, dt)
            rows_rcumsum(as_rows(m), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(cumprod_tangent_t)
    def _cumprod_tangent_t(a, g, axis=None):
        check_axis(axis, "cumprod_tangent_t")
        dt = float_dtype(a, g)
        if not isinstance(a, types.Array):
            return lambda a, g, axis=None: g[0] + a * 0
        if is_none(axis):
            def impl(a, g, axis=None):
                m = np.ascontiguousarray(a).reshape((1, a.size))
                u = np.ascontiguousarray(g).reshape((1, a.size))
                out = np.empty(m.shape, dt)
                rows_cumprod_tangent_t(m, u, out)
                return out.reshape(a.shape)
            return impl

        def impl_axis(a, g, axis=None):
            m = np.ascontiguousarray(np.moveaxis(a, axis, -1))
            u = np.ascontiguousarray(np.moveaxis(g, axis, -1))
            out = np.empty(m.shape, dt)
            rows_cumprod_tangent_t(as_rows(m), as_rows(u), as_rows(out))
            return np.moveaxis(out, -1, axis)
        return impl_axis

    @overload(take_along_t)
    def _take_along_t(g, x, idx, axis=-1):
        # idx must have x's shape off the axis (no broadcasting), as for take_along
        check_axis(axis, "take_along_t")
        cplx = isinstance(x.dtype, types.Complex)
        dt = np.complex128 if cplx else np.float64
        gfix = (lambda v: v) if cplx or not isinstance(g.dtype, types.Complex) else None
        if gfix is None:
            @register_jitable
            def gfix(v):
                return np.real(v)
        else:
            gfix = register_jitable(gfix)
        if is_none(axis):
            def impl(g, x, idx, axis=-1):
                out = np.zeros((1, x.size), dt)
                rows_take_t(np.ascontiguousarray(gfix(g)).reshape((1, idx.size)),
                            np.ascontiguousarray(idx).reshape((1, idx.size)), out)
                return out.reshape(x.shape)
            return impl

        def impl_axis(g, x, idx, axis=-1):
            i = np.ascontiguousarray(np.moveaxis(idx, axis, -1))
            gm = np.ascontiguousarray(gfix(np.moveaxis(g, axis, -1)))
            ax = axis + x.ndim if axis < 0 else axis
            n = x.shape[ax]
            rows = i.size // i.shape[-1] if i.shape[-1] else 0
            out = np.zeros((rows, n), dt)
            rows_take_t(gm.reshape((rows, i.shape[-1])), as_rows(i), out)
            shape = np.empty(x.ndim, np.int64)  # x.shape with the axis moved last
            k = 0
            for d in range(x.ndim):
                if d != ax:
                    shape[k] = x.shape[d]
                    k += 1
            shape[x.ndim - 1] = n
            return np.moveaxis(out.reshape(to_fixed_tuple(shape, x.ndim)), -1, axis)
        return impl_axis
