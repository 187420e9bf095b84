"""API contract: argument checks, TransformError locations, source, tracebacks."""

import re
import subprocess
import sys
import traceback

import numpy as np
import pytest

import s2sad as ad

import programs as P
import unsupported as U


def line_of(marker):
    with open(U.__file__) as fh:
        for i, line in enumerate(fh, 1):
            if f"# LINE: {marker}" in line:
                return i
    raise AssertionError(marker)


@pytest.mark.parametrize("fn,marker,text", [
    (U.uses_class, "class", "class"),
    (U.uses_with, "with", "with"),
    (U.uses_global, "global", "global"),
    (U.uses_nonlocal, "nonlocal", "nonlocal"),
    (U.uses_varargs, "varargs", r"\*args"),
    (U.uses_unknown_c, "unknown", "numpy.fft"),
    (U.uses_del, "del", "del"),
    (U.attribute_write, "attribute", "attribute"),
    (U.mixed_kinds, "mixed", "different kinds"),
])
def test_unsupported_python_names_file_and_line(fn, marker, text):
    with pytest.raises(ad.TransformError) as info:
        ad.jvp(fn, (np.ones(2),) if fn is not U.mixed_kinds else (1.0, 1.0),
               (np.ones(2),) if fn is not U.mixed_kinds else (1.0, 0.0))
    err = info.value
    assert err.filename == U.__file__
    assert err.lineno == line_of(marker)
    assert re.search(text, str(err)), str(err)
    # the message is one line and names the location
    assert f"{U.__file__}:{line_of(marker)}" in str(err)


def test_generator_functions_are_refused():
    with pytest.raises(ad.TransformError, match="generator"):
        ad.jvp(U.yields, (1.0,), (1.0,))


def test_jvp_argument_errors():
    with pytest.raises(TypeError, match="tuples or lists"):
        ad.jvp(np.sin, 1.0, (1.0,))
    with pytest.raises(TypeError, match="must match"):
        ad.jvp(P.straight, (1.0, 2.0), (1.0,))
    with pytest.raises(TypeError, match="tree structure"):
        ad.jvp(P.takes_dict, ({"w": 1.0, "b": 2.0}, 1.0), ({"w": 1.0}, 1.0))
    with pytest.raises(ValueError, match="shape"):
        ad.jvp(np.sin, (np.ones(3),), (np.ones(2),))


def test_jacfwd_of_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="real- or complex-valued"):
        ad.jacfwd(np.sin)(np.arange(3))


def test_source_is_deterministic_and_executable():
    f = ad.jacfwd(P.loop_range)
    f(0.3, 3)
    a = ad.source(f)
    b = ad.source(ad.jacfwd(P.loop_range), 0.3, 3)
    assert a == b
    assert "def loop_range_jacfwd(" in a and "x_dot" in a
    # a fresh process prints the same text
    code = ("import sys; sys.path.insert(0, %r); import programs as P, s2sad as ad; "
            "print(ad.source(ad.jacfwd(P.loop_range), 0.3, 3), end='')") % (P.__file__.rsplit("/", 1)[0],)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == a
    # the text runs
    from s2sad.transforms.emit import emit, namespace_of
    callee = f.specialize((ad.api.pipeline.skeleton_of(0.3), ad.api.pipeline.skeleton_of(3)))
    ns = namespace_of(emit(callee))
    exec(compile(a, "<source>", "exec"), ns)
    np.testing.assert_allclose(ns["loop_range_jacfwd"](0.3, 3), f(0.3, 3))


def test_generated_source_has_no_dead_statements():
    src = ad.source(ad.api.jvp_function(P.straight))
    assigned = re.findall(r"^\s+(\w+) = ", src, flags=re.M)
    for name in assigned:
        uses = re.findall(rf"\b{name}\b", src)
        assert len(uses) >= 2, f"{name} is assigned but never used:\n{src}"


def test_tracebacks_show_generated_lines():
    def bad(x):
        y = np.sin(x)
        return y[5]
    with pytest.raises(IndexError) as info:
        ad.jvp(bad, (np.ones(2),), (np.ones(2),))
    frames = traceback.extract_tb(info.value.__traceback__)
    gen = [f for f in frames if f.filename.startswith("<s2sad:")]
    assert gen, [f.filename for f in frames]
    assert gen[-1].line and "[5]" in gen[-1].line


S_A = np.array([1., 2., -1.])
S_B = np.array([2., 1., 0.])


def _value(theta, state):
    return np.dot(theta, state)


def _td(theta):
    return -0.5 * (1.0 + _value(theta, S_B) - _value(theta, S_A)) ** 2


def test_module_source_names_each_specialization_once():
    # _value is specialized twice (two captured states): the module text must keep
    # them apart and re-execute to the same gradient
    g = ad.grad(_td)
    theta = np.array([0.1, -0.2, 0.3])
    src = ad.source(g, theta)
    defs = re.findall(r"^def (\w+)\(", src, flags=re.M)
    assert len(defs) == len(set(defs)), src
    from s2sad.transforms.emit import emit, namespace_of
    ns = namespace_of(emit(g.specialize((ad.api.pipeline.skeleton_of(theta),))))
    exec(compile(src, "<source>", "exec"), ns)
    d = 1.0 + theta @ S_B - theta @ S_A
    np.testing.assert_allclose(ns["_td_grad"](theta), -d * (S_B - S_A))
    np.testing.assert_allclose(g(theta), -d * (S_B - S_A))
