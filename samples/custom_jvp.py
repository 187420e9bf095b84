"""Custom forward rules with ad.custom_jvp.

Reproduces, with NumPy, the custom_jvp examples of "Custom derivative rules for
JAX-transformable Python functions" (../shared/seeds/001_7cba66061c625143.txt, and the
same section of ../shared/seeds/000_05b138253ade469f.txt): the TL;DR, "Numerical
stability" (log1pexp), "Enforcing a differentiation convention", "Use jax.custom_jvp to
define forward-mode (and, indirectly, reverse-mode) rules", the pytree (Point) example
and "jax.custom_jvp with nondiff_argnums".

Each printed line matches the text's; the text ran in float32, s2sad in float64, so the
numbers here carry more digits.  `jit(...)` is dropped (same value) and `vmap(...)` is
written as a loop.  grad(log1pexp)(100.) is nan in the text because exp(100.) overflows
in float32, so that line passes np.float32(100.).
"""

from collections import namedtuple
from functools import partial

import numpy as np

import s2sad as ad

custom_jvp, grad, jvp = ad.custom_jvp, ad.grad, ad.jvp

np.set_printoptions(legacy="1.25")  # print scalars inside containers as plain numbers


def vmap_loop(fn, xs):
    """vmap(fn)(xs), written as a Python loop (ad.vmap is not implemented yet)."""
    return np.array([fn(x) for x in xs])


# TL;DR ----------------------------------------------------------------------------------

@custom_jvp
def f(x, y):
    return np.sin(x) * y


@f.defjvp
def f_jvp(primals, tangents):
    x, y = primals
    x_dot, y_dot = tangents
    primal_out = f(x, y)
    tangent_out = np.cos(x) * x_dot * y + np.sin(x) * y_dot
    return primal_out, tangent_out


def tldr():
    print(f(2., 3.))
    y, y_dot = jvp(f, (2., 3.), (1., 0.))
    print(y)
    print(y_dot)
    print(grad(f)(2., 3.))


tldr()

# Equivalent alternative using the defjvps convenience wrapper


@custom_jvp
def f(x, y):
    return np.sin(x) * y


f.defjvps(lambda x_dot, primal_out, x, y: np.cos(x) * x_dot * y,
          lambda y_dot, primal_out, x, y: np.sin(x) * y_dot)

tldr()


# Numerical stability ---------------------------------------------------------------------

def log1pexp(x):
    return np.log(1. + np.exp(x))


print(log1pexp(3.))
print(log1pexp(3.))                               # jit(log1pexp)(3.)
print(grad(log1pexp)(3.))                         # jit(grad(log1pexp))(3.)
print(vmap_loop(grad(log1pexp), np.arange(3.)))   # vmap(jit(grad(log1pexp)))(jnp.arange(3.))
with np.errstate(over="ignore", invalid="ignore"):
    print(grad(log1pexp)(np.float32(100.)))       # nan: exp overflows (float32, as the text)


@custom_jvp
def log1pexp(x):
    return np.log(1. + np.exp(x))


@log1pexp.defjvp
def log1pexp_jvp(primals, tangents):
    x, = primals
    x_dot, = tangents
    ans = log1pexp(x)
    ans_dot = (1 - 1/(1 + np.exp(x))) * x_dot
    return ans, ans_dot


print(grad(log1pexp)(100.))
print(log1pexp(3.))
print(grad(log1pexp)(3.))
print(vmap_loop(grad(log1pexp), np.arange(3.)))


@custom_jvp
def log1pexp(x):
    return np.log(1. + np.exp(x))


log1pexp.defjvps(lambda t, ans, x: (1 - 1/(1 + np.exp(x))) * t)

print(grad(log1pexp)(100.))
print(log1pexp(3.))
print(grad(log1pexp)(3.))
print(vmap_loop(grad(log1pexp), np.arange(3.)))


# Enforcing a differentiation convention --------------------------------------------------

def f(x):
    return x / (1 + np.sqrt(x))


with np.errstate(divide="ignore", invalid="ignore"):
    print(grad(f)(0.))


@custom_jvp
def f(x):
    return x / (1 + np.sqrt(x))


@f.defjvp
def f_jvp(primals, tangents):
    x, = primals
    x_dot, = tangents
    ans = f(x)
    ans_dot = ((np.sqrt(x) + 2) / (2 * (np.sqrt(x) + 1)**2)) * x_dot
    return ans, ans_dot


print(grad(f)(0.))


@custom_jvp
def f(x):
    return x / (1 + np.sqrt(x))


f.defjvps(lambda t, ans, x: ((np.sqrt(x) + 2) / (2 * (np.sqrt(x) + 1)**2)) * t)

print(grad(f)(0.))


# Basic usage of custom_jvp ---------------------------------------------------------------

# f :: a -> b
@custom_jvp
def f(x):
    return np.sin(x)


# f_jvp :: (a, T a) -> (b, T b)
def f_jvp(primals, tangents):
    x, = primals
    t, = tangents
    return f(x), np.cos(x) * t


f.defjvp(f_jvp)

print(f(3.))
y, y_dot = jvp(f, (3.,), (1.,))
print(y)
print(y_dot)

print(grad(f)(3.))
print(grad(grad(f))(3.))

# Multiple arguments


@custom_jvp
def f(x, y):
    return x ** 2 * y


@f.defjvp
def f_jvp(primals, tangents):
    x, y = primals
    x_dot, y_dot = tangents
    primal_out = f(x, y)
    tangent_out = 2 * x * y * x_dot + x ** 2 * y_dot
    return primal_out, tangent_out


print(grad(f)(2., 3.))


@custom_jvp
def f(x):
    return np.sin(x)


f.defjvps(lambda t, ans, x: np.cos(x) * t)

print(grad(f)(3.))


@custom_jvp
def f(x, y):
    return x ** 2 * y


f.defjvps(lambda x_dot, primal_out, x, y: 2 * x * y * x_dot,
          lambda y_dot, primal_out, x, y: x ** 2 * y_dot)

print(grad(f)(2., 3.))
print(grad(f, 0)(2., 3.))  # same as above
print(grad(f, 1)(2., 3.))


@custom_jvp
def f(x, y):
    return x ** 2 * y


f.defjvps(lambda x_dot, primal_out, x, y: 2 * x * y * x_dot,
          None)

print(grad(f)(2., 3.))
print(grad(f, 0)(2., 3.))  # same as above
print(grad(f, 1)(2., 3.))

# The rule runs only under differentiation


@custom_jvp
def f(x):
    print('called f!')  # a harmless side-effect
    return np.sin(x)


@f.defjvp
def f_jvp(primals, tangents):
    print('called f_jvp!')  # a harmless side-effect
    x, = primals
    t, = tangents
    return f(x), np.cos(x) * t


print(f(3.))

print(f(np.arange(3.)))  # vmap(f)(jnp.arange(3.)): f is elementwise
print(f(3.))             # jit(f)(3.)

y, y_dot = jvp(f, (3.,), (1.,))
print(y_dot)

print(grad(f)(3.))

print(grad(grad(f))(3.))

# Python control flow


@custom_jvp
def f(x):
    if x > 0:
        return np.sin(x)
    else:
        return np.cos(x)


@f.defjvp
def f_jvp(primals, tangents):
    x, = primals
    x_dot, = tangents
    ans = f(x)
    if x > 0:
        return ans, 2 * x_dot
    else:
        return ans, 3 * x_dot


print(grad(f)(1.))
print(grad(f)(-1.))


# Pytrees ---------------------------------------------------------------------------------

Point = namedtuple("Point", ["x", "y"])


@custom_jvp
def f(pt):
    x, y = pt.x, pt.y
    return {'a': x ** 2,
            'b': (np.sin(x), np.cos(y))}


@f.defjvp
def f_jvp(primals, tangents):
    pt, = primals
    pt_dot, = tangents
    ans = f(pt)
    ans_dot = {'a': 2 * pt.x * pt_dot.x,
               'b': (np.cos(pt.x) * pt_dot.x, -np.sin(pt.y) * pt_dot.y)}
    return ans, ans_dot


def fun(pt):
    dct = f(pt)
    return dct['a'] + dct['b'][0]


pt = Point(1., 2.)

print(f(pt))
print(grad(fun)(pt))


# nondiff_argnums -------------------------------------------------------------------------

@partial(custom_jvp, nondiff_argnums=(0,))
def app(f, x):
    return f(x)


@app.defjvp
def app_jvp(f, primals, tangents):
    x, = primals
    x_dot, = tangents
    return f(x), 2. * x_dot


print(app(lambda x: x ** 3, 3.))
print(grad(app, 1)(lambda x: x ** 3, 3.))


@partial(custom_jvp, nondiff_argnums=(0, 2))
def app2(f, x, g):
    return f(g((x)))


@app2.defjvp
def app2_jvp(f, g, primals, tangents):
    x, = primals
    x_dot, = tangents
    return f(g(x)), 3. * x_dot


print(app2(lambda x: x ** 3, 3., lambda y: 5 * y))
print(grad(app2, 1)(lambda x: x ** 3, 3., lambda y: 5 * y))
