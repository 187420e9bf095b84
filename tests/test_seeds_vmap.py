"""The ``vmap`` examples of the reference texts, with their printed numbers.

``jax.jit`` is not part of these checks yet (``ad.jit`` is the next issue): the value is the
same without it, so ``jit(vmap(...))`` is written ``vmap(...)``. Random matrices of the
text (``random.normal``) are drawn with NumPy: what the text checks about them is an
identity (vmap equals the loop), not a printed number.
"""

import numpy as np
import pytest

import s2sad as ad
from s2sad import grad, jvp, vjp, vmap

import seed_text as S
from test_seeds_reverse import r_t, s_t, s_tm1, td_loss, theta

PER_EXAMPLE = np.array([[1.2, 2.4, -1.2], [1.2, 2.4, -1.2]])   # printed in 000 and 002


def batched():
    return np.stack([s_tm1, s_tm1]), np.stack([r_t, r_t]), np.stack([s_t, s_t])


def test_per_example_gradients():
    b_s_tm1, b_r_t, b_s_t = batched()
    perex_grads = vmap(grad(td_loss), in_axes=(None, 0, 0, 0))
    np.testing.assert_allclose(perex_grads(theta, b_s_tm1, b_r_t, b_s_t), PER_EXAMPLE, atol=1e-12)


def test_almost_per_example_gradients_batch_theta_too():
    b_s_tm1, b_r_t, b_s_t = batched()
    dtdloss_dtheta = grad(td_loss)
    np.testing.assert_allclose(dtdloss_dtheta(theta, s_tm1, r_t, s_t), PER_EXAMPLE[0], atol=1e-12)
    almost_perex_grads = vmap(dtdloss_dtheta)
    batched_theta = np.stack([theta, theta])
    np.testing.assert_allclose(almost_perex_grads(batched_theta, b_s_tm1, b_r_t, b_s_t), PER_EXAMPLE,
                               atol=1e-12)


def test_per_example_gradients_of_different_examples():
    # the same program on examples that differ: each row is that example's gradient
    rng = np.random.default_rng(0)
    s0, s1 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    r = rng.normal(size=5)
    got = vmap(grad(td_loss), in_axes=(None, 0, 0, 0))(theta, s0, r, s1)
    want = np.stack([grad(td_loss)(theta, s0[i], r[i], s1[i]) for i in range(5)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_matrix_jacobian_product():
    f = S.f
    W = S.W
    y = f(W)
    U = np.random.default_rng(0).normal(size=(128,) + y.shape)

    def loop_mjp(f, x, M):
        y, vjp_fun = vjp(f, x)
        return np.vstack([vjp_fun(mi) for mi in M])

    def vmap_mjp(f, x, M):
        y, vjp_fun = vjp(f, x)
        outs, = vmap(vjp_fun)(M)
        return outs

    loop_vs = loop_mjp(f, W, M=U)
    vmap_vs = vmap_mjp(f, W, M=U)
    assert vmap_vs.shape == (128, 3)
    np.testing.assert_allclose(loop_vs, vmap_vs, rtol=1e-12, atol=1e-14)
    # and both are U @ J, with J the Jacobian the text prints
    np.testing.assert_allclose(vmap_vs, U @ S.JACOBIAN, rtol=1e-5, atol=1e-6)


def test_jacobian_matrix_product():
    f = S.f
    W = S.W
    S_ = np.random.default_rng(1).normal(size=(128,) + W.shape)

    def loop_jmp(f, W, M):
        return np.vstack([jvp(f, (W,), (mi,))[1] for mi in M])

    def vmap_jmp(f, W, M):
        _jvp = lambda s: jvp(f, (W,), (s,))[1]  # noqa: E731
        return vmap(_jvp)(M)

    loop_vs = loop_jmp(f, W, M=S_)
    vmap_vs = vmap_jmp(f, W, M=S_)
    np.testing.assert_allclose(loop_vs, vmap_vs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vmap_vs, S_ @ S.JACOBIAN.T, rtol=1e-5, atol=1e-6)


def test_our_jacrev_and_jacfwd():
    f = S.f

    def our_jacrev(f):
        def jacfun(x):
            y, vjp_fun = vjp(f, x)
            J, = vmap(vjp_fun, in_axes=0)(np.eye(len(y)))
            return J
        return jacfun

    def our_jacfwd(f):
        def jacfun(x):
            _jvp = lambda s: jvp(f, (x,), (s,))[1]  # noqa: E731
            Jt = vmap(_jvp, in_axes=1)(np.eye(len(x)))
            return np.transpose(Jt)
        return jacfun

    np.testing.assert_allclose(ad.jacrev(f)(S.W), our_jacrev(f)(S.W), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ad.jacfwd(f)(S.W), our_jacfwd(f)(S.W), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(our_jacrev(f)(S.W), S.JACOBIAN, rtol=1e-5, atol=1e-6)


def test_mismatched_batch_sizes_name_the_arguments():
    b_s_tm1, b_r_t, b_s_t = batched()
    with pytest.raises(ValueError, match=r"(?s)inconsistent sizes.*argument 1 \(s_tm1\) has size 2"
                                         r".*argument 2 \(r_t\) has size 3"):
        vmap(grad(td_loss), in_axes=(None, 0, 0, 0))(theta, b_s_tm1, np.ones(3), b_s_t)


def test_jvp_and_vjp_at_a_primal_from_outside_inside_a_transformed_function():
    # `_jvp` of the text differentiates at W, a global: its primal is known at transform
    # time; the tangent s is the transformed function's argument
    _jvp = lambda s: jvp(S.f, (S.W,), (s,))[1]  # noqa: E731
    np.testing.assert_allclose(ad.jacfwd(_jvp)(np.ones(3)), S.JACOBIAN, rtol=1e-5, atol=1e-6)

    def pulled(m):
        y, vjp_fun = vjp(S.f, S.W)
        return vjp_fun(m)[0]
    np.testing.assert_allclose(ad.jacrev(pulled)(np.ones(4)), S.JACOBIAN.T, rtol=1e-5, atol=1e-6)


def test_differentiating_a_vmap_of_a_custom_rule_function_is_refused():
    # vmap batches clip_gradient's primal code; differentiating that would silently drop
    # the custom rule (the clipped cotangent), so it is refused with the user's line
    from test_seeds_custom import clip_sin, log1pexp
    t = np.linspace(0.0, 3.0, 5)
    with pytest.raises(ad.TransformError, match="custom_jvp/custom_vjp.*vmap\\(grad\\(f\\)\\)"):
        ad.jacrev(vmap(clip_sin))(t)
    with pytest.raises(ad.TransformError, match="log1pexp"):
        ad.jacfwd(vmap(log1pexp))(t)
    # the other order keeps the rule
    np.testing.assert_allclose(vmap(grad(clip_sin))(t), np.clip(np.cos(t), -0.75, 0.75), rtol=1e-12)
