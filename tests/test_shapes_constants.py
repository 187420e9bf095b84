"""Shape operations and array constructors (runtime/rules/shapes.py, constants.py) in
context: composed with other primitives, differentiated twice, with dtype=, the
multi-output np.split, the errors they raise, and the JVP source under numba.njit."""

import warnings

import numpy as np
import pytest

import s2sad as ad
from s2sad import api
from s2sad.errors import TransformError

rng = np.random.default_rng(20261126)


def fd_jvp(f, primals, tangents, h=1e-6):
    plus = f(*[p + h * t for p, t in zip(primals, tangents)])
    minus = f(*[p - h * t for p, t in zip(primals, tangents)])
    if isinstance(plus, tuple):
        return tuple((np.asarray(a) - np.asarray(b)) / (2 * h) for a, b in zip(plus, minus))
    return (np.asarray(plus) - np.asarray(minus)) / (2 * h)


def tangent_like(p, complex_=False):
    if np.ndim(p) == 0:
        return complex(rng.normal(), rng.normal()) if complex_ else float(rng.normal())
    t = rng.normal(size=np.shape(p))
    return t + 1j * rng.normal(size=np.shape(p)) if complex_ else t


def check_jvp(f, *primals, complex_=False, tol=1e-6):
    tangents = tuple(tangent_like(p, complex_) for p in primals)
    out, tan = ad.jvp(f, primals, tangents)
    expected = f(*primals)
    fd = fd_jvp(f, primals, tangents)
    if isinstance(expected, tuple):
        for o, e, t, d in zip(out, expected, tan, fd):
            np.testing.assert_allclose(o, e, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(t, d, rtol=1e-5, atol=tol)
    else:
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        assert np.shape(tan) == np.shape(expected)
        np.testing.assert_allclose(tan, fd, rtol=1e-5, atol=tol)
    return tan


# ------------------------------------------------------------- composed expressions

def zeros_plus(x):
    return np.zeros(3) + x


def eye_matmul(x):
    return x @ np.eye(3)


def arange_times(x):
    return np.arange(5) * x


def full_times(v):
    return np.full((2, 3), v) * 2


def linspace_ab(a, b):
    return np.linspace(a, b, 5)


def array_pair(x, y):
    return np.array([x, y]) * 2


def array_nested(x, y):
    return np.array([[x, 1.0], [2.0, y]])


def ones_like_mix(x):
    return np.ones_like(x) * x + np.zeros_like(x) + np.identity(2) @ x


def stack_rows(x):
    rows = []
    for i in range(3):
        rows.append(x * (i + 1.0))
    return np.stack(rows, axis=1)


def shapes_chain(x):
    y = x.reshape(2, 3).T
    z = np.concatenate((y, np.ones((3, 1)), y[:, :1] ** 2), axis=1)
    w = np.flip(np.roll(z, 1, axis=0), -1)
    return np.sum(np.triu(w[:, :3]) ** 2) + np.sum(np.expand_dims(np.ravel(w), 0) * 0.5)


def split_and_join(x):
    a, b, c = np.split(x, 3)
    return np.hstack((c, a * b, np.tile(a, 2)))


def split_indices(x):
    parts = np.split(x, [1, 3], axis=1)
    return parts[0] * np.sum(parts[1]) + np.sum(parts[2] ** 2, axis=1, keepdims=True)


def split_sum(x):
    total = 0.0
    for p in np.array_split(x, 3):
        total = total + np.sum(p * p)
    return total


def take_repeat(x):
    return np.take(np.repeat(x, 2, axis=0), (0, 3, 5), axis=0).T


def linspace_retstep(a, b):
    samples, step = np.linspace(a, b, 4, retstep=True)
    return samples * step


def moves(x):
    y = np.moveaxis(np.swapaxes(x, 0, 1), 0, -1)
    return y.squeeze() + np.broadcast_to(x[0, 0, 0], (3, 2))


COMPOSED = [
    ("zeros_plus", zeros_plus, (rng.normal(size=3),)),
    ("eye_matmul", eye_matmul, (rng.normal(size=(2, 3)),)),
    ("arange_times", arange_times, (0.7,)),
    ("full_times", full_times, (0.3,)),
    ("linspace_ab", linspace_ab, (0.3, 1.9)),
    ("array_pair", array_pair, (0.3, -1.2)),
    ("array_nested", array_nested, (0.3, -1.2)),
    ("ones_like_mix", ones_like_mix, (rng.normal(size=2),)),
    ("stack_rows", stack_rows, (rng.normal(size=4),)),
    ("shapes_chain", shapes_chain, (rng.normal(size=6),)),
    ("split_and_join", split_and_join, (rng.normal(size=6),)),
    ("split_indices", split_indices, (rng.normal(size=(2, 5)),)),
    ("split_sum", split_sum, (rng.normal(size=7),)),
    ("take_repeat", take_repeat, (rng.normal(size=(3, 2)),)),
    ("linspace_retstep", linspace_retstep, (0.3, 1.9)),
    ("moves", moves, (rng.normal(size=(1, 2, 3)),)),
]


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("name,f,args", COMPOSED, ids=[c[0] for c in COMPOSED])
def test_composed_jvp(name, f, args, complex_):
    if complex_:
        args = tuple(a + 0.5j * np.ones_like(a) if np.ndim(a) else complex(a, 0.5) for a in args)
    check_jvp(f, *args, complex_=complex_)


def h_shapes(v):
    return np.sum(shapes_chain(v) ** 2)


def h_split(v):
    return np.sum(split_indices(np.reshape(v, (2, 5))) ** 2)


def h_array_split(v):
    return split_sum(v) ** 2


def h_linspace(v):
    return np.sum(np.linspace(v[0], v[1], 5) ** 3)


def h_array(v):
    return np.sum(np.array([[v[0], 1.0], [2.0, v[1]]]) ** 3)


def h_full(v):
    return np.sum(np.full((2, 2), v[0]) * np.stack((v, v ** 2)))


SECOND = [("shapes", h_shapes, 6), ("split", h_split, 10), ("array_split", h_array_split, 7),
          ("linspace", h_linspace, 2), ("array", h_array, 2), ("full", h_full, 2)]


@pytest.mark.parametrize("name,g,n", SECOND, ids=[c[0] for c in SECOND])
def test_second_order(name, g, n):
    """The rules call registered primitives only, so their JVP can be differentiated again."""
    x = rng.normal(size=n)
    hess = ad.jacfwd(ad.jacfwd(g))(x)
    h = 1e-4

    def grad(v):
        return np.array([(g(v + h * e) - g(v - h * e)) / (2 * h) for e in np.eye(n)])
    fd = np.array([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(n)])
    np.testing.assert_allclose(hess, fd, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------- generated code

def test_split_is_unpacked_in_the_tangent_code():
    src = ad.source(api.jvp_function(split_and_join), np.ones(6), np.ones(6))
    assert "= np.split(x_dot, 3)" in src
    line = next(s for s in src.splitlines() if "np.split(x_dot" in s)
    assert line.split("=")[0].count(",") == 2  # three tangent names


def test_unknown_number_of_pieces_is_a_transform_error():
    def f(x):
        n = int(x[0] > 0) + 1
        return np.split(x, n)[0]
    with pytest.raises(TransformError, match="number of pieces must be known") as e:
        ad.jvp(f, (np.ones(4),), (np.ones(4),))
    assert isinstance(e.value, TypeError)


def test_runtime_retstep_is_a_transform_error():
    def f(a, r):
        return np.linspace(a, 2.0, 3, retstep=r > 0)[0]
    with pytest.raises(TransformError, match="retstep must be known"):
        ad.jvp(f, (0.5, 1.0), (1.0, 0.0))


def test_integer_dtype_gives_a_zero_tangent():
    def f(v):
        return np.full(3, v, dtype=int) * 1.0 + np.array((v, 2.0 * v), dtype=np.int64)[0]
    out, tan = ad.jvp(f, (1.7,), (1.0,))
    np.testing.assert_array_equal(tan, np.zeros(3))
    src = ad.source(api.jvp_function(f), 1.7, 1.0)
    assert "np.full(3, v_dot" not in src


def test_float_dtypes_pass_through_to_the_tangent():
    def f(v, x):
        return np.full(2, v, dtype=np.float32), np.linspace(v, 1.0, 3, dtype=complex), \
            np.full(2, v, dtype=x.dtype)
    (a, b, c), (ta, tb, tc) = ad.jvp(f, (0.5, np.ones(2)), (1.0, np.zeros(2)))
    assert ta.dtype == np.float32 and tb.dtype == np.complex128 and tc.dtype == np.float64
    np.testing.assert_allclose(tb, [1.0, 0.5, 0.0])


def test_full_like_of_an_active_prototype_has_a_zero_tangent():
    def f(x):
        return np.full_like(x, 3.0) + np.zeros_like(x) + np.empty_like(x) * 0.0
    _, tan = ad.jvp(f, (np.ones(3),), (np.ones(3),))
    np.testing.assert_array_equal(tan, np.zeros(3))


def test_nested_array_literal_with_an_inactive_row():
    def f(x, y):
        return np.array([[x, y], [1.0, 2.0]])
    check_jvp(f, 0.3, -1.2)


def test_method_on_a_computed_receiver():
    def f(x):
        return (x * 2).reshape(-1)
    check_jvp(f, np.ones((2, 3)))


# ------------------------------------------------------------- Numba

NUMBA_CASES = [
    ("reshape", lambda x: np.reshape(x, (2, 6)) + x.reshape(-1, 6) + np.reshape(np.ravel(x.T), (2, 6)),
     (3, 4)),
    ("transpose", lambda x: np.transpose(x, (1, 2, 0))
     * np.transpose(np.swapaxes(np.moveaxis(x, 0, -1), 0, 1), (1, 0, 2)), (2, 3, 4)),
    ("join", lambda x: np.vstack((np.concatenate((x, x), axis=1), np.hstack((x, x)))), (3, 4)),
    ("stack", lambda x: np.stack((x, 2.0 * x), axis=1) + np.expand_dims(x, 1), (3, 4)),
    ("split", lambda x: np.split(x, 3)[1] * np.split(x, [2, 4])[0], (6,)),
    ("misc", lambda x: np.flip(np.roll(np.tril(x), 2)) + np.triu(np.take(x, (0, 2, 1), axis=0), 1),
     (3, 3)),
    ("constructors", lambda x: np.full((3,), x[0]) * np.linspace(x[1], x[2], 3)
     + np.array((x[0], 1.0, x[1])) + np.zeros(3) + np.eye(3)[0] + np.arange(3) * x, (3,)),
]


@pytest.mark.parametrize("name,f,shape", NUMBA_CASES, ids=[c[0] for c in NUMBA_CASES])
def test_jvp_source_compiles_with_numba(name, f, shape):
    pytest.importorskip("numba")
    from numba_util import njit_transformed
    x = rng.normal(size=shape)
    t = rng.normal(size=shape)
    jf = api.jvp_function(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = njit_transformed(jf, x, t)
        got = compiled(x, t)
    expected = jf(x, t)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
