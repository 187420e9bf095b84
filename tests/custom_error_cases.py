"""Custom rules with mistakes, for test_custom_rules (a module: s2sad reads the source)."""

import numpy as np

import s2sad as ad


@ad.custom_jvp
def squared_tangent(x):
    return np.sin(x)


@squared_tangent.defjvp
def squared_tangent_jvp(primals, tangents):
    x, = primals
    t, = tangents
    return np.sin(x), np.cos(x) * t * t          # line 17: not linear in t


@ad.custom_vjp
def two_args(x, y):
    return x * y


def two_args_fwd(x, y):
    return x * y, (x, y)


def two_args_bwd(res, g):
    x, y = res
    return (y * g,)                               # one cotangent for two arguments


two_args.defvjp(two_args_fwd, two_args_bwd)


@ad.custom_jvp
def no_rule(x):
    return 2.0 * x


@ad.custom_vjp
def no_vjp_rule(x):
    return 2.0 * x
