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
functions below (``tri_part``, ``euclid_guard``, ``block_upper``) are primitives of their
own, linear, with JVP rules.
"""

import numpy as np
import scipy.linalg

from s2sad.runtime.domains import Domain, const, ints, lower, real, wellcond
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


# ---------------------------------------------------------------- products
dot = register("dot", np.dot, spelling="np.dot", params=("a", "b"), linear=("a", "b"), bilinear=True)
dot.example("np.dot(a, b)", a=real(3, 4), b=real(4)).example("np.dot(a, b)", a=real(4), b=real(4)) \
    .example("np.dot(a, b)", a=real(2, 3), b=real(3, 4)).example("np.dot(a, b)", a=real(), b=real(3))


@dot.defjvp
def _(a, b, a_dot, b_dot):
    return np.dot(a_dot, b) + np.dot(a, b_dot)


# np.vdot conjugates (and flattens) its first argument: real-linear in a, so still bilinear
# over the reals; a transpose rule must account for the conjugation.
vdot = register("vdot", np.vdot, spelling="np.vdot", params=("a", "b"), linear=("a", "b"),
                bilinear=True, doc="sum(conj(a.ravel()) * b.ravel())")
vdot.example("np.vdot(a, b)", a=real(4), b=real(4)).example("np.vdot(a, b)", a=real(2, 3), b=real(2, 3))


@vdot.defjvp
def _(a, b, a_dot, b_dot):
    return np.vdot(a_dot, b) + np.vdot(a, b_dot)


outer = register("outer", np.outer, spelling="np.outer", params=("a", "b"), linear=("a", "b"),
                 bilinear=True)
outer.example("np.outer(a, b)", a=real(3), b=real(4)).example("np.outer(a, b)", a=real(2, 2), b=real(3))


@outer.defjvp
def _(a, b, a_dot, b_dot):
    return np.outer(a_dot, b) + np.outer(a, b_dot)


inner = register("inner", np.inner, spelling="np.inner", params=("a", "b"), linear=("a", "b"),
                 bilinear=True, numba=False)  # np.inner, np.tensordot, np.einsum: not in Numba
inner.example("np.inner(a, b)", a=real(4), b=real(4)).example("np.inner(a, b)", a=real(2, 3), b=real(4, 3)) \
    .example("np.inner(a, b)", a=real(), b=real(3))


@inner.defjvp
def _(a, b, a_dot, b_dot):
    return np.inner(a_dot, b) + np.inner(a, b_dot)


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


kron = register("kron", np.kron, spelling="np.kron", params=("a", "b"), linear=("a", "b"), bilinear=True)
kron.example("np.kron(a, b)", a=real(2, 2), b=real(3, 2)).example("np.kron(a, b)", a=real(3), b=real(2))


@kron.defjvp
def _(a, b, a_dot, b_dot):
    return np.kron(a_dot, b) + np.kron(a, b_dot)


cross = register("cross", np.cross, spelling="np.cross", params=("a", "b", "axisa", "axisb", "axisc", "axis"),
                 defaults={"axisa": -1, "axisb": -1, "axisc": -1, "axis": None},
                 linear=("a", "b"), bilinear=True)
cross.example("np.cross(a, b)", a=real(3), b=real(3)).example("np.cross(a, b)", a=real(4, 3), b=real(3)) \
    .example("np.cross(a, b, axis=0)", a=real(3, 2), b=real(3, 2))


@cross.defjvp
def _(a, b, a_dot, b_dot, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return np.cross(a_dot, b, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis) + \
        np.cross(a, b_dot, axisa=axisa, axisb=axisb, axisc=axisc, axis=axis)


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
                         linear=("a", "e"), numba=False, doc="[[a, e], [0, a]]")
block_upper_p.example("block_upper(a, e)", a=real(2, 2), e=real(2, 2), block_upper=const(block_upper))


@block_upper_p.defjvp
def _(a, e, a_dot, e_dot):
    return block_upper(a_dot, e_dot)


# ---------------------------------------------------------------- triangular solves
solve_triangular = register(
    "scipy.linalg.solve_triangular", scipy.linalg.solve_triangular,
    spelling="scipy.linalg.solve_triangular",
    params=("a", "b", "trans", "lower", "unit_diagonal", "overwrite_b", "check_finite"),
    defaults={"trans": 0, "lower": False, "unit_diagonal": False, "overwrite_b": False,
              "check_finite": True},
    linear=("b",), numba=False, doc="op(a) x = b for triangular a (not available in Numba)")
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
    k = a.shape[-1]
    p = np.linalg.matrix_power(block_upper(a, a_dot), n)
    return p[..., :k, k:]
