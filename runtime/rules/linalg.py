"""Products and linear algebra: dot, vdot, outer, inner, tensordot, einsum, trace, diag,
and np.linalg (cholesky, solve, inv, det, slogdet, norm, triangular solves)."""

import numpy as np

from s2sad.runtime.domains import real
from s2sad.runtime.registry import register

dot = register("dot", np.dot, spelling="np.dot", params=("a", "b"), linear=("a", "b"), bilinear=True)
dot.example("np.dot(a, b)", a=real(3, 4), b=real(4)).example("np.dot(a, b)", a=real(4), b=real(4)) \
    .example("np.dot(a, b)", a=real(2, 3), b=real(3, 4)).example("np.dot(a, b)", a=real(), b=real(3))


@dot.defjvp
def _(a, b, a_dot, b_dot):
    return np.dot(a_dot, b) + np.dot(a, b_dot)
