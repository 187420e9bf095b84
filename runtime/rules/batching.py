"""Batch rules (`ad.vmap`): how each primitive runs on values with a trailing batch axis.

Each rule is a template (like a JVP rule) over the primitive's parameters, written for
arguments that carry a trailing batch axis (see `runtime.batching`); ``B`` is the batch
size. Elementwise primitives need no rule (broadcasting aligns from the right), nor does
indexing with an unbatched index. A primitive without a rule runs as a loop over the
batch: correct, not vectorised, and said so in the generated source.

Rules call registered primitives and the integer helpers of `runtime.batching`, so
batched code can be batched again (``vmap(vmap(f))``): ranks are read as ``x.ndim``,
which an outer batching rewrites to ``x.ndim - 1``.
"""

import numpy as np

from s2sad.runtime.domains import Domain, real, wellcond

from s2sad.runtime.helpers import (broadcast_like, check_grad_output, getitem_t, ones_like_output, own_copy,
                                   stop_gradient, unbroadcast, zero_tangent)
import scipy.special

from s2sad.runtime.batching import (batch_axis, batch_index, batch_shape, batch_transpose_axes, bdot, bdot_ta,
                                    bdot_tb, bmatmul, bmatmul_tx, bmatmul_ty, back, bsolve, front,
                                    shift_axis)
from s2sad.runtime.registry import get, register
from s2sad.runtime.rules.reductions import expand_reduced, rcumsum

# ------------------------------------------------------------------ registration
for _fn, _name in ((batch_axis, "batch_axis"), (batch_shape, "batch_shape"),
                   (batch_transpose_axes, "batch_transpose_axes"), (shift_axis, "shift_axis")):
    _params = {"batch_axis": ("ndim", "axis"), "batch_shape": ("shape", "size"),
               "batch_transpose_axes": ("ndim", "axes"), "shift_axis": ("axis",)}[_name]
    register(_name, _fn, spelling=_name, params=_params, nondiff=True, numba=False,
             defaults={"axis": None if _name != "shift_axis" else 0, "axes": None},
             doc="batching: an axis or shape argument of a per-example call, for the batched value")

register("batch_index", batch_index, spelling="batch_index", params=("idx",), nondiff=True,
         numba=False, doc="batching: a per-example index as an index of the batched value")

bmatmul_p = register("bmatmul", bmatmul, spelling="bmatmul", params=("x", "y", "nb"),
                     defaults={"nb": 1}, linear=("x", "y"), bilinear=True, numba=False,
                     doc="batching: x @ y per example (nb trailing batch axes)")
bdot_p = register("bdot", bdot, spelling="bdot", params=("a", "b", "nb"), defaults={"nb": 1},
                  linear=("a", "b"), bilinear=True, numba=False, doc="batching: np.dot per example (nb trailing batch axes)")


_B = 2   # the batch size of the examples: batched values end with an axis of this length
for _x, _y in ((real(3, 4, _B), real(4, 5, _B)), (real(4, _B), real(4, 3, _B)),
               (real(3, 4, _B), real(4, _B)), (real(4, _B), real(4, _B)),
               (real(5, 3, 4, _B), real(4, 2, _B)), (real(3, 4, 1), real(4, 5, _B))):
    bmatmul_p.example("bmatmul(x, y)", x=_x, y=_y)
for _a, _b in ((real(3, 4, _B), real(4, 5, _B)), (real(_B), real(3, _B)), (real(3, _B), real(1)),
               (real(4, _B), real(4, _B))):
    bdot_p.example("bdot(a, b)", a=_a, b=_b)

bmatmul_tx_p = register("bmatmul_tx", bmatmul_tx, spelling="bmatmul_tx", params=("g", "x", "y", "nb"),
                        defaults={"nb": 1}, linear=("g", "y"), bilinear=True, numba=False,
                        doc="batching: cotangent of x in bmatmul(x, y, nb)")
bmatmul_ty_p = register("bmatmul_ty", bmatmul_ty, spelling="bmatmul_ty", params=("g", "x", "y", "nb"),
                        defaults={"nb": 1}, linear=("g", "x"), bilinear=True, numba=False,
                        doc="batching: cotangent of y in bmatmul(x, y, nb)")
for _g, _x, _y in ((real(3, 5, _B), real(3, 4, _B), real(4, 5, _B)), (real(3, _B), real(4, _B), real(4, 3, _B)),
                   (real(3, _B), real(3, 4, _B), real(4, _B)), (real(_B), real(4, _B), real(4, _B)),
                   (real(5, 3, 2, _B), real(5, 3, 4, _B), real(4, 2, _B)),
                   (real(3, 5, _B), real(3, 4, 1), real(4, 5, _B))):
    bmatmul_tx_p.example("bmatmul_tx(g, x, y)", g=_g, x=_x, y=_y, wrt=("g", "y"))
    bmatmul_ty_p.example("bmatmul_ty(g, x, y)", g=_g, x=_x, y=_y, wrt=("g", "x"))

bdot_ta_p = register("bdot_ta", bdot_ta, spelling="bdot_ta", params=("g", "a", "b", "nb"),
                     defaults={"nb": 1}, linear=("g", "b"), bilinear=True, numba=False,
                     doc="batching: cotangent of a in bdot(a, b, nb)")
bdot_tb_p = register("bdot_tb", bdot_tb, spelling="bdot_tb", params=("g", "a", "b", "nb"),
                     defaults={"nb": 1}, linear=("g", "a"), bilinear=True, numba=False,
                     doc="batching: cotangent of b in bdot(a, b, nb)")
for _g, _a, _b in ((real(3, 5, _B), real(3, 4, _B), real(4, 5, _B)), (real(3, _B), real(_B), real(3, _B)),
                   (real(3, _B), real(3, _B), real(1)), (real(_B), real(4, _B), real(4, _B))):
    bdot_ta_p.example("bdot_ta(g, a, b)", g=_g, a=_a, b=_b, wrt=("g", "b"))
    bdot_tb_p.example("bdot_tb(g, a, b)", g=_g, a=_a, b=_b, wrt=("g", "a"))


@bmatmul_p.defjvp
def _(x, y, x_dot, y_dot, nb=1):
    return bmatmul(x_dot, y, nb) + bmatmul(x, y_dot, nb)


@bmatmul_p.deftranspose("x")
def _(ct, x, y, nb=1):
    return bmatmul_tx(ct, x, y, nb)


@bmatmul_p.deftranspose("y")
def _(ct, x, y, nb=1):
    return bmatmul_ty(ct, x, y, nb)


@bmatmul_tx_p.defjvp
def _(g, x, y, g_dot, y_dot, nb=1):
    return bmatmul_tx(g_dot, x, y, nb) + bmatmul_tx(g, x, y_dot, nb)


@bmatmul_tx_p.deftranspose("g")
def _(ct, g, x, y, nb=1):
    return unbroadcast(bmatmul(ct, y, nb), g)


@bmatmul_tx_p.deftranspose("y")
def _(ct, g, x, y, nb=1):
    return bmatmul_ty(g, ct, y, nb)


@bmatmul_ty_p.defjvp
def _(g, x, y, g_dot, x_dot, nb=1):
    return bmatmul_ty(g_dot, x, y, nb) + bmatmul_ty(g, x_dot, y, nb)


@bmatmul_ty_p.deftranspose("g")
def _(ct, g, x, y, nb=1):
    return unbroadcast(bmatmul(x, ct, nb), g)


@bmatmul_ty_p.deftranspose("x")
def _(ct, g, x, y, nb=1):
    return bmatmul_tx(g, x, ct, nb)


@bdot_p.defjvp
def _(a, b, a_dot, b_dot, nb=1):
    return bdot(a_dot, b, nb) + bdot(a, b_dot, nb)


@bdot_p.deftranspose("a")
def _(ct, a, b, nb=1):
    return bdot_ta(ct, a, b, nb)


@bdot_p.deftranspose("b")
def _(ct, a, b, nb=1):
    return bdot_tb(ct, a, b, nb)


@bdot_ta_p.defjvp
def _(g, a, b, g_dot, b_dot, nb=1):
    return bdot_ta(g_dot, a, b, nb) + bdot_ta(g, a, b_dot, nb)


@bdot_ta_p.deftranspose("g")
def _(ct, g, a, b, nb=1):
    return unbroadcast(bdot(ct, b, nb), g)


@bdot_ta_p.deftranspose("b")
def _(ct, g, a, b, nb=1):
    return bdot_tb(g, ct, b, nb)


@bdot_tb_p.defjvp
def _(g, a, b, g_dot, a_dot, nb=1):
    return bdot_tb(g_dot, a, b, nb) + bdot_tb(g, a_dot, b, nb)


@bdot_tb_p.deftranspose("g")
def _(ct, g, a, b, nb=1):
    return unbroadcast(bdot(a, ct, nb), g)


@bdot_tb_p.deftranspose("a")
def _(ct, g, a, b, nb=1):
    return bdot_ta(g, a, ct, nb)


# np.dot's transposes (bprod_ta / bprod_tb, kind 'dot') per example: bdot_ta / bdot_tb
_NOT_DOT = tuple(f"kind='{k}'" for k in ("vdot", "inner", "outer", "kron", "tensordot", "cross"))


@get("bprod").defbatch(arrays=("a", "b"), unless=_NOT_DOT)
def _(a, b, kind):
    return bdot(a, b)


@get("bprod_ta").defbatch(arrays=("g", "a", "b"), full=("a",), unless=_NOT_DOT)
def _(g, a, b, kind):
    return bdot_ta(g, a, b)


@get("bprod_tb").defbatch(arrays=("g", "a", "b"), full=("b",), unless=_NOT_DOT)
def _(g, a, b, kind):
    return bdot_tb(g, a, b)


# a product of batched values is a product with one more batch axis (the operand a
# cotangent takes its shape from is there for every example: its own batch axis of length
# one would sum the cotangent over the batch)

@bmatmul_p.defbatch(arrays=("x", "y"))
def _(x, y, nb=1):
    return bmatmul(x, y, nb + 1)


@bdot_p.defbatch(arrays=("a", "b"))
def _(a, b, nb=1):
    return bdot(a, b, nb + 1)


@bmatmul_tx_p.defbatch(arrays=("g", "x", "y"), full=("x",))
def _(g, x, y, nb=1):
    return bmatmul_tx(g, x, y, nb + 1)


@bmatmul_ty_p.defbatch(arrays=("g", "x", "y"), full=("y",))
def _(g, x, y, nb=1):
    return bmatmul_ty(g, x, y, nb + 1)


@bdot_ta_p.defbatch(arrays=("g", "a", "b"), full=("a",))
def _(g, a, b, nb=1):
    return bdot_ta(g, a, b, nb + 1)


@bdot_tb_p.defbatch(arrays=("g", "a", "b"), full=("b",))
def _(g, a, b, nb=1):
    return bdot_tb(g, a, b, nb + 1)


# ------------------------------------------------------------------ metadata
# The per-example shape of a batched value: its shape without the batch axis.

@get("attr.shape").defbatch()
def _(x):
    s = x.shape
    return s[:-1]


@get("np.shape").defbatch()
def _(a):
    s = np.shape(a)
    return s[:-1]


@get("attr.ndim").defbatch()
def _(x):
    return x.ndim - 1


@get("np.ndim").defbatch()
def _(a):
    return np.ndim(a) - 1


@get("attr.size").defbatch()
def _(x, B):
    return x.size // B


@get("np.size").defbatch()
def _(a, B):
    return np.size(a) // B


@get("attr.dtype").defbatch()
def _(x):
    return x.dtype


@get("len").defbatch()
def _(x):
    return len(x)


@get("not").defbatch()
def _(x):
    return np.logical_not(x)


# ------------------------------------------------------------------ reductions

@get("sum").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    ax = batch_axis(a.ndim, axis)
    return np.sum(a, axis=ax, keepdims=keepdims)


@get("mean").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    ax = batch_axis(a.ndim, axis)
    return np.mean(a, axis=ax, keepdims=keepdims)


@get("prod").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    ax = batch_axis(a.ndim, axis)
    return np.prod(a, axis=ax, keepdims=keepdims)


@get("max").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    ax = batch_axis(a.ndim, axis)
    return np.max(a, axis=ax, keepdims=keepdims)


@get("min").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    ax = batch_axis(a.ndim, axis)
    return np.min(a, axis=ax, keepdims=keepdims)


# ------------------------------------------------------------------ products

@get("matmul").defbatch(arrays=("x", "y"))
def _(x, y):
    return bmatmul(x, y)


@get("dot").defbatch(arrays=("a", "b"))
def _(a, b):
    return bdot(a, b)


# ------------------------------------------------------------------ shapes

@get("reshape").defbatch(arrays=("a",), unless=("order",))
def _(a, shape, B, order="C"):
    s = batch_shape(shape, B)
    return np.reshape(a, s)


@get("transpose").defbatch(arrays=("a",))
def _(a, axes=None):
    ax = batch_transpose_axes(a.ndim, axes)
    return np.transpose(a, ax)


@get("concatenate").defbatch(arrays=("arrays",), full=("arrays",), unless=("axis=None",))
def _(arrays, axis=0):
    ax = shift_axis(axis)
    return np.concatenate(arrays, axis=ax)


@get("stack").defbatch(arrays=("arrays",), full=("arrays",))
def _(arrays, axis=0):
    ax = shift_axis(axis)
    return np.stack(arrays, axis=ax)


# ------------------------------------------------------------------ same call
# Primitives whose result for a batched argument is already the batched result.

@get("zero_tangent").defbatch()
def _(x):
    return zero_tangent(x)


@get("ones_like_output").defbatch()
def _(x):
    return ones_like_output(x)


@get("np.copy").defbatch(arrays=("a",))
def _(a):
    return np.copy(a)


@get("own_copy").defbatch(arrays=("x",))
def _(x):
    return own_copy(x)


@get("stop_gradient").defbatch()
def _(x):
    return stop_gradient(x)


@get("zeros_like").defbatch(arrays=("a",), unless=("shape", "order", "subok"))
def _(a, dtype=None, order="K", subok=True, shape=None):
    return np.zeros_like(a, dtype=dtype)


@get("ones_like").defbatch(arrays=("a",), unless=("shape", "order", "subok"))
def _(a, dtype=None, order="K", subok=True, shape=None):
    return np.ones_like(a, dtype=dtype)


@get("method.copy").defbatch(arrays=("x",))
def _(x):
    return x.copy()


# ------------------------------------------------------------------ AD helpers
# What derivative code calls: sums and broadcasts to the shape of a witness, which is
# broadcast along the whole batch when unbatched.

@get("unbroadcast").defbatch(arrays=("g", "like"), full=("like",))
def _(g, like):
    return unbroadcast(g, like)


@get("broadcast_like").defbatch(arrays=("g", "like"), full=("like",))
def _(g, like):
    return broadcast_like(g, like)


@get("expand_reduced").defbatch(arrays=("y", "like"), full=("y", "like"))
def _(y, like, axis=None, keepdims=False):
    ax = batch_axis(like.ndim, axis)
    return expand_reduced(y, like, ax, keepdims)


@get("check_grad_output").defbatch(arrays=("y",))
def _(y, holomorphic=False):
    # every example has the shape and dtype of the first
    y0 = y[..., 0]
    return check_grad_output(y0, holomorphic)


# ------------------------------------------------------------------ the boundary
# `with_batch` broadcasts an unbatched value along the batch (linear: its transpose sums
# the batch back); `batch_size` reads the batch size.

from s2sad.runtime.batching import batch_size, with_batch  # noqa: E402

with_batch_p = register("with_batch", with_batch, spelling="with_batch", params=("x", "size"),
                        linear=("x",), numba=False,
                        doc="batching: an unbatched value broadcast along a new last axis")
register("batch_size", batch_size, spelling="batch_size", params=("x",), nondiff=True, numba=False,
         doc="batching: the length of the last (batch) axis")


@with_batch_p.defjvp
def _(x, x_dot, size):
    return with_batch(x_dot, size)


@with_batch_p.deftranspose("x")
def _(ct, x, size):
    s = np.sum(ct, axis=-1)
    return unbroadcast(s, x)


@with_batch_p.defbatch(arrays=("x",))
def _(x, size):
    # the outer batch axis stays last
    y = with_batch(x, size)
    return np.swapaxes(y, -1, -2)


with_batch_p.example("with_batch(x, 3)", x=real(2)).example("with_batch(x, 2)", x=real(2, 3)) \
    .example("with_batch(x, 2)", x=real())


# ------------------------------------------------------------------ runtime lists
# A batched list is a list of batched items: list operations apply as they are.

@get("method.pop").defbatch(arrays=("x",))
def _(x, i=-1):
    return x.pop(i)


@get("getitem_t").defbatch(arrays=("g", "x"), full=("x",))
def _(g, x, idx):
    i = batch_index(idx)
    return getitem_t(g, x, i)


# ------------------------------------------------------------- axes and np.linalg
# The axis arguments of a per-example call are shifted past the batch axis; np.linalg
# broadcasts over leading axes, so its functions see the batch axis moved to the front
# (front / back: linear, their own rules), and differentiating the batched code uses the
# linalg rules, which are written for stacks of matrices.

front_p = register("front", front, spelling="front", params=("x", "k"), defaults={"k": 1}, linear=("x",),
                   numba=False, doc="batching: the batch axis (axis -k) moved to the front")
back_p = register("back", back, spelling="back", params=("x", "k"), defaults={"k": 1}, linear=("x",),
                  numba=False, doc="batching: axis 0 moved to the batch axis (axis -k)")
front_p.example("front(x)", x=real(3, 2, _B)).example("front(x)", x=real(_B))
back_p.example("back(x)", x=real(_B, 3, 2)).example("back(x)", x=real(_B))


@front_p.defjvp
def _(x, x_dot, k=1):
    return front(x_dot, k)


@front_p.deftranspose("x")
def _(ct, x, k=1):
    return back(ct, k)


@front_p.defbatch(arrays=("x",))
def _(x, k=1):
    return front(x, k + 1)


@back_p.defjvp
def _(x, x_dot, k=1):
    return back(x_dot, k)


@back_p.deftranspose("x")
def _(ct, x, k=1):
    return front(ct, k)


@back_p.defbatch(arrays=("x",))
def _(x, k=1):
    return back(x, k + 1)


def _stacked_wellcond(n):
    return Domain(lambda rng, c: np.stack([wellcond(n)(rng, c) for _ in range(_B)], axis=-1),
                  f"wellcond({n}) x {_B}")


bsolve_p = register("bsolve", bsolve, spelling="bsolve", params=("a", "b", "nb"), defaults={"nb": 1},
                    linear=("b",), numba=False,
                    doc="batching: np.linalg.solve per example (a 1-d b is a vector)")
bsolve_p.example("bsolve(a, b)", a=_stacked_wellcond(3), b=real(3, _B)) \
    .example("bsolve(a, b)", a=_stacked_wellcond(3), b=real(3, 2, _B)) \
    .example("bsolve(a, b)", a=_stacked_wellcond(2), b=real(2, 1))


@bsolve_p.defjvp
def _(out, a, b, a_dot, b_dot, nb=1):
    return bsolve(a, b_dot - bmatmul(a_dot, out, nb), nb)


@bsolve_p.deftranspose("b")
def _(ct, a, b, nb=1):
    return unbroadcast(bsolve(np.swapaxes(a, -1 - nb, -2 - nb), ct, nb), b)


@bsolve_p.defbatch(arrays=("a", "b"))
def _(a, b, nb=1):
    return bsolve(a, b, nb + 1)


@get("linalg.solve").defbatch(arrays=("a", "b"))
def _(a, b):
    return bsolve(a, b)


@get("linalg.inv").defbatch(arrays=("a",))
def _(a):
    return back(np.linalg.inv(front(a)))


@get("linalg.det").defbatch(arrays=("a",))
def _(a):
    return back(np.linalg.det(front(a)))


@get("linalg.cholesky").defbatch(arrays=("a",))
def _(a):
    return back(np.linalg.cholesky(front(a)))


@get("linalg.matrix_power").defbatch(arrays=("a",))
def _(a, n):
    return back(np.linalg.matrix_power(front(a), n))


@get("linalg.slogdet").defbatch(arrays=("a",))
def _(a):
    sign, logdet = np.linalg.slogdet(front(a))
    return (back(sign), back(logdet))


@get("linalg.eigh").defbatch(arrays=("a",))
def _(a, UPLO="L"):
    w, v = np.linalg.eigh(front(a), UPLO)
    return (back(w), back(v))


@get("expand_dims").defbatch(arrays=("a",))
def _(a, axis):
    return np.expand_dims(a, shift_axis(axis))


@get("moveaxis").defbatch(arrays=("a",))
def _(a, source, destination):
    return np.moveaxis(a, shift_axis(source), shift_axis(destination))


@get("swapaxes").defbatch(arrays=("a",))
def _(a, axis1, axis2):
    return np.swapaxes(a, shift_axis(axis1), shift_axis(axis2))


# ------------------------------------------------------------- more axis arguments

@get("matmul_tx").defbatch(arrays=("g", "x", "y"), full=("x",))
def _(g, x, y):
    return bmatmul_tx(g, x, y)


@get("matmul_ty").defbatch(arrays=("g", "x", "y"), full=("y",))
def _(g, x, y):
    return bmatmul_ty(g, x, y)


@get("std").defbatch(arrays=("a",))
def _(a, axis=None, ddof=0, keepdims=False):
    return np.std(a, axis=batch_axis(a.ndim, axis), ddof=ddof, keepdims=keepdims)


@get("var").defbatch(arrays=("a",))
def _(a, axis=None, ddof=0, keepdims=False):
    return np.var(a, axis=batch_axis(a.ndim, axis), ddof=ddof, keepdims=keepdims)


@get("all").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    return np.all(a, axis=batch_axis(a.ndim, axis), keepdims=keepdims)


@get("any").defbatch(arrays=("a",))
def _(a, axis=None, keepdims=False):
    return np.any(a, axis=batch_axis(a.ndim, axis), keepdims=keepdims)


@get("scipy.special.logsumexp").defbatch(arrays=("a",), unless=("b",))
def _(a, axis=None, b=None, keepdims=False):
    return scipy.special.logsumexp(a, axis=batch_axis(a.ndim, axis), keepdims=keepdims)


@get("flip").defbatch(arrays=("m",))
def _(m, axis=None):
    return np.flip(m, axis=batch_axis(m.ndim, axis))


@get("cumsum").defbatch(arrays=("a",), unless=("axis=None",))
def _(a, axis=None):
    return np.cumsum(a, axis=shift_axis(axis))


@get("rcumsum").defbatch(arrays=("g", "like"), full=("g", "like"), unless=("axis=None",))
def _(g, like, axis=None):
    return rcumsum(g, like, axis=shift_axis(axis))


@get("squeeze").defbatch(arrays=("a",), unless=("axis=None",))
def _(a, axis=None):
    return np.squeeze(a, axis=shift_axis(axis))


@get("sort").defbatch(arrays=("a",), unless=("axis=None", "kind"))
def _(a, axis=-1, kind=None):
    return np.sort(a, axis=shift_axis(axis))


@get("argsort").defbatch(arrays=("a",), unless=("axis=None", "kind"))
def _(a, axis=-1, kind=None):
    return np.argsort(a, axis=shift_axis(axis))


@get("argmax").defbatch(arrays=("a",), unless=("axis=None",))
def _(a, axis=None, keepdims=False):
    return np.argmax(a, axis=shift_axis(axis), keepdims=keepdims)


@get("argmin").defbatch(arrays=("a",), unless=("axis=None",))
def _(a, axis=None, keepdims=False):
    return np.argmin(a, axis=shift_axis(axis), keepdims=keepdims)


@get("roll").defbatch(arrays=("a",), unless=("axis=None",))
def _(a, shift, axis=None):
    return np.roll(a, shift, axis=shift_axis(axis))


@get("ravel").defbatch(arrays=("a",), unless=("order",))
def _(a, order="C", B=None):
    return np.reshape(a, (-1, B))


@get("trace").defbatch(arrays=("a",), unless=("dtype",))
def _(a, offset=0, axis1=0, axis2=1, dtype=None):
    return np.trace(a, offset=offset, axis1=shift_axis(axis1), axis2=shift_axis(axis2))


@get("diagonal").defbatch(arrays=("a",))
def _(a, offset=0, axis1=0, axis2=1):
    # NumPy puts the diagonal last: the batch axis goes back after it
    return np.moveaxis(np.diagonal(a, offset=offset, axis1=shift_axis(axis1), axis2=shift_axis(axis2)), -1, -2)


@get("outer").defbatch(arrays=("a", "b"))
def _(a, b):
    return np.reshape(a, (-1, 1, a.shape[-1])) * np.reshape(b, (1, -1, b.shape[-1]))


@get("vdot").defbatch(arrays=("a", "b"))
def _(a, b):
    return np.sum(np.conj(np.reshape(a, (-1, a.shape[-1]))) * np.reshape(b, (-1, b.shape[-1])), axis=0)


@get("broadcast_to").defbatch(arrays=("array",))
def _(array, shape):
    return np.broadcast_to(array, batch_shape(shape, array.shape[-1]))
