"""vmap through every construct of SPEC section 3, against a loop over the batch.

Each program of tests/programs.py is batched along its differentiated argument (the
others unbatched, ``in_axes=None``) and compared with the program applied to each
element of the batch; so are its gradient (``vmap(grad(f))``, per-example gradients)
and its JVP.
"""

import numpy as np
import pytest

import s2sad as ad

from test_jvp_programs import CASES

FACTORS = (1.0, 0.93, 1.07)


def stack(values):
    first = values[0]
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*[stack([v[i] for v in values]) for i in range(len(first))])
    if isinstance(first, (tuple, list)):
        return type(first)(stack([v[i] for v in values]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: stack([v[k] for v in values]) for k in first}
    return np.stack([np.asarray(v) for v in values])


def scale(value, factor):
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[scale(v, factor) for v in value])
    if isinstance(value, (tuple, list)):
        return type(value)(scale(v, factor) for v in value)
    if isinstance(value, dict):
        return {k: scale(v, factor) for k, v in value.items()}
    if isinstance(value, (bool, int, np.integer)) or np.result_type(value).kind not in "fc":
        return value
    return value * factor


def assert_tree_close(actual, expected, what):
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), what
        for k in expected:
            assert_tree_close(actual[k], expected[k], what)
        return
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), what
        for a, e in zip(actual, expected):
            assert_tree_close(a, e, what)
        return
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=what)


def batched_args(args, i):
    items = [scale(args[i], f) for f in FACTORS]
    in_axes = tuple(0 if j == i else None for j in range(len(args)))
    return items, in_axes, [stack(items) if j == i else a for j, a in enumerate(args)]


def loop(fun, args, i, items):
    return stack([fun(*[it if j == i else a for j, a in enumerate(args)]) for it in items])


@pytest.mark.parametrize("name,f,args,i", CASES, ids=[c[0] for c in CASES])
def test_vmap_matches_a_loop(name, f, args, i):
    items, in_axes, bargs = batched_args(args, i)
    expected = loop(f, args, i, items)
    assert_tree_close(ad.vmap(f, in_axes=in_axes)(*bargs), expected, name)


SCALAR = [c for c in CASES if np.ndim(c[1](*c[2])) == 0]


@pytest.mark.parametrize("name,f,args,i", SCALAR, ids=[c[0] for c in SCALAR])
def test_per_example_gradients(name, f, args, i):
    items, in_axes, bargs = batched_args(args, i)
    g = ad.grad(f, argnums=i)
    expected = loop(g, args, i, items)
    assert_tree_close(ad.vmap(g, in_axes=in_axes)(*bargs), expected, name)


@pytest.mark.parametrize("name,f,args,i", CASES, ids=[c[0] for c in CASES])
def test_vmap_of_jvp(name, f, args, i):
    items, in_axes, bargs = batched_args(args, i)
    tangent = scale(args[i], 0.5)

    def at(u):
        return f(*[u if j == i else x for j, x in enumerate(args)])

    def pushed(u):
        return ad.jvp(at, (u,), (tangent,))
    expected = stack([pushed(it) for it in items])
    assert_tree_close(ad.vmap(pushed)(bargs[i]), expected, name)


def linalg_mix(a, b):
    return np.sum(np.linalg.solve(a, b)) + np.linalg.det(a) + np.sum(np.linalg.inv(a) ** 2) \
        + np.linalg.slogdet(a)[1] + np.sum(np.linalg.eigh(a @ a.T)[0]) \
        + np.sum(np.linalg.cholesky(a @ a.T + np.eye(3)))


def test_linalg_is_vectorised_and_differentiable_both_ways():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 3, 3)) + 3 * np.eye(3)
    b = rng.normal(size=(4, 3))
    assert "a loop over the batch" not in ad.source(ad.vmap(linalg_mix), A, b)
    assert_tree_close(ad.vmap(linalg_mix)(A, b), np.array([linalg_mix(A[i], b[i]) for i in range(4)]),
                      "vmap")
    g = ad.grad(linalg_mix, argnums=(0, 1))
    assert_tree_close(ad.vmap(g)(A, b), stack([g(A[i], b[i]) for i in range(4)]), "vmap(grad)")
    # grad of a function that calls vmap: the batched code is differentiated
    total = lambda A, b: np.sum(ad.vmap(linalg_mix)(A, b) ** 2)  # noqa: E731
    want = stack([ad.grad(lambda a, bb: linalg_mix(a, bb) ** 2, argnums=(0, 1))(A[i], b[i])
                  for i in range(4)])
    got = ad.grad(total, argnums=(0, 1))(A, b)
    assert_tree_close(tuple(got), tuple(want), "grad(vmap)")
    J = ad.jacfwd(ad.vmap(linalg_mix))(A, b)
    for i in range(4):
        np.testing.assert_allclose(J[i, i], g(A[i], b[i])[0], rtol=1e-9, atol=1e-12)


C23 = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])
C32 = np.array([[0.3, -0.6], [1.2, 0.9], [-0.4, 0.8]])


def returns_early_per_example(x, y):
    if np.max(y * np.array([0.7, -1.3])) < (0.25 + x[2]):
        return {'p': ((y * C23) * x) / 2.0, 'q': (np.sum(x) * C32) - (y * C32)}
    return {'p': (x * C23) / (2.0 + np.cos(0.3)),
            'q': (np.sum(x) * C32) - (np.minimum(np.sum(x) * C32, y * C32) / 2.0)}


def sum_sin_of_returns_early(x, y):
    r = returns_early_per_example(x, y)
    return np.sum(np.sin(r['p'])) + np.sum(np.sin(r['q']))


@pytest.mark.parametrize("y", [0.3, -0.8, 1.4])
def test_per_example_gradient_through_a_return_decided_per_example(y):
    # found by the vmap fuzz oracle: the helper's early return, decided per example, makes
    # its forward sweep a loop over the batch whose tapes have another length in each
    # example (Ragged); the backward sweep must read them example by example (it called
    # len() on them: TypeError)
    xs = np.array([[0.2, -0.4, 1.1], [0.9, 0.1, -1.2], [-0.3, 0.5, 0.05]])
    g = ad.grad(sum_sin_of_returns_early)
    got = ad.vmap(g, in_axes=(0, None))(xs, y)
    want = np.stack([g(x, y) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def returns_early_under_an_unbatched_test(x, y):
    if y > 0.0:                 # unbatched: `result` is assigned on this path only
        if x[0] < 1.5:          # batched
            return 0.3 + y * x[1]
    return np.sum(x) * y


@pytest.mark.parametrize("y", [0.7, -0.7])
def test_a_return_decided_per_example_under_an_unbatched_test(y):
    # found by the vmap fuzz oracle (campaign seed 903): the select of the final return read
    # the result of the inner return on the path where the unbatched test was false and no
    # example had assigned it (UnboundLocalError)
    xs = np.array([[1.0, 2.0], [2.0, 0.5], [0.5, 1.0]])
    f = returns_early_under_an_unbatched_test
    inner = (y > 0) & (xs[:, 0] < 1.5)
    want = np.where(inner, 0.3 + y * xs[:, 1], xs.sum(axis=1) * y)
    np.testing.assert_allclose(ad.vmap(f, in_axes=(0, None))(xs, y), want, rtol=1e-14)
    want_grad = np.where(inner[:, None], np.stack([np.zeros(3), np.full(3, y)], axis=1),
                         np.full((3, 2), y))
    np.testing.assert_allclose(ad.vmap(ad.grad(f), in_axes=(0, None))(xs, y), want_grad, rtol=1e-14)


def test_differentiating_a_vmap_that_runs_per_example_is_refused_with_the_line():
    # grad(vmap(f)) where the batched code loops over the batch used to fail with
    # "internal: unknown callee 'stack_assigned'"; the per-example helpers have no rules yet
    xs = np.array([[1.0, 2.0], [2.0, 0.5], [0.5, 1.0]])
    f = returns_early_under_an_unbatched_test
    first = f.__code__.co_firstlineno

    def loss(xs):
        return np.sum(ad.vmap(f, in_axes=(0, None))(xs, 0.7))
    with pytest.raises(ad.TransformError, match=r"test_vmap_programs\.py:(\d+): differentiating this "
                                                r"vmap is not supported yet.*hint: apply vmap last") as e:
        ad.grad(loss)(xs)
    assert first < e.value.lineno <= first + 3    # a line of the branches decided per example
    np.testing.assert_allclose(ad.vmap(ad.grad(f), in_axes=(0, None))(xs, 0.7)[:, 1], [0.7, 0.7, 0.7])


def _twice(a):
    return a * 2.0


def rebinds_an_unbatched_argument(x, y):
    y = x * np.sum(y)           # y comes in unbatched and leaves batched
    if np.sum(y) <= 2.0:        # the call in a branch decided per example: one loop for all
        return _twice(np.sum(y)), np.sum(x)
    return np.sum(y), np.max(y)


def test_an_unbatched_argument_rebound_inside_a_function_that_loops_over_the_batch():
    # found by the vmap fuzz oracle (campaign seed 904), a silently wrong result: the
    # function ran as one loop over the batch and sliced the unbatched argument y along its
    # last axis (`y_i = y[..., i]`), so each example read one element of y
    xs = np.array([[0.5, 0.25], [1.0, 0.5], [0.25, 0.25]])
    y = np.array([1.0, 0.5, 0.25])                 # np.sum(y) = 1.75
    got = ad.vmap(rebinds_an_unbatched_argument, in_axes=(0, None))(xs, y)
    s = 1.75 * xs.sum(axis=1)                       # np.sum of the rebound y: 1.3125, 2.625, 0.875
    early = s <= 2.0
    np.testing.assert_allclose(got[0], np.where(early, 2.0 * s, s), rtol=1e-14)
    np.testing.assert_allclose(got[1], np.where(early, xs.sum(axis=1), 1.75 * xs.max(axis=1)), rtol=1e-14)
    g = ad.vmap(ad.grad(lambda x, y: sum(rebinds_an_unbatched_argument(x, y))), in_axes=(0, None))(xs, y)
    np.testing.assert_allclose(g, [[4.5, 4.5], [3.5, 1.75], [4.5, 4.5]], rtol=1e-14)


def params_dot(p, x):
    return np.sum(p["w"] * x) + p["b"][0] * np.sum(p["b"][1])


def test_in_axes_is_a_tree_prefix_of_the_arguments():
    p = {"w": np.ones(3), "b": (2.0, np.arange(3.0))}
    X = np.arange(12.0).reshape(4, 3)
    # None for a whole dict; then None / 0 for its entries (an int or None stands for its
    # subtree, as in JAX)
    np.testing.assert_allclose(ad.vmap(params_dot, in_axes=(None, 0))(p, X),
                               [params_dot(p, x) for x in X], rtol=1e-12)
    q = {"w": np.ones(3), "b": (2.0, X)}
    np.testing.assert_allclose(ad.vmap(params_dot, in_axes=({"w": None, "b": (None, 0)}, 0))(q, X),
                               [params_dot({"w": np.ones(3), "b": (2.0, x)}, x) for x in X], rtol=1e-12)
    with pytest.raises(ValueError, match="tree prefix.*argument 0"):
        ad.vmap(params_dot, in_axes=({"w": None}, 0))(p, X)
    # inside a differentiated function too: d/dw sum_i w . x_i = sum_i x_i
    g = ad.grad(lambda p, X: np.sum(ad.vmap(params_dot, in_axes=(None, 0))(p, X)))
    np.testing.assert_allclose(g(p, X)["w"], X.sum(axis=0), rtol=1e-12)
