"""Implicit differentiation of a fixed-point iteration with ad.custom_vjp and ad.while_loop.

Reproduces, with NumPy, "Implicit function differentiation of iterative
implementations" of "Custom derivative rules for JAX-transformable Python functions"
(../shared/seeds/001_7cba66061c625143.txt; the same example is in the custom_jvp /
custom_vjp section of ../shared/seeds/000_05b138253ade469f.txt): fixed_point with
while_loop, newton_sqrt, then fixed_point redefined as a custom_vjp whose backward pass
is itself a fixed point; its grad and grad(grad) agree with those of np.sqrt.

Each printed line matches the text's; the text ran in float32, s2sad in float64, so the
numbers here carry more digits.  `jit(vmap(newton_sqrt))` is written as a loop.
"""

from functools import partial

import numpy as np

import s2sad as ad

custom_vjp, grad, vjp, while_loop = ad.custom_vjp, ad.grad, ad.vjp, ad.while_loop


def fixed_point(f, a, x_guess):
    def cond_fun(carry):
        x_prev, x = carry
        return np.abs(x_prev - x) > 1e-6

    def body_fun(carry):
        _, x = carry
        return x, f(a, x)

    _, x_star = while_loop(cond_fun, body_fun, (x_guess, f(a, x_guess)))
    return x_star


def newton_sqrt(a):
    update = lambda a, x: 0.5 * (x + a / x)  # noqa: E731
    return fixed_point(update, a, a)


print(newton_sqrt(2.))

# jit(vmap(newton_sqrt))(jnp.array([1., 2., 3., 4.])), as a loop (ad.vmap is not implemented yet)
print(np.array([newton_sqrt(a) for a in np.array([1., 2., 3., 4.])]))


@partial(custom_vjp, nondiff_argnums=(0,))
def fixed_point(f, a, x_guess):
    def cond_fun(carry):
        x_prev, x = carry
        return np.abs(x_prev - x) > 1e-6

    def body_fun(carry):
        _, x = carry
        return x, f(a, x)

    _, x_star = while_loop(cond_fun, body_fun, (x_guess, f(a, x_guess)))
    return x_star


def fixed_point_fwd(f, a, x_init):
    x_star = fixed_point(f, a, x_init)
    return x_star, (a, x_star)


def fixed_point_rev(f, res, x_star_bar):
    a, x_star = res
    _, vjp_a = vjp(lambda a: f(a, x_star), a)
    a_bar, = vjp_a(fixed_point(partial(rev_iter, f),
                               (a, x_star, x_star_bar),
                               x_star_bar))
    return a_bar, np.zeros_like(x_star)


def rev_iter(f, packed, u):
    a, x_star, x_star_bar = packed
    _, vjp_x = vjp(lambda x: f(a, x), x_star)
    return x_star_bar + vjp_x(u)[0]


fixed_point.defvjp(fixed_point_fwd, fixed_point_rev)

print(newton_sqrt(2.))

print(grad(newton_sqrt)(2.))
print(grad(grad(newton_sqrt))(2.))

print(grad(np.sqrt)(2.))
print(grad(grad(np.sqrt))(2.))
