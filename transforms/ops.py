"""What operation an IR statement performs: the primitive and its bound arguments.

Every pass after `specialize` asks the same question of an assignment -- which
primitive, with which arguments bound to which parameter names -- and this module is
the one place that answers it. Calls are resolved against the function's namespace
(``np.sin`` -> the `np.sin` primitive, a name bound to a `Callee` -> a user call).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gast

from s2sad.runtime import registry
from s2sad.transforms import ir

BINOP_KEYS = {
    gast.Add: "add", gast.Sub: "sub", gast.Mult: "mul", gast.Div: "div",
    gast.FloorDiv: "floordiv", gast.Mod: "mod", gast.Pow: "pow", gast.MatMult: "matmul",
    gast.BitAnd: "and", gast.BitOr: "or", gast.BitXor: "xor",
    gast.LShift: "lshift", gast.RShift: "rshift",
}
BINOP_NODES = {v: k for k, v in BINOP_KEYS.items()}
UNARY_KEYS = {gast.USub: "neg", gast.UAdd: "pos", gast.Not: "not", gast.Invert: "invert"}
UNARY_NODES = {v: k for k, v in UNARY_KEYS.items()}
COMPARE_KEYS = {
    gast.Lt: "lt", gast.LtE: "le", gast.Gt: "gt", gast.GtE: "ge", gast.Eq: "eq",
    gast.NotEq: "ne", gast.Is: "is", gast.IsNot: "isnot", gast.In: "in", gast.NotIn: "notin",
}
META_ATTRS = {"shape", "ndim", "dtype", "size"}


class Callee:
    """Base class of the objects a namespace binds for calls of generated functions."""

    name: str = "callee"


@dataclass
class Op:
    kind: str                  # 'prim' | 'call' | 'custom'
    prim: object = None        # Primitive for 'prim'
    args: dict = field(default_factory=dict)   # parameter name -> atom / index node
    callee: object = None      # Callee for 'call'
    call_args: list = field(default_factory=list)  # positional atoms of a user call


_MISSING = object()


def resolve(node, namespace):
    """Value of a dotted name in `namespace`, or _MISSING."""
    path = ir.dotted_name(node)
    if path is None:
        return _MISSING
    parts = path.split(".")
    if parts[0] not in namespace:
        return _MISSING
    obj = namespace[parts[0]]
    for p in parts[1:]:
        try:
            obj = getattr(obj, p)
        except AttributeError:
            return _MISSING
    return obj


MISSING = _MISSING


def classify(value, namespace) -> Op:
    """Classify the right-hand side of an IR assignment."""
    registry._load_rules()
    if isinstance(value, (gast.Name, gast.Constant)):
        return Op("prim", registry.get("copy"), {"x": value})
    if isinstance(value, gast.BinOp):
        return Op("prim", registry.get(BINOP_KEYS[type(value.op)]), {"x": value.left, "y": value.right})
    if isinstance(value, gast.UnaryOp):
        return Op("prim", registry.get(UNARY_KEYS[type(value.op)]), {"x": value.operand})
    if isinstance(value, gast.Compare):
        return Op("prim", registry.get(COMPARE_KEYS[type(value.ops[0])]),
                  {"x": value.left, "y": value.comparators[0]})
    if isinstance(value, gast.Subscript):
        return Op("prim", registry.get("getitem"), {"x": value.value, "idx": value.slice})
    if isinstance(value, gast.Attribute):
        return Op("prim", registry.get("attr." + value.attr), {"x": value.value})
    if isinstance(value, gast.List):
        return Op("prim", registry.get("list"), {"items": value})
    if isinstance(value, gast.Tuple):
        return Op("prim", registry.get("tuple"), {"items": value})
    if isinstance(value, gast.Call):
        func = value.func
        obj = resolve(func, namespace)
        if obj is _MISSING and isinstance(func, gast.Attribute) and isinstance(func.value, gast.Name):
            prim = registry.BY_NAME.get("method." + func.attr)
            if prim is None:
                raise KeyError(f"unknown method {func.attr}")
            args = [func.value] + list(value.args)
            kwargs = {k.arg: k.value for k in value.keywords}
            return Op("prim", prim, prim.bind(args, kwargs))
        if isinstance(obj, Callee):
            return Op("call", callee=obj, call_args=list(value.args))
        prim = registry.lookup_object(obj) if obj is not _MISSING else None
        if prim is None:
            raise KeyError(f"unknown callee {ir.dotted_name(func) or func!r}")
        kwargs = {k.arg: k.value for k in value.keywords}
        return Op("prim", prim, prim.bind(list(value.args), kwargs))
    raise KeyError(f"unclassifiable expression {type(value).__name__}")


def classify_stmt(stmt, namespace) -> Op | None:
    """Op of an assignment or expression statement; None for other statements."""
    if isinstance(stmt, gast.Assign):
        target = stmt.targets[0]
        if isinstance(target, gast.Subscript):
            return Op("prim", registry.get("setitem"),
                      {"x": target.value, "idx": target.slice, "v": stmt.value})
        return classify(stmt.value, namespace)
    if isinstance(stmt, gast.Expr):
        return classify(stmt.value, namespace)
    return None


def atoms_of(node):
    """The names read by an index node or atom (for dependence analysis)."""
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name)]


def build(prim, args: dict, namespace_spelling=None):
    """The expression that applies `prim` to bound `args` (inverse of `classify`)."""
    name = prim.name
    if name == "copy":
        return args["x"]
    if prim.kind == "binop":
        return gast.BinOp(left=args["x"], op=BINOP_NODES[name](), right=args["y"])
    if prim.kind == "unaryop":
        return gast.UnaryOp(op=UNARY_NODES[name](), operand=args["x"])
    if prim.kind == "compare":
        node_type = {v: k for k, v in COMPARE_KEYS.items()}[name]
        return gast.Compare(left=args["x"], ops=[node_type()], comparators=[args["y"]])
    if name == "getitem":
        return gast.Subscript(value=args["x"], slice=args["idx"], ctx=gast.Load())
    if prim.kind == "attribute":
        return gast.Attribute(value=args["x"], attr=name.split(".", 1)[1], ctx=gast.Load())
    if prim.kind == "method":
        rest = [p for p in prim.params[1:] if p in args]
        pos = [args[p] for p in rest]
        return ir.call(ir.attr(args["x"], name.split(".", 1)[1]), pos)
    if name in ("list", "tuple"):
        return args["items"]
    # call of a function: positional for leading params without gaps, keywords after
    pos, kws, gap = [], {}, False
    for p in prim.params:
        if p not in args:
            gap = True
            continue
        if gap or p in prim.keyword_only:
            kws[p] = args[p]
        else:
            pos.append(args[p])
    return ir.call(prim.spelling, pos, kws)


# Elementwise primitives whose output is real for complex input: their temporaries may be
# complex where the output is not, so the output cannot witness their dtype.
REAL_OUTPUT = frozenset({"real", "imag", "abs", "angle"})
