"""Shared machinery for the registry-wide tests: build a function from an `Example` and
compare derivatives with central finite differences."""

from __future__ import annotations

import hashlib
import linecache

import numpy as np

from s2sad.runtime import registry

registry._load_rules()

FD_STEP = 1e-6


def all_examples(complex_too=True):
    """(id, primitive, example, complex?) for every example of every primitive."""
    out = []
    for prim in registry.all_primitives():
        for i, ex in enumerate(prim.examples):
            out.append((f"{prim.name}-{i}-real", prim, ex, False))
            if complex_too and prim.complex and ex.complex:
                out.append((f"{prim.name}-{i}-complex", prim, ex, True))
    return out


def seed_of(text):
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def make_function(expr, params, fixed):
    """``def f(<params>): return <expr>`` with `fixed` inputs as globals (source in linecache)."""
    src = f"def f({', '.join(params)}):\n    return {expr}\n"
    filename = f"<registry-test {seed_of(src + repr(sorted(fixed)))} {expr}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    from s2sad.runtime import batching, helpers
    glb = {"np": np, **{k: v for m in (helpers, batching) for k, v in vars(m).items()
                        if callable(v) and not k.startswith("_")},
           **fixed}
    try:
        import scipy.special  # noqa: F401
        import scipy
        glb["scipy"] = scipy
    except ImportError:
        pass
    exec(compile(src, filename, "exec"), glb)
    return glb["f"]


def sample(ex, complex_, seed_text):
    rng = np.random.default_rng(seed_of(seed_text))
    values = {k: dom(rng, complex_) for k, dom in ex.inputs.items()}
    wrt = list(ex.wrt) if ex.wrt is not None else [k for k, d in ex.inputs.items() if d.differentiable]
    fixed = {k: v for k, v in values.items() if k not in wrt}
    return rng, values, wrt, fixed


def random_like(rng, x):
    shape = np.shape(x)
    t = rng.normal(size=shape)
    if np.iscomplexobj(x):
        t = t + 1j * rng.normal(size=shape)
    return t if shape else (complex(t) if np.iscomplexobj(x) else float(t))


def central_difference(f, primals, tangents, h=FD_STEP):
    plus = f(*[p + h * t for p, t in zip(primals, tangents)])
    minus = f(*[p - h * t for p, t in zip(primals, tangents)])
    return _tree_map2(lambda a, b: (np.asarray(a) - np.asarray(b)) / (2 * h), plus, minus)


def _tree_map2(fn, a, b):
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return type(a)(*[_tree_map2(fn, x, y) for x, y in zip(a, b)])
    if isinstance(a, (tuple, list)):
        return type(a)(_tree_map2(fn, x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _tree_map2(fn, a[k], b[k]) for k in a}
    return fn(a, b)


def assert_close(actual, expected, rtol, atol, what=""):
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), what
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol, atol, what)
        return
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)
