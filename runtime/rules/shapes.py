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
"""

import gast
import numpy as np

from s2sad.errors import TransformError
from s2sad.runtime.domains import const, ints, real
from s2sad.runtime.registry import register
from s2sad.transforms import ir
from s2sad.transforms.templates import Template, Zero, is_zero


class MultiOutputRule(Template):
    """A JVP template for a primitive with several outputs whose rule is one call that
    returns a sequence (``return np.split(ary_dot, indices_or_sections, axis=axis)``).

    The rule must take ``out``: the pass binds it to the tuple of the primal outputs, which
    gives the number of results. The returned call is then assigned by tuple unpacking, as
    the primal statement is (``a, b = np.split(x, 2)`` gets ``a_dot, b_dot = np.split(x_dot,
    2)``), and the result is a tuple of one tangent per output. With a single output
    (``np.linspace`` without ``retstep``) it inlines like any template.
    """

    def inline(self, bindings, namer, namespace, target=None, loc=None, temps=None):
        outs = bindings.get("out")
        if not isinstance(outs, gast.Tuple):
            return super().inline(bindings, namer, namespace, target, loc, temps)
        stmts, result = super().inline(bindings, namer, namespace, None, loc, temps)
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


def defjvp_multi(prim):
    """Decorator: `prim`'s JVP rule is a `MultiOutputRule` (it must take ``out``)."""
    def deco(fn):
        rule = MultiOutputRule(fn, prim)
        if "out" not in rule.params:
            raise ValueError(f"{rule.where}: a multi-output rule must take the parameter 'out'")
        prim.jvp = rule
        return fn
    return deco


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


ravel = register("ravel", np.ravel, spelling="np.ravel", params=("a", "order"),
                 defaults={"order": "C"}, linear=("a",), doc="np.ravel(a); x.ravel(); x.flatten()")
ravel.example("np.ravel(x)", x=real(3, 4)).example("np.ravel(x)", x=real()) \
    .example("np.ravel(x, order='F')", x=real(2, 3)) \
    .example("x.ravel()", x=real(2, 3, 2)).example("x.flatten()", x=real(2, 3))


@ravel.defjvp
def _(a, a_dot, order="C"):
    return np.ravel(a_dot, order=order)


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


swapaxes = register("swapaxes", np.swapaxes, spelling="np.swapaxes", params=("a", "axis1", "axis2"),
                    linear=("a",), doc="np.swapaxes(a, axis1, axis2); x.swapaxes(...)")
swapaxes.example("np.swapaxes(x, 0, 2)", x=real(2, 3, 4)) \
    .example("np.swapaxes(x, -1, 0)", x=real(3, 4)) \
    .example("x.swapaxes(1, 2)", x=real(2, 3, 4))


@swapaxes.defjvp
def _(a, axis1, axis2, a_dot):
    return np.swapaxes(a_dot, axis1, axis2)


moveaxis = register("moveaxis", np.moveaxis, spelling="np.moveaxis",
                    params=("a", "source", "destination"), linear=("a",))
moveaxis.example("np.moveaxis(x, 0, -1)", x=real(2, 3, 4)) \
    .example("np.moveaxis(x, (0, 1), (2, 0))", x=real(2, 3, 4)) \
    .example("np.moveaxis(x, -1, 0)", x=real(3, 4))


@moveaxis.defjvp
def _(a, source, destination, a_dot):
    return np.moveaxis(a_dot, source, destination)


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


expand_dims = register("expand_dims", np.expand_dims, spelling="np.expand_dims", params=("a", "axis"),
                       linear=("a",))
expand_dims.example("np.expand_dims(x, 0)", x=real(3, 4)) \
    .example("np.expand_dims(x, -1)", x=real(3, 4)) \
    .example("np.expand_dims(x, axis=(0, 2))", x=real(3)) \
    .example("np.expand_dims(x, 0)", x=real())


@expand_dims.defjvp
def _(a, axis, a_dot):
    return np.expand_dims(a_dot, axis)


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


def _at_least(fn, name, shapes):
    p = register(name, fn, spelling=f"np.{name}", params=("ary",), linear=("ary",),
                 doc=f"np.{name}(a) of one array (several arrays are not supported)")
    for s in shapes:
        p.example(f"np.{name}(x)", x=real(*s))
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


hstack = register("hstack", np.hstack, spelling="np.hstack", params=("tup",), linear=("tup",))
hstack.example("np.hstack((x, y))", x=real(3), y=real(2)) \
    .example("np.hstack([x, y])", x=real(2, 3), y=real(2, 1)) \
    .example("np.hstack((x, y))", x=real(), y=real(2))


@hstack.defjvp
def _(tup, tup_dot):
    return np.hstack(tup_dot)


vstack = register("vstack", np.vstack, spelling="np.vstack", params=("tup",), linear=("tup",))
vstack.example("np.vstack((x, y))", x=real(3), y=real(3)) \
    .example("np.vstack([x, y])", x=real(2, 3), y=real(1, 3)) \
    .example("np.vstack((x, y, x))", x=real(2, 2, 2), y=real(1, 2, 2))


@vstack.defjvp
def _(tup, tup_dot):
    return np.vstack(tup_dot)


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
array_split.example("np.concatenate(np.array_split(x, 3)[::-1])", x=real(7)) \
    .example("np.array_split(x, [2], axis=1)[1]", x=real(2, 3)) \
    .example("np.array_split(x, 2)", x=real(4, 3))


@defjvp_multi(array_split)
def _(ary, indices_or_sections, out, ary_dot, axis=0):
    return np.array_split(ary_dot, indices_or_sections, axis=axis)


# ---------------------------------------------------------------- reordering and repeats

flip = register("flip", np.flip, spelling="np.flip", params=("m", "axis"), defaults={"axis": None},
                linear=("m",), doc="np.flip(m[, axis]) (Numba: without axis only)")
flip.example("np.flip(x)", x=real(3, 4)).example("np.flip(x, 0)", x=real(3, 4)) \
    .example("np.flip(x, axis=-1)", x=real(2, 3, 4)).example("np.flip(x, (0, 2))", x=real(2, 3, 4)) \
    .example("np.flip(x)", x=real())


@flip.defjvp
def _(m, m_dot, axis=None):
    return np.flip(m_dot, axis)


roll = register("roll", np.roll, spelling="np.roll", params=("a", "shift", "axis"),
                defaults={"axis": None}, linear=("a",),
                doc="np.roll(a, shift[, axis]) (Numba: an int shift without axis only)")
roll.example("np.roll(x, 1)", x=real(5)).example("np.roll(x, -2, axis=1)", x=real(3, 4)) \
    .example("np.roll(x, 2)", x=real(3, 4)).example("np.roll(x, (1, -1), axis=(0, 1))", x=real(3, 4)) \
    .example("np.roll(x, k, axis=0)", x=real(4, 2), k=ints(-3, 3))


@roll.defjvp
def _(a, shift, a_dot, axis=None):
    return np.roll(a_dot, shift, axis)


tile = register("tile", np.tile, spelling="np.tile", params=("A", "reps"), linear=("A",), numba=False,
                doc="np.tile(A, reps) (not in Numba)")
tile.example("np.tile(x, 2)", x=real(3)).example("np.tile(x, (2, 1, 3))", x=real(2, 2)) \
    .example("np.tile(x, (2, 3))", x=real())


@tile.defjvp
def _(A, reps, A_dot):
    return np.tile(A_dot, reps)


repeat = register("repeat", np.repeat, spelling="np.repeat", params=("a", "repeats", "axis"),
                  defaults={"axis": None}, linear=("a",),
                  doc="np.repeat(a, repeats[, axis]); x.repeat(...) (Numba: int repeats, no axis)")
repeat.example("np.repeat(x, 2)", x=real(2, 3)).example("np.repeat(x, 3, axis=1)", x=real(2, 2)) \
    .example("np.repeat(x, (1, 0, 2), axis=-1)", x=real(2, 3)) \
    .example("x.repeat(2, axis=0)", x=real(2, 3)).example("np.repeat(x, 3)", x=real())


@repeat.defjvp
def _(a, repeats, a_dot, axis=None):
    return np.repeat(a_dot, repeats, axis)


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


# ---------------------------------------------------------------- triangles

tril = register("tril", np.tril, spelling="np.tril", params=("m", "k"), defaults={"k": 0},
                linear=("m",))
tril.example("np.tril(x)", x=real(3, 3)).example("np.tril(x, -1)", x=real(3, 4)) \
    .example("np.tril(x, k=1)", x=real(2, 3, 3)).example("np.tril(x)", x=real(4))


@tril.defjvp
def _(m, m_dot, k=0):
    return np.tril(m_dot, k)


triu = register("triu", np.triu, spelling="np.triu", params=("m", "k"), defaults={"k": 0},
                linear=("m",))
triu.example("np.triu(x)", x=real(3, 3)).example("np.triu(x, 1)", x=real(4, 3)) \
    .example("np.triu(x, k=-1)", x=real(2, 3, 3)).example("np.triu(x)", x=real(4))


@triu.defjvp
def _(m, m_dot, k=0):
    return np.triu(m_dot, k)

