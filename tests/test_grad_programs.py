"""Reverse mode through every construct of SPEC section 3, checked against forward mode
and finite differences: <v, J^T w> == <J v, w> == finite differences of <f, w> along v."""

import numpy as np
import pytest

import s2sad as ad

import programs as P
from test_jvp_programs import CASES, finite_difference

rng = np.random.default_rng(11)


def pairing(a, b):
    return float(np.real(np.sum(np.asarray(a) * np.asarray(b))))


@pytest.mark.parametrize("name,f,args,i", CASES, ids=[c[0] for c in CASES])
def test_vjp_against_finite_differences(name, f, args, i):
    out, pullback = ad.vjp(f, *args)
    np.testing.assert_allclose(out, f(*args), rtol=1e-12, atol=1e-12)
    w = rng.normal(size=np.shape(out)) if np.ndim(out) else 0.9
    cts = pullback(w)
    assert len(cts) == len(args)
    t = rng.normal(size=np.shape(args[i])) if np.ndim(args[i]) else 0.7
    expected = pairing(finite_difference(f, args, i, t), w)
    assert pairing(cts[i], t) == pytest.approx(expected, rel=1e-6, abs=1e-7)


SCALAR = [c for c in CASES if np.ndim(c[1](*c[2])) == 0]


@pytest.mark.parametrize("name,f,args,i", SCALAR, ids=[c[0] for c in SCALAR])
def test_grad_equals_vjp(name, f, args, i):
    g = ad.grad(f, argnums=i)(*args)
    _, pullback = ad.vjp(f, *args)
    np.testing.assert_allclose(g, pullback(1.0)[i], rtol=1e-12, atol=1e-14)


def test_grad_of_stop_gradient():
    assert ad.grad(P.stop)(0.8) == pytest.approx(0.8)


def test_grad_pytrees():
    params = {"w": 0.5, "b": -0.2}
    g = ad.grad(P.takes_dict)(params, 1.5)
    d = 1 - np.tanh(0.5 * 1.5 - 0.2) ** 2
    assert sorted(g) == ["b", "w"]
    assert g["w"] == pytest.approx(d * 1.5)
    assert g["b"] == pytest.approx(d)
    g = ad.grad(P.takes_namedtuple)(P.Point(1.0, 2.0))
    assert isinstance(g, P.Point)
    assert g.x == pytest.approx(2 + np.sin(2.0))
    assert g.y == pytest.approx(np.cos(2.0))


def test_grad_argnums_and_value():
    v, (gx, gy) = ad.value_and_grad(P.straight, argnums=(0, 1))(0.7, 1.3)
    assert v == pytest.approx(P.straight(0.7, 1.3))
    h = 1e-6
    assert gx == pytest.approx((P.straight(0.7 + h, 1.3) - P.straight(0.7 - h, 1.3)) / (2 * h), rel=1e-6)
    assert gy == pytest.approx((P.straight(0.7, 1.3 + h) - P.straight(0.7, 1.3 - h)) / (2 * h), rel=1e-6)


def test_has_aux():
    def f(x):
        return np.sin(x) * 2.0, {"aux": x * 3}
    g, aux = ad.grad(f, has_aux=True)(0.5)
    assert g == pytest.approx(2 * np.cos(0.5))
    assert aux["aux"] == pytest.approx(1.5)
    (v, aux), g = ad.value_and_grad(f, has_aux=True)(0.5)
    assert v == pytest.approx(2 * np.sin(0.5))


def test_grad_errors():
    with pytest.raises(TypeError, match="scalar-output"):
        ad.grad(np.sin)(np.ones(3))
    with pytest.raises(TypeError, match="real- or complex-valued"):
        ad.grad(lambda n: n * 2)(3)
    with pytest.raises(TypeError, match="argnums"):
        ad.grad(P.straight, argnums=5)(1.0, 2.0)


def test_second_order_through_loops_and_inplace():
    for f, x in [(P.inplace_recurrence, 0.4), (P.loop_range_step, np.array([0.2, -0.3]))]:
        g = ad.grad(lambda x: np.sum(f(x, 1.2) ** 2) if f is P.inplace_recurrence else np.sum(f(x) ** 2))
        H = ad.jacfwd(g)(x)
        h = 1e-5
        if np.ndim(x) == 0:
            fd = (g(x + h) - g(x - h)) / (2 * h)
        else:
            fd = np.stack([(g(x + h * e) - g(x - h * e)) / (2 * h) for e in np.eye(x.size)], axis=-1)
        np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-7)
        gg = ad.grad(lambda x: np.sum(g(x)))(x)
        np.testing.assert_allclose(gg, np.sum(np.atleast_2d(fd), axis=0) if np.ndim(x) else fd, rtol=1e-5, atol=1e-7)


def test_gradients_are_writeable_arrays():
    # the cotangent of a sum is a broadcast view inside generated code; users get arrays
    g = ad.grad(lambda x: np.sum(x))(np.ones((3, 4)))
    assert g.flags.writeable and g.strides != (0, 0)
    g[0, 0] = 5.0
    np.testing.assert_array_equal(g[1], np.ones(4))


C3_CONST = np.array([0.5, -0.25, 1.5])


def _returns_a_constant(x):
    return C3_CONST


def test_a_constant_output_has_zero_derivatives_in_every_transform():
    # regression (fuzzer): a captured array returned as is came back as its own tangent
    np.testing.assert_array_equal(ad.jvp(_returns_a_constant, (1.0,), (1.0,))[1], np.zeros(3))
    np.testing.assert_array_equal(ad.jacfwd(_returns_a_constant)(1.0), np.zeros(3))
    np.testing.assert_array_equal(ad.jacrev(_returns_a_constant)(1.0), np.zeros(3))
    np.testing.assert_array_equal(ad.linearize(_returns_a_constant, 1.0)[1](1.0), np.zeros(3))
    assert ad.vjp(_returns_a_constant, 1.0)[1](np.ones(3)) == (0.0,)
    assert ad.grad(lambda x: 2.5)(1.0) == 0.0


def test_a_tangent_nested_in_a_linear_statement_is_an_internal_error_not_a_zero():
    """Linearize sees atoms only: a tangent inside a nested call would be taken for a
    constant and its cotangent dropped (a zero gradient).  User code is flattened by
    normalization; code that passes or rule templates emit is guarded."""
    import gast
    from s2sad.transforms.linearize import Linearizer

    lin = Linearizer.__new__(Linearizer)   # only the set of linear names is needed
    lin.linear = {"x_dot", "z_dot"}

    nested = gast.parse("y_dot = own_copy(broadcast_like(x_dot, y))").body[0]
    with pytest.raises(AssertionError, match=r"internal error.*own_copy\(broadcast_like\(x_dot, y\)\)"):
        lin._check_flat(nested, nested.value.args[0])
    for text in ("y_dot = own_copy(x_dot)", "y_dot = np.stack([x_dot, z_dot])",
                 "y_dot = broadcast_like(x_dot, np.ones(3))",
                 "y_dot = np.array(((x_dot, zeros), (zeros_1, z_dot)))"):
        flat = gast.parse(text).body[0]
        for a in flat.value.args:
            lin._check_flat(flat, a)
