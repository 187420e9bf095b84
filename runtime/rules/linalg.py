"""Products and linear algebra: dot, vdot, outer, inner, tensordot, einsum, trace, diag,
diagonal, kron, cross, and np.linalg (cholesky, solve, inv, det, slogdet, norm, eigh,
matrix_power) plus scipy.linalg.solve_triangular.

The JVP rules follow JAX's (jax/_src/lax/linalg.py, jax/_src/numpy/linalg.py):

- cholesky: with L = cholesky(A) and S = (dA + dA^H) / 2 (JAX symmetrizes the input),
  dL = L Phi(L^{-1} S L^{-H}), Phi = lower triangle with the diagonal halved;
- det: d det = det * tr(A^{-1} dA); slogdet: t = tr(A^{-1} dA), d logabsdet = Re t,
  d sign = (t - Re t) * sign (zero for real input);
- eigh: with A = V diag(w) V^H and M = V^H S V, dw = Re diag(M), dV = V (F * M),
  F_ij = 1 / (w_j - w_i) off the diagonal and 0 on it;
- inv: dX = -X dA X; solve: dx = A^{-1} (db - dA x);
- triangular solves differentiate only the triangle that is read (and not a unit
  diagonal);
- norm: the Euclidean/Frobenius norm, d|x| = sum Re(conj(x) dx) / |x|.

Rules call only registered primitives, so they can be differentiated again. The helper
functions below (``tri_part``, ``euclid_guard``, ``block_upper``, ...) are primitives of
their own, linear, with JVP and transpose rules.

Transposes (reverse mode) use JAX's bilinear pairing <u, v> = Re(sum(u * v)):

- the bilinear products go through ``bprod_ta`` / ``bprod_tb`` (cotangent of the first /
  second operand of the product named by ``kind``), whose own transposes are ``bprod`` and
  each other -- the matmul_tx/matmul_ty pattern; np.einsum through ``einsum_ta`` ...
  ``einsum_td`` (an einsum of the cotangent with the other operands, subscripts computed
  at run time);
- trace/diag/diagonal embed the cotangent on a diagonal (``trace_t``, ``diag_t``,
  ``diagonal_t``);
- solve in b: solve(a^T, ct); solve_triangular in b: ``solve_triangular_t`` (the solve with
  the transposed flag);
- matrix_power's JVP is ``matpow_jvp(a, da, n)``, linear in da, whose transpose is
  matpow_jvp(a^T, ct, n) and whose JVP in a uses the block identity
  d(a^n)[e] = upper-right block of [[a, e], [0, a]]^n, so it differentiates to any order.
"""

import string
from collections import Counter

import numpy as np
import scipy.linalg

from s2sad.runtime.domains import Domain, const, ints, lower, real, wellcond
from s2sad.runtime.helpers import unbroadcast
from s2sad.runtime.registry import register


# ---------------------------------------------------------------- test domains
def _upper(n):
    """A well-conditioned upper-triangular matrix."""
    base = lower(n)

    def fn(rng, c):
        return np.swapaxes(base(rng, c), -1, -2).copy()
    return Domain(fn, f"upper({n})")


def _negdet(n):
    """A well-conditioned matrix with a negative determinant (real case)."""
    base = wellcond(n)

    def fn(rng, c):
        a = base(rng, c)
        a[0] = -a[0]
        return a
    return Domain(fn, f"negdet({n})")


def _small(*shape):
    return real(*shape, lo=-0.3, hi=0.3)


# ---------------------------------------------------------------- bilinear product helpers
# The transposes of the bilinear products follow the pattern of matmul_tx/matmul_ty in
# core: for a product P(a, b) (np.dot, np.vdot, np.inner, np.outer, np.kron,
# np.tensordot, np.cross; `kind` names it), bprod_ta(g, a, b, kind) is the cotangent of a
# and bprod_tb(g, a, b, kind) that of b, defined by the bilinear pairing
# <bprod_ta(g, a, b), v> = <g, P(v, b)> and <bprod_tb(g, a, b), v> = <g, P(a, v)>
# (the argument being transposed is only a shape/dtype witness). Each helper is
# bilinear (in g and the other operand); its own transposes are P itself (`bprod`) and
# the other helper, so reverse-mode code can be differentiated again.

def _tensordot_axes(a_nd, b_nd, axes):
    """np.tensordot's `axes` as two lists of non-negative axes (of a and of b)."""
    if axes is None:
        axes = 2
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        return list(range(a_nd - n, a_nd)), list(range(n))
    xa, xb = axes
    xa = [int(xa)] if isinstance(xa, (int, np.integer)) else [int(i) for i in xa]
    xb = [int(xb)] if isinstance(xb, (int, np.integer)) else [int(i) for i in xb]
    return [i % a_nd for i in xa], [i % b_nd for i in xb]


def _tensordot_ta(g, a_nd, b, xa, xb):
    """Cotangent of a in np.tensordot(a, b, (xa, xb)) (a of a_nd dimensions)."""
    fa = [i for i in range(a_nd) if i not in xa]
    fb = [i for i in range(b.ndim) if i not in xb]
    r = np.tensordot(g, b, axes=(list(range(len(fa), g.ndim)), fb))
    # r's axes: a's free axes, then b's contracted axes in b's order
    labels = fa + [xa[xb.index(j)] for j in sorted(xb)]
    return np.transpose(r, np.argsort(labels)) if labels else r


def _tensordot_tb(g, a, b_nd, xa, xb):
    """Cotangent of b in np.tensordot(a, b, (xa, xb))."""
    fa = [i for i in range(a.ndim) if i not in xa]
    fb = [i for i in range(b_nd) if i not in xb]
    r = np.tensordot(a, g, axes=(fa, list(range(len(fa)))))
    labels = [xb[xa.index(i)] for i in sorted(xa)] + fb
    return np.transpose(r, np.argsort(labels)) if labels else r


def _kron_shapes(sa, sb):
    nd = max(len(sa), len(sb))
    return (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)


def _kron_t(g, a, b, which):
    sa, sb = _kron_shapes(np.shape(a), np.shape(b))
    nd = len(sa)
    inter = [n for pair in zip(sa, sb) for n in pair]  # (a0, b0, a1, b1, ...)
    g4 = np.reshape(g, inter)
    if which == "a":
        r = np.tensordot(g4, np.reshape(b, sb), axes=(list(range(1, 2 * nd, 2)), list(range(nd))))
        return np.reshape(r, np.shape(a))
    r = np.tensordot(np.reshape(a, sa), g4, axes=(list(range(nd)), list(range(0, 2 * nd, 2))))
    return np.reshape(r, np.shape(b))


def _pad3(x):
    if x.shape[-1] == 3:
        return x
    return np.concatenate([x, np.zeros(x.shape[:-1] + (3 - x.shape[-1],), x.dtype)], axis=-1)


def _cross_t(g, a, b, axisa, axisb, axisc, axis, which):
    """Cotangent of a or b in np.cross: (a x b) . w = a . (b x w) = b . (w x a)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    am = np.moveaxis(np.asarray(a), axisa, -1)
    bm = np.moveaxis(np.asarray(b), axisb, -1)
    g = np.asarray(g)
    if am.shape[-1] == 2 and bm.shape[-1] == 2:  # the result is the z component only
        w = np.zeros(g.shape + (3,), g.dtype)
        w[..., 2] = g
    else:
        w = np.moveaxis(g, axisc, -1)
    if which == "a":
        r = np.cross(_pad3(bm), w)[..., :am.shape[-1]]
        return np.moveaxis(unbroadcast(r, am), -1, axisa)
    r = np.cross(w, _pad3(am))[..., :bm.shape[-1]]
    return np.moveaxis(unbroadcast(r, bm), -1, axisb)


_KINDS = ("dot", "vdot", "inner", "outer", "kron", "tensordot", "cross")


def bprod(a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The bilinear product `kind` of a and b (np.dot, np.vdot, ..., see _KINDS)."""
    if kind == "dot":
        return np.dot(a, b)
    if kind == "vdot":
        return np.vdot(a, b)
    if kind == "inner":
        return np.inner(a, b)
    if kind == "outer":
        return np.outer(a, b)
    if kind == "kron":
        return np.kron(a, b)
    if kind == "tensordot":
        return np.tensordot(a, b, axes=2 if axes is None else axes)
    if kind == "cross":
        return np.cross(a, b, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)
    raise ValueError(f"unknown product {kind!r}")


def bprod_ta(g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cotangent of a in bprod(a, b, kind, ...) for the output cotangent g (a is only a
    shape/dtype witness)."""
    g = np.asarray(g)
    bb = np.asarray(b)
    a_nd = np.ndim(a)
    if kind in ("dot", "inner") and (a_nd == 0 or bb.ndim == 0):
        r = g * bb
    elif kind == "dot":
        r = _tensordot_ta(g, a_nd, bb, [a_nd - 1], [0 if bb.ndim == 1 else bb.ndim - 2])
    elif kind == "inner":
        r = _tensordot_ta(g, a_nd, bb, [a_nd - 1], [bb.ndim - 1])
    elif kind == "tensordot":
        xa, xb = _tensordot_axes(a_nd, bb.ndim, axes)
        r = _tensordot_ta(g, a_nd, bb, xa, xb)
    elif kind == "outer":
        r = np.reshape(g @ bb.ravel(), np.shape(a))
    elif kind == "vdot":
        r = np.reshape(np.conj(g * bb.ravel()), np.shape(a))
    elif kind == "kron":
        r = _kron_t(g, a, bb, "a")
    elif kind == "cross":
        r = _cross_t(g, a, bb, axisa, axisb, axisc, axis, "a")
    else:
        raise ValueError(f"unknown product {kind!r}")
    return unbroadcast(r, a)


def bprod_tb(g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cotangent of b in bprod(a, b, kind, ...) (b is only a shape/dtype witness)."""
    g = np.asarray(g)
    aa = np.asarray(a)
    b_nd = np.ndim(b)
    if kind in ("dot", "inner") and (aa.ndim == 0 or b_nd == 0):
        r = aa * g
    elif kind == "dot":
        r = _tensordot_tb(g, aa, b_nd, [aa.ndim - 1], [0 if b_nd == 1 else b_nd - 2])
    elif kind == "inner":
        r = _tensordot_tb(g, aa, b_nd, [aa.ndim - 1], [b_nd - 1])
    elif kind == "tensordot":
        xa, xb = _tensordot_axes(aa.ndim, b_nd, axes)
        r = _tensordot_tb(g, aa, b_nd, xa, xb)
    elif kind == "outer":
        r = np.reshape(aa.ravel() @ g, np.shape(b))
    elif kind == "vdot":
        r = np.reshape(g * np.conj(aa.ravel()), np.shape(b))
    elif kind == "kron":
        r = _kron_t(g, aa, b, "b")
    elif kind == "cross":
        r = _cross_t(g, aa, b, axisa, axisb, axisc, axis, "b")
    else:
        raise ValueError(f"unknown product {kind!r}")
    return unbroadcast(r, b)


_BPARAMS = ("axes", "axisa", "axisb", "axisc", "axis")
_BDEFAULTS = {"axes": None, "axisa": -1, "axisb": -1, "axisc": -1, "axis": None}
bprod_p = register("bprod", bprod, spelling="bprod", params=("a", "b", "kind") + _BPARAMS,
                   defaults=_BDEFAULTS, linear=("a", "b"), bilinear=True, numba=True,
                   doc="a bilinear product by name (the transpose of bprod_ta / bprod_tb); Numba: see register_numba")
bprod_ta_p = register("bprod_ta", bprod_ta, spelling="bprod_ta", params=("g", "a", "b", "kind") + _BPARAMS,
                      defaults=_BDEFAULTS, linear=("g", "b"), bilinear=True, numba=True,
                      doc="cotangent of a in a bilinear product")
bprod_tb_p = register("bprod_tb", bprod_tb, spelling="bprod_tb", params=("g", "a", "b", "kind") + _BPARAMS,
                      defaults=_BDEFAULTS, linear=("g", "a"), bilinear=True, numba=True,
                      doc="cotangent of b in a bilinear product")
_BCASES = (("'dot'", "", real(3, 4), real(4), real(3)), ("'dot'", "", real(2, 3, 4), real(5, 4, 2), real(2, 3, 5, 2)),
           ("'dot'", "", real(), real(3), real(3)), ("'vdot'", "", real(2, 3), real(3, 2), real()),
           ("'inner'", "", real(2, 3), real(4, 3), real(2, 4)), ("'outer'", "", real(2, 2), real(3), real(4, 3)),
           ("'kron'", "", real(2, 2), real(3), real(2, 6)),
           ("'tensordot'", ", axes=([0, 2], [2, 1])", real(2, 3, 4), real(3, 4, 2), real(3, 3)),
           ("'tensordot'", ", 1", real(2, 3), real(3, 4), real(2, 4)),
           ("'cross'", ", axisa=0", real(3, 2), real(2, 3), real(2, 3)),
           ("'cross'", ", axis=0", real(3, 1), real(3, 4), real(3, 4)))
for _kind, _extra, _a, _b, _g in _BCASES:
    bprod_p.example(f"bprod(a, b, {_kind}{_extra})", a=_a, b=_b, bprod=const(bprod))
    bprod_ta_p.example(f"bprod_ta(g, a, b, {_kind}{_extra})", g=_g, a=_a, b=_b, bprod_ta=const(bprod_ta),
                       wrt=("g", "b"))
    bprod_tb_p.example(f"bprod_tb(g, a, b, {_kind}{_extra})", g=_g, a=_a, b=_b, bprod_tb=const(bprod_tb),
                       wrt=("g", "a"))


@bprod_p.defjvp
def _(a, b, kind, a_dot, b_dot, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod(a_dot, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis) + \
        bprod(a, b_dot, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@bprod_p.deftranspose("a")
def _(ct, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_ta(ct, a, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@bprod_p.deftranspose("b")
def _(ct, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_tb(ct, a, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@bprod_ta_p.defjvp
def _(g, a, b, kind, g_dot, b_dot, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_ta(g_dot, a, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis) + \
        bprod_ta(g, a, b_dot, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@bprod_ta_p.deftranspose("g")
def _(ct, g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return unbroadcast(bprod(ct, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis), g)


@bprod_ta_p.deftranspose("b")
def _(ct, g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_tb(g, ct, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@bprod_tb_p.defjvp
def _(g, a, b, kind, g_dot, a_dot, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_tb(g_dot, a, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis) + \
        bprod_tb(g, a_dot, b, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@bprod_tb_p.deftranspose("g")
def _(ct, g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return unbroadcast(bprod(a, ct, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis), g)


@bprod_tb_p.deftranspose("a")
def _(ct, g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_ta(g, a, ct, kind, axes=axes, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


# ---------------------------------------------------------------- products
dot = register("dot", np.dot, spelling="np.dot", params=("a", "b"), linear=("a", "b"), bilinear=True)
dot.example("np.dot(a, b)", a=real(3, 4), b=real(4)).example("np.dot(a, b)", a=real(4), b=real(4)) \
    .example("np.dot(a, b)", a=real(2, 3), b=real(3, 4)).example("np.dot(a, b)", a=real(), b=real(3))


@dot.defjvp
def _(a, b, a_dot, b_dot):
    return np.dot(a_dot, b) + np.dot(a, b_dot)


@dot.deftranspose("a")
def _(ct, a, b):
    return bprod_ta(ct, a, b, "dot")


@dot.deftranspose("b")
def _(ct, a, b):
    return bprod_tb(ct, a, b, "dot")



# np.vdot conjugates (and flattens) its first argument: real-linear in a, so still bilinear
# over the reals; a transpose rule must account for the conjugation.
vdot = register("vdot", np.vdot, spelling="np.vdot", params=("a", "b"), linear=("a", "b"),
                bilinear=True, doc="sum(conj(a.ravel()) * b.ravel())")
vdot.example("np.vdot(a, b)", a=real(4), b=real(4)).example("np.vdot(a, b)", a=real(2, 3), b=real(2, 3))


@vdot.defjvp
def _(a, b, a_dot, b_dot):
    return np.vdot(a_dot, b) + np.vdot(a, b_dot)


@vdot.deftranspose("a")
def _(ct, a, b):
    return bprod_ta(ct, a, b, "vdot")  # conj(ct * b): vdot conjugates a


@vdot.deftranspose("b")
def _(ct, a, b):
    return bprod_tb(ct, a, b, "vdot")  # ct * conj(a)



outer = register("outer", np.outer, spelling="np.outer", params=("a", "b"), linear=("a", "b"),
                 bilinear=True)
outer.example("np.outer(a, b)", a=real(3), b=real(4)).example("np.outer(a, b)", a=real(2, 2), b=real(3))


@outer.defjvp
def _(a, b, a_dot, b_dot):
    return np.outer(a_dot, b) + np.outer(a, b_dot)


@outer.deftranspose("a")
def _(ct, a, b):
    return bprod_ta(ct, a, b, "outer")


@outer.deftranspose("b")
def _(ct, a, b):
    return bprod_tb(ct, a, b, "outer")



inner = register("inner", np.inner, spelling="np.inner", params=("a", "b"), linear=("a", "b"),
                 bilinear=True, numba=False)  # np.inner, np.tensordot, np.einsum: not in Numba
inner.example("np.inner(a, b)", a=real(4), b=real(4)).example("np.inner(a, b)", a=real(2, 3), b=real(4, 3)) \
    .example("np.inner(a, b)", a=real(), b=real(3))


@inner.defjvp
def _(a, b, a_dot, b_dot):
    return np.inner(a_dot, b) + np.inner(a, b_dot)


@inner.deftranspose("a")
def _(ct, a, b):
    return bprod_ta(ct, a, b, "inner")


@inner.deftranspose("b")
def _(ct, a, b):
    return bprod_tb(ct, a, b, "inner")



tensordot = register("tensordot", np.tensordot, spelling="np.tensordot", params=("a", "b", "axes"),
                     defaults={"axes": 2}, linear=("a", "b"), bilinear=True, static=("axes",), numba=False)
tensordot.example("np.tensordot(a, b)", a=real(2, 3, 4), b=real(3, 4, 2)) \
    .example("np.tensordot(a, b, axes=1)", a=real(2, 3), b=real(3, 4)) \
    .example("np.tensordot(a, b, 0)", a=real(2), b=real(3)) \
    .example("np.tensordot(a, b, axes=([0, 2], [2, 1]))", a=real(2, 3, 4), b=real(3, 4, 2)) \
    .example("np.tensordot(a, b, axes=((1,), (0,)))", a=real(2, 3), b=real(3, 2))


@tensordot.defjvp
def _(a, b, a_dot, b_dot, axes=2):
    return np.tensordot(a_dot, b, axes=axes) + np.tensordot(a, b_dot, axes=axes)


@tensordot.deftranspose("a")
def _(ct, a, b, axes=2):
    return bprod_ta(ct, a, b, "tensordot", axes=axes)


@tensordot.deftranspose("b")
def _(ct, a, b, axes=2):
    return bprod_tb(ct, a, b, "tensordot", axes=axes)



# np.einsum takes its operands as varargs; primitive parameters are fixed names, so up to
# four operands are supported (subscripts must be a string known at transform time; the
# interleaved form einsum(a, [0, 1], b, [1]) is not supported). Multilinear: each term of
# the JVP carries exactly one tangent ("bilinear" = at most one linear input active).
einsum = register("einsum", np.einsum, spelling="np.einsum",
                  params=("subscripts", "a", "b", "c", "d", "optimize"),
                  defaults={"b": None, "c": None, "d": None, "optimize": False},
                  keyword_only=("optimize",), static=("subscripts",),
                  linear=("a", "b", "c", "d"), bilinear=True, numba=False,
                  doc="np.einsum(subscripts, *operands) with 1 to 4 operands")
einsum.example("np.einsum('ij,jk->ik', a, b)", a=real(2, 3), b=real(3, 4)) \
    .example("np.einsum('ii->', a)", a=real(3, 3)) \
    .example("np.einsum('ij->ji', a)", a=real(2, 3)) \
    .example("np.einsum('i,i', a, b)", a=real(4), b=real(4)) \
    .example("np.einsum('ij,j,k->ik', a, b, c)", a=real(2, 3), b=real(3), c=real(2)) \
    .example("np.einsum('...ij,...jk,kl,l->...i', a, b, c, d, optimize=True)",
             a=real(2, 2, 3), b=real(2, 3, 2), c=real(2, 3), d=real(3)) \
    .example("np.einsum('ij,jk->ik', a, b)", a=real(2, 3), b=const(np.arange(6.0).reshape(3, 2)))


@einsum.defjvp
def _(subscripts, a, a_dot, b_dot, c_dot, d_dot, b=None, c=None, d=None, optimize=False):
    # A missing operand is DEFAULT, and a call's positional arguments stop at the first
    # DEFAULT -- which would also drop a (zero) tangent after it and leave a wrong term.
    # So the operands *before* each term's tangent go through bb/cc (a missing one becomes
    # the constant None there, the call keeps its zero tangent and folds away), and only
    # the operands after it may be cut off.
    bb = b
    cc = c
    ta = np.einsum(subscripts, a_dot, b, c, d, optimize=optimize)
    tb = np.einsum(subscripts, a, b_dot, c, d, optimize=optimize)
    tc = np.einsum(subscripts, a, bb, c_dot, d, optimize=optimize)
    td = np.einsum(subscripts, a, bb, cc, d_dot, optimize=optimize)
    return ta + tb + tc + td


# The transposes of np.einsum: einsum_ta(g, subscripts, a, b, c, d) is the cotangent of
# operand a for the output cotangent g (a is only a shape/dtype witness) -- an einsum of
# g with the other operands whose subscripts are computed at run time -- and likewise
# einsum_tb/tc/td. Each is multilinear in g and the other operands; its transposes are
# np.einsum (for g) and the other einsum_t helpers (for the operands).
def _einsum_explicit(subscripts, shapes):
    """Input and output subscripts with ellipses replaced by letters, and the implicit
    output (letters used once, sorted, after the broadcast dimensions) made explicit."""
    s = subscripts.replace(" ", "")
    lhs, out = s.split("->") if "->" in s else (s, None)
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} subscripts for {len(shapes)} operands")
    used = {c for c in s if c.isalpha()}
    spare = [c for c in string.ascii_letters if c not in used]
    nell = [len(shp) - (len(sub) - 3) if "..." in sub else 0 for sub, shp in zip(ins, shapes)]
    n = max(nell, default=0)
    ell = "".join(spare[:n])
    new = [sub.replace("...", ell[n - k:]) for sub, k in zip(ins, nell)]
    if out is None:
        counts = Counter("".join(ins).replace(".", ""))
        out = ell + "".join(sorted(c for c, m in counts.items() if m == 1))
    else:
        out = out.replace("...", ell)
    return new, out


def _einsum_t(k, g, subscripts, operands, optimize):
    ops = [np.asarray(o) for o in operands if o is not None]
    g = np.asarray(g)
    ins, out = _einsum_explicit(subscripts, [o.shape for o in ops])
    sub_k = ins[k]
    others = [j for j in range(len(ops)) if j != k]
    sizes = {}
    for sub, shp in zip(ins + [out], [o.shape for o in ops] + [g.shape]):
        for c, n in zip(sub, shp):
            sizes[c] = max(sizes.get(c, 1), n)
    present = set(out).union(*[ins[j] for j in others])
    u = "".join(dict.fromkeys(sub_k))  # distinct letters of operand k, in order
    u_in = "".join(c for c in u if c in present)
    spec = ",".join([out] + [ins[j] for j in others]) + "->" + u_in
    r = np.einsum(spec, g, *[ops[j] for j in others], optimize=optimize)
    # letters only operand k has: the cotangent is constant along them
    r = np.reshape(r, [r.shape[u_in.index(c)] if c in present else 1 for c in u])
    r = np.broadcast_to(r, [sizes[c] for c in u])
    if len(u) < len(sub_k):  # a repeated letter: write onto the diagonal
        z = np.zeros([sizes[c] for c in sub_k], r.dtype)
        np.einsum(f"{sub_k}->{u}", z)[...] = r
        r = z
    return unbroadcast(r, operands[k])  # sums where operand k was broadcast (size 1)


def einsum_ta(g, subscripts, a, b=None, c=None, d=None, optimize=False):
    """The cotangent of the first operand of np.einsum(subscripts, a, b, c, d)."""
    return _einsum_t(0, g, subscripts, (a, b, c, d), optimize)


def einsum_tb(g, subscripts, a, b=None, c=None, d=None, optimize=False):
    """The cotangent of the second operand of np.einsum(subscripts, a, b, c, d)."""
    return _einsum_t(1, g, subscripts, (a, b, c, d), optimize)


def einsum_tc(g, subscripts, a, b=None, c=None, d=None, optimize=False):
    """The cotangent of the third operand of np.einsum(subscripts, a, b, c, d)."""
    return _einsum_t(2, g, subscripts, (a, b, c, d), optimize)


def einsum_td(g, subscripts, a, b=None, c=None, d=None, optimize=False):
    """The cotangent of the fourth operand of np.einsum(subscripts, a, b, c, d)."""
    return _einsum_t(3, g, subscripts, (a, b, c, d), optimize)


def _einsum_t_prim(fn, slot):
    ops = ("a", "b", "c", "d")
    return register(fn.__name__, fn, spelling=fn.__name__,
                    params=("g", "subscripts", "a", "b", "c", "d", "optimize"),
                    defaults={"b": None, "c": None, "d": None, "optimize": False},
                    linear=("g",) + tuple(o for o in ops if o != slot), bilinear=True, numba=False,
                    doc=f"the cotangent of operand {slot} of np.einsum")


einsum_ta_p = _einsum_t_prim(einsum_ta, "a")
einsum_tb_p = _einsum_t_prim(einsum_tb, "b")
einsum_tc_p = _einsum_t_prim(einsum_tc, "c")
einsum_td_p = _einsum_t_prim(einsum_td, "d")
einsum_ta_p.example("einsum_ta(g, 'ij,jk->ik', a, b)", g=real(2, 4), a=real(2, 3), b=real(3, 4),
                    einsum_ta=const(einsum_ta), wrt=("g", "b")) \
    .example("einsum_ta(g, 'ii->', a)", g=real(), a=real(3, 3), einsum_ta=const(einsum_ta), wrt=("g",)) \
    .example("einsum_ta(g, 'ij,j,k->ik', a, b, c)", g=real(2, 2), a=real(2, 3), b=real(3), c=real(2),
             einsum_ta=const(einsum_ta), wrt=("g", "b", "c"))
einsum_tb_p.example("einsum_tb(g, 'ij,jk->ik', a, b)", g=real(2, 4), a=real(2, 3), b=real(3, 4),
                    einsum_tb=const(einsum_tb), wrt=("g", "a")) \
    .example("einsum_tb(g, '...ij,...jk,kl,l->...i', a, b, c, d, optimize=True)", g=real(2, 2),
             a=real(2, 2, 3), b=real(1, 3, 2), c=real(2, 3), d=real(3), einsum_tb=const(einsum_tb),
             wrt=("g", "a", "c", "d"))
einsum_tc_p.example("einsum_tc(g, 'ij,j,k->ik', a, b, c)", g=real(2, 2), a=real(2, 3), b=real(3), c=real(2),
                    einsum_tc=const(einsum_tc), wrt=("g", "a", "b"))
einsum_td_p.example("einsum_td(g, '...ij,...jk,kl,l->...i', a, b, c, d)", g=real(2, 2),
                    a=real(2, 2, 3), b=real(2, 3, 2), c=real(2, 3), d=real(3), einsum_td=const(einsum_td),
                    wrt=("g", "a", "b", "c"))


@einsum.deftranspose("a")
def _(ct, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_ta(ct, subscripts, a, b=b, c=c, d=d, optimize=optimize)


@einsum.deftranspose("b")
def _(ct, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tb(ct, subscripts, a, b=b, c=c, d=d, optimize=optimize)


@einsum.deftranspose("c")
def _(ct, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tc(ct, subscripts, a, b=b, c=c, d=d, optimize=optimize)


@einsum.deftranspose("d")
def _(ct, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_td(ct, subscripts, a, b=b, c=c, d=d, optimize=optimize)


# Each helper's JVP: one term per linear argument (operands given by keyword, so a missing
# one is left out and its zero tangent folds the term away).
@einsum_ta_p.defjvp
def _(g, subscripts, a, g_dot, b_dot, c_dot, d_dot, b=None, c=None, d=None, optimize=False):
    t0 = einsum_ta(g_dot, subscripts, a, b=b, c=c, d=d, optimize=optimize)
    t1 = einsum_ta(g, subscripts, a, b=b_dot, c=c, d=d, optimize=optimize)
    t2 = einsum_ta(g, subscripts, a, b=b, c=c_dot, d=d, optimize=optimize)
    t3 = einsum_ta(g, subscripts, a, b=b, c=c, d=d_dot, optimize=optimize)
    return t0 + t1 + t2 + t3


@einsum_tb_p.defjvp
def _(g, subscripts, a, g_dot, a_dot, c_dot, d_dot, b=None, c=None, d=None, optimize=False):
    t0 = einsum_tb(g_dot, subscripts, a, b=b, c=c, d=d, optimize=optimize)
    t1 = einsum_tb(g, subscripts, a_dot, b=b, c=c, d=d, optimize=optimize)
    t2 = einsum_tb(g, subscripts, a, b=b, c=c_dot, d=d, optimize=optimize)
    t3 = einsum_tb(g, subscripts, a, b=b, c=c, d=d_dot, optimize=optimize)
    return t0 + t1 + t2 + t3


@einsum_tc_p.defjvp
def _(g, subscripts, a, g_dot, a_dot, b_dot, d_dot, b=None, c=None, d=None, optimize=False):
    t0 = einsum_tc(g_dot, subscripts, a, b=b, c=c, d=d, optimize=optimize)
    t1 = einsum_tc(g, subscripts, a_dot, b=b, c=c, d=d, optimize=optimize)
    t2 = einsum_tc(g, subscripts, a, b=b_dot, c=c, d=d, optimize=optimize)
    t3 = einsum_tc(g, subscripts, a, b=b, c=c, d=d_dot, optimize=optimize)
    return t0 + t1 + t2 + t3


@einsum_td_p.defjvp
def _(g, subscripts, a, g_dot, a_dot, b_dot, c_dot, b=None, c=None, d=None, optimize=False):
    t0 = einsum_td(g_dot, subscripts, a, b=b, c=c, d=d, optimize=optimize)
    t1 = einsum_td(g, subscripts, a_dot, b=b, c=c, d=d, optimize=optimize)
    t2 = einsum_td(g, subscripts, a, b=b_dot, c=c, d=d, optimize=optimize)
    t3 = einsum_td(g, subscripts, a, b=b, c=c_dot, d=d, optimize=optimize)
    return t0 + t1 + t2 + t3


# Transposes: for g, the einsum itself with the cotangent in the operand's slot; for
# another operand, that operand's helper with the cotangent in this helper's slot.
@einsum_ta_p.deftranspose("g")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return unbroadcast(np.einsum(subscripts, ct, b, c, d, optimize=optimize), g)


@einsum_ta_p.deftranspose("b")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tb(g, subscripts, ct, b=b, c=c, d=d, optimize=optimize)


@einsum_ta_p.deftranspose("c")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tc(g, subscripts, ct, b=b, c=c, d=d, optimize=optimize)


@einsum_ta_p.deftranspose("d")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_td(g, subscripts, ct, b=b, c=c, d=d, optimize=optimize)


@einsum_tb_p.deftranspose("g")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return unbroadcast(np.einsum(subscripts, a, ct, c, d, optimize=optimize), g)


@einsum_tb_p.deftranspose("a")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_ta(g, subscripts, a, b=ct, c=c, d=d, optimize=optimize)


@einsum_tb_p.deftranspose("c")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tc(g, subscripts, a, b=ct, c=c, d=d, optimize=optimize)


@einsum_tb_p.deftranspose("d")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_td(g, subscripts, a, b=ct, c=c, d=d, optimize=optimize)


@einsum_tc_p.deftranspose("g")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return unbroadcast(np.einsum(subscripts, a, b, ct, d, optimize=optimize), g)


@einsum_tc_p.deftranspose("a")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_ta(g, subscripts, a, b=b, c=ct, d=d, optimize=optimize)


@einsum_tc_p.deftranspose("b")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tb(g, subscripts, a, b=b, c=ct, d=d, optimize=optimize)


@einsum_tc_p.deftranspose("d")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_td(g, subscripts, a, b=b, c=ct, d=d, optimize=optimize)


@einsum_td_p.deftranspose("g")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return unbroadcast(np.einsum(subscripts, a, b, c, ct, optimize=optimize), g)


@einsum_td_p.deftranspose("a")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_ta(g, subscripts, a, b=b, c=c, d=ct, optimize=optimize)


@einsum_td_p.deftranspose("b")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tb(g, subscripts, a, b=b, c=c, d=ct, optimize=optimize)


@einsum_td_p.deftranspose("c")
def _(ct, g, subscripts, a, b=None, c=None, d=None, optimize=False):
    return einsum_tc(g, subscripts, a, b=b, c=c, d=ct, optimize=optimize)



kron = register("kron", np.kron, spelling="np.kron", params=("a", "b"), linear=("a", "b"), bilinear=True)
kron.example("np.kron(a, b)", a=real(2, 2), b=real(3, 2)).example("np.kron(a, b)", a=real(3), b=real(2))


@kron.defjvp
def _(a, b, a_dot, b_dot):
    return np.kron(a_dot, b) + np.kron(a, b_dot)


@kron.deftranspose("a")
def _(ct, a, b):
    return bprod_ta(ct, a, b, "kron")


@kron.deftranspose("b")
def _(ct, a, b):
    return bprod_tb(ct, a, b, "kron")



cross = register("cross", np.cross, spelling="np.cross", params=("a", "b", "axisa", "axisb", "axisc", "axis"),
                 defaults={"axisa": -1, "axisb": -1, "axisc": -1, "axis": None},
                 linear=("a", "b"), bilinear=True)
cross.example("np.cross(a, b)", a=real(3), b=real(3)).example("np.cross(a, b)", a=real(4, 3), b=real(3)) \
    .example("np.cross(a, b, axis=0)", a=real(3, 2), b=real(3, 2))


@cross.defjvp
def _(a, b, a_dot, b_dot, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return np.cross(a_dot, b, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis) + \
        np.cross(a, b_dot, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@cross.deftranspose("a")
def _(ct, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_ta(ct, a, b, "cross", axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


@cross.deftranspose("b")
def _(ct, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return bprod_tb(ct, a, b, "cross", axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)



# ---------------------------------------------------------------- diagonals
trace = register("trace", np.trace, spelling="np.trace", params=("a", "offset", "axis1", "axis2", "dtype"),
                 defaults={"offset": 0, "axis1": 0, "axis2": 1, "dtype": None}, linear=("a",))
trace.example("np.trace(a)", a=real(3, 3)).example("np.trace(a, 1)", a=real(3, 4)) \
    .example("np.trace(a, axis1=1, axis2=2)", a=real(2, 3, 3)).example("a.trace()", a=real(2, 2))


@trace.defjvp
def _(a, a_dot, offset=0, axis1=0, axis2=1, dtype=None):
    return np.trace(a_dot, offset=offset, axis1=axis1, axis2=axis2, dtype=dtype)


diag = register("diag", np.diag, spelling="np.diag", params=("v", "k"), defaults={"k": 0}, linear=("v",),
                doc="the diagonal of a matrix, or a diagonal matrix from a vector")
diag.example("np.diag(v)", v=real(3)).example("np.diag(v)", v=real(3, 4)).example("np.diag(v, -1)", v=real(3, 3)) \
    .example("np.diag(v, k=1)", v=real(2))


@diag.defjvp
def _(v, v_dot, k=0):
    return np.diag(v_dot, k=k)


diagonal = register("diagonal", np.diagonal, spelling="np.diagonal", params=("a", "offset", "axis1", "axis2"),
                    defaults={"offset": 0, "axis1": 0, "axis2": 1}, linear=("a",))
diagonal.example("np.diagonal(a)", a=real(3, 4)).example("np.diagonal(a, 1, 1, 2)", a=real(2, 3, 3)) \
    .example("a.diagonal(axis1=-2, axis2=-1)", a=real(2, 3, 3))


@diagonal.defjvp
def _(a, a_dot, offset=0, axis1=0, axis2=1):
    return np.diagonal(a_dot, offset=offset, axis1=axis1, axis2=axis2)


# Transposes of the diagonal extractions: embed the cotangent on the diagonal of zeros
# shaped like the input (diagonal_t, trace_t, diag_t); their transposes are the
# extractions themselves.
def _embed_diagonal(g, like, offset, axis1, axis2):
    """Zeros shaped like `like` with g (np.diagonal's layout: the diagonal last) written
    onto the offset diagonal of axes (axis1, axis2)."""
    g = np.asarray(g)
    shape = np.shape(like)
    z = np.zeros(shape, np.result_type(g, np.asarray(like).dtype, np.float64))
    zm = np.moveaxis(z, (axis1, axis2), (-2, -1))  # a view
    n1, n2 = zm.shape[-2:]
    if offset >= 0:
        i = np.arange(max(0, min(n1, n2 - offset)))
        j = i + offset
    else:
        j = np.arange(max(0, min(n1 + offset, n2)))
        i = j - offset
    zm[..., i, j] = g
    return unbroadcast(z, like)


def diagonal_t(g, a, offset=0, axis1=0, axis2=1):
    """The transpose of np.diagonal(a, offset, axis1, axis2) (a: shape witness)."""
    return _embed_diagonal(g, a, offset, axis1, axis2)


def trace_t(g, a, offset=0, axis1=0, axis2=1):
    """The transpose of np.trace(a, offset, axis1, axis2): g on every diagonal element."""
    return _embed_diagonal(np.asarray(g)[..., None], a, offset, axis1, axis2)


def diag_t(g, v, k=0):
    """The transpose of np.diag(v, k): the k-th diagonal of g for a vector v, g written
    onto the k-th diagonal of zeros like v for a matrix v."""
    if np.ndim(v) == 1:
        return unbroadcast(np.array(np.diag(g, k)), v)
    return _embed_diagonal(g, v, k, 0, 1)


diagonal_t_p = register("diagonal_t", diagonal_t, spelling="diagonal_t",
                        params=("g", "a", "offset", "axis1", "axis2"),
                        defaults={"offset": 0, "axis1": 0, "axis2": 1}, linear=("g",), numba=False,
                        doc="the transpose of np.diagonal")
diagonal_t_p.example("diagonal_t(g, a, 1, 2, 0)", g=real(4, 2), a=real(3, 4, 3), diagonal_t=const(diagonal_t),
                     wrt=("g",))
trace_t_p = register("trace_t", trace_t, spelling="trace_t", params=("g", "a", "offset", "axis1", "axis2"),
                     defaults={"offset": 0, "axis1": 0, "axis2": 1}, linear=("g",), numba=True,
                     doc="the transpose of np.trace")
trace_t_p.example("trace_t(g, a, offset=-1, axis1=1, axis2=2)", g=real(2), a=real(2, 3, 4),
                  trace_t=const(trace_t), wrt=("g",))
diag_t_p = register("diag_t", diag_t, spelling="diag_t", params=("g", "v", "k"), defaults={"k": 0},
                    linear=("g",), numba=True, doc="the transpose of np.diag")
diag_t_p.example("diag_t(g, v, 1)", g=real(4, 4), v=real(3), diag_t=const(diag_t), wrt=("g",)) \
    .example("diag_t(g, v, k=-1)", g=real(2), v=real(3, 4), diag_t=const(diag_t), wrt=("g",))


@trace.deftranspose("a")
def _(ct, a, offset=0, axis1=0, axis2=1, dtype=None):
    return trace_t(ct, a, offset=offset, axis1=axis1, axis2=axis2)


@diag.deftranspose("v")
def _(ct, v, k=0):
    return diag_t(ct, v, k=k)


@diagonal.deftranspose("a")
def _(ct, a, offset=0, axis1=0, axis2=1):
    return diagonal_t(ct, a, offset=offset, axis1=axis1, axis2=axis2)


@diagonal_t_p.defjvp
def _(g, a, g_dot, offset=0, axis1=0, axis2=1):
    return diagonal_t(g_dot, a, offset=offset, axis1=axis1, axis2=axis2)


@diagonal_t_p.deftranspose("g")
def _(ct, g, a, offset=0, axis1=0, axis2=1):
    return unbroadcast(np.diagonal(ct, offset=offset, axis1=axis1, axis2=axis2), g)


@trace_t_p.defjvp
def _(g, a, g_dot, offset=0, axis1=0, axis2=1):
    return trace_t(g_dot, a, offset=offset, axis1=axis1, axis2=axis2)


@trace_t_p.deftranspose("g")
def _(ct, g, a, offset=0, axis1=0, axis2=1):
    return unbroadcast(np.trace(ct, offset=offset, axis1=axis1, axis2=axis2), g)


@diag_t_p.defjvp
def _(g, v, g_dot, k=0):
    return diag_t(g_dot, v, k=k)


@diag_t_p.deftranspose("g")
def _(ct, g, v, k=0):
    return unbroadcast(np.diag(ct, k=k), g)



# ---------------------------------------------------------------- helper primitives
def tri_part(a, trans=0, lower=False, unit_diagonal=False):
    """op(T) for the triangle T of `a` that scipy.linalg.solve_triangular reads (without the
    diagonal when unit_diagonal); op is the identity, the transpose (trans=1/'T') or the
    conjugate transpose (trans=2/'C')."""
    a = np.asarray(a)
    k = -1 if unit_diagonal else 0
    t = np.tril(a, k) if lower else np.triu(a, -k)
    if trans in (1, "T"):
        return np.swapaxes(t, -1, -2)
    if trans in (2, "C"):
        return np.conj(np.swapaxes(t, -1, -2))
    if trans not in (0, "N"):
        raise ValueError(f"invalid trans {trans!r}")
    return t


tri_part_p = register("tri_part", tri_part, spelling="tri_part",
                      params=("a", "trans", "lower", "unit_diagonal"),
                      defaults={"trans": 0, "lower": False, "unit_diagonal": False}, linear=("a",),
                      numba=False, doc="the part of a triangular matrix a triangular solve reads")
tri_part_p.example("tri_part(a, trans=1, lower=True)", a=real(3, 3), tri_part=const(tri_part)) \
    .example("tri_part(a, 2, False, True)", a=real(3, 3), tri_part=const(tri_part))


@tri_part_p.defjvp
def _(a, a_dot, trans=0, lower=False, unit_diagonal=False):
    return tri_part(a_dot, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


def tri_part_t(g, like, trans=0, lower=False, unit_diagonal=False):
    """The transpose of tri_part: the triangle of op(g) (op is its own transpose under the
    bilinear pairing, for trans 1 and 2 alike); `like` is a shape/dtype witness."""
    g = np.asarray(g)
    if trans in (1, "T"):
        g = np.swapaxes(g, -1, -2)
    elif trans in (2, "C"):
        g = np.conj(np.swapaxes(g, -1, -2))
    elif trans not in (0, "N"):
        raise ValueError(f"invalid trans {trans!r}")
    k = -1 if unit_diagonal else 0
    return unbroadcast(np.tril(g, k) if lower else np.triu(g, -k), like)


tri_part_t_p = register("tri_part_t", tri_part_t, spelling="tri_part_t",
                        params=("g", "like", "trans", "lower", "unit_diagonal"),
                        defaults={"trans": 0, "lower": False, "unit_diagonal": False}, linear=("g",),
                        numba=False, doc="the transpose of tri_part")
tri_part_t_p.example("tri_part_t(g, a, trans=2, lower=True)", g=real(3, 3), a=real(3, 3),
                     tri_part_t=const(tri_part_t), wrt=("g",)) \
    .example("tri_part_t(g, a, 'T', False, True)", g=real(3, 3), a=real(3, 3), tri_part_t=const(tri_part_t),
             wrt=("g",))


@tri_part_p.deftranspose("a")
def _(ct, a, trans=0, lower=False, unit_diagonal=False):
    return tri_part_t(ct, a, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


@tri_part_t_p.defjvp
def _(g, like, g_dot, trans=0, lower=False, unit_diagonal=False):
    return tri_part_t(g_dot, like, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


@tri_part_t_p.deftranspose("g")
def _(ct, g, like, trans=0, lower=False, unit_diagonal=False):
    return unbroadcast(tri_part(ct, trans=trans, lower=lower, unit_diagonal=unit_diagonal), g)



def euclid_guard(x, ord=None, axis=None):
    """`x` itself when np.linalg.norm(x, ord, axis) is a Euclidean (Frobenius) norm, whose
    derivative s2sad implements; raises otherwise (rather than give a wrong derivative)."""
    if ord is None or (isinstance(ord, str) and ord == "fro"):
        return x
    if not isinstance(ord, str) and ord == 2:
        if (axis is None and np.ndim(x) == 1) or isinstance(axis, (int, np.integer)) or \
                (isinstance(axis, tuple) and len(axis) == 1):
            return x
    raise ValueError(f"s2sad differentiates np.linalg.norm only for the 2-norm of vectors and the "
                     f"Frobenius norm (ord=None, 2 for vectors, 'fro'); got ord={ord!r} on a "
                     f"{np.ndim(x)}-d array with axis={axis!r}")


euclid_guard_p = register("euclid_guard", euclid_guard, spelling="euclid_guard",
                          params=("x", "ord", "axis"), defaults={"ord": None, "axis": None},
                          linear=("x",), numba=False,  # needs a Numba overload (ndim check)
                          doc="identity that checks a norm is Euclidean")
euclid_guard_p.example("euclid_guard(x, ord=2)", x=real(3), euclid_guard=const(euclid_guard))


@euclid_guard_p.defjvp
def _(x, x_dot, ord=None, axis=None):
    return x_dot


@euclid_guard_p.deftranspose("x")
def _(ct, x, ord=None, axis=None):
    return unbroadcast(ct, x)



def block_upper(a, e):
    """The block matrix [[a, e], [0, a]] (over the last two axes)."""
    a = np.asarray(a)
    e = np.asarray(e)
    k = a.shape[-1]
    shape = np.broadcast_shapes(a.shape, e.shape)
    out = np.zeros(shape[:-2] + (2 * k, 2 * k), np.result_type(a, e))
    out[..., :k, :k] = a
    out[..., k:, k:] = a
    out[..., :k, k:] = e
    return out


# (np.concatenate of tuple literals would do, but a rule cannot contain a tuple literal yet)
block_upper_p = register("block_upper", block_upper, spelling="block_upper", params=("a", "e"),
                         linear=("a", "e"), numba=True, doc="[[a, e], [0, a]]")
block_upper_p.example("block_upper(a, e)", a=real(2, 2), e=real(2, 2), block_upper=const(block_upper))


@block_upper_p.defjvp
def _(a, e, a_dot, e_dot):
    return block_upper(a_dot, e_dot)


@block_upper_p.deftranspose("a")
def _(ct, a, e):
    k = a.shape[-1]
    return unbroadcast(ct[..., :k, :k] + ct[..., k:, k:], a)


@block_upper_p.deftranspose("e")
def _(ct, a, e):
    k = a.shape[-1]
    return unbroadcast(ct[..., :k, k:], e)


def block_diag2(d):
    """The block matrix [[d, 0], [0, d]] (over the last two axes)."""
    d = np.asarray(d)
    k = d.shape[-1]
    out = np.zeros(d.shape[:-2] + (2 * k, 2 * k), d.dtype)
    out[..., :k, :k] = d
    out[..., k:, k:] = d
    return out


block_diag2_p = register("block_diag2", block_diag2, spelling="block_diag2", params=("d",), linear=("d",),
                         numba=True, doc="[[d, 0], [0, d]]")
block_diag2_p.example("block_diag2(d)", d=real(2, 3, 3), block_diag2=const(block_diag2))


@block_diag2_p.defjvp
def _(d, d_dot):
    return block_diag2(d_dot)


@block_diag2_p.deftranspose("d")
def _(ct, d):
    k = d.shape[-1]
    return unbroadcast(ct[..., :k, :k] + ct[..., k:, k:], d)



# ---------------------------------------------------------------- triangular solves
solve_triangular = register(
    "scipy.linalg.solve_triangular", scipy.linalg.solve_triangular,
    spelling="scipy.linalg.solve_triangular",
    params=("a", "b", "trans", "lower", "unit_diagonal", "overwrite_b", "check_finite"),
    defaults={"trans": 0, "lower": False, "unit_diagonal": False, "overwrite_b": False,
              "check_finite": True},
    linear=("b",), doc="op(a) x = b for triangular a (Numba: s2sad's substitution loops)")
solve_triangular.example("scipy.linalg.solve_triangular(a, b, lower=True)", a=lower(3), b=real(3)) \
    .example("scipy.linalg.solve_triangular(a, b, lower=True)", a=lower(4), b=real(4, 2)) \
    .example("scipy.linalg.solve_triangular(a, b)", a=_upper(3), b=real(3, 2)) \
    .example("scipy.linalg.solve_triangular(a, b, trans=1, lower=True)", a=lower(3), b=real(3)) \
    .example("scipy.linalg.solve_triangular(a, b, 'T')", a=_upper(2), b=real(2, 3)) \
    .example("scipy.linalg.solve_triangular(a, b, trans=2, lower=True)", a=lower(3), b=real(3, 2)) \
    .example("scipy.linalg.solve_triangular(a, b, lower=True, unit_diagonal=True)", a=lower(3), b=real(3)) \
    .example("scipy.linalg.solve_triangular(a, b, lower=True, check_finite=False)", a=lower(2), b=real(2, 2, 3))


@solve_triangular.defjvp
def _(out, a, b, a_dot, b_dot, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
      check_finite=True):
    # op(A) x = b  =>  op(A) dx = db - op(dA_read) x, dA_read the triangle the solve reads.
    r = b_dot - tri_part(a_dot, trans=trans, lower=lower, unit_diagonal=unit_diagonal) @ out
    return scipy.linalg.solve_triangular(a, r, trans=trans, lower=lower, unit_diagonal=unit_diagonal,
                                         check_finite=check_finite)


def solve_triangular_t(a, g, trans=0, lower=False, unit_diagonal=False):
    """The transpose (bilinear pairing) of b -> scipy.linalg.solve_triangular(a, b, trans,
    lower, unit_diagonal): op(a)^{-T} g, i.e. the triangular solve with the transposed
    flag (for trans='C': conj(a^{-1} conj(g)))."""
    kw = dict(lower=lower, unit_diagonal=unit_diagonal, check_finite=False)
    if trans in (0, "N"):
        return scipy.linalg.solve_triangular(a, g, trans=1, **kw)
    if trans in (1, "T"):
        return scipy.linalg.solve_triangular(a, g, trans=0, **kw)
    if trans in (2, "C"):
        return np.conj(scipy.linalg.solve_triangular(a, np.conj(g), trans=0, **kw))
    raise ValueError(f"invalid trans {trans!r}")


solve_triangular_t_p = register(
    "solve_triangular_t", solve_triangular_t, spelling="solve_triangular_t",
    params=("a", "g", "trans", "lower", "unit_diagonal"),
    defaults={"trans": 0, "lower": False, "unit_diagonal": False}, linear=("g",),
    doc="the transpose of scipy.linalg.solve_triangular in b")
solve_triangular_t_p.example("solve_triangular_t(a, g, lower=True)", a=lower(3), g=real(3, 2),
                             solve_triangular_t=const(solve_triangular_t)) \
    .example("solve_triangular_t(a, g, 'T')", a=_upper(3), g=real(3), solve_triangular_t=const(solve_triangular_t)) \
    .example("solve_triangular_t(a, g, trans=2, unit_diagonal=True)", a=_upper(3), g=real(3, 2),
             solve_triangular_t=const(solve_triangular_t))


@solve_triangular.deftranspose("b")
def _(ct, a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False, check_finite=True):
    return unbroadcast(solve_triangular_t(a, ct, trans=trans, lower=lower, unit_diagonal=unit_diagonal), b)


@solve_triangular_t_p.defjvp
def _(out, a, g, a_dot, g_dot, trans=0, lower=False, unit_diagonal=False):
    # x = M^{-1} g with M = op(a)^T:  dx = M^{-1} (dg - dM x), dM = op(da_read)^T.
    dm = np.swapaxes(tri_part(a_dot, trans=trans, lower=lower, unit_diagonal=unit_diagonal), -1, -2)
    return solve_triangular_t(a, g_dot - dm @ out, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


@solve_triangular_t_p.deftranspose("g")
def _(ct, a, g, trans=0, lower=False, unit_diagonal=False):
    return unbroadcast(scipy.linalg.solve_triangular(a, ct, trans=trans, lower=lower, unit_diagonal=unit_diagonal,
                                                     check_finite=False), g)



# ---------------------------------------------------------------- np.linalg
# The Cholesky examples build a Hermitian positive definite matrix from the
# differentiated input, so the finite-difference direction stays in that set.
_EYE3 = const(3.0 * np.eye(3))

cholesky = register("linalg.cholesky", np.linalg.cholesky, spelling="np.linalg.cholesky", params=("a",),
                    doc="lower Cholesky factor; the tangent of a is symmetrized as in JAX")
cholesky.example("np.linalg.cholesky(np.einsum('ik,jk->ij', a, np.conj(a)) + e)", a=real(3, 3), e=_EYE3) \
    .example("np.linalg.cholesky(np.einsum('ik,jk->ij', a, np.conj(a)) + e)", a=real(3, 2),
             e=const(2.0 * np.eye(3))) \
    .example("np.linalg.cholesky(s + a + np.conj(np.einsum('ij->ji', a)))", wrt=("a",),
             s=Domain(lambda rng, c: (lambda m: m @ m.conj().T + 4 * np.eye(4))(
                 rng.normal(size=(4, 4)) + (1j * rng.normal(size=(4, 4)) if c else 0)), "spd(4)"),
             a=_small(4, 4)) \
    .example("np.linalg.cholesky(np.einsum('...ik,...jk->...ij', a, np.conj(a)) + e)", a=real(2, 2, 2),
             e=const(2.0 * np.eye(2))) \
    .example("np.linalg.cholesky(a @ a.conj().T + 3 * np.eye(3))", a=real(3, 3)) \
    .example("np.linalg.cholesky(a @ np.conj(a).T + 2 * np.eye(2))", a=real(2, 2))


@cholesky.defjvp
def _(out, a, a_dot):
    s = (a_dot + np.conj(np.swapaxes(a_dot, -1, -2))) / 2
    y = scipy.linalg.solve_triangular(out, s, lower=True, check_finite=False)  # L^{-1} S
    # L^{-1} S L^{-H} = L^{-1} (L^{-1} S)^H since S is Hermitian
    x = scipy.linalg.solve_triangular(out, np.conj(np.swapaxes(y, -1, -2)), lower=True, check_finite=False)
    # Phi(x): the lower triangle with the diagonal halved
    return out @ (0.5 * (np.tril(x) + np.tril(x, -1)))


solve = register("linalg.solve", np.linalg.solve, spelling="np.linalg.solve", params=("a", "b"), linear=("b",),
                 doc="a x = b (b 1-d, or a stack of matrices; a batched a with a 1-d b is not differentiable)")
solve.example("np.linalg.solve(a, b)", a=wellcond(3), b=real(3)) \
    .example("np.linalg.solve(a, b)", a=wellcond(4), b=real(4, 2)) \
    .example("np.linalg.solve(a, b)", a=wellcond(2), b=real(2, 3)) \
    .example("np.linalg.solve(a, b)", a=Domain(lambda rng, c: np.stack([wellcond(3)(rng, c) for _ in range(2)]),
                                               "wellcond(2x3)"), b=real(2, 3, 1))


@solve.defjvp
def _(out, a, b, a_dot, b_dot):
    return np.linalg.solve(a, b_dot - a_dot @ out)


@solve.deftranspose("b")
def _(ct, a, b):
    return unbroadcast(np.linalg.solve(np.swapaxes(a, -1, -2), ct), b)



inv = register("linalg.inv", np.linalg.inv, spelling="np.linalg.inv", params=("a",))
inv.example("np.linalg.inv(a)", a=wellcond(2)).example("np.linalg.inv(a)", a=wellcond(3)) \
    .example("np.linalg.inv(a)", a=wellcond(4))


@inv.defjvp
def _(out, a, a_dot):
    return -(out @ a_dot @ out)


det = register("linalg.det", np.linalg.det, spelling="np.linalg.det", params=("a",),
               doc="d det = det tr(a^{-1} da) (a must be invertible)")
det.example("np.linalg.det(a)", a=wellcond(2)).example("np.linalg.det(a)", a=wellcond(3)) \
    .example("np.linalg.det(a)", a=_negdet(3)).example("np.linalg.det(a)", a=wellcond(4))


@det.defjvp
def _(out, a, a_dot):
    # tr over the last two axes as sums of x * I: Numba has no np.trace(x, axis1=, axis2=)
    # (and a tuple literal such as axis=(-2, -1) cannot appear in a rule, see the report)
    return out * np.sum(np.sum(np.linalg.solve(a, a_dot) * np.eye(a.shape[-1]), axis=-1), axis=-1)


slogdet = register("linalg.slogdet", np.linalg.slogdet, spelling="np.linalg.slogdet", params=("a",),
                   outputs=lambda bound: 2, doc="(sign, logabsdet); sign has a tangent for complex a")
# tuple(...): the finite-difference helper cannot rebuild NumPy's result namedtuples
slogdet.example("tuple(np.linalg.slogdet(a))", a=wellcond(3)) \
    .example("tuple(np.linalg.slogdet(a))", a=_negdet(3)) \
    .example("np.linalg.slogdet(a)[1]", a=wellcond(2)).example("np.linalg.slogdet(a)[0]", a=wellcond(4))


@slogdet.defjvp
def _(out, a, a_dot):
    t = np.sum(np.sum(np.linalg.solve(a, a_dot) * np.eye(a.shape[-1]), axis=-1), axis=-1)  # tr(a^-1 da)
    ld = np.real(t)
    return ((t - ld) * out[0], ld)


norm = register("linalg.norm", np.linalg.norm, spelling="np.linalg.norm", params=("x", "ord", "axis", "keepdims"),
                defaults={"ord": None, "axis": None, "keepdims": False},
                doc="differentiable for the vector 2-norm and the Frobenius norm; other ord raise "
                    "ValueError when the derivative is computed")
norm.example("np.linalg.norm(x)", x=real(4)).example("np.linalg.norm(x)", x=real(3, 2)) \
    .example("np.linalg.norm(x, 2)", x=real(5)).example("np.linalg.norm(x, 'fro')", x=real(2, 3)) \
    .example("np.linalg.norm(x, axis=1)", x=real(3, 4)) \
    .example("np.linalg.norm(x, ord=2, axis=0, keepdims=True)", x=real(3, 4)) \
    .example("np.linalg.norm(x, None, (0, 1))", x=real(2, 3, 2)) \
    .example("np.linalg.norm(x, keepdims=True)", x=real(2, 3))


@norm.defjvp
def _(out, x, x_dot, ord=None, axis=None, keepdims=False):
    g = euclid_guard(x, ord=ord, axis=axis)
    return np.sum(np.real(np.conj(g) * x_dot), axis=axis, keepdims=keepdims) / out


def _hermitian(n):
    """A random Hermitian n x n matrix with well-separated eigenvalues."""
    def fn(rng, c):
        q = np.linalg.qr(rng.normal(size=(n, n)) + (1j * rng.normal(size=(n, n)) if c else 0))[0]
        w = np.arange(n) * 1.5 - n / 2 + rng.uniform(-0.2, 0.2, n)
        return (q * w) @ q.conj().T
    return Domain(fn, f"hermitian({n})")


eigh = register("linalg.eigh", np.linalg.eigh, spelling="np.linalg.eigh", params=("a", "UPLO"),
                defaults={"UPLO": "L"}, outputs=lambda bound: 2,
                doc="(w, v) of a Hermitian matrix; the tangent of a is symmetrized as in JAX")
_SYM = "np.linalg.eigh(h + a + np.conj(np.einsum('ij->ji', a)))"
eigh.example(_SYM + "[0]", wrt=("a",), h=_hermitian(3), a=_small(3, 3)) \
    .example("np.linalg.eigh(h + a + a.conj().T)[0]", wrt=("a",), h=_hermitian(2), a=_small(2, 2)) \
    .example(f"np.einsum('ik,k,jk->ij', {_SYM}[1], np.sin({_SYM}[0]), np.conj({_SYM}[1]))",
             wrt=("a",), h=_hermitian(3), a=_small(3, 3)) \
    .example(_SYM + "[1]", wrt=("a",), h=_hermitian(4), a=_small(4, 4), complex=False)  # eigenvector signs: real only


@eigh.defjvp
def _(out, a, a_dot, UPLO="L"):
    w = out[0]
    v = out[1]
    s = (a_dot + np.conj(np.swapaxes(a_dot, -1, -2))) / 2
    m = np.conj(np.swapaxes(v, -1, -2)) @ s @ v
    e = np.eye(w.shape[-1])
    f = 1 / (e + w[..., None, :] - w[..., :, None]) - e
    # dw = Re diag(m), as a sum against the identity (Numba has no np.diagonal)
    return (np.real(np.sum(m * e, axis=-1)), v @ (f * m))


matrix_power = register("linalg.matrix_power", np.linalg.matrix_power, spelling="np.linalg.matrix_power",
                        params=("a", "n"),
                        doc="a^n; the tangent is the upper-right block of [[a, da], [0, a]]^n")
matrix_power.example("np.linalg.matrix_power(a, 3)", a=real(3, 3)) \
    .example("np.linalg.matrix_power(a, n)", a=real(2, 2), n=ints(0, 4)) \
    .example("np.linalg.matrix_power(a, -2)", a=wellcond(3)) \
    .example("np.linalg.matrix_power(a, 1)", a=real(2, 2))


@matrix_power.defjvp
def _(a, n, a_dot):
    return matpow_jvp(a, a_dot, n)


def matpow_jvp(a, e, n):
    """The derivative of a^n in the direction e: sum_k a^k e a^(n-1-k) for n > 0, through
    b = a^{-1} (db = -b e b) for n < 0, zero for n = 0. Linear in e; it is also the
    upper-right block of [[a, e], [0, a]]^n."""
    a = np.asarray(a)
    e = np.asarray(e)
    n = int(n)
    shape = np.broadcast_shapes(a.shape, e.shape)
    if n == 0:
        return np.zeros(shape, np.result_type(a, e, np.float64))
    if n < 0:
        b = np.linalg.inv(a)
        return matpow_jvp(b, -(b @ e @ b), -n)
    if n > 16:  # O(log n) products of double size
        k = a.shape[-1]
        return np.linalg.matrix_power(block_upper(a, e), n)[..., :k, k:]
    s = e  # s_m = sum_{k<m} a^k e a^(m-1-k), p = a^m
    p = a
    for _ in range(n - 1):
        s = a @ s + e @ p
        p = p @ a
    return np.broadcast_to(s, shape) if s.shape != shape else s


matpow_jvp_p = register("matpow_jvp", matpow_jvp, spelling="matpow_jvp", params=("a", "e", "n"), linear=("e",),
                        numba=True, doc="the derivative of np.linalg.matrix_power(a, n) in the direction e")
matpow_jvp_p.example("matpow_jvp(a, e, 3)", a=real(3, 3), e=real(3, 3), matpow_jvp=const(matpow_jvp)) \
    .example("matpow_jvp(a, e, -2)", a=wellcond(2), e=real(2, 2), matpow_jvp=const(matpow_jvp)) \
    .example("matpow_jvp(a, e, 0)", a=real(2, 2), e=real(2, 2), matpow_jvp=const(matpow_jvp)) \
    .example("matpow_jvp(a, e, 2)", a=real(2, 3, 3), e=real(3, 3), matpow_jvp=const(matpow_jvp))


@matpow_jvp_p.defjvp
def _(a, e, n, a_dot, e_dot):
    # In a: the second derivative of a^n in the directions e, da -- by the block identity,
    # the upper-right block of matpow_jvp([[a, e], [0, a]], [[da, 0], [0, da]], n).
    k = a.shape[-1]
    t = matpow_jvp(block_upper(a, e), block_diag2(a_dot), n)
    return matpow_jvp(a, e_dot, n) + t[..., :k, k:]


@matpow_jvp_p.deftranspose("e")
def _(ct, a, e, n):
    # <a^k e a^j, w> = <e, (a^T)^k w (a^T)^j>: the same map for a^T (also for n < 0)
    return unbroadcast(matpow_jvp(np.swapaxes(a, -1, -2), ct, n), e)


# ---------------------------------------------------------------- Numba implementations
_NUMBA_DONE = False


def register_numba():
    """Numba implementations of this module's helpers (idempotent), for the cases Numba's
    own NumPy support covers: the products of 0-, 1- and 2-d operands (dot, vdot of
    vectors, outer, kron, cross of 3-vectors along the last axis), trace/diag of matrices,
    matpow_jvp, block_upper and block_diag2 of matrices. Other cases raise a TypingError
    at compile time (np.inner, np.tensordot, np.einsum and scipy.linalg are not in Numba).
    Meant to be called from `s2sad.runtime.helpers.register_numba`."""
    global _NUMBA_DONE
    if _NUMBA_DONE:
        return
    _NUMBA_DONE = True
    _register_numba_triangular()
    from numba import types
    from numba.core.errors import TypingError
    from numba.extending import overload
    from numba.np.numpy_support import as_dtype

    def bare(t):
        # Numba types some results as Optional (np.linalg.matrix_power returns Optional(array))
        return t.type if isinstance(t, types.Optional) else t

    def ndim(t):
        t = bare(t)
        return t.ndim if isinstance(t, types.Array) else 0

    def dtype_of(*ts):
        ts = [bare(t) for t in ts]
        return np.result_type(*[as_dtype(t.dtype if isinstance(t, types.Array) else t) for t in ts],
                              np.float64)

    def is_default(t, value):
        if isinstance(t, types.Omitted):
            return t.value == value
        if t is None or isinstance(t, types.NoneType):
            return value is None
        if isinstance(t, types.IntegerLiteral):
            return t.literal_value == value
        return not isinstance(t, types.Type) and t == value

    def the_kind(kind):
        if isinstance(kind, types.StringLiteral):
            return kind.literal_value
        raise TypingError("bprod: the product kind must be a constant string")

    def check_axes(fn, axes, axisa, axisb, axisc, axis):
        if not (is_default(axes, None) and is_default(axisa, -1) and is_default(axisb, -1)
                and is_default(axisc, -1) and is_default(axis, None)):
            raise TypingError(f"{fn}: only the default axes are supported under Numba")

    def unsupported(fn, kind, *ts):
        return TypingError(f"{fn}: the {kind!r} product of operands of dimensions "
                           f"{tuple(ndim(t) for t in ts)} is not supported under Numba")

    @overload(bprod, prefer_literal=True)
    def _bprod(a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
        k = the_kind(kind)
        check_axes("bprod", axes, axisa, axisb, axisc, axis)
        c = dtype_of(a, b)
        if k == "dot":
            if ndim(a) == 0 or ndim(b) == 0:
                return lambda a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None: a * b
            return lambda a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None: \
                np.dot(a.astype(c), b.astype(c))
        if k == "vdot":
            return lambda a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None: \
                np.vdot(a.astype(c), b.astype(c))
        if k == "outer":
            return lambda a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None: np.outer(a, b)
        if k == "kron":
            return lambda a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None: np.kron(a, b)
        if k == "cross":
            return lambda a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None: \
                np.cross(a.astype(c), b.astype(c))
        raise unsupported("bprod", k, a, b)

    @overload(bprod_ta, prefer_literal=True)
    def _bprod_ta(g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
        k = the_kind(kind)
        check_axes("bprod_ta", axes, axisa, axisb, axisc, axis)
        na, nb = ndim(a), ndim(b)
        c = dtype_of(g, b)
        sig = "g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None"
        body = None
        if k == "dot":
            if na == 0:
                body = "fix(np.sum(g * b))"
            elif nb == 0 or (na == 1 and nb == 1):
                body = "fix(g * b)"
            elif na == 2 and nb == 1:
                body = "fix(np.outer(g, b))"
            elif na == 1 and nb == 2:
                body = "fix(np.dot(b.astype(c), g.astype(c)))"
            elif na == 2 and nb == 2:
                body = "fix(np.dot(g.astype(c), np.ascontiguousarray(b.T).astype(c)))"
        elif k == "vdot" and na == 1 and nb == 1:
            body = "fix(np.conj(g * b))"
        elif k == "outer" and na <= 2 and nb >= 1:
            body = "fix(np.dot(g.astype(c), np.ravel(b).astype(c)).reshape(a.shape))"
        elif k == "kron" and 1 <= na <= 2 and 1 <= nb <= 2:
            body = "fix(kron_t(g, a, b, 0).reshape(a.shape))"
        elif k == "cross" and na >= 1 and nb >= 1:
            body = _summed("np.cross(b.astype(c), g.astype(c))", max(na, nb) - na, "a")
        if body is None:
            raise unsupported("bprod_ta", k, a, b)
        return _compile(sig, body, c, a)

    @overload(bprod_tb, prefer_literal=True)
    def _bprod_tb(g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None):
        k = the_kind(kind)
        check_axes("bprod_tb", axes, axisa, axisb, axisc, axis)
        na, nb = ndim(a), ndim(b)
        c = dtype_of(g, a)
        sig = "g, a, b, kind, axes=None, axisa=-1, axisb=-1, axisc=-1, axis=None"
        body = None
        if k == "dot":
            if nb == 0:
                body = "fix(np.sum(a * g))"
            elif na == 0 or (na == 1 and nb == 1):
                body = "fix(a * g)"
            elif na == 2 and nb == 1:
                body = "fix(np.dot(np.ascontiguousarray(a.T).astype(c), g.astype(c)))"
            elif na == 1 and nb == 2:
                body = "fix(np.outer(a, g))"
            elif na == 2 and nb == 2:
                body = "fix(np.dot(np.ascontiguousarray(a.T).astype(c), g.astype(c)))"
        elif k == "vdot" and na == 1 and nb == 1:
            body = "fix(g * np.conj(a))"
        elif k == "outer" and na >= 1 and nb <= 2:
            body = "fix(np.dot(np.ravel(a).astype(c), g.astype(c)).reshape(b.shape))"
        elif k == "kron" and 1 <= na <= 2 and 1 <= nb <= 2:
            body = "fix(kron_t(g, a, b, 1).reshape(b.shape))"
        elif k == "cross" and na >= 1 and nb >= 1:
            body = _summed("np.cross(g.astype(c), a.astype(c))", max(na, nb) - nb, "b")
        if body is None:
            raise unsupported("bprod_tb", k, a, b)
        return _compile(sig, body, c, b)

    from numba import njit

    @njit
    def kron_t(g, a, b, which):
        # the 2-d forms: a (m, n), b (p, q), g (m p, n q)
        m, n = (1, a.shape[0]) if a.ndim == 1 else (a.shape[0], a.shape[-1])
        p, q = (1, b.shape[0]) if b.ndim == 1 else (b.shape[0], b.shape[-1])
        g2 = np.ascontiguousarray(g).reshape((m * p, n * q))
        a2 = np.ascontiguousarray(a).reshape((m, n))
        b2 = np.ascontiguousarray(b).reshape((p, q))
        if which == 0:
            r = np.zeros((m, n), dtype=(g2[:1, :1] * b2[:1, :1]).dtype)
            for i in range(m):
                for j in range(n):
                    r[i, j] = np.sum(g2[i * p:(i + 1) * p, j * q:(j + 1) * q] * b2)
            return r
        r = np.zeros((p, q), dtype=(g2[:1, :1] * a2[:1, :1]).dtype)
        for i in range(m):
            for j in range(n):
                r += g2[i * p:(i + 1) * p, j * q:(j + 1) * q] * a2[i, j]
        return r

    @njit
    def keep(v):
        return v

    @njit
    def to_real(v):
        return np.real(v)

    @njit
    def to_complex(v):
        return v + 0j

    def fixer(c, like):
        """The dtype fix of a cotangent of dtype c for a value typed `like` (the transpose of
        the real -> complex promotion)."""
        cl = dtype_of(like).kind == "c"
        if np.dtype(c).kind == "c" and not cl:
            return to_real
        return to_complex if cl and np.dtype(c).kind != "c" else keep

    def _summed(expr, lead, like):
        """Statements: `expr` summed over `lead` leading (broadcast) axes, then checked
        against the shape of `like` (size-1 broadcasting is not handled here)."""
        return (f"r = {expr}" + ".sum(axis=0)" * lead + f"\n    if r.shape != {like}.shape:\n"
                f"        raise ValueError('bprod: size-1 broadcasting is not supported under Numba')\n"
                f"    return fix(r)")

    def _compile(sig, body, c, like):
        ns = {"np": np, "fix": fixer(c, like), "kron_t": kron_t, "c": c}
        if "return" not in body:
            body = f"return {body}"
        exec(f"def impl({sig}):\n    {body}\n", ns)
        return ns["impl"]

    @overload(trace_t)
    def _trace_t(g, a, offset=0, axis1=0, axis2=1):
        if ndim(a) != 2 or not (is_default(axis1, 0) and is_default(axis2, 1)):
            raise TypingError("trace_t: only matrices (axis1=0, axis2=1) under Numba")
        c = dtype_of(g, a)
        fix = fixer(c, a)

        def impl(g, a, offset=0, axis1=0, axis2=1):
            z = np.zeros(a.shape, c)
            for i in range(a.shape[0]):
                j = i + offset
                if 0 <= j < a.shape[1]:
                    z[i, j] = g
            return fix(z)
        return impl

    @overload(diag_t)
    def _diag_t(g, v, k=0):
        c = dtype_of(g, v)
        fix = fixer(c, v)
        if ndim(v) == 1:
            return lambda g, v, k=0: fix(np.diag(g, k).copy())
        if ndim(v) != 2:
            raise TypingError("diag_t: v must be 1- or 2-d")

        def impl(g, v, k=0):
            z = np.zeros(v.shape, c)
            i0 = -k if k < 0 else 0
            for t in range(g.shape[0]):
                z[i0 + t, i0 + t + k] = g[t]
            return fix(z)
        return impl

    @overload(matpow_jvp)
    def _matpow_jvp(a, e, n):
        if ndim(a) != 2 or ndim(e) != 2:
            raise TypingError("matpow_jvp: only matrices under Numba")
        c = dtype_of(a, e)

        def impl(a, e, n):
            if n == 0:
                return np.zeros(e.shape, c)
            aa = np.ascontiguousarray(a).astype(c)
            ee = np.ascontiguousarray(e).astype(c)
            m = n
            if n < 0:
                b = np.linalg.inv(aa)
                ee = -(b @ ee @ b)
                aa = b
                m = -n
            s = ee.copy()
            p = aa.copy()
            for _ in range(m - 1):
                s = aa @ s + ee @ p
                p = p @ aa
            return s
        return impl

    @overload(block_upper)
    def _block_upper(a, e):
        if ndim(a) != 2 or ndim(e) != 2:
            raise TypingError("block_upper: only matrices under Numba")
        c = dtype_of(a, e)

        def impl(a, e):
            k = a.shape[-1]
            out = np.zeros((2 * k, 2 * k), c)
            out[:k, :k] = a
            out[k:, k:] = a
            out[:k, k:] = e
            return out
        return impl

    @overload(block_diag2)
    def _block_diag2(d):
        if ndim(d) != 2:
            raise TypingError("block_diag2: only matrices under Numba")

        def impl(d):
            k = d.shape[-1]
            out = np.zeros((2 * k, 2 * k), d.dtype)
            out[:k, :k] = d
            out[k:, k:] = d
            return out
        return impl


# ------------------------------------------------------- Numba: triangular solves

def _register_numba_triangular():
    """Numba versions of scipy.linalg.solve_triangular and solve_triangular_t (substitution
    loops; a 1- or 2-d right-hand side; trans given as 0/1/2 or 'N'/'T'/'C')."""
    import numba
    from numba import types
    from numba.extending import overload, register_jitable

    def _make_solve(dtype):
        @register_jitable
        def solve(a, b, code, lower, unit):
            # op(T) x = b for the triangle T of a; op = identity, transpose, conjugate transpose
            n = a.shape[0]
            m = b.size // n
            bb = np.ascontiguousarray(b).reshape((n, m))
            x = np.empty((n, m), dtype=dtype)
            for i in range(n):
                for j in range(m):
                    x[i, j] = bb[i, j]
            # a solve with T^T / T^H eliminates from the other end
            forward = lower if code == 0 else not lower
            for j in range(m):
                for step in range(n):
                    i = step if forward else n - 1 - step
                    s = x[i, j]
                    for k in range(n):
                        if (forward and k < i) or ((not forward) and k > i):
                            t = a[i, k] if code == 0 else a[k, i]
                            if code == 2:
                                t = np.conj(t)
                            s = s - t * x[k, j]
                    if not unit:
                        d = a[i, i] if code != 2 else np.conj(a[i, i])
                        s = s / d
                    x[i, j] = s
            return x
        return solve

    _solve_real = _make_solve(np.float64)
    _solve_cplx = _make_solve(np.complex128)

    def _pick(a, b):
        cplx = any(isinstance(t, types.Array) and isinstance(t.dtype, types.Complex) for t in (a, b))
        solve = _solve_cplx if cplx else _solve_real
        if b.ndim == 1:
            return register_jitable(lambda a, b, c, lo, u: solve(a, b, c, lo, u)[:, 0].copy())
        return register_jitable(lambda a, b, c, lo, u: solve(a, b, c, lo, u).reshape(b.shape))

    def _code_of(trans):
        if isinstance(trans, (types.UnicodeType, types.StringLiteral)):
            def code(trans):
                if trans == "N":
                    return 0
                if trans == "T":
                    return 1
                return 2
            return code
        return lambda trans: int(trans)

    @overload(scipy.linalg.solve_triangular)
    def _st(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False, check_finite=True):
        code = register_jitable(_code_of(trans))
        solve = _pick(a, b)

        def impl(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False, check_finite=True):
            return solve(a, b, code(trans), lower, unit_diagonal)
        return impl

    @overload(solve_triangular_t)
    def _stt(a, g, trans=0, lower=False, unit_diagonal=False):
        code = register_jitable(_code_of(trans))
        solve = _pick(a, g)

        def impl(a, g, trans=0, lower=False, unit_diagonal=False):
            c = code(trans)
            if c == 0:
                return solve(a, g, 1, lower, unit_diagonal)
            if c == 1:
                return solve(a, g, 0, lower, unit_diagonal)
            return np.conj(solve(a, np.conj(g), 0, lower, unit_diagonal))
        return impl
    return numba
