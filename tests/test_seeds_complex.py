"""Complex numbers in every mode (issue 5).

The specification is the section "Complex numbers and differentiation" of
../shared/seeds/000_05b138253ade469f.txt; JAX's conventions are followed exactly.  Every
example of that section is reproduced here with NumPy (jnp -> np, jax.random ->
np.random.default_rng with fixed seeds), with the printed numbers asserted (the text ran in
float32, so tolerances match its printed digits).

The conventions, read off the text:
  * JVP of f: C -> C is the JVP of g(x, y) = (u, v) on the real pair, read as u_dot + i v_dot
    (holomorphic or not).
  * VJP with cotangent c + d i is  [c, -d] J [1, -i]^T  with J = [[u_x, u_y], [v_x, v_y]],
    i.e. (c u_x - d v_x) - i (c u_y - d v_y).  Since c u - d v = Re((c + d i)(u + v i)),
    the VJP with cotangent w is  dphi/dx - i dphi/dy  for phi = Re(sum(w * f))  (no
    conjugation of w).
  * grad(f) = vjp(f)(1.0): for f: C -> R it is  df/dx - i df/dy  (6-8j for x**2 + y**2 at
    3+4j); with holomorphic=True on any f it is  dRe(f)/dx - i dRe(f)/dy, which is f'(z) for a
    holomorphic f and "the Jacobian of the function where we just discard the imaginary
    part of the output" otherwise (1-0j for conjugate).

Expected values below come from the text, from analytic derivatives, or from central
finite differences of these conventions -- never from s2sad itself.
"""

import numpy as np
import pytest

import s2sad as ad
from s2sad import grad, jvp, vjp

# ------------------------------------------------------------------------- helpers

H = 1e-6
FD = dict(rtol=1e-6, atol=1e-7)        # central differences with h=1e-6: ~1e-9 error
EXACT = dict(rtol=1e-12, atol=1e-12)


def _perturb(Z, k, delta):
    Z = np.array(Z, dtype=complex)
    Z.flat[k] += delta
    return Z if Z.ndim else Z[()]


def fd_jax_grad(F, Z, h=H):
    """JAX's grad of a real-valued F: C^n -> R, by central differences on the real pair:
    dF/du - 1j * dF/dv elementwise (u = Re Z, v = Im Z)."""
    Z = np.asarray(Z, dtype=complex)
    out = np.zeros(Z.shape, dtype=complex)
    for k in range(Z.size):
        du = (F(_perturb(Z, k, h)) - F(_perturb(Z, k, -h))) / (2 * h)
        dv = (F(_perturb(Z, k, 1j * h)) - F(_perturb(Z, k, -1j * h))) / (2 * h)
        out.flat[k] = np.real(du) - 1j * np.real(dv)
    return out if out.ndim else out[()]


def fd_jvp(f, Z, dZ, h=H):
    """Directional derivative of f on the real pair (unambiguous for any f)."""
    Z, dZ = np.asarray(Z, dtype=complex), np.asarray(dZ, dtype=complex)
    return (f(Z + h * dZ) - f(Z - h * dZ)) / (2 * h)


def fd_vjp(f, Z, W):
    """The text's VJP convention: grad_JAX of phi(Z) = Re(sum(W * f(Z)))."""
    return fd_jax_grad(lambda Zp: np.real(np.sum(W * f(Zp))), Z)


def assert_close(got, expected, **tol):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), **(tol or FD))


# =========================================================== the text's examples

# --- "Here's a check:" (JVP), reconstructed with its indentation ------------------

def check_jvp(seed):
    rng = np.random.default_rng(seed)

    # random coeffs for u and v
    a, b, c, d = rng.uniform(size=4)

    def fun(z):
        x, y = np.real(z), np.imag(z)
        return u(x, y) + v(x, y) * 1j

    def u(x, y):
        return a * x + b * y

    def v(x, y):
        return c * x + d * y

    # primal point
    x, y = rng.uniform(size=2)
    z = x + y * 1j

    # tangent vector (note: rebinds c, d, which u and v close over -- as in the text)
    c, d = rng.uniform(size=2)
    z_dot = c + d * 1j

    # check jvp
    _, ans = jvp(fun, (z,), (z_dot,))
    expected = (grad(u, 0)(x, y) * c +
                grad(u, 1)(x, y) * d +
                grad(v, 0)(x, y) * c * 1j +
                grad(v, 1)(x, y) * d * 1j)
    # the same number from the math: u = a x + b y, v = c x + d y (late-bound c, d)
    math = (a * c + b * d) + 1j * (c * c + d * d)
    return ans, expected, math


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_text_jvp_check(seed):
    ans, expected, math = check_jvp(seed)
    assert np.allclose(ans, expected)               # the text prints True
    assert_close(ans, math, **EXACT)
    assert_close(expected, math, **EXACT)


# --- "Here's a check of the VJP rules:" -------------------------------------------

def check_vjp(seed):
    rng = np.random.default_rng(seed)

    # random coeffs for u and v
    a, b, c, d = rng.uniform(size=4)

    def fun(z):
        x, y = np.real(z), np.imag(z)
        return u(x, y) + v(x, y) * 1j

    def u(x, y):
        return a * x + b * y

    def v(x, y):
        return c * x + d * y

    # primal point
    x, y = rng.uniform(size=2)
    z = x + y * 1j

    # cotangent vector
    c, d = rng.uniform(size=2)
    z_bar = np.array(c + d * 1j)  # for dtype control

    # check vjp
    _, fun_vjp = vjp(fun, z)
    ans, = fun_vjp(z_bar)
    expected = (grad(u, 0)(x, y) * c +
                grad(v, 0)(x, y) * (-d) +
                grad(u, 1)(x, y) * c * (-1j) +
                grad(v, 1)(x, y) * (-d) * (-1j))
    assert np.allclose(ans, expected, atol=1e-5, rtol=1e-5)
    math = (a * c - c * d) + 1j * (d * d - b * c)
    return ans, expected, math


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_text_vjp_check(seed):
    ans, expected, math = check_vjp(seed)
    assert_close(ans, math, **EXACT)
    assert_close(expected, math, **EXACT)


# --- grad of C -> R ----------------------------------------------------------------

def f_c2r(z):
    x, y = np.real(z), np.imag(z)
    return x**2 + y**2


def test_text_grad_c_to_r():
    z = 3. + 4j
    g = grad(f_c2r)(z)
    assert np.iscomplexobj(g)
    assert_close(g, 6. - 8.j, **EXACT)                       # Array(6.-8.j, dtype=complex64)
    assert_close(fd_jax_grad(f_c2r, z), 6. - 8.j)            # the convention, from differences


def test_text_grad_complex_output_needs_holomorphic():
    def f(z):
        return np.sin(z)
    with pytest.raises(TypeError, match="holomorphic"):
        grad(f)(3. + 4j)


def test_text_grad_holomorphic_sin():
    def f(z):
        return np.sin(z)
    z = 3. + 4j
    g = grad(f, holomorphic=True)(z)
    assert_close(g, -27.034946 - 3.8511534j, rtol=1e-7, atol=0)   # printed (float32)
    assert_close(g, np.cos(z), **EXACT)


def test_text_grad_holomorphic_on_conjugate():
    def f(z):
        return np.conjugate(z)
    z = 3. + 4j
    g = grad(f, holomorphic=True)(z)  # f is not actually holomorphic!
    assert_close(g, 1. - 0.j, **EXACT)                       # Array(1.-0.j, ...)
    assert np.signbit(np.imag(g))                            # printed as -0.j
    # "the Jacobian of the function where we just discard the imaginary part of the output"
    assert_close(fd_jax_grad(lambda z: np.real(f(z)), z), 1. - 0.j)


@pytest.mark.parametrize("transform", ["grad", "jacfwd", "jacrev"])
def test_holomorphic_with_real_inputs_raises(transform):
    fn = {"grad": ad.grad, "jacfwd": ad.jacfwd, "jacrev": ad.jacrev}[transform]
    with pytest.raises(TypeError):
        fn(np.sin, holomorphic=True)(3.)
    with pytest.raises(TypeError):
        fn(lambda z: np.sin(z) * z, holomorphic=True)(3.)


# --- the complex Cholesky example ------------------------------------------------------

A_CHOL = np.array([[5., 2. + 3j, 5j],
                   [2. - 3j, 7., 1. + 7j],
                   [-5j, 1. - 7j, 12.]])

CHOL_PRINTED = np.array(
    [[-0.7534186 + 0.j, -3.0509028 - 10.940544j, 5.9896846 + 3.5423026j],
     [-3.0509028 + 10.940544j, -8.904491 + 0.j, -5.1351523 - 6.559373j],
     [5.9896846 - 3.5423026j, -5.1351523 + 6.559373j, 0.01320427 + 0.j]])


def f_chol(X):
    L = np.linalg.cholesky(X)
    return np.sum((L - np.sin(L))**2)


def test_text_cholesky():
    g = grad(f_chol, holomorphic=True)(A_CHOL)
    assert g.shape == (3, 3) and np.iscomplexobj(g)
    # float32 run: the printed digits carry ~1e-6 relative rounding
    assert_close(g, CHOL_PRINTED, rtol=1e-5, atol=1e-6)


def _herm(X):
    return (X + np.conj(X).T) / 2


def test_text_cholesky_matches_finite_differences():
    """JAX's cholesky symmetrizes its input, (X + X^H)/2; the text's matrix is JAX's grad
    convention (dRe f/du - i dRe f/dv) of that function."""
    ref = fd_jax_grad(lambda X: np.real(f_chol(_herm(X))), A_CHOL)
    assert_close(ref, CHOL_PRINTED, rtol=1e-5, atol=1e-6)    # the convention explains the text
    assert_close(grad(f_chol, holomorphic=True)(A_CHOL), ref, rtol=1e-6, atol=1e-6)


# ============================== R -> R functions with complex intermediates (upshot 3)

def cos_via_exp(x):
    return np.real(np.exp(1j * x))


def x_sin_x_via_exp(x):
    return np.imag(np.exp(1j * x) * x)


def sq_norm_via_abs(x, y):
    return np.abs(x + 1j * y)**2


def norm_via_abs(x, y):
    return np.abs(x + 1j * y)


def atan2_via_angle(x, y):
    return np.angle(x + 1j * y)


def sq_norm_vec(p):
    return np.abs(p[0] + 1j * p[1])**2


def sum_cos_vec(x):
    w = np.exp(1j * x) * np.conj(np.exp(2j * x))          # = exp(-i x)
    return np.sum(np.real(w))


def test_real_function_with_complex_intermediates_grad():
    x, y = 0.7, -1.3
    assert_close(grad(cos_via_exp)(x), -np.sin(x), **EXACT)
    assert not np.iscomplexobj(grad(cos_via_exp)(x))
    assert_close(grad(x_sin_x_via_exp)(x), np.sin(x) + x * np.cos(x), **EXACT)
    gx, gy = grad(sq_norm_via_abs, argnums=(0, 1))(x, y)
    assert_close([gx, gy], [2 * x, 2 * y], **EXACT)
    r = np.hypot(x, y)
    assert_close(grad(norm_via_abs, argnums=(0, 1))(x, y), [x / r, y / r], **EXACT)
    assert_close(grad(atan2_via_angle, argnums=(0, 1))(x, y), [-y / r**2, x / r**2], **EXACT)
    xs = np.array([0.3, -1.1, 2.0])
    assert_close(grad(sum_cos_vec)(xs), -np.sin(xs), **EXACT)


def test_real_function_with_complex_intermediates_jvp():
    x, y = 0.7, -1.3
    out, t = jvp(cos_via_exp, (x,), (2.0,))
    assert_close([out, t], [np.cos(x), -2 * np.sin(x)], **EXACT)
    out, t = jvp(sq_norm_via_abs, (x, y), (0.5, -2.0))
    assert_close([out, t], [x * x + y * y, 2 * x * 0.5 + 2 * y * -2.0], **EXACT)
    xs, ts = np.array([0.3, -1.1, 2.0]), np.array([1.0, 0.5, -2.0])
    out, t = jvp(sum_cos_vec, (xs,), (ts,))
    assert_close([out, t], [np.sum(np.cos(xs)), -np.sin(xs) @ ts], **EXACT)
    out, t = jvp(atan2_via_angle, (x, y), (1.0, 0.0))
    assert_close([out, t], [np.arctan2(y, x), -y / (x * x + y * y)], **EXACT)


def test_real_function_with_complex_intermediates_hessian():
    x = 0.7
    assert_close(ad.hessian(cos_via_exp)(x), -np.cos(x), **EXACT)
    assert_close(ad.hessian(x_sin_x_via_exp)(x), 2 * np.cos(x) - x * np.sin(x), **EXACT)
    assert_close(ad.hessian(sq_norm_vec)(np.array([0.7, -1.3])), 2 * np.eye(2), **EXACT)
    xs = np.array([0.3, -1.1, 2.0])
    assert_close(ad.hessian(sum_cos_vec)(xs), np.diag(-np.cos(xs)), **EXACT)


def test_real_function_with_complex_intermediates_jacobians():
    xs = np.array([0.3, -1.1, 2.0])

    def f(x):
        return np.real(np.exp(1j * x))

    assert_close(ad.jacfwd(f)(xs), np.diag(-np.sin(xs)), **EXACT)
    assert_close(ad.jacrev(f)(xs), np.diag(-np.sin(xs)), **EXACT)


# ======================================== variations: rules with complex support

Z0 = 0.7 + 0.4j
ZS = np.array([0.7 + 0.4j, -0.3 + 1.1j, 1.5 - 0.6j])
rng = np.random.default_rng(5)
AC = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3)) + 3 * np.eye(3)
BC = rng.normal(size=3) + 1j * rng.normal(size=3)
WC = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
_M = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
HPD = _M @ np.conj(_M).T + 3 * np.eye(3)                   # Hermitian positive definite

# holomorphic scalar functions and their analytic derivatives
HOLO_SCALAR = [
    ("exp", lambda z: np.exp(z), lambda z: np.exp(z)),
    ("log", lambda z: np.log(z), lambda z: 1 / z),
    ("sqrt", lambda z: np.sqrt(z), lambda z: 0.5 / np.sqrt(z)),
    ("sin", lambda z: np.sin(z), lambda z: np.cos(z)),
    ("cos", lambda z: np.cos(z), lambda z: -np.sin(z)),
    ("tanh", lambda z: np.tanh(z), lambda z: 1 - np.tanh(z)**2),
    ("square", lambda z: z**2, lambda z: 2 * z),
    ("cube", lambda z: z**3, lambda z: 3 * z**2),
    ("times_1j", lambda z: 1j * z, lambda z: 1j + 0 * z),
    ("reciprocal", lambda z: 1 / z, lambda z: -1 / z**2),
    ("exp_1j_z_times_z", lambda z: np.exp(1j * z) * z, lambda z: np.exp(1j * z) * (1j * z + 1)),
    ("sin_log", lambda z: np.sin(z) * np.log(z), lambda z: np.cos(z) * np.log(z) + np.sin(z) / z),
    ("z_over_1_plus_z2", lambda z: z / (1 + z * z), lambda z: (1 - z * z) / (1 + z * z)**2),
]


@pytest.mark.parametrize("name,f,df", HOLO_SCALAR, ids=[c[0] for c in HOLO_SCALAR])
def test_holomorphic_grad_scalar(name, f, df):
    assert_close(grad(f, holomorphic=True)(Z0), df(Z0), **EXACT)
    # the same thing through the convention: grad = dRe f/du - i dRe f/dv
    assert_close(fd_jax_grad(lambda z: np.real(f(z)), Z0), df(Z0))


@pytest.mark.parametrize("name,f,df", HOLO_SCALAR, ids=[c[0] for c in HOLO_SCALAR])
def test_holomorphic_jvp_and_vjp_scalar(name, f, df):
    dz, w = 0.3 - 0.8j, -1.2 + 0.5j
    out, t = jvp(f, (Z0,), (dz,))
    assert_close(out, f(Z0), **EXACT)
    assert_close(t, df(Z0) * dz, **EXACT)
    _, pb = vjp(f, Z0)
    ct, = pb(w)
    assert_close(ct, w * df(Z0), **EXACT)                     # no conjugation for holomorphic f


# holomorphic functions of arrays / matrices: analytic gradients of sum-type outputs
ONES = np.ones(3)


def _inv_sum_grad(A):
    Ai = np.linalg.inv(A)
    return -np.outer(Ai.T @ ONES, Ai @ ONES)


HOLO_ARRAY = [
    ("sum_sin", lambda z: np.sum(np.sin(z)), ZS, lambda z: np.cos(z)),
    ("sum_method", lambda z: (z * z).sum(), ZS, lambda z: 2 * z),
    ("dot_const", lambda z: np.dot(BC, z), ZS, lambda z: BC),
    ("dot_self", lambda z: np.dot(z, z), ZS, lambda z: 2 * z),
    ("vdot_const_first", lambda z: np.vdot(BC, z), ZS, lambda z: np.conj(BC)),
    ("matmul_vec", lambda z: np.sum(AC @ z), ZS, lambda z: AC.T @ ONES),
    ("matmul_mat", lambda Z: np.sum(Z @ WC), AC, lambda Z: np.outer(ONES, WC @ ONES)),
    ("solve_b", lambda b: np.sum(np.linalg.solve(AC, b)), BC,
     lambda b: np.linalg.solve(AC.T, ONES)),
    ("solve_A", lambda A: np.sum(np.linalg.solve(A, BC)), AC,
     lambda A: -np.outer(np.linalg.solve(A.T, ONES), np.linalg.solve(A, BC))),
    ("inv", lambda A: np.sum(np.linalg.inv(A)), AC, _inv_sum_grad),
    ("det", lambda A: np.linalg.det(A), AC, lambda A: np.linalg.det(A) * np.linalg.inv(A).T),
]


@pytest.mark.parametrize("name,f,z,df", HOLO_ARRAY, ids=[c[0] for c in HOLO_ARRAY])
def test_holomorphic_grad_array(name, f, z, df):
    expected = df(z)
    assert_close(fd_jax_grad(lambda zz: np.real(f(zz)), z), expected)   # the formula is right
    assert_close(grad(f, holomorphic=True)(z), expected, rtol=1e-10, atol=1e-12)


def test_holomorphic_jacobians():
    def f(z):
        return np.sin(z) * z

    expected = np.diag(np.cos(ZS) * ZS + np.sin(ZS))
    assert_close(ad.jacfwd(f, holomorphic=True)(ZS), expected, **EXACT)
    assert_close(ad.jacrev(f, holomorphic=True)(ZS), expected, **EXACT)
    assert_close(ad.hessian(lambda z: np.sum(z**3), holomorphic=True)(ZS), np.diag(6 * ZS),
                 **EXACT)


def test_holomorphic_grad_two_arguments():
    def f(A, b):
        return np.sum(np.linalg.solve(A, b))

    gA, gb = grad(f, argnums=(0, 1), holomorphic=True)(AC, BC)
    y = np.linalg.solve(AC.T, ONES)
    assert_close(gb, y, rtol=1e-10, atol=1e-12)
    assert_close(gA, -np.outer(y, np.linalg.solve(AC, BC)), rtol=1e-10, atol=1e-12)


# non-holomorphic C -> R functions: grad vs JAX's convention from finite differences
def _chol_norm(X):
    return np.sum(np.abs(np.linalg.cholesky(X))**2)


C2R = [
    ("abs", lambda z: np.abs(z), Z0),
    ("abs_builtin", lambda z: abs(z), Z0),
    ("abs_squared", lambda z: np.abs(z)**2, Z0),
    ("angle", lambda z: np.angle(z), Z0),
    ("real_times_imag", lambda z: np.real(z) * np.imag(z), Z0),
    ("attrs", lambda z: z.real**3 - 2 * z.imag, Z0),
    ("z_conj_z", lambda z: np.real(z * np.conj(z)), Z0),
    ("conjugate_exp", lambda z: np.real(np.conjugate(z) * np.exp(z)), Z0),
    ("conj_method", lambda z: np.imag(z.conj() * z**2), Z0),
    ("imag_log", lambda z: np.imag(np.log(z)), Z0),
    ("abs_sqrt", lambda z: np.abs(np.sqrt(z)), Z0),
    ("real_sin", lambda z: np.real(np.sin(z)), Z0),
    ("abs_tanh", lambda z: np.abs(np.tanh(z)), Z0),
    ("real_cos_times_1j", lambda z: np.real(1j * np.cos(z)), Z0),
    ("sum_abs2", lambda z: np.sum(np.abs(z)**2), ZS),
    ("sum_angle", lambda z: np.sum(np.angle(z) * np.real(z)), ZS),
    ("vdot_quadratic", lambda z: np.real(np.vdot(z, AC @ z)), ZS),
    ("dot_conj", lambda z: np.real(np.dot(np.conj(z), z)), ZS),
    ("matmul_abs", lambda z: np.sum(np.abs(np.matmul(AC, z))), ZS),
    ("abs_det_sq", lambda A: np.abs(np.linalg.det(A))**2, AC),
    ("solve_norm", lambda b: np.sum(np.abs(np.linalg.solve(AC, b))**2), BC),
    ("solve_norm_A", lambda A: np.sum(np.abs(np.linalg.solve(A, BC))**2), AC),
    ("inv_real", lambda A: np.real(np.sum(np.linalg.inv(A) * WC)), AC),
]


@pytest.mark.parametrize("name,f,z", C2R, ids=[c[0] for c in C2R])
def test_grad_c_to_r_convention(name, f, z):
    g = grad(f)(z)
    assert np.iscomplexobj(g) and np.shape(g) == np.shape(z)
    assert_close(g, fd_jax_grad(f, z))


def test_grad_c_to_r_cholesky():
    # JAX's cholesky reads the Hermitian part of its input
    g = grad(_chol_norm)(HPD)
    assert_close(g, fd_jax_grad(lambda X: _chol_norm(_herm(X)), HPD), rtol=1e-6, atol=1e-6)


def test_grad_c_to_r_two_arguments():
    def f(A, b):
        return np.sum(np.abs(np.linalg.solve(A, b))**2)

    gA, gb = grad(f, argnums=(0, 1))(AC, BC)
    assert_close(gA, fd_jax_grad(lambda A: f(A, BC), AC))
    assert_close(gb, fd_jax_grad(lambda b: f(AC, b), BC))


def test_grad_c_to_r_mixed_real_and_complex_arguments():
    def f(x, z):
        return np.abs(x * z + 1)**2

    gx, gz = grad(f, argnums=(0, 1))(0.8, Z0)
    assert not np.iscomplexobj(gx)
    assert_close(gx, (f(0.8 + H, Z0) - f(0.8 - H, Z0)) / (2 * H))
    assert_close(gz, fd_jax_grad(lambda z: f(0.8, z), Z0))


# non-holomorphic C -> C functions with holomorphic=True: the real part's Jacobian
NONHOLO = [
    ("conj", lambda z: np.conj(z), Z0),
    ("conjugate_squared", lambda z: np.conjugate(z)**2, Z0),
    ("abs_times_z", lambda z: np.abs(z) * z, Z0),
    ("real_plus_1j_imag2", lambda z: np.real(z) + 1j * np.imag(z)**2, Z0),
    ("angle_exp", lambda z: np.exp(1j * np.angle(z)), Z0),
    ("sum_conj_sin", lambda z: np.sum(np.sin(np.conj(z)) * z), ZS),
    ("vdot_self_first", lambda z: np.vdot(z, BC), ZS),
    ("cholesky_sum", lambda X: np.sum(np.linalg.cholesky(X)), HPD),
]


@pytest.mark.parametrize("name,f,z", NONHOLO, ids=[c[0] for c in NONHOLO])
def test_holomorphic_true_on_non_holomorphic(name, f, z):
    ff = (lambda X: f(_herm(X))) if name.startswith("cholesky") else f
    expected = fd_jax_grad(lambda zz: np.real(ff(zz)), z)
    assert_close(grad(f, holomorphic=True)(z), expected, rtol=1e-6, atol=1e-6)


# JVP on the real pair and VJP with the text's convention, for every kind of function
C2C = [(n, f, z) for n, f, z in NONHOLO] + [
    ("sin", np.sin, Z0),
    ("exp_array", lambda z: np.exp(z) * np.conj(z), ZS),
    ("real", lambda z: np.real(z) + 0j, ZS),
    ("imag_times_z", lambda z: np.imag(z) * z, ZS),
    ("abs_array", lambda z: np.abs(z) + 0j, ZS),
    ("angle_array", lambda z: np.angle(z) * z, ZS),
    ("matmul_conj", lambda z: AC @ np.conj(z), ZS),
    ("solve_conj", lambda b: np.linalg.solve(AC, np.conj(b)), BC),
    ("inv_conj", lambda A: np.linalg.inv(np.conj(A)), AC),
    ("det_abs", lambda A: np.linalg.det(A) * np.abs(A[0, 0]), AC),
    ("cholesky", lambda X: np.linalg.cholesky(X), HPD),
]
C2C_IDS = [c[0] for c in C2C]


def _hermitian_direction(z, name):
    rng = np.random.default_rng(11)
    d = rng.normal(size=np.shape(z)) + 1j * rng.normal(size=np.shape(z))
    return _herm(d) if name.startswith("cholesky") else (d if np.ndim(d) else d[()])


@pytest.mark.parametrize("name,f,z", C2C, ids=C2C_IDS)
def test_jvp_on_the_real_pair(name, f, z):
    dz = _hermitian_direction(z, name)   # cholesky: stay on Hermitian matrices
    out, t = jvp(f, (z,), (dz,))
    assert_close(out, f(z), **EXACT)
    assert_close(t, fd_jvp(f, z, dz), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,f,z", C2C, ids=C2C_IDS)
def test_vjp_conjugation_convention(name, f, z):
    ff = (lambda X: f(_herm(X))) if name.startswith("cholesky") else f
    out = f(z)
    rng = np.random.default_rng(12)
    w = rng.normal(size=np.shape(out)) + 1j * rng.normal(size=np.shape(out))
    w = w if np.ndim(w) else w[()]
    _, pb = vjp(f, z)
    ct, = pb(w)
    assert_close(ct, fd_vjp(ff, z, w), rtol=1e-6, atol=1e-6)
    # duality: Re<w, J dz> = Re<vjp(w), dz> with the bilinear (unconjugated) pairing
    dz = _hermitian_direction(z, name)
    _, t = jvp(f, (z,), (dz,))
    assert_close(np.real(np.sum(w * t)), np.real(np.sum(ct * dz)), rtol=1e-10, atol=1e-10)


def test_grad_of_complex_array_output_without_holomorphic_raises():
    with pytest.raises(TypeError, match="holomorphic"):
        grad(lambda z: np.sum(z * z))(ZS)
    with pytest.raises(TypeError, match="holomorphic"):
        grad(lambda x: np.exp(1j * x))(0.5)       # real input, complex output


def test_vjp_of_real_valued_intermediates_takes_the_real_part():
    """A real value promoted to complex (x + 0j, x * (1+0j)) passes back only the real part
    of a complex cotangent: phi = Re(w * f) is what the text's VJP differentiates."""
    _, pb = vjp(lambda x: x + 0j, 1.0)
    ct, = pb(1j)                                   # phi = Re(1j * x) = 0
    assert_close(ct, 0.0, **EXACT)
    _, pb = vjp(lambda x: x * (2 + 1j), 1.0)
    ct, = pb(1j)                                   # phi = Re(1j * (2+1j) x) = -x
    assert_close(ct, -1.0, **EXACT)
    assert not np.iscomplexobj(ct)                 # a real primal gets a real cotangent
    _, pb = vjp(lambda z: np.real(z) + 0j, 1 + 1j)
    assert_close(pb(1j)[0], 0j, **EXACT)           # phi = Re(1j * x) = 0
    _, pb = vjp(lambda z: np.real(z) * (1 + 0j), 1 + 1j)
    assert_close(pb(1j)[0], 0j, **EXACT)
    _, pb = vjp(lambda z: np.abs(z) + 0j, 1 + 1j)
    assert_close(pb(1j)[0], 0j, **EXACT)


def test_jax_dtype_checks_beyond_the_text():
    """jax._src.api: grad/jacrev/jacfwd with holomorphic=True require complex outputs
    (_check_output_dtype_revderiv / _check_output_dtype_jacfwd); jacfwd without it requires
    real inputs, jacrev without it requires real outputs."""
    with pytest.raises(TypeError):
        grad(f_c2r, holomorphic=True)(3. + 4j)        # real output
    with pytest.raises(TypeError):
        ad.jacrev(lambda z: np.abs(z), holomorphic=True)(ZS)
    with pytest.raises(TypeError):
        ad.jacfwd(lambda z: np.abs(z), holomorphic=True)(ZS)
    with pytest.raises(TypeError):
        ad.jacfwd(lambda z: np.abs(z))(ZS)            # complex input, no promise
    with pytest.raises(TypeError):
        ad.jacrev(lambda z: z * z)(ZS)                # complex output, no promise
    # ... while real-input functions with complex intermediates need no promise
    assert_close(ad.jacrev(lambda x: np.real(np.exp(1j * x)))(ZS.real), np.diag(-np.sin(ZS.real)),
                 **EXACT)


# ============================================= generated source compiles with Numba

NUMBA_CASES = [
    ("holo_sin_times_z", lambda z: np.sin(z) * z, True, (Z0,),
     lambda z: np.cos(z) * z + np.sin(z)),
    ("holo_log_sqrt", lambda z: np.log(z) * np.sqrt(z), True, (Z0,),
     lambda z: np.sqrt(z) / z + 0.5 * np.log(z) / np.sqrt(z)),
    ("c2r_text", f_c2r, False, (3. + 4j,), lambda z: 6. - 8.j),
    ("c2r_sum_abs2", lambda z: np.sum(np.abs(z)**2), False, (ZS,), lambda z: 2 * np.conj(z)),
    ("r2r_cos_via_exp", cos_via_exp, False, (0.7,), lambda x: -np.sin(x)),
    ("holo_matmul", lambda z: np.sum(AC @ z), True, (ZS,), lambda z: AC.T @ ONES),
    ("text_cholesky", f_chol, True, (A_CHOL,), lambda A: CHOL_PRINTED),
]


@pytest.mark.parametrize("name,f,holo,args,df", NUMBA_CASES, ids=[c[0] for c in NUMBA_CASES])
def test_complex_grad_source_compiles_with_numba(name, f, holo, args, df):
    pytest.importorskip("numba")
    from numba_util import njit_transformed
    g = grad(f, holomorphic=holo)
    src = ad.source(g, *args)
    assert "def " in src
    compiled = njit_transformed(g, *args)
    got = compiled(*args)
    tol = dict(rtol=1e-5, atol=1e-6) if name == "text_cholesky" else EXACT
    assert_close(got, df(*args), **tol)
    assert_close(got, g(*args), rtol=1e-12, atol=1e-12)
