"""Complex numbers and differentiation.

Reproduces, with NumPy, the section "Complex numbers and differentiation" of
../shared/seeds/000_05b138253ade469f.txt: the JVP check on the real pair (u, v), the VJP
check with the text's conjugation convention, grad of a C -> R function (6-8j),
grad(..., holomorphic=True) of sin and of the (not holomorphic) conjugate, and the gradient
through a Cholesky decomposition of a complex matrix.

jnp becomes np, jax.random becomes np.random.default_rng(seed), so the random
coefficients differ from the text's; the checks print the same lines.  The text ran in
float32 (complex64), s2sad in float64 (complex128), so the numbers here carry more digits.
"""

import numpy as np

import s2sad as ad

grad, jvp, vjp = ad.grad, ad.jvp, ad.vjp


# JVPs: f(z) = u(x, y) + v(x, y) i, differentiated on the real pair ---------------------

def check(seed):
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

    # tangent vector
    c, d = rng.uniform(size=2)
    z_dot = c + d * 1j

    # check jvp
    _, ans = jvp(fun, (z,), (z_dot,))
    expected = (grad(u, 0)(x, y) * c +
                grad(u, 1)(x, y) * d +
                grad(v, 0)(x, y) * c * 1j +
                grad(v, 1)(x, y) * d * 1j)
    print(np.allclose(ans, expected))


check(0)
check(1)
check(2)


# VJPs: (c + di)^* df = [c, -d] J [1, -i]^T ----------------------------------------------

def check(seed):  # noqa: F811  (the text redefines check)
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


check(0)
check(1)
check(2)


# grad of C -> R: the cotangent 1.0 gives df/dx - i df/dy --------------------------------

def f(z):
    x, y = np.real(z), np.imag(z)
    return x**2 + y**2


z = 3. + 4j
print(grad(f)(z))


# holomorphic C -> C: promise it with holomorphic=True ----------------------------------

def f(z):
    return np.sin(z)


z = 3. + 4j
print(grad(f, holomorphic=True)(z))


def f(z):
    return np.conjugate(z)


z = 3. + 4j
print(grad(f, holomorphic=True)(z))  # f is not actually holomorphic!


# differentiating through a Cholesky decomposition of a complex matrix -----------------

A = np.array([[5.,    2.+3j,    5j],
              [2.-3j,   7.,  1.+7j],
              [-5j,  1.-7j,    12.]])


def f(X):
    L = np.linalg.cholesky(X)
    return np.sum((L - np.sin(L))**2)


print(grad(f, holomorphic=True)(A))
