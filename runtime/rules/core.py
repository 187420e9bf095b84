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


# ---------------------------------------------------------------- operators
add = register("add", kind="binop", params=("x", "y"), elementwise=True, linear=("x", "y"))
add.example("x + y", x=real(3, 4), y=real(4)).example("x + y", x=real(), y=real(2, 1))


@add.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot + y_dot


sub = register("sub", kind="binop", params=("x", "y"), elementwise=True, linear=("x", "y"))
sub.example("x - y", x=real(3, 1), y=real(4)).example("x - y", x=real(), y=real())


@sub.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot - y_dot


mul = register("mul", kind="binop", params=("x", "y"), elementwise=True, linear=("x", "y"),
               bilinear=True)
mul.example("x * y", x=real(3, 4), y=real(3, 1)).example("x * y", x=real(), y=real(5))


@mul.defjvp
def _(x, y, x_dot, y_dot):
    return x_dot * y + x * y_dot


div = register("div", kind="binop", params=("x", "y"), elementwise=True, linear=("x",))
div.example("x / y", x=real(3, 4), y=pos(4)).example("x / y", x=real(), y=pos())


@div.defjvp
def _(out, x, y, x_dot, y_dot):
    return x_dot / y - out * y_dot / y


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


neg = register("neg", kind="unaryop", elementwise=True, linear=("x",))
neg.example("-x", x=real(3, 2))


@neg.defjvp
def _(x, x_dot):
    return -x_dot


pos_ = register("pos", kind="unaryop", elementwise=True, linear=("x",))


@pos_.defjvp
def _(x, x_dot):
    return x_dot


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


setitem = register("setitem", kind="setitem", params=("x", "idx", "v"), linear=("x", "v"),
                   doc="x[idx] = v (in-place write)")

for _attr in ("shape", "ndim", "dtype", "size"):
    register("attr." + _attr, kind="attribute", nondiff=True)

len_ = register("len", len, spelling="len", nondiff=True)
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


item = register("method.item", kind="method", params=("x",), linear=("x",), doc="x.item()")
item.example("x.item()", x=real(1))


@item.defjvp
def _(x, x_dot):
    return np.asarray(x_dot).item()


# ---------------------------------------------------------------- conversions
float_ = register("float", float, spelling="float", linear=("x",), complex=False)
float_.example("float(x)", x=real())


@float_.defjvp
def _(x, x_dot):
    return float(x_dot)


register("int", int, spelling="int", nondiff=True, complex=False)
register("bool", bool, spelling="bool", nondiff=True)
complex_ = register("complex", complex, spelling="complex", params=("real", "imag"),
                    defaults={"imag": 0.0}, linear=("real", "imag"), complex=False)
complex_.example("complex(x, y)", x=real(), y=real())


@complex_.defjvp
def _(real, imag, real_dot, imag_dot):
    return real_dot + 1j * imag_dot


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


jac_stack = helpers.jac_stack

np_copy = register("np.copy", np.copy, spelling="np.copy", params=("a",), linear=("a",))
np_copy.example("np.copy(a)", a=real(3, 2))


@np_copy.defjvp
def _(a, a_dot):
    return np.copy(a_dot)


register("zero_tangent", helpers.zero_tangent, spelling="zero_tangent", nondiff=True,
         doc="a zero shaped like x")
register("stop_gradient", helpers.stop_gradient, spelling="stop_gradient", nondiff=True,
         doc="identity with a zero derivative")

unbroadcast = helpers.unbroadcast
unbroadcast_p = register("unbroadcast", helpers.unbroadcast, spelling="unbroadcast",
                         params=("g", "like"), linear=("g",),
                         doc="sum g down to the shape of like")


@unbroadcast_p.defjvp
def _(g, like, g_dot):
    return unbroadcast(g_dot, like)

del wellcond, ints, bools
