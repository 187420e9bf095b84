"""Simplify: remove copies and dead statements from generated code.

- Copy propagation inside a straight-line block: after ``a = b``, later uses of ``a`` in
  the same block read ``b`` (when ``a`` has no other definition or use and ``b`` is not
  reassigned there); ``t = <op>; a = t`` with ``t`` used only there becomes ``a = <op>``.
- Dead code: an assignment of a pure operation whose value nobody reads (def-use chains
  from beniget) is removed; repeated until nothing changes.
- A call of a generated function that only passes some of its parameters through
  (``return (a, c)``) becomes plain assignments; a call of one that only forwards to
  another (``a, b = g(x, 1.0); return (a, b)``) calls that one directly.
- Common subexpressions: in a straight-line block, a second ``t2 = <op>`` of the same
  pure arithmetic on unchanged operands becomes ``t2 = t1`` (then propagated away).
- Dead cycles and tapes: a mark-and-sweep over names removes pure statements that only
  feed each other (a cursor that only counts itself) and tapes whose records nobody reads
  (a list made here, only appended to and popped from into dead variables).

Calls of generated functions and list mutations are kept (they may have effects).
"""

from __future__ import annotations

from collections import Counter

import gast

from s2sad.transforms import ir, ops

_IMPURE = {"method.pop", "method.append"}


def simplify(fdef, namespace, renames=None, cse=True):
    """Simplify in place. `renames` (a dict), when given, records each variable that copy
    propagation replaced by another (old -> new). `cse=False` keeps common subexpressions
    (JVP code, whose shape-witness annotations name variables by what they compute)."""
    changed = True
    rounds = 0
    while changed and rounds < 20:
        rounds += 1
        changed = _inline_passthrough(fdef, namespace)
        changed |= _inline_forwarding(fdef, namespace)
        if cse:
            changed |= _common_subexpressions(fdef, namespace)
        changed |= _propagate(fdef, namespace, renames)
        removed, chains = _remove_dead(fdef, namespace)
        changed |= removed
        if not changed:   # the function is as the chains saw it
            changed = _sweep(fdef, namespace, chains)
    ir.fill_empty_blocks(fdef)
    return fdef


# ------------------------------------------------------------------ helpers

def resolve(renames, name):
    """The name `name` ended up as after the renames simplify recorded."""
    seen = set()
    while name in renames and name not in seen:
        seen.add(name)
        name = renames[name]
    return name


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


def _cse_key(value, namespace):
    """A key for a pure arithmetic expression (None for anything else)."""
    if isinstance(value, (gast.BinOp, gast.UnaryOp)):
        pass
    elif isinstance(value, gast.Call):
        try:
            op = ops.classify(value, namespace)
        except (KeyError, TypeError):
            return None
        if op.kind != "prim" or not op.prim.elementwise:
            return None  # constructors and the like must stay distinct objects
    else:
        return None
    if not all(isinstance(n, (gast.Name, gast.Constant, gast.Attribute, gast.Load, gast.Call,
                              gast.BinOp, gast.UnaryOp, gast.operator, gast.unaryop, gast.keyword))
               for n in gast.walk(value)):
        return None
    return gast.dump(value)


def _common_subexpressions(fdef, namespace) -> bool:
    stores = _stores(fdef)
    mutated = {n.value.id for n in gast.walk(fdef)
               if isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store)
               and isinstance(n.value, gast.Name)}
    changed = False
    for block in _blocks(fdef):
        seen = {}   # key -> (target, names read)
        for s in block:
            new = None
            if isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Name):
                t = s.targets[0].id
                key = _cse_key(s.value, namespace)
                if key is not None and t not in mutated and _count(stores, t) == 1:
                    hit = seen.get(key)
                    if hit is not None and hit[0] != t:
                        s.value = ir.name(hit[0])
                        changed = True
                    elif hit is None:
                        new = (key, (t, set(_loads(s.value))))
            # anything this statement writes invalidates expressions that read it
            written = set(_stores(s)) | {n.value.id for n in gast.walk(s)
                                         if isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store)
                                         and isinstance(n.value, gast.Name)}
            if not isinstance(s, gast.Assign) or not isinstance(s.targets[0], gast.Name):
                written |= {n for n in _loads(s)}  # calls with effects: be conservative
            if written:
                seen = {k: v for k, v in seen.items() if not (v[1] & written) and v[0] not in written}
            if new is not None and not (new[1][1] & written - {new[1][0]}) \
                    and new[1][0] not in new[1][1]:
                seen[new[0]] = new[1]
    return changed


def _passthrough(callee):
    """For a callee whose body is ``return (p_i, p_j, ...)``: the parameter positions."""
    fd = getattr(callee, "fdef", None)
    if fd is None or len(fd.body) != 1 or not isinstance(fd.body[0], gast.Return):
        return None
    params = [a.id for a in fd.args.args]
    v = fd.body[0].value
    elts = v.elts if isinstance(v, gast.Tuple) else [v]
    if not all(isinstance(e, gast.Name) and e.id in params for e in elts):
        return None
    return [params.index(e.id) for e in elts], isinstance(v, gast.Tuple)


def _forwarding(callee):
    """For a callee whose body is ``a, b = g(p..., const...); return (a, b)``: (g's name, g,
    argument template, is_tuple) -- a call of it can call g directly."""
    fd = getattr(callee, "fdef", None)
    ns = getattr(callee, "namespace", None) or {}
    if getattr(callee, "checkpoint", False) or getattr(callee, "custom", None) is not None:
        return None  # the call carries meaning for later passes
    if fd is None or len(fd.body) != 2 or not isinstance(fd.body[1], gast.Return):
        return None
    a, r = fd.body
    if not (isinstance(a, gast.Assign) and isinstance(a.value, gast.Call)
            and isinstance(a.value.func, gast.Name) and not a.value.keywords):
        return None
    g = ns.get(a.value.func.id)
    if not isinstance(g, ops.Callee):
        return None
    params = [p.id for p in fd.args.args]
    if not all(isinstance(x, gast.Constant) or (isinstance(x, gast.Name) and x.id in params)
               for x in a.value.args):
        return None
    t = a.targets[0]
    targets = [e.id for e in t.elts] if isinstance(t, gast.Tuple) else [t.id] if isinstance(t, gast.Name) else None
    rv = r.value
    rets = [e.id if isinstance(e, gast.Name) else None for e in rv.elts] if isinstance(rv, gast.Tuple) \
        else [rv.id if isinstance(rv, gast.Name) else None]
    if targets is None or rets != targets or isinstance(t, gast.Tuple) != isinstance(rv, gast.Tuple):
        return None
    return a.value.func.id, g, params, a.value.args, isinstance(rv, gast.Tuple)


def _inline_forwarding(fdef, namespace) -> bool:
    changed = False
    for block in _blocks(fdef):
        for s in block:
            if not (isinstance(s, gast.Assign) and isinstance(s.value, gast.Call)
                    and isinstance(s.value.func, gast.Name) and not s.value.keywords):
                continue
            callee = namespace.get(s.value.func.id)
            if not isinstance(callee, ops.Callee):
                continue
            fw = _forwarding(callee)
            if fw is None:
                continue
            gname, g, params, tmpl, is_tuple = fw
            args = s.value.args
            if len(args) != len(params) or not all(ir.is_atom(x) for x in args):
                continue
            if (isinstance(s.targets[0], gast.Tuple)) != is_tuple:
                continue
            bound = namespace.get(gname)
            if bound is not None and bound is not g:
                continue
            env = dict(zip(params, args))
            new_args = [ir.clone(env[x.id]) if isinstance(x, gast.Name) else ir.clone(x)
                        for x in tmpl]
            namespace[gname] = g
            s.value = ir.call(ir.name(gname), new_args)
            changed = True
    return changed


def _inline_passthrough(fdef, namespace) -> bool:
    changed = False
    for block in _blocks(fdef):
        i = 0
        while i < len(block):
            s = block[i]
            i += 1
            if not (isinstance(s, gast.Assign) and isinstance(s.value, gast.Call)
                    and isinstance(s.value.func, gast.Name) and not s.value.keywords):
                continue
            callee = namespace.get(s.value.func.id)
            if not isinstance(callee, ops.Callee):
                continue
            pt = _passthrough(callee)
            if pt is None:
                continue
            positions, is_tuple = pt
            args = s.value.args
            t = s.targets[0]
            if len(args) != len(callee.fdef.args.args) or not all(ir.is_atom(a) for a in args):
                continue
            if is_tuple and isinstance(t, gast.Tuple) and len(t.elts) == len(positions) \
                    and all(isinstance(e, gast.Name) for e in t.elts):
                targets = [e.id for e in t.elts]
            elif not is_tuple and isinstance(t, gast.Name):
                targets = [t.id]
            else:
                continue
            srcs = [args[k] for k in positions]
            if set(targets) & {a.id for a in srcs if isinstance(a, gast.Name)}:
                continue  # a swap; keep the call
            new = [ir.copy_loc(ir.assign(n, ir.clone(a)), s) for n, a in zip(targets, srcs)]
            block[i - 1:i] = new
            i += len(new) - 1
            changed = True
    return changed


class _NameCounts:
    """Names stored and loaded by each statement (nested blocks included), computed once
    per statement and dropped when the statement is rewritten."""

    def __init__(self):
        self.cache = {}

    def of(self, st):
        got = self.cache.get(id(st))
        if got is None:
            stores, loads = Counter(), Counter()
            for n in gast.walk(st):
                if isinstance(n, gast.Name):
                    if isinstance(n.ctx, gast.Store):
                        stores[n.id] += 1
                    elif not isinstance(n.ctx, gast.Param):
                        loads[n.id] += 1
            got = self.cache[id(st)] = (stores, loads, st)
        return got

    def forget(self, st):
        for n in gast.walk(st):
            if isinstance(n, gast.stmt):
                self.cache.pop(id(n), None)


def _propagate(fdef, namespace, renames=None) -> bool:
    changed = False
    counts = _NameCounts()
    all_stores = Counter(_stores(fdef))
    all_loads = Counter(_loads(fdef))
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
            if a == b:
                del block[i]
                all_stores[a] -= 1
                all_loads[a] -= 1
                changed = True
                continue
            # forward: uses of `a` read `b`
            if (a not in params and all_stores[a] == 1 and a not in namespace
                    and not any(counts.of(st)[0][b] for st in rest)
                    and all_loads[a] == sum(counts.of(st)[1][a] for st in rest)):
                for st in rest:
                    if counts.of(st)[1][a]:
                        _Rename(a, b).visit(st)
                        counts.forget(st)
                if renames is not None:
                    renames[a] = b
                del block[i]
                all_stores[a] -= 1
                all_loads[b] += all_loads[a] - 1
                all_loads[a] = 0
                changed = True
                continue
            # backward: `t = op; ...; a = t` -> `a = op` when t is used only by the copy
            if (b not in params and all_stores[b] == 1 and all_loads[b] == 1
                    and b not in namespace):
                for j in range(i - 1, -1, -1):
                    d = block[j]
                    if isinstance(d, gast.Assign) and isinstance(d.targets[0], gast.Name) \
                            and d.targets[0].id == b:
                        between = block[j + 1:i]
                        if all(not counts.of(x)[0][a] and not counts.of(x)[1][a] for x in between) \
                                and a not in _loads(d.value):
                            d.targets[0].id = a
                            counts.forget(d)
                            if renames is not None:
                                renames[b] = a
                            del block[i]
                            all_stores[b] -= 1
                            all_loads[b] -= 1
                            changed = True
                        break
                    if counts.of(d)[0][b]:
                        break
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


def _chains(fdef):
    chains = _QuietChains()
    chains.visit(gast.Module(body=[fdef], type_ignores=[]))
    return chains


def _remove_dead(fdef, namespace):
    """Remove pure assignments whose values nobody reads, transitively (a statement read
    only by removed statements is removed too), from one computation of the chains.
    Returns (whether anything was removed, the chains of the function before)."""
    chains = _chains(fdef)
    users = {id(d.node): [id(u.node) for u in d.users()] for d in chains.locals[fdef]
             if isinstance(d.node, gast.Name) and isinstance(d.node.ctx, gast.Store)}
    if all(users.values()):
        return False, chains
    pure = []          # (stmt, ids of its target names)
    owner = {}         # id(Name node) -> id(pure stmt that holds it)
    # a node the tree holds in two places (generated code may share an atom) is a read
    # that no single statement owns
    seen = Counter(id(n) for n in gast.walk(fdef) if isinstance(n, gast.Name))
    for block in _blocks(fdef):
        for s in block:
            if _pure(s, namespace):
                names = [id(n) for n in gast.walk(s.targets[0]) if isinstance(n, gast.Name)]
                if names:
                    pure.append((s, names))
                for n in gast.walk(s):
                    if isinstance(n, gast.Name) and seen[id(n)] == 1:
                        owner[id(n)] = id(s)
    dead = set()
    grew = True
    while grew:
        grew = False
        for s, names in pure:
            if id(s) in dead:
                continue
            if all(n in users and all(owner.get(u) in dead for u in users[n]) for n in names):
                dead.add(id(s))
                grew = True
    if not dead:
        return False, chains
    for block in _blocks(fdef):
        block[:] = [s for s in block if id(s) not in dead]
    return True, chains


def _tape_candidates(fdef):
    """Lists made here (``t = []``) used only by append statements, ``v = t.pop()``,
    ``t[i]`` and ``len(t)``: they never escape, so they are dead with their reads."""
    made = {s.targets[0].id for s in gast.walk(fdef)
            if isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Name)
            and isinstance(s.value, gast.List) and not s.value.elts}
    ok_nodes = set()
    for n in gast.walk(fdef):
        if isinstance(n, gast.Expr) and isinstance(n.value, gast.Call) \
                and isinstance(n.value.func, gast.Attribute) and n.value.func.attr == "append" \
                and isinstance(n.value.func.value, gast.Name):
            ok_nodes.add(id(n.value.func.value))
        elif isinstance(n, gast.Assign) and isinstance(n.value, gast.Call) \
                and isinstance(n.value.func, gast.Attribute) and n.value.func.attr == "pop" \
                and isinstance(n.value.func.value, gast.Name) and not n.value.args:
            ok_nodes.add(id(n.value.func.value))
        elif isinstance(n, gast.Subscript) and isinstance(n.value, gast.Name) \
                and isinstance(n.ctx, gast.Load):
            ok_nodes.add(id(n.value))
        elif isinstance(n, gast.Call) and isinstance(n.func, gast.Name) and n.func.id == "len" \
                and len(n.args) == 1 and isinstance(n.args[0], gast.Name):
            ok_nodes.add(id(n.args[0]))
    bad = {n.id for n in gast.walk(fdef) if isinstance(n, gast.Name)
           and isinstance(n.ctx, gast.Load) and id(n) not in ok_nodes}
    return made - bad


def _sweep(fdef, namespace, chains=None) -> bool:
    """Mark and sweep over names: keep what effects, returns and control flow read.
    `chains`: the def-use chains of `fdef` as it is now, when the caller has them."""
    chains = chains or _chains(fdef)
    has_users = {id(d.node) for d in chains.locals[fdef] if d.users()}
    tapes = _tape_candidates(fdef)
    params = {a.id for a in fdef.args.args}
    entries = []   # (stmt, removable, defs, uses)

    def stores_used(node):
        return {n.id for n in gast.walk(node) if isinstance(n, gast.Name)
                and isinstance(n.ctx, gast.Store) and id(n) in has_users}

    for block in _blocks(fdef):
        for st in block:
            if isinstance(st, gast.Expr) and isinstance(st.value, gast.Call) \
                    and isinstance(st.value.func, gast.Attribute) and st.value.func.attr == "append" \
                    and isinstance(st.value.func.value, gast.Name) and st.value.func.value.id in tapes:
                entries.append((st, True, {st.value.func.value.id}, set(_loads(st))))
            elif isinstance(st, gast.Assign) and isinstance(st.value, gast.Call) \
                    and isinstance(st.value.func, gast.Attribute) and st.value.func.attr == "pop" \
                    and isinstance(st.value.func.value, gast.Name) and st.value.func.value.id in tapes \
                    and isinstance(st.targets[0], gast.Name):
                t = st.value.func.value.id
                entries.append((st, True, stores_used(st.targets[0]) | {t}, {t}))
            elif _pure(st, namespace):
                entries.append((st, True, stores_used(st.targets[0]), set(_loads(st.value))))
            elif isinstance(st, (gast.If, gast.While)):
                entries.append((st, False, set(), set(_loads(st.test))))
            elif isinstance(st, gast.For):
                entries.append((st, False, set(), set(_loads(st.iter))))
            elif isinstance(st, gast.Try):
                entries.append((st, False, set(), set()))
            else:
                entries.append((st, False, set(), set(_loads(st))))
    live = set(params) & set()
    for st, removable, defs, uses in entries:
        if not removable:
            live |= uses
    changed = True
    while changed:
        changed = False
        for st, removable, defs, uses in entries:
            if removable and defs & live and not uses <= live:
                live |= uses
                changed = True
    dead = {id(st) for st, removable, defs, uses in entries if removable and not defs & live}
    if not dead:
        return False
    for block in _blocks(fdef):
        block[:] = [st for st in block if id(st) not in dead]
    return True
