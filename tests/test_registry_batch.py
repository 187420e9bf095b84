"""Registry-wide test: every primitive under `vmap` against a loop over the batch.

For every example of every primitive, a batch of independent inputs is drawn from the
example's domains; ``vmap(f)`` of the batch must equal ``f`` applied to each element and
stacked. Every batchable input is batched at once, and (for several inputs) each one
alone with the others unbatched (``in_axes=None``). A primitive without a batch rule
runs as a loop over the batch and passes too: `test_batch_rules_are_vectorised` lists
which primitives are vectorised.
"""

import numpy as np
import pytest

import s2sad as ad

from registry_util import all_examples, make_function, seed_of

CASES = all_examples()
BATCH = 3


def _batchable(dom):
    return not dom.label.startswith("const(")


def _stack(values):
    first = values[0]
    if isinstance(first, tuple):
        return tuple(_stack([v[i] for v in values]) for i in range(len(first)))
    if isinstance(first, list):
        return [_stack([v[i] for v in values]) for i in range(len(first))]
    return np.stack([np.asarray(v) for v in values])


def _assert_tree_close(actual, expected, what):
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), what
        for a, e in zip(actual, expected):
            _assert_tree_close(a, e, what)
        return
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    if e.dtype.kind in "fc":
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=what)
    else:
        np.testing.assert_array_equal(a, e, err_msg=what)


def _patterns(names):
    out = [tuple(names)]
    if len(names) > 1:
        out.extend((n,) for n in names)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_vmap_matches_a_loop_over_the_batch(case):
    name, prim, ex, complex_ = case
    rng = np.random.default_rng(seed_of(name + "-batch"))
    batchable = [k for k, d in ex.inputs.items() if _batchable(d)]
    if not batchable:
        pytest.skip("no input can be batched")
    fixed = {k: d(rng, complex_) for k, d in ex.inputs.items() if not _batchable(d)}
    f = make_function(ex.expr, batchable, fixed)
    samples = [{k: ex.inputs[k](rng, complex_) for k in batchable} for _ in range(BATCH)]
    one = {k: ex.inputs[k](rng, complex_) for k in batchable}
    for pattern in _patterns(batchable):
        args = [_stack([s[k] for s in samples]) if k in pattern else one[k] for k in batchable]
        in_axes = tuple(0 if k in pattern else None for k in batchable)
        expected = _stack([f(*[s[k] if k in pattern else one[k] for k in batchable]) for s in samples])
        actual = ad.vmap(f, in_axes=in_axes)(*args)
        _assert_tree_close(actual, expected, f"{name}: batched {pattern}")
