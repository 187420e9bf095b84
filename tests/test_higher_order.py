"""Third derivatives by every mix of jacfwd and jacrev, and reverse mode over functions that
call a pullback several times (their list cotangents add item by item).

Expected values are analytic: for f(x) = sum(g(x_i)) the third-derivative tensor is diagonal
with g'''(x_i) on the diagonal.
"""

import itertools

import numpy as np
import pytest

import s2sad as ad

X = np.array([0.3, 0.5, -0.7])
E = np.eye(3)


def sin_cubed(x):
    return np.sum(np.sin(x) ** 3)


def sin_cubed_3rd(x):
    s, c = np.sin(x), np.cos(x)
    return 6 * c ** 3 - 21 * s ** 2 * c


def cubes_in_a_loop(x):
    acc = 0.0
    for j in range(x.shape[0]):
        acc = acc + x[j] ** 3
    return acc


def cubes_in_a_list(x):
    cols = []
    for j in range(x.shape[0]):
        cols.append(x[j] ** 3)
    return np.sum(np.stack(cols))


def diagonal(values):
    n = values.shape[0]
    out = np.zeros((n, n, n))
    for i in range(n):
        out[i, i, i] = values[i]
    return out


MODES = {"f": ad.jacfwd, "r": ad.jacrev}


@pytest.mark.parametrize("modes", ["".join(m) for m in itertools.product("fr", repeat=2)])
@pytest.mark.parametrize("fun,third", [(sin_cubed, sin_cubed_3rd),
                                       (cubes_in_a_loop, lambda x: 6.0 + 0 * x),
                                       (cubes_in_a_list, lambda x: 6.0 + 0 * x)],
                         ids=["sin_cubed", "loop", "list"])
@pytest.mark.parametrize("inner", ["grad", "jacfwd", "jacrev"])
def test_third_derivative_every_mix(fun, third, modes, inner):
    d = {"grad": ad.grad, "jacfwd": ad.jacfwd, "jacrev": ad.jacrev}[inner](fun)
    for m in reversed(modes):
        d = MODES[m](d)
    np.testing.assert_allclose(d(X), diagonal(third(X)), rtol=1e-10, atol=1e-12)


def cubes(x):
    cols = []
    for j in range(x.shape[0]):
        cols.append(x[j] ** 3)
    return np.stack(cols)


def two_pullbacks(x):
    """The Jacobian of `cubes`, row by row, with one pullback called twice."""
    _, pullback = ad.vjp(cubes, x)
    a = pullback(E[0])[0]
    b = pullback(E[1])[0]
    return np.stack([a, b])


def pullback_in_a_loop(x):
    _, pullback = ad.vjp(cubes, x)
    rows = []
    for i in range(3):
        rows.append(pullback(E[i])[0])
    return np.stack(rows)


@pytest.mark.parametrize("fun", [two_pullbacks, pullback_in_a_loop])
@pytest.mark.parametrize("mode", ["jacfwd", "jacrev"])
def test_pullback_called_several_times_differentiated(fun, mode):
    # d/dx_k of d(x_j^3)/dx_i = 6 x_i if i == j == k else 0
    rows = 2 if fun is two_pullbacks else 3
    expected = diagonal(6 * X)[:rows]
    np.testing.assert_allclose(getattr(ad, mode)(fun)(X), expected, rtol=1e-12, atol=1e-14)


def cos_squared_of_a_list_sum(x):
    lst = []
    for i in range(1):
        lst.append(np.sin(x[2]))
    acc = 0.0
    for r in lst:
        acc = acc + np.sum(r)
    return np.square(np.cos(acc))


@pytest.mark.parametrize("modes", ["".join(m) for m in itertools.product("fr", repeat=2)])
def test_third_derivative_through_a_list_against_differences(modes):
    # found by the third-order fuzz oracle: reverse^3 copied a list cotangent with np.copy
    f = cos_squared_of_a_list_sum
    d = ad.grad(f)
    for m in reversed(modes):
        d = MODES[m](d)
    H = ad.hessian(f)
    h = 1e-5
    fd = np.stack([(H(X + h * e) - H(X - h * e)) / (2 * h) for e in E], axis=-1)
    np.testing.assert_allclose(d(X), fd, rtol=1e-6, atol=1e-8)


def prod_of(x):
    return np.prod(x)


def prod_rows(x):
    return np.sum(np.prod(x, axis=1))


@pytest.mark.parametrize("mode", ["hessian", "jacrev_jacrev", "jacfwd_jacfwd"])
def test_hessian_of_prod_at_exact_zeros(mode):
    """H_ik = prod_{j != i, k} x_j (0 on the diagonal), exact where x has zeros (one zero:
    only the zero's row and column survive; two zeros: only their pair)."""
    transform = {"hessian": ad.hessian,
                 "jacrev_jacrev": lambda f: ad.jacrev(ad.jacrev(f)),
                 "jacfwd_jacfwd": lambda f: ad.jacfwd(ad.jacfwd(f))}[mode]
    for x in (np.array([0.5, 0.0, -2.0, 1.5]), np.array([0.0, 3.0, 0.0, -1.0])):
        n = x.size
        want = np.zeros((n, n))
        for i in range(n):
            for k in range(n):
                if i != k:
                    want[i, k] = np.prod([x[j] for j in range(n) if j not in (i, k)])
        np.testing.assert_allclose(transform(prod_of)(x), want, rtol=1e-14, atol=1e-14)
    X2 = np.array([[0.5, 0.0, 2.0], [1.0, -1.0, 3.0]])
    H = transform(prod_rows)(X2)             # rows are independent: block diagonal
    assert np.all(np.isfinite(H))
    # row [0.5, 0, 2]: H_01 = x_2, H_02 = x_1 = 0, H_12 = x_0
    np.testing.assert_allclose(H[0, :, 0, :], [[0, 2.0, 0], [2.0, 0, 0.5], [0, 0.5, 0]], atol=1e-14)
    np.testing.assert_allclose(H[0, :, 1, :], np.zeros((3, 3)), atol=1e-14)


def two_outputs(x):
    return np.array([x[0] ** 2 * x[1], np.sin(x[0]) * x[1] ** 3])


def two_outputs_3rd(x):
    """T[i, a, b, c] = d^3 f_i / dx_a dx_b dx_c, symmetric in a, b, c."""
    s, c = np.sin(x[0]), np.cos(x[0])
    T = np.zeros((2, 2, 2, 2))
    by_count = {  # number of 1-indices among (a, b, c) -> value
        0: (0.0, -c * x[1] ** 3), 1: (2.0, -s * 3 * x[1] ** 2),
        2: (0.0, c * 6 * x[1]), 3: (0.0, 6 * s)}
    for a, b, k in itertools.product(range(2), repeat=3):
        T[:, a, b, k] = by_count[a + b + k]
    return T


@pytest.mark.parametrize("outer", ["jacfwd", "jacrev"])
def test_third_derivative_of_a_vector_function_through_jacobian_rows(outer):
    """jacrev of a vector function stacks its rows (jac_rows); reverse mode over that
    splits a cotangent back into a list of rows (jac_unrows), which the outer transform
    differentiates again. (The registry-wide second-order test covers the unpacking
    ``a, b, c = jac_unrows(...)`` of a list literal of rows.)"""
    x = np.array([0.4, -1.3])
    T = getattr(ad, outer)(ad.jacrev(ad.jacrev(two_outputs)))(x)
    np.testing.assert_allclose(T, two_outputs_3rd(x), rtol=1e-12, atol=1e-12)
    T2 = getattr(ad, outer)(ad.jacrev(ad.jacfwd(two_outputs)))(x)
    np.testing.assert_allclose(T2, two_outputs_3rd(x), rtol=1e-12, atol=1e-12)
