"""Generated code is Numba-ready from day one: the JVP source of array/scalar programs with
straight-line code, if/for/while and in-place writes compiles with plain numba.njit
(boundscheck on) and gives the same values as the Python version."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from s2sad import api  # noqa: E402

import programs as P  # noqa: E402
from numba_util import njit_transformed  # noqa: E402

rng = np.random.default_rng(7)

CASES = [
    ("straight-scalar", P.straight, (0.7, 1.3)),
    ("straight-array", P.straight, (rng.normal(size=4), rng.normal(size=4))),
    ("reassign", P.reassign, (rng.normal(size=3),)),
    ("branches", P.branches, (0.7, 2.0)),
    ("branches-else", P.branches, (0.7, 0.0)),
    ("branch_on_value", P.branch_on_value, (np.abs(rng.normal(size=3)),)),
    ("loop_range", P.loop_range, (0.3, 4)),
    ("loop_rows", P.loop_rows, (rng.normal(size=(3, 4)),)),
    ("loop_while", P.loop_while, (rng.normal(size=3),)),
    ("nested_loops", P.nested_loops, (rng.normal(size=4),)),
    ("inplace_fill", P.inplace_fill, (rng.normal(size=3),)),
    ("inplace_slices", P.inplace_slices, (rng.normal(size=4),)),
    ("inplace_recurrence", P.inplace_recurrence, (0.4, 1.2)),
]


def tangent_like(a):
    return np.ones_like(a) if isinstance(a, np.ndarray) else (1.0 if isinstance(a, float) else a)


@pytest.mark.parametrize("name,f,args", CASES, ids=[c[0] for c in CASES])
def test_jvp_source_compiles_with_numba(name, f, args):
    t = api.jvp_function(f)
    tangents = tuple(tangent_like(a) for a in args)
    compiled = njit_transformed(t, *args, *tangents)
    expected = t(*args, *tangents)
    got = compiled(*args, *tangents)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


GRAD_CASES = [
    ("straight", P.straight, (0.7, 1.3)),
    ("reassign", P.reassign, (0.4,)),
    ("branches", P.branches, (0.7, 2.0)),
    ("branches-else", P.branches, (0.7, 0.0)),
    ("loop_range", P.loop_range, (0.3, 4)),
    ("nested_loops", P.nested_loops, (rng.normal(size=4),)),
    ("loop_while", lambda x: np.sum(P.loop_while(x)), (rng.normal(size=3),)),
    ("inplace_fill", lambda x: np.sum(P.inplace_fill(x)), (rng.normal(size=3),)),
    ("inplace_recurrence", lambda a: np.sum(P.inplace_recurrence(0.4, a)), (1.2,)),
]


@pytest.mark.parametrize("name,f,args", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_grad_source_compiles_with_numba(name, f, args):
    import s2sad as ad
    g = ad.grad(f)
    compiled = njit_transformed(g, *args)
    np.testing.assert_allclose(compiled(*args), g(*args), rtol=1e-12, atol=1e-12)


# reverse mode through custom rules and checkpoints compiles too
def _custom_and_checkpoint_cases():
    import checkpoint_cases as C
    import test_seeds_custom as S
    return [
        ("checkpoint_loop", lambda x0: C.rec_module(x0, 1.3, 5), (rng.normal(size=3),)),
        ("checkpoint_matrix", lambda W: C.mlp(W, np.ones(4)), (rng.normal(size=(4, 4)) * 0.5,)),
        ("custom_jvp", lambda x: S.f_tldr(x, 3.0) + S.log1pexp(x), (0.7,)),
        ("custom_jvp_defjvps", lambda x: S.f_tldr_jvps(x, 3.0), (0.7,)),
        ("custom_vjp", lambda x: S.f_tldr_vjp(x, 3.0), (0.7,)),
        # (np.clip of a scalar is not in Numba: the clipping example runs on an array)
        ("custom_vjp_nondiff", lambda x: np.sum(S.clip_sin(x)), (rng.normal(size=4),)),
    ]


@pytest.mark.parametrize("name,f,args", _custom_and_checkpoint_cases(),
                         ids=[c[0] for c in _custom_and_checkpoint_cases()])
def test_grad_through_checkpoints_compiles_with_numba(name, f, args):
    import s2sad as ad
    g = ad.grad(f)
    compiled = njit_transformed(g, *args)
    np.testing.assert_allclose(compiled(*args), g(*args), rtol=1e-12, atol=1e-12)
