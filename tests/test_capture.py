"""Capture: every way a function can reach s2sad."""

import linecache
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import s2sad as ad

import capture_cases as C


def d(f, x):
    """Derivative of a scalar function by forward mode."""
    return ad.jvp(f, (x,), (1.0,))[1]


def test_two_lambdas_on_one_line():
    assert d(C.pair[0], 0.5) == pytest.approx(3.0)
    assert d(C.pair[1], 0.5) == pytest.approx(np.cos(0.5) * 0.5 + np.sin(0.5))


def test_lambda_returned_by_lambda():
    inner = C.nested_lambdas(3.0)
    assert d(inner, 2.0) == pytest.approx(3.0 * 2 * 2.0)


def test_nested_def_closure():
    inner = C.make_closure(2.0, 1.5)
    assert d(inner, 0.3) == pytest.approx(1.5 * 2.0)


def test_defaults_and_keywords():
    assert d(C.with_defaults, 1.0) == pytest.approx(2 * 1.5)
    assert d(C.outer_with_nested, 1.5) == pytest.approx(3 * 2 * 1.5)


def test_partial():
    assert d(C.partial_defaults, 1.0) == pytest.approx(3 * 1.5 ** 2)


def test_numpy_primitive_directly():
    x = np.array([0.1, 0.7])
    y, t = ad.jvp(np.sin, (x,), (np.ones(2),))
    np.testing.assert_allclose(t, np.cos(x))
    J = ad.jacfwd(np.tanh)(x)
    np.testing.assert_allclose(J, np.diag(1 - np.tanh(x) ** 2))
    _, t = ad.jvp(np.arctan2, (0.3, 0.8), (1.0, 0.0))
    assert t == pytest.approx(0.8 / (0.3 ** 2 + 0.8 ** 2))


def test_source_held_by_linecache():
    """Notebook cells keep their source in linecache under a synthetic file name."""
    src = "import numpy as np\ndef cell_fn(x):\n    return np.exp(x) * x\n"
    filename = "<ipython-input-42-abcdef>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    ns = {}
    exec(compile(src, filename, "exec"), ns)
    assert d(ns["cell_fn"], 0.5) == pytest.approx(np.exp(0.5) * 1.5)


def test_python_dash_c():
    code = textwrap.dedent("""
        import s2sad as ad
        f = lambda x: x * x * 3.0; g = lambda x: x + 1.0
        print(ad.jvp(f, (2.0,), (1.0,))[1], ad.jvp(g, (2.0,), (1.0,))[1])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["12.0", "1.0"]


def test_unreadable_source_gives_transform_error():
    ns = {}
    exec(compile("def nosrc(x):\n    return x * 2\n", "<nowhere>", "exec"), ns)
    with pytest.raises(ad.TransformError, match="cannot read the source.*hint"):
        d(ns["nosrc"], 1.0)


def test_generated_functions_are_transformed_again():
    jf = ad.jacfwd(C.with_defaults)
    jf(1.0)
    gen_fn = jf.specialize((ad.api.pipeline.skeleton_of(1.0),))._generated.fn
    # d/dx of the derivative 2 (x + 0.5) is 2
    assert d(gen_fn, 1.0) == pytest.approx(2.0)


def test_changed_global_is_not_served_stale():
    f = ad.jacfwd(C.uses_global)
    assert f(1.0) == pytest.approx(2.0)
    old = C.K
    try:
        C.K = 5.0
        assert f(1.0) == pytest.approx(5.0)
        assert d(C.uses_global, 1.0) == pytest.approx(5.0)
    finally:
        C.K = old


def test_same_transform_twice_is_a_lookup():
    f1 = ad.jacfwd(C.with_defaults)
    f2 = ad.jacfwd(C.with_defaults)
    skel = (ad.api.pipeline.skeleton_of(1.0),)
    assert f1.specialize(skel) is f2.specialize(skel)


def test_array_from_outside_rebound_in_a_loop():
    # y = SCALES on entry to the loop, a runtime array after it: one variable that starts
    # as its own copy of SCALES (the write y[0] = 5 must not change SCALES)
    x = 0.5
    assert ad.grad(C.rebound_captured)(x) == pytest.approx(2.0 * 3 * x ** 2)
    assert d(C.rebound_captured, x) == pytest.approx(2.0 * 3 * x ** 2)
    assert C.rebound_captured(x) == pytest.approx(5.0 + 2.0 * x ** 3)
    np.testing.assert_array_equal(C.SCALES, [1.0, 2.0])
