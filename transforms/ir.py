"""Small builders and predicates for the gast trees the passes exchange.

The intermediate form is ordinary Python (a subset of it), so every stage can be
printed and executed. After `normalize` a function body holds only:

  x = atom                      x = f(atom, ..., k=atom)      x = atom <op> atom
  x = <unaryop> atom            x = atom <cmp> atom           x = atom[index of atoms]
  x = atom.attr                 x = (atom, ...) / [atom, ...] / {const: atom}
  x[index of atoms] = atom      f(atoms)          (a call kept for its side effect)
  if atom: ... else: ...        for name in atom: ...          while atom: ...
  break / continue / return atom / raise ... / try-except / def (nested) / import

where an atom is a name or a constant. `specialize` then resolves names to objects and
flattens tuples and dicts, so the derivative passes see the same forms over flat
variables, with calls spelled as primitives (``np.sin(x)``) or generated functions.
"""

from __future__ import annotations

import copy as _copy

import gast


def name(id_: str, ctx=None) -> gast.Name:
    return gast.Name(id=id_, ctx=ctx or gast.Load(), annotation=None, type_comment=None)


def store(id_: str) -> gast.Name:
    return name(id_, gast.Store())


def const(value) -> gast.Constant:
    return gast.Constant(value=value, kind=None)


def is_atom(node) -> bool:
    return isinstance(node, (gast.Name, gast.Constant))


def assign(target, value, loc=None) -> gast.Assign:
    if isinstance(target, str):
        target = store(target)
    node = gast.Assign(targets=[target], value=value, type_comment=None)
    if loc is not None:
        copy_loc(node, loc)
    return node


def tuple_(elts, ctx=None) -> gast.Tuple:
    return gast.Tuple(elts=list(elts), ctx=ctx or gast.Load())


def attr(value, attr_: str) -> gast.Attribute:
    return gast.Attribute(value=value, attr=attr_, ctx=gast.Load())


def dotted(path: str) -> gast.expr:
    """'np.linalg.norm' -> Attribute(Attribute(Name np, linalg), norm)."""
    parts = path.split(".")
    node = name(parts[0])
    for p in parts[1:]:
        node = attr(node, p)
    return node


def call(func, args=(), keywords=None) -> gast.Call:
    if isinstance(func, str):
        func = dotted(func)
    kws = [gast.keyword(arg=k, value=v) for k, v in (keywords or {}).items()]
    return gast.Call(func=func, args=list(args), keywords=kws)


def expr_stmt(value, loc=None) -> gast.Expr:
    node = gast.Expr(value=value)
    if loc is not None:
        copy_loc(node, loc)
    return node


def if_(test, body, orelse=(), loc=None) -> gast.If:
    # The lists are kept as given (callers may fill them later); `fill_empty_blocks`
    # puts a `pass` into blocks that stay empty.
    body = body if isinstance(body, list) else list(body)
    orelse = orelse if isinstance(orelse, list) else list(orelse)
    node = gast.If(test=test, body=body, orelse=orelse)
    if loc is not None:
        copy_loc(node, loc)
    return node


def copy_loc(new, old):
    """Copy line information (and only that) from `old` to `new` and its children."""
    if old is None:
        return new
    lineno = getattr(old, "lineno", None)
    if lineno is None:
        return new
    for n in gast.walk(new):
        if "lineno" in getattr(n, "_attributes", ()) and getattr(n, "lineno", None) is None:
            n.lineno = lineno
            n.col_offset = getattr(old, "col_offset", 0)
            n.end_lineno = getattr(old, "end_lineno", lineno)
            n.end_col_offset = getattr(old, "end_col_offset", 0)
    return new


def dotted_name(node) -> str | None:
    """Attribute chain on a Name -> 'a.b.c', else None."""
    parts = []
    while isinstance(node, gast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, gast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def function_def(name_: str, params, body, loc=None) -> gast.FunctionDef:
    args = gast.arguments(
        args=[gast.Name(id=p, ctx=gast.Param(), annotation=None, type_comment=None) for p in params],
        posonlyargs=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    node = gast.FunctionDef(name=name_, args=args, body=list(body), decorator_list=[],
                            returns=None, type_comment=None, type_params=[])
    if loc is not None:
        copy_loc(node, loc)
    return node


def fill_empty_blocks(tree):
    """Put `pass` into every statement block that must not be empty."""
    for n in gast.walk(tree):
        for field in ("body",):
            if isinstance(n, (gast.If, gast.For, gast.While, gast.Try, gast.ExceptHandler,
                              gast.FunctionDef)) and not getattr(n, field):
                setattr(n, field, [gast.Pass()])
    return tree


_ATOMIC = (str, int, float, complex, bool, bytes, type(None), type(Ellipsis))


def clone(node):
    """A deep copy of an AST (or a list of nodes), like `copy.deepcopy` but several times
    faster: nodes and lists are rebuilt, strings and numbers are shared, anything else an
    attribute holds is deep-copied."""
    if isinstance(node, list):
        return [clone(x) for x in node]
    if not isinstance(node, gast.AST):
        return node if isinstance(node, _ATOMIC) else _copy.deepcopy(node)
    new = type(node).__new__(type(node))
    d = new.__dict__
    for k, v in node.__dict__.items():
        if isinstance(v, _ATOMIC):
            d[k] = v
        elif isinstance(v, (gast.AST, list)):
            d[k] = clone(v)
        else:
            d[k] = _copy.deepcopy(v)
    return new

