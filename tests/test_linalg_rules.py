"""Linear algebra, complex-part and scipy.special rules beyond the registry-wide first-order
test: second derivatives (every rule calls registered primitives only, so its code can be
differentiated again), JAX's reference values, and errors instead of wrong derivatives."""

import linecache

import numpy as np
import pytest

import s2sad as ad
from s2sad.runtime import registry

from registry_util import FD_STEP, assert_close, make_function, random_like, sample, seed_of

FAMILIES = ("s2sad.runtime.rules.linalg", "s2sad.runtime.rules.complex", "s2sad.runtime.rules.special")


def _family_examples():
    out = []
    for prim in registry.all_primitives():
        if prim.nondiff or prim.jvp is None or prim.jvp.fn.__module__ not in FAMILIES:
            continue
        for i, ex in enumerate(prim.examples):
            out.append((f"{prim.name}-{i}-real", prim, ex, False))
            if prim.complex and ex.complex:
                out.append((f"{prim.name}-{i}-complex", prim, ex, True))
    return out


CASES = _family_examples()


def _split_function(expr, first, rest, fixed):
    """``def f(<first>_re, <first>_im, *rest)``: a complex input as two real ones, so that
    jacfwd (real inputs only) can differentiate complex code twice."""
    src = (f"def f({first}_re, {first}_im{''.join(', ' + r for r in rest)}):\n"
           f"    {first} = {first}_re + 1j * {first}_im\n"
           f"    return {expr}\n")
    filename = f"<linalg-rules {seed_of(src + repr(sorted(fixed)))} {expr}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    import scipy
    import scipy.special  # noqa: F401
    glb = {"np": np, "scipy": scipy, **fixed}
    exec(compile(src, filename, "exec"), glb)
    return glb["f"]


def _fd_tree(f, x, u, others, h=FD_STEP):
    plus = f(x + h * u, *others)
    minus = f(x - h * u, *others)
    if isinstance(plus, tuple):
        return tuple((np.asarray(p) - np.asarray(m)) / (2 * h) for p, m in zip(plus, minus))
    return (np.asarray(plus) - np.asarray(minus)) / (2 * h)


# Second order through the helper primitives (tri_part, euclid_guard, block_upper) needs
# Template.inline to reserve a rule's global names in the namer (``namer.reserve(name)``);
# without it the generated code reads ``tri_part = tri_part(...)`` -> UnboundLocalError.
SECOND = [pytest.param(c, id=c[0]) for c in CASES]


@pytest.mark.parametrize("case", SECOND)
def test_second_order_matches_finite_differences(case):
    name, prim, ex, complex_ = case
    rng, values, wrt, fixed = sample(ex, complex_, "second-order " + name)
    first, rest = wrt[0], wrt[1:]
    x = values[first]
    if np.size(x) > 16:
        pytest.skip("first input too large for a Hessian test")
    if complex_:
        f = _split_function(ex.expr, first, rest, fixed)
        primals = [np.real(x), np.imag(x)] + [values[k] for k in rest]
    else:
        f = make_function(ex.expr, wrt, fixed)
        primals = [x] + [values[k] for k in rest]
    jac = ad.jacfwd(f)  # d/d(first input) (its real part for complex cases)
    u = random_like(rng, primals[0])
    zeros = tuple(np.zeros_like(np.asarray(p)) if np.ndim(p) else 0.0 * p for p in primals[1:])
    _, second = ad.jvp(jac, tuple(primals), (u,) + zeros)
    fd = _fd_tree(jac, primals[0], u, primals[1:])
    scale = max(1.0, max(float(np.max(np.abs(t))) for t in (fd if isinstance(fd, tuple) else (fd,))))
    assert_close(second, fd, 1e-5, 1e-5 * scale, f"{name}: second derivative vs finite differences")


def test_cholesky_of_complex_hermitian_matches_jax():
    """The seed text: grad(f, holomorphic=True)(A) = d Re f/dx - i d Re f/dy, from JVPs."""
    a = np.array([[5., 2. + 3j, 5j], [2. - 3j, 7., 1. + 7j], [-5j, 1. - 7j, 12.]])

    def f(x):
        chol = np.linalg.cholesky(x)
        return np.sum((chol - np.sin(chol)) ** 2)

    g = np.zeros((3, 3), complex)
    for i in range(3):
        for j in range(3):
            e = np.zeros((3, 3), complex)
            e[i, j] = 1
            tx = ad.jvp(f, (a,), (e,))[1]
            ty = ad.jvp(f, (a,), (1j * e,))[1]
            g[i, j] = np.real(tx) - 1j * np.real(ty)
    jax = np.array([[-0.7534186 + 0.j, -3.0509028 - 10.940544j, 5.9896846 + 3.5423026j],
                    [-3.0509028 + 10.940544j, -8.904491 + 0.j, -5.1351523 - 6.559373j],
                    [5.9896846 - 3.5423026j, -5.1351523 + 6.559373j, 0.01320427 + 0.j]])
    np.testing.assert_allclose(g, jax, rtol=2e-6, atol=2e-6)  # JAX's value is float32


def test_slogdet_sign_tangent():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3)) + 2 * np.eye(3)
    t = rng.normal(size=(3, 3))

    def f(x):
        sign, logabsdet = np.linalg.slogdet(x)
        return sign, logabsdet

    (s, l), (s_dot, l_dot) = ad.jvp(f, (a,), (t,))
    assert s_dot == 0.0
    np.testing.assert_allclose(l_dot, np.trace(np.linalg.solve(a, t)))
    c = a + 1j * rng.normal(size=(3, 3))
    tc = t + 1j * rng.normal(size=(3, 3))
    (s, l), (s_dot, l_dot) = ad.jvp(f, (c,), (tc,))
    tr = np.trace(np.linalg.solve(c, tc))
    np.testing.assert_allclose(s_dot, 1j * tr.imag * s)
    np.testing.assert_allclose(l_dot, tr.real)


@pytest.mark.parametrize("expr, shape", [("np.linalg.norm(x, 1)", (3,)), ("np.linalg.norm(x, np.inf)", (3,)),
                                         ("np.linalg.norm(x, 2)", (2, 3)), ("np.linalg.norm(x, 'nuc')", (2, 3)),
                                         ("np.linalg.norm(x, 2, axis=(0, 1))", (2, 3))])
def test_norm_outside_the_euclidean_case_raises(expr, shape):
    x = np.arange(1.0, 7.0)[:int(np.prod(shape))].reshape(shape)
    f = make_function(expr, ["x"], {})
    with pytest.raises(ValueError, match="np.linalg.norm"):
        ad.jvp(f, (x,), (np.ones_like(x),))


def test_norm_primal_is_not_restricted():
    """Only the derivative is restricted: an inactive norm with any ord is fine."""
    f = make_function("x * np.linalg.norm(c, np.inf)", ["x"], {"c": np.array([1.0, -3.0])})
    out, t = ad.jvp(f, (2.0,), (1.0,))
    assert out == 6.0 and t == 3.0


def test_einsum_operand_counts():
    rng = np.random.default_rng(3)
    ops_ = [rng.normal(size=(2, 2)) for _ in range(4)]
    tans = [rng.normal(size=(2, 2)) for _ in range(4)]
    specs = {1: "ij->i", 2: "ij,jk->ik", 3: "ij,jk,kl->il", 4: "ij,jk,kl,lm->im"}
    for n, s in specs.items():
        args = ", ".join("abcd"[:n])
        f = make_function(f"np.einsum('{s}', {args})", list("abcd"[:n]), {})
        out, t = ad.jvp(f, tuple(ops_[:n]), tuple(tans[:n]))
        h = 1e-6
        fd = (f(*[o + h * d for o, d in zip(ops_[:n], tans[:n])])
              - f(*[o - h * d for o, d in zip(ops_[:n], tans[:n])])) / (2 * h)
        np.testing.assert_allclose(t, fd, rtol=1e-6, atol=1e-8)
        # one active operand at a time
        for k in range(n):
            g = make_function(f"np.einsum('{s}', {args})", ["abcd"[k]],
                              {"abcd"[j]: ops_[j] for j in range(n) if j != k})
            _, tk = ad.jvp(g, (ops_[k],), (tans[k],))
            fdk = (g(ops_[k] + h * tans[k]) - g(ops_[k] - h * tans[k])) / (2 * h)
            np.testing.assert_allclose(tk, fdk, rtol=1e-6, atol=1e-8)
