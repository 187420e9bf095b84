"""Reductions at points finite differences cannot check: tied maxima/minima (JAX's
convention splits the derivative evenly between the tied elements) and products with
zeros (the rules are exact there, no out / a)."""

import numpy as np
import pytest

import s2sad as ad


def max_all(x):
    return np.max(x)


def amax_rows(x):
    return np.amax(x, axis=1)


def max_method(x):
    return x.max(axis=-1)


def max_tuple_keepdims(x):
    return np.max(x, axis=(0, 2), keepdims=True)


def min_all(x):
    return np.min(x)


def amin_cols(x):
    return np.amin(x, 0)


def prod_all(x):
    return np.prod(x)


def prod_rows(x):
    return np.prod(x, axis=1)


def cumprod_all(x):
    return np.cumprod(x)


def cumprod_cols(x):
    return np.cumprod(x, axis=0)


def tangent(f, x, t):
    return ad.jvp(f, (x,), (t,))[1]


def tie_split(x, t, axis, extreme):
    """JAX's reference: sum over ties of t, divided by the number of ties."""
    m = extreme(x, axis=axis, keepdims=True)
    mask = x == m
    return np.sum(t * mask, axis=axis) / np.sum(mask, axis=axis)


def test_max_tie_splits_evenly():
    a, b, c = 0.3, -1.7, 2.9
    out = tangent(max_all, np.array([1.0, 3.0, 3.0]), np.array([a, b, c]))
    np.testing.assert_allclose(out, (b + c) / 2, rtol=1e-14)


def test_min_tie_splits_evenly():
    a, b, c = 0.3, -1.7, 2.9
    out = tangent(min_all, np.array([-2.0, 3.0, -2.0]), np.array([a, b, c]))
    np.testing.assert_allclose(out, (a + c) / 2, rtol=1e-14)


def test_all_equal_gives_the_mean_tangent():
    t = np.array([1.0, 2.0, 4.0, 5.0])
    np.testing.assert_allclose(tangent(max_all, np.full(4, 0.5), t), 3.0, rtol=1e-14)
    np.testing.assert_allclose(tangent(min_all, np.full(4, 0.5), t), 3.0, rtol=1e-14)


def test_unique_extremum_takes_its_tangent():
    t = np.array([1.0, 2.0, 4.0])
    assert tangent(max_all, np.array([1.0, 5.0, 3.0]), t) == 2.0
    assert tangent(min_all, np.array([1.0, 5.0, 3.0]), t) == 1.0


@pytest.mark.parametrize("f,axis,extreme", [
    (amax_rows, 1, np.max), (max_method, -1, np.max), (amin_cols, 0, np.min)])
def test_ties_along_an_axis(f, axis, extreme):
    x = np.array([[1.0, 3.0, 3.0, -2.0],
                  [0.5, 0.5, 0.5, 0.5],
                  [-1.0, 2.0, -1.0, 2.0]])
    t = np.random.default_rng(0).normal(size=x.shape)
    np.testing.assert_allclose(tangent(f, x, t), tie_split(x, t, axis, extreme), rtol=1e-14)


def test_ties_over_an_axis_tuple_with_keepdims():
    x = np.array([[[1.0, 2.0], [2.0, 0.0]], [[2.0, -1.0], [0.0, 1.0]]])  # 2 ties at 2.0 / 1.0
    t = np.random.default_rng(1).normal(size=x.shape)
    expected = tie_split(x, t, (0, 2), np.max).reshape(1, 2, 1)
    out = tangent(max_tuple_keepdims, x, t)
    assert out.shape == (1, 2, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-14)


def test_prod_is_exact_at_a_zero():
    t = np.array([0.5, -1.0, 2.0])
    # d prod([2, 0, 3]) = t1 * 0 * 3 + t2 * 2 * 3 + t3 * 2 * 0 = 6 * t2
    np.testing.assert_allclose(tangent(prod_all, np.array([2.0, 0.0, 3.0]), t), -6.0, rtol=1e-14)
    # two zeros: every product of the others has a zero
    assert tangent(prod_all, np.array([0.0, 0.0, 3.0]), t) == 0.0


def test_prod_rows_with_zeros_matches_the_product_of_the_others():
    x = np.array([[2.0, 0.0, 3.0], [1.5, -2.0, 0.5], [0.0, 4.0, 0.0]])
    t = np.random.default_rng(2).normal(size=x.shape)
    others = np.array([[np.prod(np.delete(r, j)) for j in range(3)] for r in x])
    np.testing.assert_allclose(tangent(prod_rows, x, t), np.sum(t * others, axis=1), rtol=1e-14)


def _cumprod_tangent_reference(x, t):
    """d cumprod along t over the first axis, by the product rule term by term."""
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(i + 1):
            out[i] += t[j] * np.prod(np.delete(x[:i + 1], j, axis=0), axis=0)
    return out


def test_cumprod_is_exact_at_zeros():
    x = np.array([2.0, 0.0, 3.0, -1.0])
    t = np.array([0.5, -1.0, 2.0, 1.5])
    np.testing.assert_allclose(tangent(cumprod_all, x, t), _cumprod_tangent_reference(x, t),
                               rtol=1e-14)
    x2 = np.array([[2.0, 1.0], [0.0, 3.0], [3.0, 0.0]])
    t2 = np.random.default_rng(3).normal(size=x2.shape)
    np.testing.assert_allclose(tangent(cumprod_cols, x2, t2), _cumprod_tangent_reference(x2, t2),
                               rtol=1e-14)
