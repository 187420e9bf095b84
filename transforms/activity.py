"""Activity analysis: which variables carry a derivative.

A variable is *active* when a value assigned to it depends on a differentiated input
through differentiable operations. Non-differentiable primitives (comparisons, `floor`,
`len`, shapes, `argmax`, ...) and `stop_gradient` cut the dependence, so integers and
booleans are never active. The analysis is per variable (flow-insensitive): an active
variable gets a tangent wherever it is assigned, an explicit zero where the assigned value
is inactive. Calls of generated functions use the callee's own analysis (which of its
outputs are active for the active arguments); a recursive call is assumed active.
"""

from __future__ import annotations

import gast

from s2sad.errors import TransformError
from s2sad.transforms import ops


class Activity:
    def __init__(self, active: set, call_masks: dict):
        self.active = active
        self.call_masks = call_masks  # id(stmt) -> active mask of the call's arguments

    def __contains__(self, name):
        return name in self.active

    def is_active_atom(self, node) -> bool:
        return isinstance(node, gast.Name) and node.id in self.active


def _names(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name)]


def targets_of(stmt):
    t = stmt.targets[0]
    if isinstance(t, gast.Name):
        return [t.id]
    if isinstance(t, gast.Tuple):
        return [e.id for e in t.elts]
    return []


def analyze(fdef, namespace, active_params, callee_outputs, filename="<generated>") -> Activity:
    """`callee_outputs(callee, mask, stmt)` -> list of bools (which outputs are active)."""
    active = set(active_params)
    call_masks = {}
    changed = True

    def visit(stmts):
        nonlocal changed
        for s in stmts:
            if isinstance(s, gast.Assign):
                t = s.targets[0]
                if isinstance(t, gast.Subscript):
                    base = t.value.id
                    if any(n in active for n in _names(s.value)) and base not in active:
                        active.add(base)
                        changed = True
                    continue
                try:
                    op = ops.classify(s.value, namespace)
                except KeyError as e:
                    raise TransformError(f"internal: {e}", filename=filename,
                                         lineno=getattr(s, "lineno", None))
                outs = targets_of(s)
                if op.kind == "call":
                    mask = tuple(isinstance(a, gast.Name) and a.id in active for a in op.call_args)
                    call_masks[id(s)] = mask
                    if not any(mask):
                        continue
                    flags = callee_outputs(op.callee, mask, s)
                    for name, flag in zip(outs, flags):
                        if flag and name not in active:
                            active.add(name)
                            changed = True
                    continue
                prim = op.prim
                if prim.nondiff:
                    continue
                inputs = [n for p, a in op.args.items() if p != "idx" for n in _names(a)]
                if any(n in active for n in inputs):
                    for name in outs:
                        if name not in active:
                            active.add(name)
                            changed = True
            elif isinstance(s, gast.Expr):
                v = s.value
                if isinstance(v, gast.Call) and isinstance(v.func, gast.Attribute) \
                        and v.func.attr == "append" and isinstance(v.func.value, gast.Name) \
                        and v.func.value.id not in namespace:
                    lst = v.func.value.id
                    if any(n in active for n in _names(v.args[0])) and lst not in active:
                        active.add(lst)
                        changed = True
                elif isinstance(v, gast.Call):
                    try:
                        op = ops.classify(v, namespace)
                    except KeyError:
                        continue
                    if op.kind == "call":
                        mask = tuple(isinstance(a, gast.Name) and a.id in active for a in op.call_args)
                        call_masks[id(s)] = mask
            elif isinstance(s, (gast.If, gast.While)):
                visit(s.body)
                visit(s.orelse)
            elif isinstance(s, gast.For):
                visit(s.body)
            elif isinstance(s, gast.Try):
                visit(s.body)
                for h in s.handlers:
                    visit(h.body)

    while changed:
        changed = False
        visit(fdef.body)
    return Activity(active, call_masks)
