"""The forward-mode examples of the reference text, with its printed numbers.

The text ran in float32; s2sad computes in float64 from the same inputs, so values agree
to about 1e-7 (the float32 rounding of the printed numbers)."""

import numpy as np

import s2sad as ad

import seed_text as S

TOL = dict(rtol=1e-5, atol=2e-7)


def test_jacfwd_of_predict():
    J = ad.jacfwd(S.f)(S.W)
    assert J.shape == (4, 3)
    np.testing.assert_allclose(J, S.JACOBIAN, **TOL)


def test_jvp_of_predict_pushes_forward_a_vector():
    v = np.array([0.3, -1.2, 0.7])
    y, u = ad.jvp(S.f, (S.W,), (v,))
    np.testing.assert_allclose(y, S.f(S.W), rtol=1e-15)
    np.testing.assert_allclose(u, S.JACOBIAN @ v, **TOL)


def test_jacfwd_with_dict_inputs():
    J = ad.jacfwd(S.predict_dict)({'W': S.W, 'b': S.b}, S.inputs)
    assert sorted(J) == ['W', 'b']
    np.testing.assert_allclose(J['W'], S.JACOBIAN, **TOL)
    np.testing.assert_allclose(J['b'], S.JACOBIAN_B, **TOL)


def test_hessian_by_forward_over_forward():
    H = ad.jacfwd(ad.jacfwd(S.f))(S.W)
    assert H.shape == (4, 3, 3)
    np.testing.assert_allclose(H, S.HESSIAN, rtol=1e-5, atol=3e-8)


def test_hessian_of_dot():
    H = ad.jacfwd(ad.jacfwd(S.dot_self))(np.array([1., 2., 3.]))
    np.testing.assert_allclose(H, 2 * np.eye(3))
