"""`while_loop` and `fori_loop` with the semantics of jax.lax.

They are ordinary Python, so the transforms treat them like user code: a call inside a
differentiated function lowers to a Python loop, which (unlike in JAX) reverse mode can
differentiate.
"""


def while_loop(cond_fun, body_fun, init_val):
    """Run ``val = body_fun(val)`` while ``cond_fun(val)``; return the final ``val``."""
    val = init_val
    while cond_fun(val):
        val = body_fun(val)
    return val


def fori_loop(lower, upper, body_fun, init_val):
    """Run ``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)``."""
    val = init_val
    for i in range(lower, upper):
        val = body_fun(i, val)
    return val
