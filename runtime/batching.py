"""What batched code (`ad.vmap`, `transforms.batch`) calls at run time.

Batched values carry the batch as their *last* axis: a per-example value of shape ``s``
is an array of shape ``s + (B,)``. NumPy broadcasting aligns shapes from the right, so an
elementwise operation of two batched values needs no change at all, whatever their
per-example ranks, and an unbatched operand only needs a trailing axis of length one
(``np.expand_dims(y, -1)``). Indexing a batched value with a per-example index reads the
leading axes, which are the per-example ones.

The helpers take integers (ranks, axes), never arrays whose shape they would inspect: in
generated code the rank of a batched value is ``x.ndim - 1``, which a second `vmap`
rewrites again, so batched code can itself be batched.
"""

from __future__ import annotations

import numpy as np


def batch_size(*values):
    """The batch size of batched values: the last axis of the first array among them (in a
    list or a tuple: of its first item that has one; an empty tape has none)."""
    for x in values:
        if isinstance(x, Ragged):
            n = len(x.examples)
        elif isinstance(x, (list, tuple)):
            n = batch_size(*x) if x else None
        else:
            n = np.shape(x)[-1]
        if n is not None:
            return n
    return None


def with_batch(x, size):
    """An unbatched value as a batched one: `size` copies along a new last axis."""
    x = np.asarray(x)
    out = np.empty(x.shape + (size,), dtype=x.dtype)
    out[...] = x[..., None]
    return out


def with_batch_items(items, size):
    """An unbatched runtime list as a batched one: each item along the batch."""
    return [with_batch(v, size) for v in items]


def stack_assigned(items):
    """Per-example values stacked along a last axis; an example that left the variable
    unassigned (None) gets zeros (its program assigns it before reading it)."""
    known = [v for v in items if v is not None]
    if not known:
        return np.zeros(len(items))   # read by no example; broadcasts against any batched value
    zero = np.zeros_like(np.asarray(known[0]))
    return np.stack([zero if v is None else np.asarray(v) for v in items], axis=-1)


class Ragged:
    """Per-example runtime lists of different lengths (the tape of a loop whose trip count
    depends on the example): kept as they are, and read only by code that runs once per
    example (`example`)."""

    __slots__ = ("examples",)

    def __init__(self, examples):
        self.examples = list(examples)

    def __repr__(self):
        return f"Ragged({self.examples!r})"


def stack_lists(items):
    """Per-example runtime lists as one batched list (item k: the examples' items k along
    the batch); lists of different lengths as a `Ragged` value."""
    n = len(items[0])
    if any(len(v) != n for v in items):
        return Ragged(items)
    return [stack_examples([v[k] for v in items]) for k in range(n)]


def example(x, i):
    """Example `i` of a batched value of any kind: an array's last axis, each item of a
    list or tuple (a new list: the example's code may change it); None (a variable no
    example has assigned yet) stays None."""
    if x is None:
        return None
    if isinstance(x, Ragged):
        return list(x.examples[i])
    if type(x) is list:
        return [example(v, i) for v in x]
    if type(x) is tuple:
        return tuple(example(v, i) for v in x)
    return x[..., i]


def select_assigned(test, a, b):
    """`np.where(test, a, b)` where one side may be None: a variable that no example has
    assigned yet; the examples that take that side do not read it before they assign it,
    so they get the other side's value."""
    if a is None:
        a = b
    elif b is None:
        b = a
    return np.where(test, a, b)


def stack_examples(items):
    """Per-example values of any kind (arrays, lists, tuples of them) as one batched value;
    an example that left it unassigned (None) gets zeros (its program assigns it before
    reading it)."""
    known = [v for v in items if v is not None]
    first = known[0] if known else None
    if type(first) is tuple:
        if len(known) < len(items):
            raise ValueError("vmap: internal: a tuple left unassigned by some examples")
        return tuple(stack_examples([v[k] for v in items]) for k in range(len(first)))
    if type(first) is list or isinstance(first, Ragged):
        if len(known) < len(items):
            raise ValueError("vmap: internal: a list left unassigned by some examples")
        if isinstance(first, Ragged) or any(isinstance(v, Ragged) for v in items):
            raise ValueError("vmap: a list of lists of per-example lengths cannot be batched")
        return stack_lists(items)
    return stack_assigned(items)


def batch_axis(ndim, axis=None):
    """The axis argument of a per-example reduction as an axis of the batched value
    (`ndim`: the batched value's rank): all per-example axes for None, a negative axis
    shifted past the batch axis."""
    if axis is None:
        return tuple(range(ndim - 1))
    if isinstance(axis, (tuple, list)):
        return tuple(a - 1 if a < 0 else a for a in axis)
    return axis - 1 if axis < 0 else axis


def batch_index(idx):
    """A per-example index as an index of the batched value: the batch axis is kept
    (only an Ellipsis needs it spelled out: ``x[..., 0]`` -> ``x[..., 0, :]``)."""
    if idx is Ellipsis:
        return (Ellipsis, slice(None))
    if type(idx) is tuple and any(i is Ellipsis for i in idx):
        return idx + (slice(None),)
    return idx


def shift_axis(axis=0):
    """A per-example axis (of an output or input; or a tuple of them) as an axis of the
    batched value."""
    if isinstance(axis, (tuple, list)):
        return tuple(a - 1 if a < 0 else a for a in axis)
    return axis - 1 if axis < 0 else axis


def front(x, k=1):
    """The batch axis (axis -k: 1 for the last; a vmap of batched code puts its own batch
    axis after it) moved to the front, for the functions that broadcast over leading axes
    (``np.linalg``)."""
    return np.moveaxis(x, -k, 0)


def back(x, k=1):
    """The inverse of `front`: axis 0 moved to axis -k."""
    return np.moveaxis(x, 0, -k)


def bsolve(a, b, nb=1):
    """``np.linalg.solve(a, b)`` per example (`nb` trailing batch axes): a per-example `b`
    of one dimension is a vector (NumPy reads a stacked 2-d `b` as matrices)."""
    af, bf = _to_front(a, nb), _to_front(b, nb)
    vector = np.ndim(b) - nb == 1
    if vector:
        bf = bf[..., None]
    # per-example stacks broadcast against each other, not against the batch axes
    k = max(af.ndim, bf.ndim) - nb
    af = af.reshape(af.shape[:nb] + (1,) * (k - (af.ndim - nb)) + af.shape[nb:])
    bf = bf.reshape(bf.shape[:nb] + (1,) * (k - (bf.ndim - nb)) + bf.shape[nb:])
    r = np.linalg.solve(af, bf)
    return _to_back(r[..., 0] if vector else r, nb)


def batch_shape(shape, size):
    """A per-example shape as the shape of the batched value."""
    if isinstance(shape, (int, np.integer)):
        return (shape, size)
    return tuple(shape) + (size,)


def batch_transpose_axes(ndim, axes=None):
    """The ``axes`` of a per-example ``np.transpose`` (None: reversed) for the batched
    value of rank `ndim`: the batch axis stays last."""
    if axes is None:
        axes = tuple(range(ndim - 2, -1, -1))
    return tuple(a % (ndim - 1) for a in axes) + (ndim - 1,)


def _to_front(x, nb):
    x = np.asarray(x)
    n = x.ndim
    return np.moveaxis(x, tuple(range(n - nb, n)), tuple(range(nb)))


def _to_back(x, nb):
    n = x.ndim
    return np.moveaxis(x, tuple(range(nb)), tuple(range(n - nb, n)))


def bmatmul(x, y, nb=1):
    """``x @ y`` per example, for `x` and `y` with `nb` trailing batch axes (of the batch
    size or of length one)."""
    rx, ry = np.ndim(x) - nb, np.ndim(y) - nb
    if rx < 1 or ry < 1:
        raise ValueError("matmul: input operand does not have enough dimensions")
    xf, yf = _to_front(x, nb), _to_front(y, nb)
    if rx == 1:
        xf = xf[..., None, :]
    if ry == 1:
        yf = yf[..., :, None]
    kx, ky = max(rx, 2), max(ry, 2)
    k = max(kx, ky)
    # per-example stacked axes broadcast against each other, not against the batch axes
    xf = xf.reshape(xf.shape[:nb] + (1,) * (k - kx) + xf.shape[nb:])
    yf = yf.reshape(yf.shape[:nb] + (1,) * (k - ky) + yf.shape[nb:])
    r = np.matmul(xf, yf)
    if ry == 1:
        r = r[..., 0]
    if rx == 1:
        r = r[..., 0] if ry == 1 else r[..., 0, :]
    return _to_back(r, nb)


def _swap(a, nb):
    """The last two per-example axes swapped."""
    return np.swapaxes(a, -1 - nb, -2 - nb)


def _unbroadcast(r, like):
    from s2sad.runtime.helpers import unbroadcast
    return unbroadcast(r, like)


def bmatmul_tx(g, x, y, nb=1):
    """Cotangent of x in ``bmatmul(x, y, nb)`` (NumPy's 1-d promotion rules per example)."""
    rx, ry = np.ndim(x) - nb, np.ndim(y) - nb
    if rx == 1 and ry == 1:
        r = g * y
    elif rx == 1:
        r = np.squeeze(bmatmul(y, np.expand_dims(g, -1 - nb), nb), -1 - nb)
    elif ry == 1:
        r = np.expand_dims(g, -1 - nb) * y
    else:
        r = bmatmul(g, _swap(y, nb), nb)
    return _unbroadcast(r, x)


def bmatmul_ty(g, x, y, nb=1):
    """Cotangent of y in ``bmatmul(x, y, nb)``."""
    rx, ry = np.ndim(x) - nb, np.ndim(y) - nb
    if rx == 1 and ry == 1:
        r = g * x
    elif ry == 1:
        r = np.squeeze(bmatmul(_swap(x, nb), np.expand_dims(g, -1 - nb), nb), -1 - nb)
    elif rx == 1:
        r = np.expand_dims(x, -1 - nb) * np.expand_dims(g, -2 - nb)
    else:
        r = bmatmul(_swap(x, nb), g, nb)
    return _unbroadcast(r, y)


def _dot_scalar(a, b, nb):
    return np.ndim(a) - nb == 0 or np.ndim(b) - nb == 0


def _each_example(fn, args, nb):
    """``fn`` applied example by example (the `nb` trailing batch axes of `args` broadcast
    against each other), the results stacked along them: for the rare per-example
    products NumPy has no batched form of (np.dot with an N-d second operand)."""
    args = [np.asarray(a) for a in args]
    shape = np.broadcast_shapes(*[a.shape[a.ndim - nb:] for a in args])
    flat = [np.broadcast_to(a, a.shape[:a.ndim - nb] + shape).reshape(a.shape[:a.ndim - nb] + (-1,))
            for a in args]
    items = [np.asarray(fn(*[f[..., i] for f in flat])) for i in range(flat[0].shape[-1])]
    out = np.stack(items, axis=-1)
    return out.reshape(out.shape[:-1] + shape)


def _dot_ta(g, a, b):
    from s2sad.runtime.rules.linalg import bprod_ta
    return bprod_ta(g, a, b, "dot")


def _dot_tb(g, a, b):
    from s2sad.runtime.rules.linalg import bprod_tb
    return bprod_tb(g, a, b, "dot")


def bdot_ta(g, a, b, nb=1):
    """Cotangent of a in ``bdot(a, b, nb)``."""
    if _dot_scalar(a, b, nb):
        return _unbroadcast(g * b, a)
    if np.ndim(b) - nb > 2:
        return _unbroadcast(_each_example(_dot_ta, (g, a, b), nb), a)
    return bmatmul_tx(g, a, b, nb)


def bdot_tb(g, a, b, nb=1):
    """Cotangent of b in ``bdot(a, b, nb)``."""
    if _dot_scalar(a, b, nb):
        return _unbroadcast(g * a, b)
    if np.ndim(b) - nb > 2:
        return _unbroadcast(_each_example(_dot_tb, (g, a, b), nb), b)
    return bmatmul_ty(g, a, b, nb)


def bdot(a, b, nb=1):
    """``np.dot(a, b)`` per example (batch axes as in `bmatmul`)."""
    ra, rb = np.ndim(a) - nb, np.ndim(b) - nb
    if ra == 0 or rb == 0:
        return np.multiply(a, b)
    if rb <= 2:
        return bmatmul(a, b, nb)
    return _each_example(np.dot, (a, b), nb)   # an N-d second operand (rare)
