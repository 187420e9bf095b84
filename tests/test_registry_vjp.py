"""Registry-wide test of reverse mode: for every example of every primitive, the VJP is
the transpose of the JVP -- the dot-product identity <J v, w> = <v, J^T w> on random v, w
(with JAX's pairing Re(sum(a * b)) for complex values). The JVP itself is checked against
finite differences by test_registry_jvp, so this checks every transpose rule (and the
linearize/transpose passes) for every primitive."""

import numpy as np
import pytest

import s2sad as ad

from registry_util import all_examples, make_function, random_like, sample

CASES = [c for c in all_examples() if not c[1].nondiff]


def pairing(a, b):
    if isinstance(a, (tuple, list)):
        return sum(pairing(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return sum(pairing(a[k], b[k]) for k in a)
    return float(np.real(np.sum(np.asarray(a) * np.asarray(b))))


def tree_random_like(rng, x):
    if isinstance(x, (tuple, list)):
        return type(x)(tree_random_like(rng, v) for v in x)
    if isinstance(x, dict):
        return {k: tree_random_like(rng, v) for k, v in x.items()}
    return random_like(rng, x)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_vjp_is_the_transpose_of_jvp(case):
    name, prim, ex, complex_ = case
    rng, values, wrt, fixed = sample(ex, complex_, name)
    f = make_function(ex.expr, wrt, fixed)
    primals = tuple(values[k] for k in wrt)
    tangents = tuple(random_like(rng, p) for p in primals)
    out, jv = ad.jvp(f, primals, tangents)
    out2, pullback = ad.vjp(f, *primals)
    np.testing.assert_allclose(np.asarray(out2, dtype=complex) if complex_ else out2,
                               np.asarray(out, dtype=complex) if complex_ else out, rtol=1e-12, atol=1e-12)
    w = tree_random_like(rng, out)
    cts = pullback(w)
    lhs = pairing(jv, w)
    rhs = pairing(tangents, cts)
    scale = max(1.0, abs(lhs), abs(rhs))
    assert abs(lhs - rhs) <= 1e-9 * scale, f"{name}: <Jv, w> = {lhs} but <v, J^T w> = {rhs}"
    # calling the pullback again gives the same cotangents
    again = pullback(w)
    assert pairing(tangents, again) == pytest.approx(rhs, rel=1e-12, abs=1e-12)
