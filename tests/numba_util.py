"""Compile generated code with plain numba.njit (boundscheck on), as DESIGN.md promises."""

import numba

from s2sad.runtime import helpers
from s2sad.transforms import emit as E
from s2sad.transforms import pipeline


def njit_callee(callee):
    """Every generated function behind `callee`, njit-compiled in one namespace."""
    helpers.register_numba()
    gen = E.emit(callee)
    ns = E.namespace_of(gen)
    src = E.module_source(gen)
    exec(compile(src, f"<numba guard {gen.name}>", "exec"), ns)
    gens = E.all_generated(gen)
    names = E.module_names(gens)
    for g in gens:
        ns[names[id(g)]] = numba.njit(boundscheck=True)(ns[names[id(g)]])
    return ns[names[id(gen)]]


def njit_transformed(transformed, *args):
    skels = tuple(pipeline.skeleton_of(a) for a in args)
    return njit_callee(transformed.specialize(skels))
