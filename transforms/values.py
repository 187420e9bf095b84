"""Abstract values: what `specialize` knows about a variable at transform time.

A value is either known at transform time (`Const`: a module, function, string, None,
a number, an array captured from a closure), a runtime value held in an IR variable
(`Dyn`; `RtList` for a list grown at run time), or a structure whose layout is known
while its leaves may be runtime values (`Tup` for tuples, lists and namedtuples, `DictV`
for dicts). Functions are values too: `Closure` (a nested def or lambda), `PartialV`,
`TransformV` (``ad.grad(g)`` evaluated at transform time), `IterV` (range, zip, ...).

`flatten` splits a value into a hashable *skeleton* (its static part, the key under
which callees are specialized) and its runtime leaves; `unflatten` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class AV:
    pass


@dataclass(frozen=True)
class Dyn(AV):
    var: str


@dataclass(frozen=True)
class RtList(AV):
    var: str


@dataclass(frozen=True)
class Lit(AV):
    """A runtime leaf given by a literal number (an argument or a return value)."""

    value: object


@dataclass(eq=False)
class Const(AV):
    value: object
    hint: str = "c"

    def __eq__(self, other):
        return isinstance(other, Const) and same_static(self.value, other.value)

    def __hash__(self):
        return hash(static_key(self.value))


@dataclass(frozen=True)
class Tup(AV):
    items: tuple
    kind: object = tuple  # tuple, list, or a namedtuple class


@dataclass(frozen=True)
class DictV(AV):
    keys: tuple
    items: tuple

    def get(self, key):
        for k, v in zip(self.keys, self.items):
            if k == key:
                return v
        raise KeyError(key)


def fdef_key(fdef):
    """What makes two nested defs the same function: normalize stamps each def it writes,
    and the copies it makes of one (a `while` test re-evaluated at the end of the body)
    keep the stamp; a def it did not write is itself."""
    key = getattr(fdef, "s2sad_key", None)
    return ("def", key) if key is not None else ("node", id(fdef))


@dataclass(eq=False)
class Closure(AV):
    """A nested def/lambda. `captured` maps its free names to values (a snapshot when
    it was passed on; `frame` is the live scope when called where it was defined)."""

    fdef: object
    name: str
    frame: object = None
    captured: dict = field(default_factory=dict)
    defaults: tuple = ()
    kw_defaults: dict = field(default_factory=dict)
    globals: dict = None
    builtins: dict = None
    filename: str = "<unknown>"
    decorators: tuple = ()

    def __eq__(self, other):
        return isinstance(other, Closure) and fdef_key(other.fdef) == fdef_key(self.fdef)

    def __hash__(self):
        return hash(fdef_key(self.fdef))


@dataclass(frozen=True)
class PartialV(AV):
    func: AV
    args: tuple
    kwargs: tuple  # ((name, AV), ...)


@dataclass(frozen=True)
class TransformV(AV):
    kind: str            # 'grad', 'value_and_grad', 'jvp_fn', 'jacfwd', 'pullback', ...
    func: AV
    options: tuple       # hashable options ((name, value), ...)


@dataclass(frozen=True)
class IterV(AV):
    kind: str            # 'range' | 'zip' | 'enumerate' | 'reversed'
    args: tuple


@dataclass(frozen=True)
class Undefined(AV):
    pass


# ---------------------------------------------------------------- static helpers

_SCALARS = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis))


def is_literal(value) -> bool:
    """Can this value be written as a literal in generated code?"""
    if isinstance(value, (np.ndarray,)):
        return False
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not np.isfinite(value):
            return False
        if isinstance(value, complex) and not np.isfinite(value):
            return False
        return type(value) in (bool, int, float, complex, str, bytes, type(None), type(Ellipsis)) \
            or isinstance(value, float)
    return False


def is_number(value) -> bool:
    return isinstance(value, (bool, int, float, complex, np.number, np.bool_)) and not isinstance(value, np.ndarray)


def static_key(value):
    if isinstance(value, np.ndarray):
        return ("id", id(value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value).__name__, value) if is_literal(value) else ("obj", id(value), type(value).__name__)


def same_static(a, b) -> bool:
    if a is b:
        return True
    if is_literal(a) and is_literal(b):
        return type(a) is type(b) and a == b
    return False


def is_namedtuple_class(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields")


# ---------------------------------------------------------------- skeletons

@dataclass(frozen=True)
class SLeaf:
    list: bool = False  # a runtime list


@dataclass(frozen=True)
class SConst:
    key: object
    value: object = field(compare=False, hash=False)
    hint: str = field(default="c", compare=False, hash=False)


@dataclass(frozen=True)
class STup:
    kind: object
    items: tuple


@dataclass(frozen=True)
class SDict:
    keys: tuple
    items: tuple


@dataclass(frozen=True)
class SClosure:
    fdef_id: object   # fdef_key of the def
    captured: tuple  # ((name, skel), ...)
    defaults: tuple
    kw_defaults: tuple
    closure: Closure = field(compare=False, hash=False)


@dataclass(frozen=True)
class SPartial:
    func: object
    args: tuple
    kwargs: tuple


@dataclass(frozen=True)
class STransform:
    kind: str
    func: object
    options: tuple


@dataclass(frozen=True)
class SIter:
    kind: str
    args: tuple


def flatten(av, leaves=None):
    """-> (skeleton, list of leaf AVs (Dyn / RtList))."""
    if leaves is None:
        leaves = []
    if isinstance(av, Dyn):
        leaves.append(av)
        return SLeaf(), leaves
    if isinstance(av, RtList):
        leaves.append(av)
        return SLeaf(list=True), leaves
    if isinstance(av, Lit):
        leaves.append(av)
        return SLeaf(), leaves
    if isinstance(av, Const):
        return SConst(static_key(av.value), av.value, av.hint), leaves
    if isinstance(av, Tup):
        items = tuple(flatten(i, leaves)[0] for i in av.items)
        return STup(av.kind, items), leaves
    if isinstance(av, DictV):
        items = tuple(flatten(i, leaves)[0] for i in av.items)
        return SDict(av.keys, items), leaves
    if isinstance(av, Closure):
        cap = tuple((k, flatten(v, leaves)[0]) for k, v in sorted(av.captured.items()))
        dfl = tuple(flatten(v, leaves)[0] for v in av.defaults)
        kwd = tuple((k, flatten(v, leaves)[0]) for k, v in sorted(av.kw_defaults.items()))
        return SClosure(fdef_key(av.fdef), cap, dfl, kwd, av), leaves
    if isinstance(av, PartialV):
        f = flatten(av.func, leaves)[0]
        args = tuple(flatten(a, leaves)[0] for a in av.args)
        kws = tuple((k, flatten(v, leaves)[0]) for k, v in av.kwargs)
        return SPartial(f, args, kws), leaves
    if isinstance(av, TransformV):
        return STransform(av.kind, flatten(av.func, leaves)[0], av.options), leaves
    if isinstance(av, IterV):
        return SIter(av.kind, tuple(flatten(a, leaves)[0] for a in av.args)), leaves
    if isinstance(av, Undefined):
        raise ValueError("undefined value")
    raise TypeError(f"cannot flatten {av!r}")


def unflatten(skel, leaves, pos=None):
    """Inverse of flatten: `leaves` is a list of AVs consumed in order."""
    if pos is None:
        pos = [0]

    def take():
        v = leaves[pos[0]]
        pos[0] += 1
        return v

    if isinstance(skel, SLeaf):
        return take()
    if isinstance(skel, SConst):
        return Const(skel.value, skel.hint)
    if isinstance(skel, STup):
        return Tup(tuple(unflatten(s, leaves, pos) for s in skel.items), skel.kind)
    if isinstance(skel, SDict):
        return DictV(skel.keys, tuple(unflatten(s, leaves, pos) for s in skel.items))
    if isinstance(skel, SClosure):
        c = skel.closure
        captured = {k: unflatten(s, leaves, pos) for k, s in skel.captured}
        defaults = tuple(unflatten(s, leaves, pos) for s in skel.defaults)
        kwd = {k: unflatten(s, leaves, pos) for k, s in skel.kw_defaults}
        return Closure(c.fdef, c.name, None, captured, defaults, kwd, c.globals, c.builtins,
                       c.filename, c.decorators)
    if isinstance(skel, SPartial):
        f = unflatten(skel.func, leaves, pos)
        args = tuple(unflatten(s, leaves, pos) for s in skel.args)
        kws = tuple((k, unflatten(s, leaves, pos)) for k, s in skel.kwargs)
        return PartialV(f, args, kws)
    if isinstance(skel, STransform):
        return TransformV(skel.kind, unflatten(skel.func, leaves, pos), skel.options)
    if isinstance(skel, SIter):
        return IterV(skel.kind, tuple(unflatten(s, leaves, pos) for s in skel.args))
    raise TypeError(f"bad skeleton {skel!r}")


def count_leaves(skel) -> int:
    if isinstance(skel, SLeaf):
        return 1
    if isinstance(skel, (STup, SDict)):
        return sum(count_leaves(s) for s in skel.items)
    if isinstance(skel, SClosure):
        return (sum(count_leaves(s) for _, s in skel.captured) + sum(count_leaves(s) for s in skel.defaults)
                + sum(count_leaves(s) for _, s in skel.kw_defaults))
    if isinstance(skel, SPartial):
        return count_leaves(skel.func) + sum(count_leaves(s) for s in skel.args) + \
            sum(count_leaves(s) for _, s in skel.kwargs)
    if isinstance(skel, STransform):
        return count_leaves(skel.func)
    if isinstance(skel, SIter):
        return sum(count_leaves(s) for s in skel.args)
    return 0


def leaf_paths(skel, prefix):
    """Readable names for the leaves of a skeleton: params -> params_W, pt -> pt_x."""
    out = []

    def walk(s, name):
        if isinstance(s, SLeaf):
            out.append(name)
        elif isinstance(s, STup):
            fields = getattr(s.kind, "_fields", None)
            for i, item in enumerate(s.items):
                walk(item, f"{name}_{fields[i] if fields else i}")
        elif isinstance(s, SDict):
            for k, item in zip(s.keys, s.items):
                walk(item, f"{name}_{k}")
        elif isinstance(s, SClosure):
            for k, item in s.captured:
                walk(item, k)
            for i, item in enumerate(s.defaults):
                walk(item, f"{name}_default{i}")
            for k, item in s.kw_defaults:
                walk(item, f"{name}_{k}")
        elif isinstance(s, SPartial):
            walk(s.func, name)
            for i, item in enumerate(s.args):
                walk(item, f"{name}_{i}")
            for k, item in s.kwargs:
                walk(item, f"{name}_{k}")
        elif isinstance(s, STransform):
            walk(s.func, name)
        elif isinstance(s, SIter):
            for i, item in enumerate(s.args):
                walk(item, f"{name}_{i}")
    walk(skel, prefix)
    return out
