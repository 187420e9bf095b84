"""ad.checkpoint: same derivatives as without it (checked against finite differences),
in every mode and order; in reverse mode a checkpointed call saves only its inputs."""

import re

import numpy as np
import pytest

import s2sad as ad

import checkpoint_cases as C

rng = np.random.default_rng(7)
X0 = rng.normal(size=5) * 0.5
W = rng.normal(size=(4, 4)) * 0.5
H0 = rng.normal(size=4)


def fd_grad(f, args, argnum, h=1e-6):
    args = list(args)
    x = np.asarray(args[argnum], dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        args[argnum] = x + e if x.ndim else float(x + e)
        fp = f(*args)
        args[argnum] = x - e if x.ndim else float(x - e)
        fm = f(*args)
        g[idx] = (fp - fm) / (2 * h)
    return g if x.ndim else float(g)


@pytest.mark.parametrize("f", [C.rec_module, C.rec_nested, C.rec_inline])
@pytest.mark.parametrize("x0", [0.4, X0], ids=["scalar", "vector"])
def test_grad_matches_finite_differences(f, x0):
    g = ad.grad(f, argnums=(0, 1))(x0, 1.3, 40)
    np.testing.assert_allclose(g[0], fd_grad(C.rec_plain, (x0, 1.3, 40), 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g[1], fd_grad(C.rec_plain, (x0, 1.3, 40), 1), rtol=1e-6, atol=1e-8)


def test_vjp_pullback_twice_and_jvp_and_jacrev():
    out, pb = ad.vjp(C.rec_module, X0, 1.3, 20)
    assert out == pytest.approx(C.rec_plain(X0, 1.3, 20), rel=1e-14)
    a = pb(1.0)
    b = pb(2.0)
    np.testing.assert_allclose(b[0], 2 * a[0], rtol=1e-13)
    expect = fd_grad(C.rec_plain, (X0, 1.3, 20), 0)
    np.testing.assert_allclose(a[0], expect, rtol=1e-6, atol=1e-8)
    t = rng.normal(size=5)
    _, jv = ad.jvp(lambda x: C.rec_module(x, 1.3, 20), (X0,), (t,))
    assert jv == pytest.approx(float(expect @ t), rel=1e-6)
    np.testing.assert_allclose(ad.jacrev(C.rec_module)(X0, 1.3, 20), expect, rtol=1e-6, atol=1e-8)


def test_multiple_outputs_and_matrices():
    x, y = rng.normal(size=3), rng.normal(size=3)
    g = ad.grad(C.uses_two_outputs, argnums=(0, 1))(x, y)
    for k in (0, 1):
        np.testing.assert_allclose(g[k], fd_grad(C.uses_two_outputs_plain, (x, y), k), rtol=1e-6, atol=1e-8)
    gw = ad.grad(C.mlp)(W, H0)
    np.testing.assert_allclose(gw, fd_grad(C.mlp, (W, H0), 0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("f", [C.rec_module, C.rec_nested])
def test_second_order(f):
    # d2/da2 by finite differences of the (finite-difference-checked) plain gradient
    def dfa(a):
        return fd_grad(C.rec_plain, (0.4, a, 30), 1, h=1e-5)
    expect = (dfa(1.3 + 1e-4) - dfa(1.3 - 1e-4)) / 2e-4
    got = ad.grad(ad.grad(f, argnums=1), argnums=1)(0.4, 1.3, 30)
    assert got == pytest.approx(expect, rel=1e-4)
    h = ad.hessian(lambda x: f(x, 1.3, 30))(X0)
    np.testing.assert_allclose(h, h.T, rtol=1e-10, atol=1e-12)
    col = (ad.grad(lambda x: f(x, 1.3, 30))(X0 + 1e-5 * np.eye(5)[2])
           - ad.grad(lambda x: f(x, 1.3, 30))(X0 - 1e-5 * np.eye(5)[2])) / 2e-5
    np.testing.assert_allclose(h[:, 2], col, rtol=1e-5, atol=1e-7)


def test_a_checkpointed_call_saves_its_inputs_only():
    # the forward sweep of the gradient keeps fewer records per step with the checkpoint
    plain = ad.source(ad.grad(C.rec_plain, argnums=1), X0, 1.3, 10)
    ckpt = ad.source(ad.grad(C.rec_module, argnums=1), X0, 1.3, 10)

    def appends(src, name):
        main = src.split(f"def {name}(", 1)[1].split("\ndef ", 1)[0]
        return len(re.findall(r"\.append\(", main))
    assert 0 < appends(ckpt, "rec_module_grad") < appends(plain, "rec_plain_grad"), ckpt
    assert "_ckpt_fwd" in ckpt and "_ckpt_bwd" in ckpt, ckpt


def test_checkpoint_is_transparent_when_called():
    assert C.step(0.5, 1.0, 0.1) == pytest.approx(0.5 + 0.1 * (np.sin(0.5) - 0.125))
    with pytest.raises(TypeError, match="policy"):
        ad.checkpoint(C._body, policy="everything")
    with pytest.raises(TypeError, match="needs a function"):
        ad.checkpoint(3.0)
