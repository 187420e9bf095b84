"""Custom reverse rules with ad.custom_vjp.

Reproduces, with NumPy, the custom_vjp examples of "Custom derivative rules for
JAX-transformable Python functions" (../shared/seeds/001_7cba66061c625143.txt, and the
same section of ../shared/seeds/000_05b138253ade469f.txt): the TL;DR, "Gradient clipping",
"Use jax.custom_vjp to define custom reverse-mode-only rules" (with the forward-mode
error and the pdb-in-the-backward-pass example), the pytree (Point) example and
"jax.custom_vjp with nondiff_argnums".  The fixed-point example is samples/fixed_point.py.

Each printed line matches the text's; the text ran in float32, s2sad in float64, so the
numbers here carry more digits.  The clipping plots become printed ranges (no
matplotlib), `vmap(...)` is a loop.  The pdb example stops in the backward pass only when
run with S2SAD_SAMPLE_PDB=1 from a terminal; otherwise a stand-in prints what the text's
session shows (`p x`, `p g`) and quits like `q`.
"""

import bdb
import os
import sys
from collections import namedtuple
from functools import partial

import numpy as np

import s2sad as ad

custom_vjp, grad, jvp, vjp = ad.custom_vjp, ad.grad, ad.jvp, ad.vjp

np.set_printoptions(legacy="1.25")  # print scalars inside containers as plain numbers


def vmap_loop(fn, xs):
    """vmap(fn)(xs), written as a Python loop (ad.vmap is not implemented yet)."""
    return np.array([fn(x) for x in xs])


# TL;DR ----------------------------------------------------------------------------------

@custom_vjp
def f(x, y):
    return np.sin(x) * y


def f_fwd(x, y):
    # Returns primal output and residuals to be used in backward pass by f_bwd.
    return f(x, y), (np.cos(x), np.sin(x), y)


def f_bwd(res, g):
    cos_x, sin_x, y = res  # Gets residuals computed in f_fwd
    return (cos_x * g * y, sin_x * g)


f.defvjp(f_fwd, f_bwd)

print(grad(f)(2., 3.))


# Gradient clipping -----------------------------------------------------------------------

@custom_vjp
def clip_gradient(lo, hi, x):
    return x  # identity function


def clip_gradient_fwd(lo, hi, x):
    return x, (lo, hi)  # save bounds as residuals


def clip_gradient_bwd(res, g):
    lo, hi = res
    return (None, None, np.clip(g, lo, hi))  # use None to indicate zero cotangents for lo and hi


clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)

t = np.linspace(0, 10, 1000)

# plt.plot(jnp.sin(t)); plt.plot(vmap(grad(jnp.sin))(t))
print("sin(t) in", [np.sin(t).min(), np.sin(t).max()],
      "grad in", [vmap_loop(grad(np.sin), t).min(), vmap_loop(grad(np.sin), t).max()])


def clip_sin(x):
    x = clip_gradient(-0.75, 0.75, x)
    return np.sin(x)


# plt.plot(clip_sin(t)); plt.plot(vmap(grad(clip_sin))(t))
clipped = vmap_loop(grad(clip_sin), t)
print("clip_sin(t) in", [clip_sin(t).min(), clip_sin(t).max()],
      "grad in", [clipped.min(), clipped.max()])


# Basic usage of custom_vjp ---------------------------------------------------------------

# f :: a -> b
@custom_vjp
def f(x):
    return np.sin(x)


# f_fwd :: a -> (b, c)
def f_fwd(x):
    return f(x), np.cos(x)


# f_bwd :: (c, CT b) -> CT a
def f_bwd(cos_x, y_bar):
    return (cos_x * y_bar,)


f.defvjp(f_fwd, f_bwd)

print(f(3.))
print(grad(f)(3.))

# Multiple arguments


@custom_vjp
def f(x, y):
    return np.sin(x) * y


def f_fwd(x, y):
    return f(x, y), (np.cos(x), np.sin(x), y)


def f_bwd(res, g):
    cos_x, sin_x, y = res
    return (cos_x * g * y, sin_x * g)  # text 001 has -sin_x * g: only x's gradient is printed


f.defvjp(f_fwd, f_bwd)

print(grad(f)(2., 3.))

# The rule runs only under differentiation


@custom_vjp
def f(x):
    print("called f!")
    return np.sin(x)


def f_fwd(x):
    print("called f_fwd!")
    return f(x), np.cos(x)


def f_bwd(cos_x, y_bar):
    print("called f_bwd!")
    return (cos_x * y_bar,)


f.defvjp(f_fwd, f_bwd)

print(f(3.))

print(grad(f)(3.))

y, f_vjp = vjp(f, 3.)
print(y)

print(f_vjp(1.))

# Forward mode cannot be used on a custom_vjp function

try:
    jvp(f, (3.,), (1.,))
except TypeError as e:
    print('ERROR! {}'.format(e))


# pdb in the backward pass

@custom_vjp
def debug(x):
    return x  # acts like identity


def debug_fwd(x):
    return x, x


def debug_bwd(x, g):
    import pdb; pdb.set_trace()  # noqa: E702
    return g


debug.defvjp(debug_fwd, debug_bwd)


def foo(x):
    y = x ** 2
    y = debug(y)  # insert pdb in corresponding backward pass step
    return np.sin(y)


class ShowAndQuit:
    """Stands in for pdb.set_trace when no one is at the terminal: prints what the text's
    session prints, then quits as `q` does."""

    __name__ = "set_trace"

    def __call__(self, *args, **kwargs):
        frame = sys._getframe(1)
        print(f"> {frame.f_code.co_filename}({frame.f_lineno}){frame.f_code.co_name}()")
        print(f"(Pdb) p x\n{frame.f_locals['x']!r}\n(Pdb) p g\n{frame.f_locals['g']!r}\n(Pdb) q")
        raise bdb.BdbQuit


if not (os.environ.get("S2SAD_SAMPLE_PDB") == "1" and sys.stdin.isatty()):
    import pdb
    pdb.set_trace = ShowAndQuit()
try:
    grad(foo)(3.)
except bdb.BdbQuit:
    pass


# Pytrees ---------------------------------------------------------------------------------

Point = namedtuple("Point", ["x", "y"])


@custom_vjp
def f(pt):
    x, y = pt.x, pt.y
    return {'a': x ** 2,
            'b': (np.sin(x), np.cos(y))}


def f_fwd(pt):
    return f(pt), pt


def f_bwd(pt, g):
    a_bar, (b0_bar, b1_bar) = g['a'], g['b']
    x_bar = 2 * pt.x * a_bar + np.cos(pt.x) * b0_bar
    y_bar = -np.sin(pt.y) * b1_bar
    return (Point(x_bar, y_bar),)


f.defvjp(f_fwd, f_bwd)


def fun(pt):
    dct = f(pt)
    return dct['a'] + dct['b'][0]


pt = Point(1., 2.)

print(f(pt))

print(grad(fun)(pt))


# nondiff_argnums -------------------------------------------------------------------------

@partial(custom_vjp, nondiff_argnums=(0,))
def app(f, x):
    return f(x)


def app_fwd(f, x):
    return f(x), x


def app_bwd(f, x, g):
    return (5 * g,)


app.defvjp(app_fwd, app_bwd)

print(app(lambda x: x ** 2, 4.))

print(grad(app, 1)(lambda x: x ** 2, 4.))
