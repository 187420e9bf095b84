"""Simplify: remove copies and dead statements from generated code.

- Copy propagation inside a straight-line block: after ``a = b``, later uses of ``a`` in
  the same block read ``b`` (when ``a`` has no other definition or use and ``b`` is not
  reassigned there); ``t = <op>; a = t`` with ``t`` used only there becomes ``a = <op>``.
- Dead code: an assignment of a pure operation whose value nobody reads (def-use chains
  from beniget) is removed; repeated until nothing changes.

Calls of generated functions and list mutations are kept (they may have effects).
"""

from __future__ import annotations

import gast

from s2sad.transforms import ir, ops

_IMPURE = {"method.pop", "method.append"}


def simplify(fdef, namespace):
    changed = True
    rounds = 0
    while changed and rounds < 20:
        rounds += 1
        changed = _propagate(fdef, namespace)
        changed |= _remove_dead(fdef, namespace)
    ir.fill_empty_blocks(fdef)
    return fdef


# ------------------------------------------------------------------ helpers

def _stores(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store)]


def _loads(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name) and not isinstance(n.ctx, (gast.Store, gast.Param))]


def _blocks(fdef):
    """Every statement list of the function (body, branches, loop bodies, handlers)."""
    out = []
    todo = [fdef.body]
    while todo:
        b = todo.pop()
        out.append(b)
        for s in b:
            for field in ("body", "orelse"):
                sub = getattr(s, field, None)
                if isinstance(sub, list) and sub and isinstance(sub[0], gast.stmt):
                    todo.append(sub)
            if isinstance(s, gast.Try):
                for h in s.handlers:
                    todo.append(h.body)
    return out


def _is_copy(s):
    return (isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Name)
            and isinstance(s.value, gast.Name))


class _Rename(gast.NodeTransformer):
    def __init__(self, old, new):
        self.old = old
        self.new = new

    def visit_Name(self, node):
        if node.id == self.old and not isinstance(node.ctx, gast.Store):
            node.id = self.new
        return node


def _count(names, name):
    return sum(1 for n in names if n == name)


def _propagate(fdef, namespace) -> bool:
    changed = False
    all_stores = _stores(fdef)
    all_loads = _loads(fdef)
    params = {a.id for a in fdef.args.args}
    for block in _blocks(fdef):
        i = 0
        while i < len(block):
            s = block[i]
            if not _is_copy(s):
                i += 1
                continue
            a, b = s.targets[0].id, s.value.id
            rest = block[i + 1:]
            rest_stores = [n for st in rest for n in _stores(st)]
            rest_loads = [n for st in rest for n in _loads(st)]
            if a == b:
                del block[i]
                changed = True
                continue
            # forward: uses of `a` read `b`
            if (a not in params and _count(all_stores, a) == 1 and b not in rest_stores
                    and _count(all_loads, a) == _count(rest_loads, a) and a not in namespace):
                for st in rest:
                    _Rename(a, b).visit(st)
                del block[i]
                all_stores = _stores(fdef)
                all_loads = _loads(fdef)
                changed = True
                continue
            # backward: `t = op; ...; a = t` -> `a = op` when t is used only by the copy
            if (b not in params and _count(all_stores, b) == 1 and _count(all_loads, b) == 1
                    and b not in namespace):
                for j in range(i - 1, -1, -1):
                    d = block[j]
                    if isinstance(d, gast.Assign) and isinstance(d.targets[0], gast.Name) \
                            and d.targets[0].id == b:
                        between = block[j + 1:i]
                        if all(a not in _stores(x) and a not in _loads(x) for x in between) \
                                and a not in _loads(d.value):
                            d.targets[0].id = a
                            del block[i]
                            all_stores = _stores(fdef)
                            all_loads = _loads(fdef)
                            changed = True
                        break
                    if b in _stores(d):
                        break
                else:
                    pass
                if i < len(block) and block[i] is s:
                    i += 1
                continue
            i += 1
    return changed


class _QuietChains(__import__("beniget").DefUseChains):
    def warn(self, *args, **kwargs):
        pass


def _pure(stmt, namespace) -> bool:
    if not isinstance(stmt, gast.Assign):
        return False
    t = stmt.targets[0]
    if not isinstance(t, (gast.Name, gast.Tuple)):
        return False
    v = stmt.value
    if isinstance(v, (gast.Name, gast.Constant, gast.BinOp, gast.UnaryOp, gast.Compare,
                      gast.Subscript, gast.Attribute, gast.Tuple)):
        return True
    if isinstance(v, gast.List):
        return True
    if isinstance(v, gast.Call):
        try:
            op = ops.classify(v, namespace)
        except (KeyError, TypeError):
            return False
        return op.kind == "prim" and op.prim.name not in _IMPURE
    return False


def _remove_dead(fdef, namespace) -> bool:
    module = gast.Module(body=[fdef], type_ignores=[])
    chains = _QuietChains()
    chains.visit(module)
    unused = set()
    for d in chains.locals[fdef]:
        node = d.node
        if isinstance(node, gast.Name) and isinstance(node.ctx, gast.Store) and not d.users():
            unused.add(id(node))
    if not unused:
        return False
    changed = False
    for block in _blocks(fdef):
        keep = []
        for s in block:
            if _pure(s, namespace):
                names = [n for n in gast.walk(s.targets[0]) if isinstance(n, gast.Name)]
                if names and all(id(n) in unused for n in names):
                    changed = True
                    continue
            keep.append(s)
        block[:] = keep
    return changed
