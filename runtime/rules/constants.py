"""Array constructors: zeros/ones/empty/eye/identity/arange (and their ``_like`` forms),
whose outputs never carry a derivative, and the constructors whose values come from their
arguments: ``np.full``/``np.full_like`` (linear in the fill value), ``np.linspace`` (linear
in start and stop together) and ``np.array``/``np.asarray``/``np.ascontiguousarray``
(linear in the object: a copy of an array, or the stack of a tuple literal of values --
after specialization ``np.array([x, y])`` is ``np.array((x, y))``).

The constructors that take ``dtype=`` pass it on to the tangent, so a float32 or complex
output gets a tangent of the same type. An integer or boolean ``dtype`` known at transform
time makes the output constant: `DtypeRule` then gives a zero tangent instead of the
truncated one that the cast would make. (A dtype only known at run time, ``dtype=x.dtype``,
is passed on as it is.)

Transposes: ``unbroadcast(ct, fill_value)`` for full/full_like; for linspace the sums of
ct weighted by 1 - t and t along the samples axis (`linspace_t`, transposed by
`linspace_spread`), plus -/+ the step's cotangent / div with ``retstep``; for
np.array/asarray/ascontiguousarray of an array ``unbroadcast(ct, a)`` (sums the axes
``ndmin`` adds, real part for a real input), and of a (nested) tuple literal `unarray`,
one cotangent per leaf (transposed by `restack`).
"""

import gast
import numpy as np

from s2sad.runtime.domains import const, pos, real
from s2sad.runtime.helpers import unbroadcast
from s2sad.runtime.registry import register
from s2sad.runtime.rules.shapes import (MultiOutputRule, SequenceRule, StaticCountError, _shaped_like,
                                        defjvp_multi, deftranspose_choose, deftranspose_seq,
                                        helper_example)
from s2sad.transforms.templates import DEFAULT, Zero


def _static_dtype(node, namespace):
    """The NumPy dtype an argument atom denotes at transform time, or None."""
    if node is None or node is DEFAULT or isinstance(node, Zero):
        return None
    if isinstance(node, gast.Constant):
        value = node.value
    elif isinstance(node, gast.Name) and node.id in namespace:
        value = namespace[node.id]
    elif isinstance(node, gast.Attribute):  # np.float32 spelled as a dotted name
        from s2sad.transforms import ops
        value = ops.resolve(node, namespace)
        if value is ops.MISSING:
            return None
    else:
        return None
    if value is None:
        return None
    try:
        return np.dtype(value)
    except (TypeError, ValueError):
        return None


class DtypeRule(MultiOutputRule):
    """A JVP template for a constructor with ``dtype=``: inlined as written (as a
    `MultiOutputRule`, for ``np.linspace(..., retstep=True)``), except that an integer or
    boolean dtype known at transform time gives a zero tangent."""

    def inline(self, bindings, namer, namespace, target=None, loc=None, temps=None, **kw):
        dt = _static_dtype(bindings.get("dtype"), namespace)
        if dt is not None and dt.kind not in "fc":
            outs = bindings.get("out")
            if isinstance(outs, gast.Tuple):
                return [], tuple(Zero(like=e) for e in outs.elts)
            return [], Zero()
        return super().inline(bindings, namer, namespace, target, loc, temps, **kw)


def defjvp_dtype(prim):
    """Decorator: `prim`'s JVP rule is a `DtypeRule` (it must take ``dtype``, and ``out``
    when the primitive may have several outputs)."""
    def deco(fn):
        rule = DtypeRule(fn, prim)
        if "dtype" not in rule.params:
            raise ValueError(f"{rule.where}: a dtype rule must take the parameter 'dtype'")
        if prim.outputs is not None and "out" not in rule.params:
            raise ValueError(f"{rule.where}: a multi-output rule must take the parameter 'out'")
        prim.jvp = rule
        return fn
    return deco


# ---------------------------------------------------------------- constant constructors

def _constant(fn, name, params, defaults, keyword_only=(), doc=""):
    return register(name, fn, spelling=f"np.{name}", params=params, defaults=defaults,
                    keyword_only=keyword_only, nondiff=True, doc=doc)


for _fn in (np.zeros, np.ones, np.empty):
    _p = _constant(_fn, _fn.__name__, ("shape", "dtype", "order"), {"dtype": None, "order": "C"})
    _p.example(f"np.{_fn.__name__}(x.shape) ** 0", x=real(3, 2)) \
        .example(f"np.{_fn.__name__}((2, 3), dtype=np.complex128) ** 0", x=real()) \
        .example(f"np.{_fn.__name__}(3, float) ** 0", x=real())
for _fn, _first in ((np.zeros_like, "a"), (np.ones_like, "a"), (np.empty_like, "prototype")):
    _p = _constant(_fn, _fn.__name__, (_first, "dtype", "order", "subok", "shape"),
                   {"dtype": None, "order": "K", "subok": True, "shape": None})
    _p.example(f"np.{_fn.__name__}(x) ** 0", x=real(3, 2)) \
        .example(f"np.{_fn.__name__}(x, dtype=complex) ** 0", x=real(2)) \
        .example(f"np.{_fn.__name__}(x, shape=(2, 2)) ** 0", x=real(3))
eye = _constant(np.eye, "eye", ("N", "M", "k", "dtype", "order"),
                {"M": None, "k": 0, "dtype": float, "order": "C"})
eye.example("np.eye(3)", x=real()).example("np.eye(x.shape[0], 4, k=-1)", x=real(2, 3)) \
    .example("np.eye(2, dtype=complex)", x=real(2))
identity = _constant(np.identity, "identity", ("n", "dtype"), {"dtype": None})
identity.example("np.identity(3)", x=real()).example("np.identity(x.shape[0])", x=real(4))
arange = _constant(np.arange, "arange", ("start", "stop", "step", "dtype"),
                   {"stop": None, "step": 1, "dtype": None},
                   doc="np.arange([start,] stop[, step]): integer/float ranges, never differentiated")
arange.example("np.arange(5)", x=real()).example("np.arange(1, 7, 2)", x=real()) \
    .example("np.arange(x.shape[0], dtype=float)", x=real(3)) \
    .example("np.arange(0.0, 1.0, 0.25)", x=real())
del _fn, _first, _p


# ---------------------------------------------------------------- np.full / np.full_like

full = register("full", np.full, spelling="np.full", params=("shape", "fill_value", "dtype", "order"),
                defaults={"dtype": None, "order": "C"}, linear=("fill_value",),
                doc="np.full(shape, fill_value[, dtype]): linear in fill_value (Numba: a scalar "
                    "fill value)")
full.example("np.full((2, 3), v) * 2", v=real()) \
    .example("np.full(4, v)", v=real()) \
    .example("np.full((2, 3), v)", v=real(3)) \
    .example("np.full(x.shape, v) + x", v=real(), x=real(2, 2)) \
    .example("np.full((), v)", v=real()) \
    .example("np.full(3, v, dtype=np.float64)", v=real()) \
    .example("np.full(3, v, complex)", v=real()) \
    .example("np.full(3, v, dtype=int) * 1.0 + v", v=real(), complex=False)


@defjvp_dtype(full)
def _(shape, fill_value, fill_value_dot, dtype=None, order="C"):
    return np.full(shape, fill_value_dot, dtype=dtype, order=order)


@full.deftranspose("fill_value")
def _(ct, shape, fill_value):
    return unbroadcast(ct, fill_value)


full_like = register("full_like", np.full_like, spelling="np.full_like",
                     params=("a", "fill_value", "dtype", "order", "subok", "shape"),
                     defaults={"dtype": None, "order": "K", "subok": True, "shape": None},
                     linear=("fill_value",),
                     doc="np.full_like(a, fill_value[, dtype]): linear in fill_value (an integer `a` "
                         "without dtype= truncates the tangent as it does the value)")
full_like.example("np.full_like(x, v) * x", x=real(3, 2), v=real()) \
    .example("np.full_like(c, v)", c=const(np.zeros((2, 3))), v=real()) \
    .example("np.full_like(c, v, shape=(2, 2))", c=const(np.zeros(3)), v=real(2)) \
    .example("np.full_like(c, v, dtype=complex)", c=const(np.zeros(3)), v=real()) \
    .example("np.full_like(c, v, dtype=int) * 1.0 + v", c=const(np.zeros(3)), v=real(),
             complex=False)


@defjvp_dtype(full_like)
def _(a, fill_value, fill_value_dot, dtype=None, order="K", subok=True, shape=None):
    return np.full_like(a, fill_value_dot, dtype=dtype, order=order, subok=subok, shape=shape)


@full_like.deftranspose("fill_value")
def _(ct, a, fill_value):
    return unbroadcast(ct, fill_value)


# ---------------------------------------------------------------- np.linspace


def _linspace_outputs(bound):
    from s2sad.transforms.values import Const
    r = bound.get("retstep")
    if r is None:
        return None
    if isinstance(r, Const):
        return 2 if r.value else None
    raise StaticCountError("np.linspace: retstep must be known at transform time",
                           hint="pass retstep=True or False as a constant")


linspace = register("linspace", np.linspace, spelling="np.linspace",
                    params=("start", "stop", "num", "endpoint", "retstep", "dtype", "axis"),
                    defaults={"num": 50, "endpoint": True, "retstep": False, "dtype": None, "axis": 0},
                    linear=("start", "stop"), outputs=_linspace_outputs,
                    doc="linear in (start, stop) together; retstep=True gives (samples, step) "
                        "(Numba: scalar start, stop and num only)")
# Reverse mode of the examples that pass the outputs of a multi-output primitive on to
# another operation, or leave some unused, needs their shape witnesses: the JVP pass must
# map a multi-output rule's tangent names to the primal outputs (they are renamed by
# simplify today), and linearize must keep those witnesses as residuals.
linspace.example("np.linspace(a, b, 5)", a=real(), b=real()) \
    .example("np.linspace(a, b)", a=real(), b=real()) \
    .example("np.linspace(0.0, b, 4, endpoint=False)", b=real()) \
    .example("np.linspace(a, 2.0, num=3)", a=real()) \
    .example("np.linspace(a, b, 3, axis=1)", a=real(2), b=real(2)) \
    .example("np.linspace(a, b, 4, dtype=np.float64)", a=real(), b=real()) \
    .example("np.hstack(np.linspace(a, b, 4, retstep=True))", a=real(), b=real()) \
    .example("np.linspace(a, b, 4, True, True)[1]", a=real(), b=real()) \
    .example("np.linspace(a, b, 4, dtype=int) * 1.0 + a", a=pos(), b=pos(lo=3.0, hi=4.0),
             complex=False)


@defjvp_dtype(linspace)
def _(start, stop, out, start_dot, stop_dot, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    return np.linspace(start_dot, stop_dot, num, endpoint=endpoint, retstep=retstep, dtype=dtype,
                       axis=axis)


# out = start + (stop - start) * t with t_i = i / div (div = num - 1, or num without the
# endpoint): the cotangent of start is the sum of ct weighted by 1 - t along the samples
# axis, that of stop the sum weighted by t; with retstep, step = (stop - start) / div.

def _linspace_weights(num, endpoint, at_stop):
    num = int(num)
    div = num - 1 if endpoint else num
    t = np.arange(num) / div if div > 0 else np.zeros(num)
    return t if at_stop else 1.0 - t


def linspace_t(g, num=50, endpoint=True, axis=0, at_stop=False):
    """The sum of `g` along its samples axis `axis`, weighted by t (`at_stop`) or 1 - t:
    the cotangent of stop (or start) in np.linspace, before unbroadcasting."""
    return np.moveaxis(np.asarray(g), axis, -1) @ _linspace_weights(num, endpoint, at_stop)


def linspace_spread(g, num=50, endpoint=True, axis=0, at_stop=False):
    """The transpose of `linspace_t`: `g` times the weights, along a new axis `axis`."""
    w = _linspace_weights(num, endpoint, at_stop)
    return np.moveaxis(np.expand_dims(np.asarray(g), -1) * w, -1, axis)


def linspace_inv_step(num=50, endpoint=True):
    """1 / div, with ``step = (stop - start) / div`` (0 when NumPy's step is NaN: one
    sample with the endpoint)."""
    div = int(num) - 1 if endpoint else int(num)
    return 1.0 / div if div > 0 else 0.0


def _ct_is_tuple(b):
    return b if isinstance(b["ct"], gast.Tuple) else None


def _start_t_retstep(ct, start, num=50, endpoint=True, axis=0):
    return unbroadcast(linspace_t(ct[0], num=num, endpoint=endpoint, axis=axis)
                       - ct[1] * linspace_inv_step(num=num, endpoint=endpoint), start)


def _start_t(ct, start, num=50, endpoint=True, axis=0):
    return unbroadcast(linspace_t(ct, num=num, endpoint=endpoint, axis=axis), start)


def _stop_t_retstep(ct, stop, num=50, endpoint=True, axis=0):
    return unbroadcast(linspace_t(ct[0], num=num, endpoint=endpoint, axis=axis, at_stop=True)
                       + ct[1] * linspace_inv_step(num=num, endpoint=endpoint), stop)


def _stop_t(ct, stop, num=50, endpoint=True, axis=0):
    return unbroadcast(linspace_t(ct, num=num, endpoint=endpoint, axis=axis, at_stop=True), stop)


deftranspose_choose(linspace, "start", (_ct_is_tuple, _start_t_retstep), (lambda b: b, _start_t))
deftranspose_choose(linspace, "stop", (_ct_is_tuple, _stop_t_retstep), (lambda b: b, _stop_t))

linspace_t_p = register("linspace_t", linspace_t, spelling="linspace_t",
                        params=("g", "num", "endpoint", "axis", "at_stop"),
                        defaults={"num": 50, "endpoint": True, "axis": 0, "at_stop": False},
                        linear=("g",), doc="weighted sum over the samples axis (np.linspace's transpose)")
linspace_spread_p = register("linspace_spread", linspace_spread, spelling="linspace_spread",
                             params=("g", "num", "endpoint", "axis", "at_stop"),
                             defaults={"num": 50, "endpoint": True, "axis": 0, "at_stop": False},
                             linear=("g",), doc="the transpose of linspace_t")
register("linspace_inv_step", linspace_inv_step, spelling="linspace_inv_step",
         params=("num", "endpoint"), defaults={"num": 50, "endpoint": True}, nondiff=True,
         doc="1 / the number of steps of np.linspace")
helper_example(linspace_t_p, "linspace_t(g, 5)", g=real(5))
helper_example(linspace_t_p, "linspace_t(g, num=4, endpoint=False, axis=1, at_stop=True)", g=real(2, 4))
helper_example(linspace_t_p, "linspace_t(g, 3, axis=-1)", g=real(2, 3, 3))
helper_example(linspace_spread_p, "linspace_spread(g, 5)", g=real())
helper_example(linspace_spread_p, "linspace_spread(g, num=4, endpoint=False, axis=1, at_stop=True)",
               g=real(2))
helper_example(linspace_spread_p, "linspace_spread(g, 3, axis=-1)", g=real(2, 3))


@linspace_t_p.defjvp
def _(g, g_dot, num=50, endpoint=True, axis=0, at_stop=False):
    return linspace_t(g_dot, num=num, endpoint=endpoint, axis=axis, at_stop=at_stop)


@linspace_t_p.deftranspose("g")
def _(ct, g, num=50, endpoint=True, axis=0, at_stop=False):
    return linspace_spread(ct, num=num, endpoint=endpoint, axis=axis, at_stop=at_stop)


@linspace_spread_p.defjvp
def _(g, g_dot, num=50, endpoint=True, axis=0, at_stop=False):
    return linspace_spread(g_dot, num=num, endpoint=endpoint, axis=axis, at_stop=at_stop)


@linspace_spread_p.deftranspose("g")
def _(ct, g, num=50, endpoint=True, axis=0, at_stop=False):
    return linspace_t(ct, num=num, endpoint=endpoint, axis=axis, at_stop=at_stop)


# ---------------------------------------------------------------- np.array / np.asarray

array = register("array", np.array, spelling="np.array",
                 params=("object", "dtype", "copy", "order", "ndmin"),
                 defaults={"dtype": None, "copy": True, "order": "K", "ndmin": 0},
                 keyword_only=("copy", "order", "ndmin"), linear=("object",),
                 doc="np.array(object[, dtype]): a copy of an array, or the stack of a tuple of "
                     "values (Numba: of a tuple only; copy an array with np.copy)")
# Reverse mode of the nested literal (example 1) needs the transpose pass to recurse into
# nested tuple arguments (Transposer.rule_contributions pairs only the top-level elements).
array.example("np.array([x, y]) * 2", x=real(), y=real()) \
    .example("np.array([[x, 1.0], [2.0, y]])", x=real(), y=real()) \
    .example("np.array((x, y, x))", x=real(2), y=real(2)) \
    .example("np.array(x)", x=real(3, 2)) \
    .example("np.array(x)", x=real()) \
    .example("np.array([x, 3.0], dtype=complex)", x=real()) \
    .example("np.array(x, ndmin=2)", x=real(3)) \
    .example("np.array((x, y), np.float64, copy=True)", x=real(), y=real(), complex=False) \
    .example("np.array((x, y), dtype=int) * 1.0 + x", x=real(), y=real(), complex=False) \
    .example("x[np.array([0, 2])]", x=real(3))


@defjvp_dtype(array)
def _(object, object_dot, dtype=None, copy=True, order="K", ndmin=0):
    return np.array(object_dot, dtype=dtype, copy=copy, order=order, ndmin=ndmin)


# The transpose in the object: for an array, the cotangent itself (summed over the leading
# axes ndmin adds, real for a real input); for a (nested) tuple literal of values, one
# cotangent per leaf, by `unarray`.

def _is_seq(x):
    return isinstance(x, (tuple, list))


def _leaves(obj):
    if _is_seq(obj):
        return [leaf for o in obj for leaf in _leaves(o)]
    return [obj]


def _depth(obj):
    """The number of dimensions of ``np.array(obj)`` (nested sequences of equal shapes)."""
    if _is_seq(obj):
        return 1 + (_depth(obj[0]) if len(obj) else 0)
    return np.ndim(obj)


def unarray(g, object, ndmin=0):
    """The transpose of ``np.array(object)`` for a (nested) tuple of values: the cotangent
    of each leaf of `object`, in order (a flat list)."""
    g = np.asarray(g)
    d = _depth(object)
    if g.ndim > d:  # leading axes added by ndmin
        g = np.reshape(g, np.shape(g)[g.ndim - d:])
    out = []

    def walk(o, part):
        if _is_seq(o):
            for i, e in enumerate(o):
                walk(e, part[i])
        else:
            out.append(_shaped_like(part, o))
    walk(object, g)
    return out


def restack(leaves, object, ndmin=0):
    """The transpose of `unarray`: the leaves put back in the nesting of `object`, as an
    array."""
    it = iter(leaves)

    def build(o):
        if _is_seq(o):
            return [build(e) for e in o]
        return next(it)
    return np.array(build(object), ndmin=ndmin)


def _object_is_literal(param):
    def test(b):
        return b if isinstance(b.get(param), (gast.Tuple, gast.List)) else None
    return test


def _array_t_seq(ct, object, ndmin=0):
    return unarray(ct, object, ndmin=ndmin)


def _array_t(ct, object, ndmin=0):
    return unbroadcast(ct, object)


deftranspose_choose(array, "object",
                    (_object_is_literal("object"), SequenceRule(_array_t_seq, array, "object", True)),
                    (lambda b: b, _array_t))


def _leaf_count(av):
    from s2sad.transforms.values import Const, Tup
    if isinstance(av, Tup):
        return sum(_leaf_count(i) for i in av.items)
    if isinstance(av, Const) and isinstance(av.value, (tuple, list)):
        return len(_leaves(av.value))
    return 1


unarray_p = register("unarray", unarray, spelling="unarray", params=("g", "object", "ndmin"),
                     defaults={"ndmin": 0}, linear=("g",),
                     outputs=lambda b: _leaf_count(b["object"]),
                     doc="the cotangent of each leaf of a tuple literal (np.array's transpose)")
restack_p = register("restack", restack, spelling="restack", params=("leaves", "object", "ndmin"),
                     defaults={"ndmin": 0}, linear=("leaves",),
                     doc="leaves nested like object, as an array (the transpose of unarray)")
# Reverse mode of the examples that pass the outputs of a multi-output primitive on to
# another operation, or leave some unused, needs their shape witnesses: the JVP pass must
# map a multi-output rule's tangent names to the primal outputs (they are renamed by
# simplify today), and linearize must keep those witnesses as residuals.
helper_example(unarray_p, "unarray(g, (x, y))", g=real(2, 3), x=real(3), y=real(3))
helper_example(unarray_p, "np.hstack(unarray(g, ((x, 1.0), (2.0, y)), ndmin=3))", g=real(1, 2, 2),
               x=real(), y=real())
helper_example(restack_p, "restack((a, b, c, d), ((x, x), (x, x)), ndmin=4)", a=real(2), b=real(2),
               c=real(2), d=real(2), x=real(2), wrt=("a", "b", "c", "d"))
helper_example(restack_p, "restack((a, b), (x, y))", a=real(), b=real(), x=real(), y=real(),
               wrt=("a", "b"))


@defjvp_multi(unarray_p)
def _(g, object, out, g_dot, ndmin=0):
    return unarray(g_dot, object, ndmin=ndmin)


@unarray_p.deftranspose("g")
def _(ct, g, object, ndmin=0):
    return restack(ct, object, ndmin=ndmin)


@restack_p.defjvp
def _(leaves, object, leaves_dot, ndmin=0):
    return restack(leaves_dot, object, ndmin=ndmin)


@deftranspose_seq(restack_p, "leaves")
def _(ct, leaves, object, ndmin=0):
    return unarray(ct, object, ndmin=ndmin)


asarray = register("asarray", np.asarray, spelling="np.asarray", params=("a", "dtype", "order", "copy"),
                   defaults={"dtype": None, "order": None, "copy": None}, keyword_only=("copy",),
                   linear=("a",), doc="np.asarray(a[, dtype])")
asarray.example("np.asarray(x)", x=real(3)) \
    .example("np.asarray(x)", x=real()) \
    .example("np.asarray([x, y]) * x", x=real(), y=real()) \
    .example("np.asarray((x, y), dtype=complex)", x=real(2), y=real(2)) \
    .example("np.asarray(x, float, 'F')", x=real(2, 3)) \
    .example("np.asarray(x, dtype=int) * 1.0 + x", x=real(3), complex=False)


@defjvp_dtype(asarray)
def _(a, a_dot, dtype=None, order=None, copy=None):
    return np.asarray(a_dot, dtype=dtype, order=order, copy=copy)


def _asarray_t_seq(ct, a):
    return unarray(ct, a)


def _asarray_t(ct, a):
    return unbroadcast(ct, a)


deftranspose_choose(asarray, "a",
                    (_object_is_literal("a"), SequenceRule(_asarray_t_seq, asarray, "a", True)),
                    (lambda b: b, _asarray_t))


ascontiguousarray = register("ascontiguousarray", np.ascontiguousarray, spelling="np.ascontiguousarray",
                             params=("a", "dtype"), defaults={"dtype": None}, linear=("a",),
                             doc="np.ascontiguousarray(a[, dtype]) (before reshaping a transpose in Numba)")
ascontiguousarray.example("np.ascontiguousarray(x.T)", x=real(3, 2)) \
    .example("np.ascontiguousarray(x, dtype=complex)", x=real(2))


@defjvp_dtype(ascontiguousarray)
def _(a, a_dot, dtype=None):
    return np.ascontiguousarray(a_dot, dtype=dtype)


deftranspose_choose(ascontiguousarray, "a",
                    (_object_is_literal("a"), SequenceRule(_asarray_t_seq, ascontiguousarray, "a", True)),
                    (lambda b: b, _asarray_t))


# ---------------------------------------------------------------- Numba implementations

_NUMBA_DONE = False


def register_numba():
    """Give this module's transpose helpers Numba implementations (idempotent).

    Meant to be called from `s2sad.runtime.helpers.register_numba`. `unarray` returns a
    tuple under Numba (one cotangent per leaf), `restack` stacks scalars or equal-shaped
    arrays.
    """
    global _NUMBA_DONE
    if _NUMBA_DONE:
        return
    _NUMBA_DONE = True
    from numba import types
    from numba.core.errors import TypingError
    from numba.extending import overload, register_jitable

    from s2sad.runtime.rules.shapes import _NOT_LITERAL, _nb_compile, _nb_is_complex, _nb_literal

    @register_jitable
    def weights(num, endpoint, at_stop):
        div = num - 1 if endpoint else num
        w = np.zeros(num)
        for i in range(num):
            t = i / div if div > 0 else 0.0
            w[i] = t if at_stop else 1.0 - t
        return w

    @overload(linspace_t)
    def _linspace_t(g, num=50, endpoint=True, axis=0, at_stop=False):
        if not isinstance(g, types.Array):
            raise TypingError("linspace_t: g must be an array")

        def impl(g, num=50, endpoint=True, axis=0, at_stop=False):
            w = weights(num, endpoint, at_stop)
            return np.sum(np.moveaxis(g, axis, -1) * w, axis=-1)
        return impl

    @overload(linspace_spread)
    def _linspace_spread(g, num=50, endpoint=True, axis=0, at_stop=False):
        if not isinstance(g, types.Array):
            return lambda g, num=50, endpoint=True, axis=0, at_stop=False: \
                g * weights(num, endpoint, at_stop)

        def impl(g, num=50, endpoint=True, axis=0, at_stop=False):
            w = weights(num, endpoint, at_stop)
            return np.moveaxis(np.expand_dims(g, -1) * w, -1, axis)
        return impl

    @overload(linspace_inv_step)
    def _linspace_inv_step(num=50, endpoint=True):
        def impl(num=50, endpoint=True):
            div = num - 1 if endpoint else num
            return 1.0 / div if div > 0 else 0.0
        return impl

    def paths(t, prefix=()):
        """Index paths of the leaves of a (nested) tuple type."""
        if isinstance(t, types.BaseTuple):
            return [p for i, e in enumerate(t) for p in paths(e, prefix + (i,))]
        return [(prefix, t)]

    def depth(t):
        if isinstance(t, types.BaseTuple):
            return 1 + (depth(t[0]) if len(t) else 0)
        return t.ndim if isinstance(t, types.Array) else 0

    @register_jitable
    def keep(v):
        return v

    @register_jitable
    def to_real(v):
        return np.real(v)

    @overload(unarray)
    def _unarray(g, object, ndmin=0):
        leaves = paths(object)
        fixes = {f"fix{i}": (to_real if _nb_is_complex(g) and not _nb_is_complex(t) else keep)
                 for i, (_, t) in enumerate(leaves)}
        extra = g.ndim - depth(object) if isinstance(g, types.Array) else 0
        lines = ["h = g" + "[0]" * extra]
        for i, (path, _) in enumerate(leaves):
            lines.append(f"p{i} = fix{i}(h[{', '.join(map(str, path))}])")
        ret = ", ".join(f"p{i}" for i in range(len(leaves))) + ("," if len(leaves) == 1 else "")
        src = "def impl(g, object, ndmin=0):\n" + "\n".join("    " + ln for ln in lines) + \
            f"\n    return ({ret})\n"
        return _nb_compile(src, "unarray", **fixes)

    @overload(restack)
    def _restack(leaves, object, ndmin=0):
        nmin = _nb_literal(ndmin, 0)
        if nmin is _NOT_LITERAL:
            raise TypingError("restack: ndmin must be a constant under Numba")
        it = iter(range(len(leaves)))

        def build(t):
            if isinstance(t, types.BaseTuple):
                return "np.stack((" + "".join(build(e) + ", " for e in t) + "))"
            return f"np.asarray(leaves[{next(it)}])"
        d = depth(object)
        src = f"def impl(leaves, object, ndmin=0):\n    out = {build(object)}\n"
        if nmin > d:
            src += f"    out = out.reshape({'(1,) * ' + str(nmin - d)} + out.shape)\n"
        src += "    return out\n"
        return _nb_compile(src, "restack")
