"""Registry-wide test: every JVP rule against central finite differences.

Adding a primitive with examples adds its cases here; a differentiable primitive
without examples fails `test_every_primitive_is_tested`.
"""

import numpy as np
import pytest

import s2sad as ad
from s2sad.runtime import registry

from registry_util import (all_examples, assert_close, central_difference, make_function,
                           random_like, sample)

CASES = all_examples()

# Primitives that are exercised through other tests rather than by an expression here.
NOT_BY_EXAMPLE = {
    "setitem": "in-place writes: tests/test_control_flow.py",
    "list": "list literals: tests/test_containers.py",
    "tuple": "tuple packing never reaches generated code",
    "method.append": "lists: tests/test_containers.py",
    "method.pop": "lists: tests/test_containers.py",
    "method.copy": "lists: tests/test_containers.py",
    "pos": "unary plus folds away",
    "copy": "plain assignment y = x: tests/test_control_flow.py",

}


def test_every_primitive_is_tested():
    missing = []
    for p in registry.all_primitives():
        if p.nondiff or p.name in NOT_BY_EXAMPLE:
            continue
        if not p.examples:
            missing.append(p.name)
    assert not missing, f"differentiable primitives without examples: {missing}"


def test_every_differentiable_primitive_has_a_jvp_rule():
    missing = [p.name for p in registry.all_primitives()
               if not p.nondiff and p.jvp is None and p.kind not in ("setitem", "list", "tuple", "method")]
    assert not missing, f"primitives without JVP rules: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_jvp_matches_finite_differences(case):
    name, prim, ex, complex_ = case
    rng, values, wrt, fixed = sample(ex, complex_, name)
    f = make_function(ex.expr, wrt, fixed)
    primals = [values[k] for k in wrt]
    tangents = [random_like(rng, p) for p in primals]
    out, tan = ad.jvp(f, tuple(primals), tuple(tangents))
    assert_close(out, f(*primals), 1e-12, 1e-12, f"{name}: primal output")
    if prim.nondiff:
        assert_close(tan, np.zeros_like(np.asarray(out, dtype=float)), 0, 0, f"{name}: zero tangent")
        return
    fd = central_difference(f, primals, tangents)
    scale = max(1.0, float(np.max(np.abs(fd))) if np.size(fd) else 1.0)
    assert_close(tan, fd, 1e-5, ex.tol * scale, f"{name}: tangent vs finite differences")
