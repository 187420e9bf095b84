"""Core primitives: copies, Python operators, comparisons, indexing, attributes, lists,
conversions and s2sad's own helpers."""

import numpy as np

from s2sad.runtime import helpers
from s2sad.runtime.domains import bools, ints, pos, real, wellcond
from s2sad.runtime.registry import register

# ---------------------------------------------------------------- copy
copy = register("copy", kind="copy", linear=("x",), doc="y = x")


@copy.defjvp
def _(x, x_dot):
    return x_dot


@copy.deftranspose("x")
def _(ct, x):
    return ct


# ---------------------------------------------------------------- operators
add = register("add", kind="binop", params=("x", "y"), elementwise=True, linear=("x", "y"))
add.example("x + y", x=real(3, 4), y=real(4)).example("x + y", x=real(), y=real(2, 1))


@add.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot + y_dot


@add.deftranspose("x")
def _(ct, x, y):
    return unbroadcast(ct, x)


@add.deftranspose("y")
def _(ct, x, y):
    return unbroadcast(ct, y)


sub = register("sub", kind="binop", params=("x", "y"), elementwise=True, linear=("x", "y"))
sub.example("x - y", x=real(3, 1), y=real(4)).example("x - y", x=real(), y=real())


@sub.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot - y_dot


@sub.deftranspose("x")
def _(ct, x, y):
    return unbroadcast(ct, x)


@sub.deftranspose("y")
def _(ct, x, y):
    return unbroadcast(-ct, y)


mul = register("mul", kind="binop", params=("x", "y"), elementwise=True, linear=("x", "y"),
               bilinear=True)
mul.example("x * y", x=real(3, 4), y=real(3, 1)).example("x * y", x=real(), y=real(5))


@mul.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot * y + x * y_dot


@mul.deftranspose("x")
def _(ct, x, y):
    return unbroadcast(ct * y, x)


@mul.deftranspose("y")
def _(ct, x, y):
    return unbroadcast(x * ct, y)


div = register("div", kind="binop", params=("x", "y"), elementwise=True, linear=("x",))
div.example("x / y", x=real(3, 4), y=pos(4)).example("x / y", x=real(), y=pos())


@div.defjvp
def _(out, x, y, x_dot, y_dot):
    return x_dot / y - out * y_dot / y


@div.deftranspose("x")
def _(ct, x, y):
    return unbroadcast(ct / y, x)


floordiv = register("floordiv", kind="binop", params=("x", "y"), elementwise=True, nondiff=True,
                    complex=False)
floordiv.example("x // y", x=real(3), y=pos(3))

mod = register("mod", kind="binop", params=("x", "y"), elementwise=True, complex=False)
mod.example("x % y", x=pos(3, lo=0.1, hi=0.4), y=pos(3, lo=1.0, hi=2.0))


@mod.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot - np.floor(x / y) * y_dot


pow_ = register("pow", kind="binop", params=("x", "y"), elementwise=True)
pow_.example("x ** y", x=pos(3, 2), y=real(2)).example("x ** 2", x=real(4)) \
    .example("x ** 3.5", x=pos(3))


@pow_.defjvp
def _(out, x, y, x_dot, y_dot):
    return y * x ** (y - 1) * x_dot + out * np.log(np.where(x == 0, 1.0, x)) * y_dot


matmul = register("matmul", kind="binop", params=("x", "y"), linear=("x", "y"), bilinear=True)
matmul.example("x @ y", x=real(3, 4), y=real(4, 2)).example("x @ y", x=real(4), y=real(4, 3)) \
    .example("x @ y", x=real(3, 4), y=real(4)).example("x @ y", x=real(4), y=real(4))


@matmul.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot @ y + x @ y_dot


@matmul.deftranspose("x")
def _(ct, x, y):
    return matmul_tx(ct, x, y)


@matmul.deftranspose("y")
def _(ct, x, y):
    return matmul_ty(ct, x, y)


matmul_tx = helpers.matmul_tx
matmul_ty = helpers.matmul_ty
mtx = register("matmul_tx", helpers.matmul_tx, spelling="matmul_tx", params=("g", "x", "y"),
               linear=("g", "y"), bilinear=True, doc="cotangent of x in x @ y")
mty = register("matmul_ty", helpers.matmul_ty, spelling="matmul_ty", params=("g", "x", "y"),
               linear=("g", "x"), bilinear=True, doc="cotangent of y in x @ y")
for _g, _x, _y in ((real(3, 2), real(3, 4), real(4, 2)), (real(3), real(3, 4), real(4)),
                   (real(2), real(4), real(4, 2)), (real(), real(4), real(4)),
                   (real(5, 3, 2), real(5, 3, 4), real(4, 2))):
    mtx.example("matmul_tx(g, x, y)", g=_g, x=_x, y=_y, wrt=("g", "y"))
    mty.example("matmul_ty(g, x, y)", g=_g, x=_x, y=_y, wrt=("g", "x"))


@mtx.defjvp
def _(g, x, y, g_dot, y_dot):
    return matmul_tx(g_dot, x, y) + matmul_tx(g, x, y_dot)


@mtx.deftranspose("g")
def _(ct, g, x, y):
    return unbroadcast(ct @ y, g)


@mtx.deftranspose("y")
def _(ct, g, x, y):
    return matmul_ty(g, ct, y)


@mty.defjvp
def _(g, x, y, g_dot, x_dot):
    return matmul_ty(g_dot, x, y) + matmul_ty(g, x_dot, y)


@mty.deftranspose("g")
def _(ct, g, x, y):
    return unbroadcast(x @ ct, g)


@mty.deftranspose("x")
def _(ct, g, x, y):
    return matmul_tx(g, x, ct)


neg = register("neg", kind="unaryop", elementwise=True, linear=("x",))
neg.example("-x", x=real(3, 2))


@neg.defjvp
def _(x, x_dot):
    return -x_dot


@neg.deftranspose("x")
def _(ct, x):
    return -ct


pos_ = register("pos", kind="unaryop", elementwise=True, linear=("x",))


@pos_.defjvp
def _(x, x_dot):
    return x_dot


@pos_.deftranspose("x")
def _(ct, x):
    return ct


for _name in ("and", "or", "xor", "lshift", "rshift"):
    register(_name, kind="binop", params=("x", "y"), nondiff=True, complex=False)
for _name in ("not", "invert"):
    register(_name, kind="unaryop", nondiff=True, complex=False)
for _name in ("lt", "le", "gt", "ge", "eq", "ne", "is", "isnot", "in", "notin"):
    register(_name, kind="compare", params=("x", "y"), nondiff=True)

# ---------------------------------------------------------------- indexing
getitem = register("getitem", kind="subscript", params=("x", "idx"), linear=("x",),
                   doc="x[idx] (basic and integer-array indexing)")
getitem.example("x[1]", x=real(4, 3)).example("x[1:3, ::2]", x=real(4, 5)) \
    .example("x[np.array([0, 2, 2])]", x=real(4, 2)).example("x[..., 0]", x=real(2, 3)) \
    .example("x[None, 1:]", x=real(3))


@getitem.defjvp
def _(x, idx, x_dot):
    return x_dot[idx]


@getitem.deftranspose("x")
def _(ct, x, idx):
    return getitem_t(ct, x, idx)


getitem_t = helpers.getitem_t
getitem_t_p = register("getitem_t", helpers.getitem_t, spelling="getitem_t", params=("g", "x", "idx"),
                       linear=("g",), doc="the transpose of x[idx]: scatter-add into zeros like x")
getitem_t_p.example("getitem_t(g, x, np.array([0, 2, 2]))", g=real(3), x=real(4), wrt=("g",))
getitem_t_p.example("getitem_t(g, x, 1)", g=real(3), x=real(4, 3), wrt=("g",))


@getitem_t_p.defjvp
def _(g, x, idx, g_dot):
    return getitem_t(g_dot, x, idx)


@getitem_t_p.deftranspose("g")
def _(ct, g, x, idx):
    return ct[idx]


setitem = register("setitem", kind="setitem", params=("x", "idx", "v"), linear=("x", "v"),
                   doc="x[idx] = v (in-place write)")

for _attr in ("shape", "ndim", "dtype", "size"):
    register("attr." + _attr, kind="attribute", nondiff=True)

len_ = register("len", len, spelling="len", nondiff=True)
register("shortest", helpers.shortest, spelling="shortest", params=("a", "b"), nondiff=True,
         doc="the trip count of zip(...) (the lesser of two lengths)")
register("range", range, spelling="range", params=("start", "stop", "step"),
         defaults={"stop": None, "step": None}, nondiff=True)
register("slice", slice, spelling="slice", params=("start", "stop", "step"),
         defaults={"stop": None, "step": None}, nondiff=True)
for _fn in (np.size, np.shape, np.ndim):
    register(f"np.{_fn.__name__}", _fn, spelling=f"np.{_fn.__name__}", params=("a",), nondiff=True)

# ---------------------------------------------------------------- lists
list_ = register("list", kind="list", params=("items",), linear=("items",), doc="[a, b, ...]")
tuple_ = register("tuple", kind="tuple", params=("items",), linear=("items",))
append = register("method.append", kind="method", params=("x", "v"), linear=("x", "v"),
                  doc="L.append(v) on a list grown at run time")
pop = register("method.pop", kind="method", params=("x", "i"), defaults={"i": -1}, linear=("x",),
               doc="L.pop() on a list grown at run time")
lcopy = register("method.copy", kind="method", params=("x",), linear=("x",))

astype = register("method.astype", kind="method", params=("x", "dtype"), elementwise=True,
                  linear=("x",), doc="x.astype(dtype)")
astype.example("x.astype(np.float64)", x=real(3), complex=False)


@astype.defjvp
def _(x, dtype, x_dot):
    return x_dot.astype(dtype)


@astype.deftranspose("x")
def _(ct, x, dtype):
    return unbroadcast(ct, x)


item = register("method.item", kind="method", params=("x",), linear=("x",), doc="x.item()")
item.example("x.item()", x=real(1))


@item.defjvp
def _(x, x_dot):
    return np.asarray(x_dot).item()


@item.deftranspose("x")
def _(ct, x):
    return unbroadcast(ct, x)


# ---------------------------------------------------------------- conversions
float_ = register("float", float, spelling="float", linear=("x",), complex=False)
float_.example("float(x)", x=real())


@float_.defjvp
def _(x, x_dot):
    return float(x_dot)


@float_.deftranspose("x")
def _(ct, x):
    return unbroadcast(ct, x)


register("int", int, spelling="int", nondiff=True, complex=False)
register("bool", bool, spelling="bool", nondiff=True)
complex_ = register("complex", complex, spelling="complex", params=("real", "imag"),
                    defaults={"imag": 0.0}, linear=("real", "imag"), complex=False)
complex_.example("complex(x, y)", x=real(), y=real())


@complex_.defjvp
def _(real, imag, real_dot, imag_dot):
    return real_dot + 1j * imag_dot


@complex_.deftranspose("real")
def _(ct, real, imag):
    return np.real(ct)


@complex_.deftranspose("imag")
def _(ct, real, imag):
    return -np.imag(ct)


# ---------------------------------------------------------------- s2sad helpers
register("basis", helpers.basis, spelling="basis", params=("x", "j"), nondiff=True,
         doc="the j-th basis vector shaped like x")
register("zeros_jac", helpers.zeros_jac, spelling="zeros_jac", params=("y", "x"), nondiff=True,
         doc="zeros of shape y.shape + x.shape")
jac_stack_p = register("jac_stack", helpers.jac_stack, spelling="jac_stack", params=("cols", "y", "x"),
                       linear=("cols",), doc="stack Jacobian columns into y.shape + x.shape")


@jac_stack_p.defjvp
def _(cols, y, x, cols_dot):
    return jac_stack(cols_dot, y, x)


def _seq_transposes():
    # one cotangent per element of a list literal of columns / rows (see shapes.SequenceRule)
    from s2sad.runtime.rules.shapes import deftranspose_seq

    @deftranspose_seq(jac_stack_p, "cols")
    def _(ct, cols, y, x):
        return jac_unstack(ct, y, x)

    @deftranspose_seq(jac_rows_p, "rows")
    def _(ct, rows, y, x):
        return jac_unrows(ct, y, x)


jac_rows = helpers.jac_rows
jac_unrows = helpers.jac_unrows
jac_rows_p = register("jac_rows", helpers.jac_rows, spelling="jac_rows", params=("rows", "y", "x"),
                      linear=("rows",), doc="stack Jacobian rows into y.shape + x.shape")
jac_unrows_p = register("jac_unrows", helpers.jac_unrows, spelling="jac_unrows",
                        params=("g", "y", "x"), linear=("g",), returns_list=True,
                        doc="the transpose of jac_rows")


jac_rows_p.example("jac_rows([a, b, c], y, x)", a=real(2), b=real(2), c=real(2), y=real(3), x=real(2),
                   wrt=("a", "b", "c"))
jac_unrows_p.example("jac_unrows(g, y, x)[1]", g=real(3, 2), y=real(3), x=real(2), wrt=("g",))
jac_stack_p.example("jac_stack([a, b], y, x)", a=real(3), b=real(3), y=real(3), x=real(2), wrt=("a", "b"))


@jac_rows_p.defjvp
def _(rows, y, x, rows_dot):
    return jac_rows(rows_dot, y, x)




@jac_unrows_p.defjvp
def _(g, y, x, g_dot):
    return jac_unrows(g_dot, y, x)


@jac_unrows_p.deftranspose("g")
def _(ct, g, y, x):
    return jac_rows(ct, y, x)


jac_unstack = helpers.jac_unstack
jac_unstack_p = register("jac_unstack", helpers.jac_unstack, spelling="jac_unstack",
                         params=("g", "y", "x"), linear=("g",), returns_list=True,
                         doc="the transpose of jac_stack")


jac_unstack_p.example("jac_unstack(g, y, x)[0]", g=real(2, 3), y=real(2), x=real(3), wrt=("g",))


@jac_unstack_p.defjvp
def _(g, y, x, g_dot):
    return jac_unstack(g_dot, y, x)


@jac_unstack_p.deftranspose("g")
def _(ct, g, y, x):
    return jac_stack(ct, y, x)


jac_stack = helpers.jac_stack

np_copy = register("np.copy", np.copy, spelling="np.copy", params=("a",), linear=("a",))
np_copy.example("np.copy(a)", a=real(3, 2))


@np_copy.defjvp
def _(a, a_dot):
    return np.copy(a_dot)


@np_copy.deftranspose("a")
def _(ct, a):
    return ct


own_copy = helpers.own_copy
own_copy_p = register("own_copy", own_copy, spelling="own_copy", params=("x",), linear=("x",),
                      doc="a copy of an array (scalars as they are): keeps tangents apart")
own_copy_p.example("own_copy(x)", x=real(3, 2))
own_copy_p.example("own_copy(x)", x=real())


@own_copy_p.defjvp
def _(x, x_dot):
    return own_copy(x_dot)


@own_copy_p.deftranspose("x")
def _(ct, x):
    return own_copy(ct)


register("shape_witness", helpers.shape_witness, spelling="shape_witness",
         params=("a", "b", "c", "d"), defaults={"b": None, "c": None, "d": None}, nondiff=True,
         doc="a zero-cost array shaped like an elementwise result (reverse mode)")
register("real_witness", helpers.real_witness, spelling="real_witness", nondiff=True)
register("check_grad_output", helpers.check_grad_output, spelling="check_grad_output",
         params=("y", "holomorphic"), defaults={"holomorphic": False}, nondiff=True,
         doc="grad's check that the output is a real scalar")
register("ones_like_output", helpers.ones_like_output, spelling="ones_like_output", nondiff=True,
         doc="the seed cotangent of grad")
register("check_interrupted", helpers.check_interrupted, spelling="check_interrupted",
         params=("started", "raised"), nondiff=True,
         doc="reverse mode's guard for try bodies interrupted by an exception")
register("zeros_list", helpers.zeros_list, spelling="zeros_list", params=("values",), nondiff=True,
         returns_list=True,
         doc="the zero cotangent of a list")
add_lists = helpers.add_lists
add_lists_p = register("add_lists", helpers.add_lists, spelling="add_lists", params=("a", "b"),
                       linear=("a", "b"), returns_list=True,
                       doc="the item-by-item sum of two list cotangents")
add_lists_p.example("add_lists(np.split(a, 2), np.split(b, 2))[1]", a=real(4), b=real(4))


@add_lists_p.defjvp
def _(a, b, a_dot, b_dot):
    return add_lists(a_dot, b_dot)


def _add_lists_transposes():
    from s2sad.runtime.rules.shapes import deftranspose_seq

    @deftranspose_seq(add_lists_p, "a")
    def _(ct, a, b):
        return ct.copy()

    @deftranspose_seq(add_lists_p, "b")
    def _(ct, a, b):
        return ct.copy()


add_items = helpers.add_items
add_items_p = register("add_items", helpers.add_items, spelling="add_items", params=("a", "b"),
                       linear=("a", "b"),
                       doc="the sum of two cotangents of a tape item (item by item for lists)")
add_items_p.example("add_items(a, b)", a=real(2, 3), b=real(2, 3))


@add_items_p.defjvp
def _(a, b, a_dot, b_dot):
    return add_items(a_dot, b_dot)


@add_items_p.deftranspose("a")
def _(ct, a, b):
    return ct


@add_items_p.deftranspose("b")
def _(ct, a, b):
    return ct


register("zero_tangent", helpers.zero_tangent, spelling="zero_tangent", nondiff=True,
         doc="a zero shaped like x")
register("stop_gradient", helpers.stop_gradient, spelling="stop_gradient", nondiff=True,
         doc="identity with a zero derivative")

unbroadcast = helpers.unbroadcast
unbroadcast_p = register("unbroadcast", helpers.unbroadcast, spelling="unbroadcast",
                         params=("g", "like"), linear=("g",),
                         doc="sum g down to the shape of like")
unbroadcast_p.example("unbroadcast(g, like)", g=real(3, 4), like=real(4), wrt=("g",))
unbroadcast_p.example("unbroadcast(g, like)", g=real(3, 4), like=real(3, 1), wrt=("g",))


@unbroadcast_p.defjvp
def _(g, like, g_dot):
    return unbroadcast(g_dot, like)


@unbroadcast_p.deftranspose("g")
def _(ct, g, like):
    return broadcast_like(ct, g)


broadcast_like = helpers.broadcast_like
broadcast_like_p = register("broadcast_like", helpers.broadcast_like, spelling="broadcast_like",
                            params=("g", "like"), linear=("g",),
                            doc="broadcast g to the shape of like (the transpose of unbroadcast)")
broadcast_like_p.example("broadcast_like(g, like)", g=real(4), like=real(3, 4), wrt=("g",))


@broadcast_like_p.defjvp
def _(g, like, g_dot):
    return broadcast_like(g_dot, like)


@broadcast_like_p.deftranspose("g")
def _(ct, g, like):
    return unbroadcast(ct, g)

del wellcond, ints, bools


_seq_transposes()
_add_lists_transposes()
