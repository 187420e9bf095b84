"""Reverse-mode examples of the reference texts with their printed numbers."""

import numpy as np
import pytest

import s2sad as ad
from s2sad import grad, jvp, vjp

import seed_text as S

value_fn = lambda theta, state: np.dot(theta, state)  # noqa: E731
theta = np.array([0.1, -0.1, 0.])
s_tm1 = np.array([1., 2., -1.])
r_t = np.array(1.)
s_t = np.array([2., 1., 0.])


def td_loss_naive(theta, s_tm1, r_t, s_t):
    v_tm1 = value_fn(theta, s_tm1)
    target = r_t + value_fn(theta, s_t)
    return -0.5 * ((target - v_tm1) ** 2)


def td_loss(theta, s_tm1, r_t, s_t):
    v_tm1 = value_fn(theta, s_tm1)
    target = r_t + value_fn(theta, s_t)
    return -0.5 * ((ad.stop_gradient(target) - v_tm1) ** 2)


def td_loss_sq_naive(theta, s_tm1, r_t, s_t):  # the older text (002)
    v_tm1 = value_fn(theta, s_tm1)
    target = r_t + value_fn(theta, s_t)
    return (target - v_tm1) ** 2


def td_loss_sq(theta, s_tm1, r_t, s_t):
    v_tm1 = value_fn(theta, s_tm1)
    target = r_t + value_fn(theta, s_t)
    return (ad.stop_gradient(target) - v_tm1) ** 2


def test_td0_update():
    np.testing.assert_allclose(grad(td_loss_naive)(theta, s_tm1, r_t, s_t), [-1.2, 1.2, -1.2], atol=1e-12)
    np.testing.assert_allclose(grad(td_loss)(theta, s_tm1, r_t, s_t), [1.2, 2.4, -1.2], atol=1e-12)
    s_grad = grad(value_fn)(theta, s_tm1)
    original = (r_t + value_fn(theta, s_t) - value_fn(theta, s_tm1)) * s_grad
    np.testing.assert_allclose(original, [1.2, 2.4, -1.2], atol=1e-12)
    np.testing.assert_allclose(grad(td_loss_sq_naive)(theta, s_tm1, r_t, s_t), [2.4, -2.4, 2.4], atol=1e-12)
    np.testing.assert_allclose(grad(td_loss_sq)(theta, s_tm1, r_t, s_t), [-2.4, -4.8, 2.4], atol=1e-12)


def f_round(x):
    return np.round(x)


def straight_through_f(x):
    zero = x - ad.stop_gradient(x)
    return zero + ad.stop_gradient(f_round(x))


def straight_through_older(x):
    return x + ad.stop_gradient(f_round(x) - x)


def test_straight_through_estimator():
    assert f_round(3.2) == 3.0
    assert straight_through_f(3.2) == 3.0
    assert grad(f_round)(3.2) == 0.0
    assert grad(straight_through_f)(3.2) == 1.0
    assert grad(straight_through_older)(3.2) == 1.0


def test_hessian_of_dot():
    def hessian(f):
        return ad.jacfwd(ad.grad(f))
    np.testing.assert_allclose(hessian(S.dot_self)(np.array([1., 2., 3.])), 2 * np.eye(3))
    np.testing.assert_allclose(ad.hessian(S.dot_self)(np.array([1., 2., 3.])), 2 * np.eye(3))


def test_higher_derivatives_of_the_polynomial():
    f = lambda x: x**3 + 2*x**2 - 3*x + 1  # noqa: E731
    dfdx = grad(f)
    d2fdx = grad(dfdx)
    d3fdx = grad(d2fdx)
    d4fdx = grad(d3fdx)
    assert (dfdx(1.), d2fdx(1.), d3fdx(1.), d4fdx(1.)) == (4.0, 10.0, 6.0, 0.0)


def test_jacrev_of_predict_and_dict():
    np.testing.assert_allclose(ad.jacrev(S.f)(S.W), S.JACOBIAN, rtol=1e-5, atol=2e-7)
    J = ad.jacrev(S.predict_dict)({'W': S.W, 'b': S.b}, S.inputs)
    np.testing.assert_allclose(J['W'], S.JACOBIAN, rtol=1e-5, atol=2e-7)
    np.testing.assert_allclose(J['b'], S.JACOBIAN_B, rtol=1e-5, atol=2e-7)


def test_hessian_of_predict():
    H = ad.hessian(S.f)(S.W)
    assert H.shape == (4, 3, 3)
    np.testing.assert_allclose(H, S.HESSIAN, rtol=1e-5, atol=3e-8)


def test_vjp_section():
    y, vjp_fun = vjp(S.f, S.W)
    u = np.random.default_rng(0).normal(size=y.shape)
    (v,) = vjp_fun(u)
    np.testing.assert_allclose(v, S.JACOBIAN.T @ u, rtol=1e-5, atol=1e-6)

    def vgrad(f, x):
        y, vjp_fn = vjp(f, x)
        return vjp_fn(np.ones(y.shape))[0]
    np.testing.assert_allclose(vgrad(lambda x: 3 * x ** 2, np.ones((2, 2))), [[6., 6.], [6., 6.]])


def tanh_sq(X):
    return np.sum(np.tanh(X) ** 2)


def hvp(f, primals, tangents):
    return jvp(grad(f), primals, tangents)[1]


def hvp_revfwd(f, primals, tangents):
    g = lambda primals: jvp(f, primals, tangents)[1]  # noqa: E731
    return grad(g)(primals)


def hvp_revrev(f, primals, tangents):
    x, = primals
    v, = tangents
    return grad(lambda x: np.vdot(grad(f)(x), v))(x)


def test_hessian_vector_products_four_ways():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 40))
    V = rng.normal(size=(30, 40))
    ans1 = hvp(tanh_sq, (X,), (V,))
    ans2 = np.tensordot(ad.hessian(tanh_sq)(X), V, 2)
    ans3 = hvp_revfwd(tanh_sq, (X,), (V,))
    ans4 = hvp_revrev(tanh_sq, (X,), (V,))
    assert np.allclose(ans1, ans2, 1e-4, 1e-4)
    np.testing.assert_allclose(ans1, ans2, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ans3[0], ans1, rtol=1e-10, atol=1e-10)  # grad of a tuple: a tuple
    np.testing.assert_allclose(ans4, ans1, rtol=1e-10, atol=1e-10)


def loss_fn(params, data):
    x, y = data
    return np.sum((np.tanh(x @ params) - y) ** 2)


lr = 0.1


def meta_loss_fn(params, data):
    """Computes the loss after one step of SGD."""
    grads = grad(loss_fn)(params, data)
    return loss_fn(params - lr * grads, data)


def test_maml_meta_gradient():
    rng = np.random.default_rng(2)
    params = rng.normal(size=3)
    data = (rng.normal(size=(5, 3)), rng.normal(size=5))
    meta_grads = grad(meta_loss_fn)(params, data)
    h = 1e-6
    fd = [(meta_loss_fn(params + h * e, data) - meta_loss_fn(params - h * e, data)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(meta_grads, fd, rtol=1e-6, atol=1e-8)


def f_try(x):
    try:
        if x < 3:
            return 2 * x ** 3
        else:
            raise ValueError
    except ValueError:
        return np.pi * x


def test_vjp_through_try_except():
    y, f_vjp = vjp(f_try, 4.)
    assert f_vjp(1.) == pytest.approx((np.pi,))
    y, f_vjp = vjp(f_try, 2.)
    assert f_vjp(1.) == pytest.approx((24.0,))


def test_grad_of_a_closure_with_closed_over_values():
    rng = np.random.default_rng(3)
    v = rng.normal(size=4)
    x = rng.normal(size=4)
    g = grad(lambda x: np.vdot(grad(tanh_sq)(x), v))(x)
    H = ad.hessian(tanh_sq)(x)
    np.testing.assert_allclose(g, H @ v, rtol=1e-10, atol=1e-12)
