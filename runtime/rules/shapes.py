"""Shape operations: reshape, transposes, new and removed axes, broadcasting, joining and
splitting, flips, rolls, repeats, triangles and takes.

Every one of them is linear in its array argument(s), so each JVP rule is the operation
applied to the tangent. The joining functions take a sequence of arrays: in generated code
it is a tuple literal of atoms, and its tangent a tuple literal of the elements' tangents
(zeros made explicit), so ``np.concatenate(arrays_dot, axis=axis)`` is the whole rule.

`np.split` (and `np.array_split`) return several arrays: they are multi-output primitives
(the call is unpacked into one variable per piece) whose number of outputs must be known
at transform time; their rule is `MultiOutputRule`, whose result is inlined as one call
unpacked into one tangent per output.

Transpose rules (reverse mode) move the cotangent back: the inverse permutation, a
reshape to the input's shape (`reshape_as`), ``unbroadcast`` for broadcast_to, a
concatenate for split. The transposes that are not NumPy functions are primitives of this
module with their own JVP and transpose rules (so cotangent code differentiates again):
`reshape_as`, the piece-returning `unconcatenate`/`unstack`/`unhstack`/`unvstack` (the
transposes of the joins: `SequenceRule` unpacks them into one cotangent per element of
the tuple literal), `untile`, `unrepeat`, `untake` (sums over the copies, scatter-adds).
Rules that depend on a constant argument (an axis permutation, a roll shift) are
`ChooseRule`s: the inverse is computed at transform time when the argument is constant.
`register_numba()` gives the helpers Numba implementations.
"""

import gast
import numpy as np

from s2sad.errors import TransformError
from s2sad.runtime.domains import const, ints, real
from s2sad.runtime.helpers import unbroadcast
from s2sad.runtime.registry import register
from s2sad.transforms import ir
from s2sad.transforms.templates import DEFAULT, Template, Zero, is_zero


class MultiOutputRule(Template):
    """A JVP template for a primitive with several outputs whose rule is one call that
    returns a sequence (``return np.split(ary_dot, indices_or_sections, axis=axis)``).

    The rule must take ``out``: the pass binds it to the tuple of the primal outputs, which
    gives the number of results. The returned call is then assigned by tuple unpacking, as
    the primal statement is (``a, b = np.split(x, 2)`` gets ``a_dot, b_dot = np.split(x_dot,
    2)``), and the result is a tuple of one tangent per output. With a single output
    (``np.linspace`` without ``retstep``) it inlines like any template.
    """

    def inline(self, bindings, namer, namespace, target=None, loc=None, temps=None, **kw):
        outs = bindings.get("out")
        if not isinstance(outs, gast.Tuple):
            return super().inline(bindings, namer, namespace, target, loc, temps, **kw)
        stmts, result = super().inline(bindings, namer, namespace, None, loc, temps, **kw)
        if is_zero(result):
            return stmts, tuple(Zero(like=e) for e in outs.elts)
        if isinstance(result, tuple):
            return stmts, result
        for s in reversed(stmts):
            t = s.targets[0]
            if isinstance(t, gast.Name) and isinstance(result, gast.Name) and t.id == result.id:
                names = [namer.fresh(f"{e.id}_dot" if isinstance(e, gast.Name) else f"{t.id}_{i}")
                         for i, e in enumerate(outs.elts)]
                if temps is not None:
                    temps.update(names)
                s.targets[0] = ir.tuple_([ir.store(m) for m in names], gast.Store())
                return stmts, tuple(ir.name(m) for m in names)
        raise ValueError(f"{self.where}: a multi-output rule must end with a call returning "
                         f"one value per output")


class SequenceRule(Template):
    """A transpose template for a parameter that is a SEQUENCE of arrays (``arrays`` of
    np.concatenate, ``object`` of np.array): its witness is a tuple literal of witnesses,
    and the rule must give one cotangent per element.

    The rule ends with one call returning a list of pieces (``return unconcatenate(ct,
    arrays, axis=axis)``); when the parameter is bound to a tuple or list literal, that call
    is unpacked into one name per element (per leaf of nested literals with
    ``nested=True``, the result then nests like the literal). Bound to anything else (a
    list built at run time), the rule inlines as written: its value is the list of pieces.
    """

    def __init__(self, fn, prim, param, nested=False):
        super().__init__(fn, prim)
        self.param = param
        self.nested = nested

    def inline(self, bindings, namer, namespace, target=None, loc=None, temps=None, **kw):
        seq = bindings.get(self.param)
        if not isinstance(seq, (gast.Tuple, gast.List)):
            return super().inline(bindings, namer, namespace, target, loc, temps, **kw)
        leaves = _literal_leaves(seq) if self.nested else list(seq.elts)
        stmts, result = super().inline(bindings, namer, namespace, None, loc, temps, **kw)
        names = [namer.fresh(f"{e.id}_ct" if isinstance(e, gast.Name) else "part_ct")
                 for e in leaves]
        if temps is not None:
            temps.update(names)
        _unpack_last(stmts, result, names, self.where)
        it = iter([ir.name(m) for m in names])
        if not self.nested:
            return stmts, tuple(it)

        def build(node):
            if isinstance(node, (gast.Tuple, gast.List)):
                return tuple(build(e) for e in node.elts)
            return next(it)
        return stmts, build(seq)


def _literal_leaves(node):
    """The leaves of a (nested) tuple or list literal, in order."""
    if isinstance(node, (gast.Tuple, gast.List)):
        return [leaf for e in node.elts for leaf in _literal_leaves(e)]
    return [node]


def _unpack_last(stmts, result, names, where):
    """Turn the statement that assigns `result` into an unpacking into `names`."""
    for s in reversed(stmts):
        t = s.targets[0]
        if isinstance(t, gast.Name) and isinstance(result, gast.Name) and t.id == result.id:
            s.targets[0] = ir.tuple_([ir.store(m) for m in names], gast.Store())
            return
    raise ValueError(f"{where}: a sequence rule must end with a call returning one value per "
                     f"element")


class ChooseRule(Template):
    """A rule with alternatives picked at transform time. `choices` is a list of
    ``(test, fn)``: ``test(bindings)`` returns the bindings to inline ``fn`` with (possibly
    rewritten, e.g. a constant axis permutation replaced by its inverse), or None to try
    the next choice. Every ``fn`` (a function, or a `Template` such as a `SequenceRule`)
    takes the same parameters."""

    def __init__(self, prim, choices):
        first = choices[0][1]
        super().__init__(first.fn if isinstance(first, Template) else first, prim)
        self.choices = []
        for test, fn in choices:
            tpl = fn if isinstance(fn, Template) else Template(fn, prim)
            if tpl.params != self.params:
                raise ValueError(f"{tpl.where}: the alternatives of a rule must take the same "
                                 f"parameters")
            self.choices.append((test, tpl))

    def inline(self, bindings, namer, namespace, target=None, loc=None, temps=None, **kw):
        for test, tpl in self.choices:
            b = test(dict(bindings))
            if b is not None:
                return tpl.inline(b, namer, namespace, target, loc, temps, **kw)
        raise ValueError(f"{self.where}: no alternative applies")


def deftranspose_choose(prim, param, *choices):
    """Install a `ChooseRule` as `prim`'s transpose rule for `param`."""
    if param not in prim.linear:
        raise ValueError(f"{prim.name}: {param} is not a linear parameter")
    prim.transpose[param] = ChooseRule(prim, list(choices))


def deftranspose_seq(prim, param, nested=False):
    """Decorator: `prim`'s transpose rule for the sequence parameter `param` is a
    `SequenceRule`."""
    def deco(fn):
        if param not in prim.linear:
            raise ValueError(f"{prim.name}: {param} is not a linear parameter")
        prim.transpose[param] = SequenceRule(fn, prim, param, nested)
        return fn
    return deco


NOT_STATIC = object()


def static_value(node):
    """The Python value of a constant atom (numbers, strings, None, tuples of those), or
    `NOT_STATIC`."""
    if node is DEFAULT or isinstance(node, Zero):
        return NOT_STATIC
    if isinstance(node, gast.Constant):
        return node.value
    if isinstance(node, gast.UnaryOp) and isinstance(node.op, gast.USub) \
            and isinstance(node.operand, gast.Constant):
        return -node.operand.value
    if isinstance(node, (gast.Tuple, gast.List)):
        items = [static_value(e) for e in node.elts]
        if any(i is NOT_STATIC for i in items):
            return NOT_STATIC
        return tuple(items)
    return NOT_STATIC


def const_atom(value):
    """An atom for a constant (tuples of constants included)."""
    if isinstance(value, tuple):
        return ir.tuple_([const_atom(v) for v in value])
    return ir.const(value)


def defjvp_multi(prim):
    """Decorator: `prim`'s JVP rule is a `MultiOutputRule` (it must take ``out``)."""
    def deco(fn):
        rule = MultiOutputRule(fn, prim)
        if "out" not in rule.params:
            raise ValueError(f"{rule.where}: a multi-output rule must take the parameter 'out'")
        prim.jvp = rule
        return fn
    return deco


# ---------------------------------------------------------------- transpose helpers
#
# The transposes of the shape operations. Each linear one is a primitive too (registered
# next to the operation it transposes) whose own transpose is that operation, so cotangent
# code can be differentiated again.

def _real_like(g, like):
    """Cotangents of real values are real (the transpose of real -> complex promotion)."""
    if np.iscomplexobj(g) and not np.iscomplexobj(like):
        return np.real(g)
    return g


def _shaped_like(g, like, order="C"):
    """`g` reshaped to the shape of `like` (a scalar when `like` is one), real when
    `like` is real."""
    g = _real_like(g, like)
    shape = np.shape(like)
    if np.shape(g) != shape:
        g = np.reshape(g, shape, order=order)
    if not shape and isinstance(g, np.ndarray):
        g = g[()]
    return g


def _cot_dtype(like):
    """The dtype of a cotangent of `like`: complex128 for complex, float64 otherwise."""
    return np.complex128 if np.iscomplexobj(like) else np.float64


def reshape_as(g, like, order="C"):
    """`g` reshaped to the shape of `like`: the transpose of reshape, ravel, squeeze,
    expand_dims and atleast_*d (and its own transpose)."""
    return _shaped_like(g, like, order)


def inverse_axes(axes=None):
    """The permutation that undoes ``np.transpose(., axes)`` (None stays None)."""
    if axes is None:
        return None
    axes = tuple(int(a) for a in np.atleast_1d(axes))
    n = len(axes)
    inv = [0] * n
    for i, a in enumerate(axes):
        inv[a % n] = i
    return tuple(inv)


def _split_along(g, arrays, axis, how):
    """The pieces of `g`, a join of `arrays` (concatenate/hstack/vstack), one per array;
    `how` is what the join applies to each array first (np.atleast_2d for vstack)."""
    g = np.asarray(g)
    if axis is None:
        g, axis, sizes = np.ravel(g), 0, [np.size(a) for a in arrays]
    else:
        sizes = [np.shape(how(a))[axis] for a in arrays]
    pieces = np.split(g, np.cumsum(sizes)[:-1], axis=axis)
    return [_shaped_like(p, a) for p, a in zip(pieces, arrays)]


def _same(a):
    return a


def unconcatenate(g, arrays, axis=0):
    """The transpose of ``np.concatenate(arrays, axis)``: the piece of `g` for each array."""
    return _split_along(g, arrays, axis, _same)


def unhstack(g, tup):
    """The transpose of ``np.hstack(tup)``."""
    one_d = all(np.ndim(a) <= 1 for a in tup)
    return _split_along(g, tup, 0 if one_d else 1, np.atleast_1d)


def unvstack(g, tup):
    """The transpose of ``np.vstack(tup)``."""
    return _split_along(g, tup, 0, np.atleast_2d)


def unstack(g, arrays, axis=0):
    """The transpose of ``np.stack(arrays, axis)``: the slice of `g` for each array."""
    g = np.moveaxis(np.asarray(g), axis, 0)
    return [_shaped_like(g[i], a) for i, a in enumerate(arrays)]


def _padded(shape, reps):
    reps = tuple(int(r) for r in np.atleast_1d(reps))
    d = max(len(reps), len(shape))
    return (1,) * (d - len(shape)) + tuple(shape), (1,) * (d - len(reps)) + reps


def untile(g, A, reps):
    """The transpose of ``np.tile(A, reps)``: the sum of the tiles of `g`."""
    shape, r = _padded(np.shape(A), reps)
    split = tuple(x for pair in zip(r, shape) for x in pair)
    g = np.sum(np.reshape(g, split), axis=tuple(range(0, 2 * len(shape), 2)))
    return _shaped_like(g, A)


def _scatter_axis(g, like, base, ax, idx):
    """Add `g` into zeros shaped `base` at positions `idx` along axis `ax`, then reshape
    like `like`."""
    z = np.zeros(base, dtype=_cot_dtype(like))
    np.add.at(z, (slice(None),) * ax + (idx,), _real_like(g, like))
    return _shaped_like(z, like)


def _flat_or_axis(shape, axis):
    if axis is None:
        return (int(np.prod(shape, dtype=np.int64)),), 0
    return tuple(shape), axis % len(shape)


def unrepeat(g, a, repeats, axis=None):
    """The transpose of ``np.repeat(a, repeats, axis)``: sums over the repeated copies."""
    base, ax = _flat_or_axis(np.shape(a), axis)
    n = base[ax]
    idx = np.repeat(np.arange(n), np.broadcast_to(np.asarray(repeats), (n,)))
    return _scatter_axis(g, a, base, ax, idx)


def untake(g, a, indices, axis=None, mode="raise"):
    """The transpose of ``np.take(a, indices, axis, mode=mode)``: a scatter-add of `g`."""
    base, ax = _flat_or_axis(np.shape(a), axis)
    n = base[ax]
    idx = np.asarray(indices)
    if mode == "wrap":
        idx = idx % n
    elif mode == "clip":
        idx = np.clip(idx, 0, n - 1)
    return _scatter_axis(g, a, base, ax, idx)


def _sequence_count(param):
    """`outputs` of a helper returning one piece per element of the sequence `param`: as
    many outputs as a tuple literal has elements; one (the list of pieces) for a list
    built at run time."""
    def outputs(bound):
        from s2sad.transforms.values import Const, Tup
        av = bound[param]
        if isinstance(av, Tup):
            return len(av.items)
        if isinstance(av, Const) and isinstance(av.value, (tuple, list)):
            return len(av.value)
        return None
    return outputs


def helper_example(prim, expr, wrt=("g",), **inputs):
    """An example of a transpose helper: differentiated in ``g``, with the helper itself
    passed in as a global (the tests' namespace only has `s2sad.runtime.helpers`)."""
    prim.example(expr, wrt=wrt, **{prim.name: const(prim.obj)}, **inputs)


# ---------------------------------------------------------------- reshapes

reshape = register("reshape", np.reshape, spelling="np.reshape", params=("a", "shape", "order"),
                   defaults={"order": "C"}, linear=("a",),
                   doc="np.reshape(a, shape[, order]); x.reshape(...)")
reshape.example("np.reshape(x, (2, 6))", x=real(3, 4)) \
    .example("np.reshape(x, (-1, 2))", x=real(2, 3, 2)) \
    .example("np.reshape(x, -1)", x=real(2, 3)) \
    .example("np.reshape(x, ())", x=real(1, 1)) \
    .example("np.reshape(x, (1, 1))", x=real()) \
    .example("np.reshape(x, (3, 2), order='F')", x=real(2, 3)) \
    .example("x.reshape(4, 3)", x=real(3, 4)) \
    .example("x.reshape((2, -1))", x=real(3, 4)) \
    .example("x.reshape(-1)", x=real(2, 2, 2)) \
    .example("x.reshape(y.shape)", x=real(6), y=const(np.zeros((3, 2))))


@reshape.defjvp
def _(a, shape, a_dot, order="C"):
    return np.reshape(a_dot, shape, order=order)


@reshape.deftranspose("a")
def _(ct, a, shape, order="C"):
    return reshape_as(ct, a, order=order)


reshape_as_p = register("reshape_as", reshape_as, spelling="reshape_as", params=("g", "like", "order"),
                        defaults={"order": "C"}, linear=("g",),
                        doc="g reshaped to the shape of like (the transpose of reshape and friends)")
helper_example(reshape_as_p, "reshape_as(g, like)", g=real(2, 6), like=real(3, 4))
helper_example(reshape_as_p, "reshape_as(g, like, order='F')", g=real(6), like=real(2, 3))
helper_example(reshape_as_p, "reshape_as(g, like)", g=real(1, 1), like=real())
helper_example(reshape_as_p, "reshape_as(g, like)", g=real(), like=real(1))


@reshape_as_p.defjvp
def _(g, like, g_dot, order="C"):
    return reshape_as(g_dot, like, order=order)


@reshape_as_p.deftranspose("g")
def _(ct, g, like, order="C"):
    return reshape_as(ct, g, order=order)


ravel = register("ravel", np.ravel, spelling="np.ravel", params=("a", "order"),
                 defaults={"order": "C"}, linear=("a",), doc="np.ravel(a); x.ravel(); x.flatten()")
ravel.example("np.ravel(x)", x=real(3, 4)).example("np.ravel(x)", x=real()) \
    .example("np.ravel(x, order='F')", x=real(2, 3)) \
    .example("x.ravel()", x=real(2, 3, 2)).example("x.flatten()", x=real(2, 3))


@ravel.defjvp
def _(a, a_dot, order="C"):
    return np.ravel(a_dot, order=order)


@ravel.deftranspose("a")
def _(ct, a, order="C"):
    return reshape_as(ct, a, order=order)


# ---------------------------------------------------------------- axes

transpose = register("transpose", np.transpose, spelling="np.transpose", params=("a", "axes"),
                     defaults={"axes": None}, linear=("a",),
                     doc="np.transpose(a[, axes]); x.T; x.transpose(...)")
transpose.example("np.transpose(x)", x=real(3, 4)) \
    .example("np.transpose(x, (1, 2, 0))", x=real(2, 3, 4)) \
    .example("np.transpose(x, axes=(-1, 0, 1))", x=real(2, 3, 4)) \
    .example("np.transpose(x)", x=real()) \
    .example("np.transpose(x)", x=real(2, 3, 4)) \
    .example("x.T", x=real(3, 4)).example("x.T", x=real(4)) \
    .example("x.transpose(1, 0)", x=real(3, 4)) \
    .example("x.transpose((2, 0, 1))", x=real(2, 3, 4)) \
    .example("x.transpose()", x=real(2, 3))


@transpose.defjvp
def _(a, a_dot, axes=None):
    return np.transpose(a_dot, axes)


def _static_inverse_axes(b):
    """Bindings with a constant (or absent) permutation replaced by its inverse."""
    axes = b.get("axes", DEFAULT)
    if axes is DEFAULT:
        return b
    v = static_value(axes)
    if v is NOT_STATIC:
        return None
    b["axes"] = const_atom(inverse_axes(v))
    return b


def _transpose_t_static(ct, a, axes=None):
    return np.transpose(ct, axes)


def _transpose_t_dynamic(ct, a, axes=None):
    return np.transpose(ct, inverse_axes(axes))


deftranspose_choose(transpose, "a", (_static_inverse_axes, _transpose_t_static),
                    (lambda b: b, _transpose_t_dynamic))

register("inverse_axes", inverse_axes, spelling="inverse_axes", params=("axes",),
         defaults={"axes": None}, nondiff=True, doc="the inverse of an axis permutation")


swapaxes = register("swapaxes", np.swapaxes, spelling="np.swapaxes", params=("a", "axis1", "axis2"),
                    linear=("a",), doc="np.swapaxes(a, axis1, axis2); x.swapaxes(...)")
swapaxes.example("np.swapaxes(x, 0, 2)", x=real(2, 3, 4)) \
    .example("np.swapaxes(x, -1, 0)", x=real(3, 4)) \
    .example("x.swapaxes(1, 2)", x=real(2, 3, 4))


@swapaxes.defjvp
def _(a, axis1, axis2, a_dot):
    return np.swapaxes(a_dot, axis1, axis2)


@swapaxes.deftranspose("a")
def _(ct, a, axis1, axis2):
    return np.swapaxes(ct, axis1, axis2)


moveaxis = register("moveaxis", np.moveaxis, spelling="np.moveaxis",
                    params=("a", "source", "destination"), linear=("a",))
moveaxis.example("np.moveaxis(x, 0, -1)", x=real(2, 3, 4)) \
    .example("np.moveaxis(x, (0, 1), (2, 0))", x=real(2, 3, 4)) \
    .example("np.moveaxis(x, -1, 0)", x=real(3, 4))


@moveaxis.defjvp
def _(a, source, destination, a_dot):
    return np.moveaxis(a_dot, source, destination)


@moveaxis.deftranspose("a")
def _(ct, a, source, destination):
    return np.moveaxis(ct, destination, source)


squeeze = register("squeeze", np.squeeze, spelling="np.squeeze", params=("a", "axis"),
                   defaults={"axis": None}, linear=("a",), numba=False,
                   doc="np.squeeze(a[, axis]); x.squeeze() (not in Numba: use reshape or indexing)")
squeeze.example("np.squeeze(x)", x=real(1, 3, 1, 2)) \
    .example("np.squeeze(x, axis=0)", x=real(1, 3, 1)) \
    .example("np.squeeze(x, -1)", x=real(3, 1)) \
    .example("np.squeeze(x, axis=(0, 2))", x=real(1, 3, 1, 2)) \
    .example("np.squeeze(x)", x=real(1, 1)) \
    .example("np.squeeze(x)", x=real()) \
    .example("x.squeeze()", x=real(2, 1)) \
    .example("x.squeeze(1)", x=real(2, 1, 3))


@squeeze.defjvp
def _(a, a_dot, axis=None):
    return np.squeeze(a_dot, axis=axis)


@squeeze.deftranspose("a")
def _(ct, a, axis=None):
    return reshape_as(ct, a)


expand_dims = register("expand_dims", np.expand_dims, spelling="np.expand_dims", params=("a", "axis"),
                       linear=("a",))
expand_dims.example("np.expand_dims(x, 0)", x=real(3, 4)) \
    .example("np.expand_dims(x, -1)", x=real(3, 4)) \
    .example("np.expand_dims(x, axis=(0, 2))", x=real(3)) \
    .example("np.expand_dims(x, 0)", x=real())


@expand_dims.defjvp
def _(a, axis, a_dot):
    return np.expand_dims(a_dot, axis)


@expand_dims.deftranspose("a")
def _(ct, a, axis):
    return reshape_as(ct, a)


broadcast_to = register("broadcast_to", np.broadcast_to, spelling="np.broadcast_to",
                        params=("array", "shape"), linear=("array",),
                        doc="a read-only view: write into a copy")
broadcast_to.example("np.broadcast_to(x, (3, 4))", x=real(4)) \
    .example("np.broadcast_to(x, (2, 3, 4))", x=real(3, 1)) \
    .example("np.broadcast_to(x, (3,))", x=real()) \
    .example("np.broadcast_to(x, y.shape) * 1.0", x=real(1, 4), y=const(np.zeros((2, 4))))


@broadcast_to.defjvp
def _(array, shape, array_dot):
    return np.broadcast_to(array_dot, shape)


@broadcast_to.deftranspose("array")
def _(ct, array, shape):
    return unbroadcast(ct, array)


def _at_least(fn, name, shapes):
    p = register(name, fn, spelling=f"np.{name}", params=("ary",), linear=("ary",),
                 doc=f"np.{name}(a) of one array (several arrays are not supported)")
    for s in shapes:
        p.example(f"np.{name}(x)", x=real(*s))

    @p.deftranspose("ary")
    def _(ct, ary):
        return reshape_as(ct, ary)
    return p


atleast_1d = _at_least(np.atleast_1d, "atleast_1d", [(), (3,), (2, 3)])


@atleast_1d.defjvp
def _(ary, ary_dot):
    return np.atleast_1d(ary_dot)


atleast_2d = _at_least(np.atleast_2d, "atleast_2d", [(), (3,), (2, 3)])


@atleast_2d.defjvp
def _(ary, ary_dot):
    return np.atleast_2d(ary_dot)


atleast_3d = _at_least(np.atleast_3d, "atleast_3d", [(), (3,), (2, 3), (2, 3, 2)])


@atleast_3d.defjvp
def _(ary, ary_dot):
    return np.atleast_3d(ary_dot)


# ---------------------------------------------------------------- joining

concatenate = register("concatenate", np.concatenate, spelling="np.concatenate",
                       params=("arrays", "axis"), defaults={"axis": 0}, linear=("arrays",),
                       doc="np.concatenate((a, b, ...)[, axis]) (a tuple or list of arrays; "
                           "Numba: a tuple, and not axis=None)")
concatenate.example("np.concatenate((x, y))", x=real(3), y=real(2)) \
    .example("np.concatenate([x, y], axis=1)", x=real(2, 3), y=real(2, 1)) \
    .example("np.concatenate((x, y, x), axis=-1)", x=real(2, 2), y=real(2, 3)) \
    .example("np.concatenate((x, y), axis=None)", x=real(2, 2), y=real(3)) \
    .example("np.concatenate((x, c))", x=real(2, 3), c=const(np.ones((1, 3)))) \
    .example("np.concatenate([x])", x=real(4)) \
    .example("np.concatenate((x, y), 0)", x=real(1, 2, 2), y=real(2, 2, 2))


@concatenate.defjvp
def _(arrays, arrays_dot, axis=0):
    return np.concatenate(arrays_dot, axis=axis)


@deftranspose_seq(concatenate, "arrays")
def _(ct, arrays, axis=0):
    return unconcatenate(ct, arrays, axis=axis)


stack = register("stack", np.stack, spelling="np.stack", params=("arrays", "axis"),
                 defaults={"axis": 0}, linear=("arrays",),
                 doc="np.stack((a, b, ...)[, axis]) (a tuple or list of arrays; Numba: a tuple "
                     "of arrays)")
stack.example("np.stack((x, y))", x=real(3), y=real(3)) \
    .example("np.stack([x, y, x], axis=1)", x=real(2, 3), y=real(2, 3)) \
    .example("np.stack((x, y), axis=-1)", x=real(2, 2), y=real(2, 2)) \
    .example("np.stack((x, y, 1.0))", x=real(), y=real()) \
    .example("np.stack((x, c), 1)", x=real(3), c=const(np.arange(3.0)))


@stack.defjvp
def _(arrays, arrays_dot, axis=0):
    return np.stack(arrays_dot, axis=axis)


@deftranspose_seq(stack, "arrays")
def _(ct, arrays, axis=0):
    return unstack(ct, arrays, axis=axis)


hstack = register("hstack", np.hstack, spelling="np.hstack", params=("tup",), linear=("tup",))
hstack.example("np.hstack((x, y))", x=real(3), y=real(2)) \
    .example("np.hstack([x, y])", x=real(2, 3), y=real(2, 1)) \
    .example("np.hstack((x, y))", x=real(), y=real(2))


@hstack.defjvp
def _(tup, tup_dot):
    return np.hstack(tup_dot)


@deftranspose_seq(hstack, "tup")
def _(ct, tup):
    return unhstack(ct, tup)


vstack = register("vstack", np.vstack, spelling="np.vstack", params=("tup",), linear=("tup",))
vstack.example("np.vstack((x, y))", x=real(3), y=real(3)) \
    .example("np.vstack([x, y])", x=real(2, 3), y=real(1, 3)) \
    .example("np.vstack((x, y, x))", x=real(2, 2, 2), y=real(1, 2, 2))


@vstack.defjvp
def _(tup, tup_dot):
    return np.vstack(tup_dot)


@deftranspose_seq(vstack, "tup")
def _(ct, tup):
    return unvstack(ct, tup)


# The transposes of the joins: one piece per array (multi-output primitives, unpacked like
# np.split), each transposed by its join.

unconcatenate_p = register("unconcatenate", unconcatenate, spelling="unconcatenate",
                           params=("g", "arrays", "axis"), defaults={"axis": 0}, linear=("g",),
                           outputs=_sequence_count("arrays"),
                           doc="the pieces of g, one per array (the transpose of np.concatenate)")
# Reverse mode of the examples that pass the outputs of a multi-output primitive on to
# another operation, or leave some unused, needs their shape witnesses: the JVP pass must
# map a multi-output rule's tangent names to the primal outputs (they are renamed by
# simplify today), and linearize must keep those witnesses as residuals.
helper_example(unconcatenate_p, "unconcatenate(g, (x, y), axis=1)", g=real(2, 4), x=real(2, 2),
                y=real(2, 2))
helper_example(unconcatenate_p, "np.concatenate(unconcatenate(g, (x, y), axis=1)[::-1], axis=1)",
                g=real(2, 5), x=real(2, 3), y=real(2, 2))
helper_example(unconcatenate_p, "np.hstack(unconcatenate(g, (x, y, x), axis=None))", g=real(7),
                x=real(2), y=real(3))
unstack_p = register("unstack", unstack, spelling="unstack", params=("g", "arrays", "axis"),
                     defaults={"axis": 0}, linear=("g",), outputs=_sequence_count("arrays"),
                     doc="the slices of g, one per array (the transpose of np.stack)")
helper_example(unstack_p, "unstack(g, (x, y), axis=-1)", g=real(3, 2), x=real(3), y=real(3))
helper_example(unstack_p, "np.stack(unstack(g, (x, y, 1.0)))", g=real(3), x=real(), y=real())
unhstack_p = register("unhstack", unhstack, spelling="unhstack", params=("g", "tup"), linear=("g",),
                      outputs=_sequence_count("tup"),
                      doc="the pieces of g, one per array (the transpose of np.hstack)")
helper_example(unhstack_p, "unhstack(g, (x, y))", g=real(4), x=real(2), y=real(2))
helper_example(unhstack_p, "np.hstack(unhstack(g, (x, y))[::-1])", g=real(3), x=real(), y=real(2))
helper_example(unhstack_p, "np.hstack(unhstack(g, (x, y)))", g=real(2, 4), x=real(2, 3), y=real(2, 1))
unvstack_p = register("unvstack", unvstack, spelling="unvstack", params=("g", "tup"), linear=("g",),
                      outputs=_sequence_count("tup"),
                      doc="the pieces of g, one per array (the transpose of np.vstack)")
helper_example(unvstack_p, "unvstack(g, (x, y))", g=real(2, 3), x=real(3), y=real(3))
helper_example(unvstack_p, "np.vstack(unvstack(g, (x, y)))", g=real(3, 2, 2), x=real(2, 2, 2),
                y=real(1, 2, 2))


@defjvp_multi(unconcatenate_p)
def _(g, arrays, out, g_dot, axis=0):
    return unconcatenate(g_dot, arrays, axis=axis)


@unconcatenate_p.deftranspose("g")
def _(ct, g, arrays, axis=0):
    return np.concatenate(ct, axis=axis)


@defjvp_multi(unstack_p)
def _(g, arrays, out, g_dot, axis=0):
    return unstack(g_dot, arrays, axis=axis)


@unstack_p.deftranspose("g")
def _(ct, g, arrays, axis=0):
    return np.stack(ct, axis=axis)


@defjvp_multi(unhstack_p)
def _(g, tup, out, g_dot):
    return unhstack(g_dot, tup)


@unhstack_p.deftranspose("g")
def _(ct, g, tup):
    return np.hstack(ct)


@defjvp_multi(unvstack_p)
def _(g, tup, out, g_dot):
    return unvstack(g_dot, tup)


@unvstack_p.deftranspose("g")
def _(ct, g, tup):
    return np.vstack(ct)


# ---------------------------------------------------------------- splitting

class StaticCountError(TransformError, TypeError):
    """The number of outputs of a multi-output primitive is not known at transform time."""


def _count(av, what):
    """The number of pieces np.split makes from its argument `indices_or_sections`."""
    from s2sad.transforms.values import Const, Tup
    if isinstance(av, Tup):
        return len(av.items) + 1
    if isinstance(av, Const):
        v = av.value
        if isinstance(v, (bool, np.bool_)):
            pass
        elif isinstance(v, (int, np.integer)):
            return int(v)
        elif isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim == 1):
            return len(v) + 1
    raise StaticCountError(f"{what}: the number of pieces must be known at transform time",
                           hint="pass a constant number of sections, or a tuple or list of split "
                                "indices (whose values may be computed at run time)")


split = register("split", np.split, spelling="np.split",
                 params=("ary", "indices_or_sections", "axis"), defaults={"axis": 0},
                 linear=("ary",), outputs=lambda b: _count(b["indices_or_sections"], "np.split"),
                 doc="a list of arrays, unpacked into one variable per piece")
# Reverse mode of the examples that pass the outputs of a multi-output primitive on to
# another operation, or leave some unused, needs their shape witnesses: the JVP pass must
# map a multi-output rule's tangent names to the primal outputs (they are renamed by
# simplify today), and linearize must keep those witnesses as residuals.
split.example("np.split(x, 3)", x=real(6)) \
    .example("np.split(x, 2, axis=1)", x=real(3, 4)) \
    .example("np.concatenate(np.split(x, [1, 3], axis=-1)[::-1], axis=-1)", x=real(2, 5)) \
    .example("np.split(x, (2, 4))", x=real(6, 2)) \
    .example("np.split(x, (1,))[1] * 2.0", x=real(3, 2)) \
    .example("np.split(x, 1)", x=real(2, 2)) \
    .example("sum(np.split(x, 2, 0))", x=real(4, 3))


@defjvp_multi(split)
def _(ary, indices_or_sections, out, ary_dot, axis=0):
    return np.split(ary_dot, indices_or_sections, axis=axis)


@split.deftranspose("ary")
def _(ct, ary, indices_or_sections, axis=0):
    return np.concatenate(ct, axis=axis)


def _array_split_count(av):
    from s2sad.transforms.values import Const
    if isinstance(av, Const) and isinstance(av.value, (int, np.integer)) \
            and not isinstance(av.value, (bool, np.bool_)) and av.value <= 0:
        raise StaticCountError("np.array_split: the number of sections must be larger than 0")
    return _count(av, "np.array_split")


array_split = register("array_split", np.array_split, spelling="np.array_split",
                       params=("ary", "indices_or_sections", "axis"), defaults={"axis": 0},
                       linear=("ary",), outputs=lambda b: _array_split_count(b["indices_or_sections"]),
                       doc="a list of arrays, unpacked into one variable per piece")
# Reverse mode of the examples that pass the outputs of a multi-output primitive on to
# another operation, or leave some unused, needs their shape witnesses: the JVP pass must
# map a multi-output rule's tangent names to the primal outputs (they are renamed by
# simplify today), and linearize must keep those witnesses as residuals.
array_split.example("np.concatenate(np.array_split(x, 3)[::-1])", x=real(7)) \
    .example("np.array_split(x, [2], axis=1)[1]", x=real(2, 3)) \
    .example("np.array_split(x, 2)", x=real(4, 3))


@defjvp_multi(array_split)
def _(ary, indices_or_sections, out, ary_dot, axis=0):
    return np.array_split(ary_dot, indices_or_sections, axis=axis)


@array_split.deftranspose("ary")
def _(ct, ary, indices_or_sections, axis=0):
    return np.concatenate(ct, axis=axis)


# ---------------------------------------------------------------- reordering and repeats

flip = register("flip", np.flip, spelling="np.flip", params=("m", "axis"), defaults={"axis": None},
                linear=("m",), doc="np.flip(m[, axis]) (Numba: without axis only)")
flip.example("np.flip(x)", x=real(3, 4)).example("np.flip(x, 0)", x=real(3, 4)) \
    .example("np.flip(x, axis=-1)", x=real(2, 3, 4)).example("np.flip(x, (0, 2))", x=real(2, 3, 4)) \
    .example("np.flip(x)", x=real())


@flip.defjvp
def _(m, m_dot, axis=None):
    return np.flip(m_dot, axis)


@flip.deftranspose("m")
def _(ct, m, axis=None):
    return np.flip(ct, axis=axis)


roll = register("roll", np.roll, spelling="np.roll", params=("a", "shift", "axis"),
                defaults={"axis": None}, linear=("a",),
                doc="np.roll(a, shift[, axis]) (Numba: an int shift without axis only)")
roll.example("np.roll(x, 1)", x=real(5)).example("np.roll(x, -2, axis=1)", x=real(3, 4)) \
    .example("np.roll(x, 2)", x=real(3, 4)).example("np.roll(x, (1, -1), axis=(0, 1))", x=real(3, 4)) \
    .example("np.roll(x, k, axis=0)", x=real(4, 2), k=ints(-3, 3))


@roll.defjvp
def _(a, shift, a_dot, axis=None):
    return np.roll(a_dot, shift, axis)


def _static_negated_shift(b):
    """Bindings with a constant shift replaced by its negation."""
    v = static_value(b["shift"])
    if v is NOT_STATIC or isinstance(v, bool):
        return None
    b["shift"] = const_atom(tuple(-int(i) for i in v) if isinstance(v, tuple) else -int(v))
    return b


def _roll_t_static(ct, a, shift, axis=None):
    return np.roll(ct, shift, axis=axis)


def _roll_t_dynamic(ct, a, shift, axis=None):
    return np.roll(ct, np.negative(shift), axis=axis)


deftranspose_choose(roll, "a", (_static_negated_shift, _roll_t_static), (lambda b: b, _roll_t_dynamic))


tile = register("tile", np.tile, spelling="np.tile", params=("A", "reps"), linear=("A",), numba=False,
                doc="np.tile(A, reps) (not in Numba)")
tile.example("np.tile(x, 2)", x=real(3)).example("np.tile(x, (2, 1, 3))", x=real(2, 2)) \
    .example("np.tile(x, (2, 3))", x=real())


@tile.defjvp
def _(A, reps, A_dot):
    return np.tile(A_dot, reps)


@tile.deftranspose("A")
def _(ct, A, reps):
    return untile(ct, A, reps)


untile_p = register("untile", untile, spelling="untile", params=("g", "A", "reps"), linear=("g",),
                    numba=False, doc="the sum of the tiles of g (the transpose of np.tile)")
helper_example(untile_p, "untile(g, A, (2, 1, 3))", g=real(2, 2, 6), A=real(2, 2))
helper_example(untile_p, "untile(g, A, 2)", g=real(6), A=real(3))
helper_example(untile_p, "untile(g, A, (2, 3))", g=real(2, 3), A=real())


@untile_p.defjvp
def _(g, A, reps, g_dot):
    return untile(g_dot, A, reps)


@untile_p.deftranspose("g")
def _(ct, g, A, reps):
    return np.tile(ct, reps)


repeat = register("repeat", np.repeat, spelling="np.repeat", params=("a", "repeats", "axis"),
                  defaults={"axis": None}, linear=("a",),
                  doc="np.repeat(a, repeats[, axis]); x.repeat(...) (Numba: int repeats, no axis)")
repeat.example("np.repeat(x, 2)", x=real(2, 3)).example("np.repeat(x, 3, axis=1)", x=real(2, 2)) \
    .example("np.repeat(x, (1, 0, 2), axis=-1)", x=real(2, 3)) \
    .example("x.repeat(2, axis=0)", x=real(2, 3)).example("np.repeat(x, 3)", x=real())


@repeat.defjvp
def _(a, repeats, a_dot, axis=None):
    return np.repeat(a_dot, repeats, axis)


@repeat.deftranspose("a")
def _(ct, a, repeats, axis=None):
    return unrepeat(ct, a, repeats, axis=axis)


unrepeat_p = register("unrepeat", unrepeat, spelling="unrepeat", params=("g", "a", "repeats", "axis"),
                      defaults={"axis": None}, linear=("g",),
                      doc="sums over the repeated copies in g (the transpose of np.repeat)")
helper_example(unrepeat_p, "unrepeat(g, a, 2)", g=real(12), a=real(2, 3))
helper_example(unrepeat_p, "unrepeat(g, a, (1, 0, 2), axis=-1)", g=real(2, 3), a=real(2, 3))
helper_example(unrepeat_p, "unrepeat(g, a, 3)", g=real(3), a=real())


@unrepeat_p.defjvp
def _(g, a, repeats, g_dot, axis=None):
    return unrepeat(g_dot, a, repeats, axis=axis)


@unrepeat_p.deftranspose("g")
def _(ct, g, a, repeats, axis=None):
    return np.repeat(ct, repeats, axis=axis)


take = register("take", np.take, spelling="np.take", params=("a", "indices", "axis", "mode"),
                defaults={"axis": None, "mode": "raise"}, keyword_only=("mode",), linear=("a",),
                doc="np.take(a, indices[, axis][, mode=])")
take.example("np.take(x, (0, 2, 2))", x=real(2, 3)) \
    .example("np.take(x, i, axis=1)", x=real(2, 4), i=const(np.array([3, 0, 1]))) \
    .example("np.take(x, 1, axis=-1)", x=real(2, 3, 2)) \
    .example("np.take(x, ((0, 1), (1, 1)), axis=0)", x=real(3, 2)) \
    .example("np.take(x, (5, -1), mode='wrap')", x=real(4)) \
    .example("np.take(x, i)", x=real(3), i=ints(0, 3, 4))


@take.defjvp
def _(a, indices, a_dot, axis=None, mode="raise"):
    return np.take(a_dot, indices, axis, mode=mode)


@take.deftranspose("a")
def _(ct, a, indices, axis=None, mode="raise"):
    return untake(ct, a, indices, axis=axis, mode=mode)


untake_p = register("untake", untake, spelling="untake", params=("g", "a", "indices", "axis", "mode"),
                    defaults={"axis": None, "mode": "raise"}, keyword_only=("mode",), linear=("g",),
                    doc="a scatter-add of g into zeros like a (the transpose of np.take)")
helper_example(untake_p, "untake(g, a, (0, 2, 2))", g=real(3), a=real(2, 3))
helper_example(untake_p, "untake(g, a, 1, axis=-1)", g=real(2, 3), a=real(2, 3, 2))
helper_example(untake_p, "untake(g, a, ((0, 1), (1, 1)), axis=0)", g=real(2, 2, 2), a=real(3, 2))
helper_example(untake_p, "untake(g, a, (5, -1), mode='wrap')", g=real(2), a=real(4))


@untake_p.defjvp
def _(g, a, indices, g_dot, axis=None, mode="raise"):
    return untake(g_dot, a, indices, axis=axis, mode=mode)


@untake_p.deftranspose("g")
def _(ct, g, a, indices, axis=None, mode="raise"):
    return np.take(ct, indices, axis=axis, mode=mode)


# ---------------------------------------------------------------- triangles

tril = register("tril", np.tril, spelling="np.tril", params=("m", "k"), defaults={"k": 0},
                linear=("m",))
tril.example("np.tril(x)", x=real(3, 3)).example("np.tril(x, -1)", x=real(3, 4)) \
    .example("np.tril(x, k=1)", x=real(2, 3, 3)).example("np.tril(x)", x=real(4))


@tril.defjvp
def _(m, m_dot, k=0):
    return np.tril(m_dot, k)


@tril.deftranspose("m")
def _(ct, m, k=0):
    return unbroadcast(np.tril(ct, k=k), m)


triu = register("triu", np.triu, spelling="np.triu", params=("m", "k"), defaults={"k": 0},
                linear=("m",))
triu.example("np.triu(x)", x=real(3, 3)).example("np.triu(x, 1)", x=real(4, 3)) \
    .example("np.triu(x, k=-1)", x=real(2, 3, 3)).example("np.triu(x)", x=real(4))


@triu.defjvp
def _(m, m_dot, k=0):
    return np.triu(m_dot, k)


@triu.deftranspose("m")
def _(ct, m, k=0):
    return unbroadcast(np.triu(ct, k=k), m)



# ---------------------------------------------------------------- Numba implementations

_NUMBA_DONE = False


def _nb_is_none(t):
    from numba import types
    return t is None or isinstance(t, types.NoneType) or \
        (isinstance(t, types.Omitted) and t.value is None)


def _nb_is_complex(t):
    from numba import types
    return isinstance(t, types.Complex) or \
        (isinstance(t, types.Array) and isinstance(t.dtype, types.Complex))


def _nb_literal(t, default):
    """The value of a literal (or omitted) argument type, `default` when left out."""
    from numba import types
    if t is None or isinstance(t, (str, int, bool)):
        return default if t is None else t
    if isinstance(t, types.Omitted):
        return t.value
    if isinstance(t, types.Literal):
        return t.literal_value
    return _NOT_LITERAL


_NOT_LITERAL = object()


def _nb_compile(src, name, **glb):
    """Compile generated implementation source (one impl per tuple length/structure)."""
    ns = {"np": np, **glb}
    exec(compile(src, f"<s2sad numba {name}>", "exec"), ns)
    return ns["impl"]


def register_numba():
    """Give this module's transpose helpers Numba implementations (idempotent).

    Meant to be called from `s2sad.runtime.helpers.register_numba`. The pieces-returning
    helpers (`unconcatenate`, `unstack`, `unhstack`, `unvstack`) return tuples under Numba
    (one element per array, real or complex each); `untake` handles integer and 1-d index
    arrays along an axis and any index array without; `unrepeat` an integer count without
    axis (NumPy's own limits under Numba); `untile` has none (np.tile is not in Numba).
    """
    global _NUMBA_DONE
    if _NUMBA_DONE:
        return
    _NUMBA_DONE = True
    from numba import types
    from numba.core.errors import TypingError
    from numba.extending import overload, register_jitable
    from numba.np.unsafe.ndarray import to_fixed_tuple

    @register_jitable
    def keep(v):
        return v

    @register_jitable
    def to_real(v):
        return np.real(v)

    def fixer(g, like):
        return to_real if _nb_is_complex(g) and not _nb_is_complex(like) else keep

    @overload(reshape_as)
    def _reshape_as(g, like, order="C"):
        fix = fixer(g, like)
        fortran = _nb_literal(order, "C")
        if fortran is _NOT_LITERAL:
            raise TypingError("reshape_as: order must be a constant under Numba")
        fortran = fortran == "F"
        if not isinstance(like, types.Array):
            if isinstance(g, types.Array):
                return lambda g, like, order="C": fix(g.ravel()[0])
            return lambda g, like, order="C": fix(g)
        if not isinstance(g, types.Array):
            return lambda g, like, order="C": np.full(like.shape, fix(g))
        if fortran:
            return lambda g, like, order="C": np.ascontiguousarray(fix(g).T).reshape(like.T.shape).T
        return lambda g, like, order="C": np.ascontiguousarray(fix(g)).reshape(like.shape)

    @overload(inverse_axes)
    def _inverse_axes(axes=None):
        if _nb_is_none(axes):
            return lambda axes=None: None
        n = len(axes)

        def impl(axes=None):
            inv = np.empty(n, np.int64)
            for i in range(n):
                a = axes[i]
                inv[a + n if a < 0 else a] = i
            return to_fixed_tuple(inv, n)
        return impl

    def tuple_body(lines, n):
        """Generated function body: `lines`, then ``return (p0, p1, ...)``."""
        body = "\n".join("    " + ln for ln in lines)
        ret = ", ".join(f"p{i}" for i in range(n)) + ("," if n == 1 else "")
        return body + f"\n    return ({ret})\n"

    @overload(unconcatenate)
    def _unconcatenate(g, arrays, axis=0):
        elems = list(arrays)
        fixes = {f"fix{i}": fixer(g, e) for i, e in enumerate(elems)}
        if _nb_is_none(axis):
            lines = ["flat = np.ascontiguousarray(g).ravel()", "lo = 0"]
            for i in range(len(elems)):
                lines += [f"hi = lo + arrays[{i}].size",
                          f"p{i} = fix{i}(flat[lo:hi].reshape(arrays[{i}].shape))", "lo = hi"]
        else:
            lines = ["ax = axis + g.ndim if axis < 0 else axis", "gs = np.swapaxes(g, 0, ax)", "lo = 0"]
            for i in range(len(elems)):
                lines += [f"hi = lo + arrays[{i}].shape[ax]",
                          f"p{i} = fix{i}(np.swapaxes(gs[lo:hi], 0, ax))", "lo = hi"]
        body = tuple_body(lines, len(elems))
        return _nb_compile("def impl(g, arrays, axis=0):\n" + body, "unconcatenate", **fixes)

    @overload(unstack)
    def _unstack(g, arrays, axis=0):
        elems = list(arrays)
        fixes = {f"fix{i}": fixer(g, e) for i, e in enumerate(elems)}
        lines = ["ax = axis + g.ndim if axis < 0 else axis", "gm = np.moveaxis(g, ax, 0)"]
        lines += [f"p{i} = fix{i}(gm[{i}])" for i in range(len(elems))]
        body = tuple_body(lines, len(elems))
        return _nb_compile("def impl(g, arrays, axis=0):\n" + body, "unstack", **fixes)

    def ndim_of(t):
        return t.ndim if isinstance(t, types.Array) else 0

    @overload(unhstack)
    def _unhstack(g, tup):
        elems = list(tup)
        fixes = {f"fix{i}": fixer(g, e) for i, e in enumerate(elems)}
        lines = ["lo = 0"]
        one_d = all(ndim_of(e) <= 1 for e in elems)
        for i, e in enumerate(elems):
            if ndim_of(e) == 0:
                lines += [f"p{i} = fix{i}(g[lo])", "lo = lo + 1"]
            elif one_d:
                lines += [f"hi = lo + tup[{i}].shape[0]", f"p{i} = fix{i}(g[lo:hi])", "lo = hi"]
            else:
                lines += [f"hi = lo + tup[{i}].shape[1]", f"p{i} = fix{i}(g[:, lo:hi])", "lo = hi"]
        body = tuple_body(lines, len(elems))
        return _nb_compile("def impl(g, tup):\n" + body, "unhstack", **fixes)

    @overload(unvstack)
    def _unvstack(g, tup):
        elems = list(tup)
        fixes = {f"fix{i}": fixer(g, e) for i, e in enumerate(elems)}
        lines = ["lo = 0"]
        for i, e in enumerate(elems):
            nd = ndim_of(e)
            if nd == 0:
                lines += [f"p{i} = fix{i}(g[lo, 0])", "lo = lo + 1"]
            elif nd == 1:
                lines += [f"p{i} = fix{i}(g[lo])", "lo = lo + 1"]
            else:
                lines += [f"hi = lo + tup[{i}].shape[0]", f"p{i} = fix{i}(g[lo:hi])", "lo = hi"]
        body = tuple_body(lines, len(elems))
        return _nb_compile("def impl(g, tup):\n" + body, "unvstack", **fixes)

    @register_jitable
    def wrap_index(i, n, mode):
        if mode == 1:  # wrap
            i = i % n
        elif mode == 2:  # clip
            i = min(max(i, 0), n - 1)
        elif i < 0:
            i = i + n
        return i

    @overload(untake)
    def _untake(g, a, indices, axis=None, mode="raise"):
        m = _nb_literal(mode, "raise")
        if m is _NOT_LITERAL or m not in ("raise", "wrap", "clip"):
            raise TypingError("untake: mode must be a constant 'raise', 'wrap' or 'clip' under Numba")
        code = {"raise": 0, "wrap": 1, "clip": 2}[m]
        cplx = _nb_is_complex(a)
        dt = np.complex128 if cplx else np.float64
        fix = fixer(g, a)
        idx_array = isinstance(indices, (types.Array, types.BaseTuple))
        if not isinstance(a, types.Array):
            raise TypingError("untake: a scalar array is not supported under Numba")
        if _nb_is_none(axis):
            def impl_flat(g, a, indices, axis=None, mode="raise"):
                z = np.zeros(a.size, dt)
                idx = np.asarray(indices).ravel()
                gf = np.asarray(fix(g)).ravel()
                for k in range(idx.size):
                    z[wrap_index(idx[k], a.size, code)] += gf[k]
                return z.reshape(a.shape)
            return impl_flat
        if not idx_array:
            def impl_int(g, a, indices, axis=None, mode="raise"):
                z = np.zeros(a.shape, dt)
                ax = axis + a.ndim if axis < 0 else axis
                zm = np.moveaxis(z, ax, 0)
                zm[wrap_index(indices, a.shape[ax], code)] += fix(g)
                return z
            return impl_int
        nd_idx = indices.ndim if isinstance(indices, types.Array) else 1
        if nd_idx != 1:
            raise TypingError("untake: along an axis, Numba supports integer or 1-d indices")

        def impl_axis(g, a, indices, axis=None, mode="raise"):
            z = np.zeros(a.shape, dt)
            ax = axis + a.ndim if axis < 0 else axis
            zm = np.moveaxis(z, ax, 0)
            gm = np.moveaxis(fix(g), ax, 0)
            idx = np.asarray(indices)
            for k in range(idx.size):
                zm[wrap_index(idx[k], a.shape[ax], code)] += gm[k]
            return z
        return impl_axis

    @overload(unrepeat)
    def _unrepeat(g, a, repeats, axis=None):
        if not _nb_is_none(axis) or not isinstance(repeats, types.Integer):
            raise TypingError("unrepeat: Numba supports an integer count without axis")
        fix = fixer(g, a)
        if isinstance(a, types.Array):
            return lambda g, a, repeats, axis=None: \
                fix(np.ascontiguousarray(g).reshape((a.size, repeats)).sum(axis=1).reshape(a.shape))
        return lambda g, a, repeats, axis=None: fix(g.sum())
