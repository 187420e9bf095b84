"""Elementwise NumPy functions (ufuncs and friends)."""

import numpy as np

from s2sad.runtime import helpers
from s2sad.runtime.domains import above1, away, distinct, pos, real, unit
from s2sad.runtime.registry import alias, get, register


def unary(np_fn, domain=real, complex=True, nondiff=False, name=None, **kw):
    name = name or np_fn.__name__
    p = register(name, np_fn, spelling=f"np.{name}", params=("x",), elementwise=True,
                 complex=complex, nondiff=nondiff, **kw)
    p.example(f"np.{name}(x)", x=domain(3, 4)).example(f"np.{name}(x)", x=domain())
    return p


def binary(np_fn, d1=real, d2=real, complex=True, name=None, **kw):
    name = name or np_fn.__name__
    p = register(name, np_fn, spelling=f"np.{name}", params=("x1", "x2"), elementwise=True,
                 complex=complex, **kw)
    p.example(f"np.{name}(x1, x2)", x1=d1(3, 4), x2=d2(4)).example(f"np.{name}(x1, x2)", x1=d1(), x2=d2())
    return p


sin = unary(np.sin)
@sin.defjvp
def _(x, x_dot):
    return np.cos(x) * x_dot


cos = unary(np.cos)
@cos.defjvp
def _(x, x_dot):
    return -np.sin(x) * x_dot


tan = unary(np.tan, unit)
@tan.defjvp
def _(out, x, x_dot):
    return (1 + out * out) * x_dot


arcsin = unary(np.arcsin, unit)
@arcsin.defjvp
def _(x, x_dot):
    return x_dot / np.sqrt(1 - x * x)


arccos = unary(np.arccos, unit)
@arccos.defjvp
def _(x, x_dot):
    return -x_dot / np.sqrt(1 - x * x)


arctan = unary(np.arctan, unit)
@arctan.defjvp
def _(x, x_dot):
    return x_dot / (1 + x * x)


sinh = unary(np.sinh)
@sinh.defjvp
def _(x, x_dot):
    return np.cosh(x) * x_dot


cosh = unary(np.cosh)
@cosh.defjvp
def _(x, x_dot):
    return np.sinh(x) * x_dot


tanh = unary(np.tanh)
@tanh.defjvp
def _(out, x, x_dot):
    return (1 - out * out) * x_dot


arcsinh = unary(np.arcsinh)
@arcsinh.defjvp
def _(x, x_dot):
    return x_dot / np.sqrt(x * x + 1)


arccosh = unary(np.arccosh, above1)
@arccosh.defjvp
def _(x, x_dot):
    return x_dot / np.sqrt((x - 1) * (x + 1))


arctanh = unary(np.arctanh, unit)
@arctanh.defjvp
def _(x, x_dot):
    return x_dot / (1 - x * x)


exp = unary(np.exp)
@exp.defjvp
def _(out, x, x_dot):
    return out * x_dot


exp2 = unary(np.exp2)
@exp2.defjvp
def _(out, x, x_dot):
    return out * np.log(2.0) * x_dot


expm1 = unary(np.expm1)
@expm1.defjvp
def _(out, x, x_dot):
    return (out + 1) * x_dot


log = unary(np.log, pos)
@log.defjvp
def _(x, x_dot):
    return x_dot / x


log2 = unary(np.log2, pos)
@log2.defjvp
def _(x, x_dot):
    return x_dot / (x * np.log(2.0))


log10 = unary(np.log10, pos)
@log10.defjvp
def _(x, x_dot):
    return x_dot / (x * np.log(10.0))


log1p = unary(np.log1p, pos)
@log1p.defjvp
def _(x, x_dot):
    return x_dot / (1 + x)


sqrt = unary(np.sqrt, pos)
@sqrt.defjvp
def _(out, x, x_dot):
    return x_dot / (2 * out)


cbrt = unary(np.cbrt, pos, complex=False)
@cbrt.defjvp
def _(out, x, x_dot):
    return x_dot / (3 * out * out)


square = unary(np.square)
@square.defjvp
def _(x, x_dot):
    return 2 * x * x_dot


reciprocal = unary(np.reciprocal, pos)
@reciprocal.defjvp
def _(out, x, x_dot):
    return -(out * out) * x_dot


absolute = unary(np.abs, away, name="abs")
alias(np.absolute, absolute)
@absolute.defjvp
def _(out, x, x_dot):
    # JAX's convention: d|x| = sign(x) dx with sign(0) = 1; for complex x, Re(conj(x/|x|) dx).
    at_zero = out == 0
    phase = np.where(at_zero, 1.0, x / np.where(at_zero, 1.0, out))
    return np.real(np.conj(phase) * x_dot)


for _fn in (np.sign, np.floor, np.ceil, np.trunc, np.rint):
    unary(_fn, away, complex=False, nondiff=True)
rnd = register("round", np.round, spelling="np.round", params=("a", "decimals"), defaults={"decimals": 0},
               elementwise=True, nondiff=True, complex=False)
alias(np.around, rnd)
for _fn in (np.isnan, np.isinf, np.isfinite, np.signbit, np.logical_not):
    register(_fn.__name__, _fn, spelling=f"np.{_fn.__name__}", params=("x",), elementwise=True, nondiff=True)
for _fn in (np.logical_and, np.logical_or, np.logical_xor, np.greater, np.greater_equal, np.less,
            np.less_equal, np.equal, np.not_equal):
    register(_fn.__name__, _fn, spelling=f"np.{_fn.__name__}", params=("x1", "x2"), elementwise=True,
             nondiff=True)

arctan2 = binary(np.arctan2, real, pos, complex=False)
@arctan2.defjvp
def _(x1, x2, x1_dot, x2_dot):
    return (x2 * x1_dot - x1 * x2_dot) / (x1 * x1 + x2 * x2)


power = binary(np.power, pos, real)
@power.defjvp
def _(out, x1, x2, x1_dot, x2_dot):
    return x2 * x1 ** (x2 - 1) * x1_dot + out * np.log(np.where(x1 == 0, 1.0, x1)) * x2_dot


maximum = binary(np.maximum, distinct, distinct, complex=False)
@maximum.defjvp
def _(x1, x2, x1_dot, x2_dot):
    # a tie splits the derivative evenly (JAX's convention)
    w = np.where(x1 > x2, 1.0, np.where(x1 == x2, 0.5, 0.0))
    return x1_dot * w + x2_dot * (1 - w)


minimum = binary(np.minimum, distinct, distinct, complex=False)
@minimum.defjvp
def _(x1, x2, x1_dot, x2_dot):
    w = np.where(x1 < x2, 1.0, np.where(x1 == x2, 0.5, 0.0))
    return x1_dot * w + x2_dot * (1 - w)


logaddexp = binary(np.logaddexp, complex=False)
@logaddexp.defjvp
def _(out, x1, x2, x1_dot, x2_dot):
    return x1_dot * np.exp(x1 - out) + x2_dot * np.exp(x2 - out)


hypot = binary(np.hypot, pos, pos, complex=False)
@hypot.defjvp
def _(out, x1, x2, x1_dot, x2_dot):
    return (x1 * x1_dot + x2 * x2_dot) / out


clip = register("clip", np.clip, spelling="np.clip", params=("a", "a_min", "a_max"),
                elementwise=True, complex=False)
clip.example("np.clip(a, lo, hi)", a=real(3, 4), lo=real(), hi=pos())
clip.example("np.clip(a, -0.5, 0.7)", a=distinct(5))
clip.example("np.clip(a, None, 0.7)", a=distinct(5))
@clip.defjvp
def _(a, a_min, a_max, a_dot, a_min_dot, a_max_dot):
    inside = helpers.clip_inside(a, a_min, a_max)
    return a_dot * inside + a_min_dot * helpers.clip_below(a, a_min) + \
        a_max_dot * helpers.clip_above(a, a_max)


register("clip_inside", helpers.clip_inside, spelling="clip_inside", params=("a", "lo", "hi"),
         nondiff=True)
register("clip_below", helpers.clip_below, spelling="clip_below", params=("a", "lo"), nondiff=True)
register("clip_above", helpers.clip_above, spelling="clip_above", params=("a", "hi"), nondiff=True)

where = register("where", np.where, spelling="np.where", params=("condition", "x", "y"),
                 elementwise=True, linear=("x", "y"))
where.example("np.where(c > 0, x, y)", c=real(3, 4), x=real(3, 4), y=real(4))
where.example("np.where(x > 0, x, 0.0)", x=distinct(6))
@where.defjvp
def _(condition, x, y, x_dot, y_dot):
    return np.where(condition, x_dot, y_dot)


@where.deftranspose("x")
def _(ct, condition, x, y):
    return unbroadcast(np.where(condition, ct, 0.0), x)


@where.deftranspose("y")
def _(ct, condition, x, y):
    return unbroadcast(np.where(condition, 0.0, ct), y)


unbroadcast = helpers.unbroadcast


# NumPy's spelled-out operators mean the same primitives as the Python operators.
for _np_fn, _op in ((np.add, "add"), (np.subtract, "sub"), (np.multiply, "mul"),
                    (np.divide, "div"), (np.true_divide, "div"), (np.negative, "neg"),
                    (np.positive, "pos"), (np.matmul, "matmul"), (np.floor_divide, "floordiv"),
                    (np.remainder, "mod"), (np.mod, "mod")):
    alias(_np_fn, get(_op))
