"""Transpose: the linear program run backwards -- cotangent code.

Each linear statement ``y = L(x, ...)`` becomes ``x_bar += L_x^T(y_bar)`` by the
primitive's transpose rule (a template, like JVP rules); control flow is mirrored: a
block's statements in reverse order, after its record reads (which now walk the tapes
backwards), ``if`` on the same condition, loops over the same (reversed) ranges.

A cotangent is assigned at its first write and accumulated after, so every cotangent
variable keeps one type (Numba). Which cotangents are zero is tracked while emitting:
contributions of a zero cotangent are skipped. Where paths meet with a cotangent zero on
one path and not on the other, a flag says which (``x_bar_set``); a later contribution
assigns or accumulates by the flag, and reading it where it may still be zero writes an
explicit zero shaped like the variable's *witness* (the primal value with its shape and
dtype), which is always available at that point: the definition being transposed.
"""

from __future__ import annotations


import gast

from s2sad.errors import TransformError
from s2sad.transforms import ir, ops
from s2sad.transforms.linearize import loads
from s2sad.transforms.templates import Zero

ZERO, NONZERO = 0, 1


def _maybe(state):
    return isinstance(state, tuple)


class Transposer:
    def __init__(self, lin, namer, filename="<generated>", fused=False):
        self.fused = fused  # fused: records are consumed with pop(); else read by cursor
        self.L = lin
        self.ns = lin.namespace
        self.namer = namer
        self.filename = filename
        self.bars: dict = {}
        self.flags: dict = {}
        self.state: dict = {}
        self.arg_witness: dict = {}
        self.exact: set = set()
        self.loc = None
        self.setitem_targets = set()
        for n in gast.walk(ir.function_def("x", [], lin.lin_body)):
            if isinstance(n, gast.Assign) and isinstance(n.targets[0], gast.Subscript):
                self.setitem_targets.add(n.targets[0].value.id)

    def error(self, msg, hint=None):
        return TransformError(msg, filename=self.filename, lineno=getattr(self.loc, "lineno", None),
                              hint=hint)

    def ann(self, node):
        return self.L.meta.get(id(node), {})

    # ------------------------------------------------------------ names/state
    def bar(self, var):
        name = self.bars.get(var)
        if name is None:
            base = var[:-4] if var.endswith("_dot") else var
            name = self.namer.fresh(f"{base}_bar")
            self.bars[var] = name
        return name

    def flag(self, var):
        name = self.flags.get(var)
        if name is None:
            name = self.namer.fresh(f"{self.bar(var)}_set")
            self.flags[var] = name
        return name

    def st(self, var):
        return self.state.get(var, ZERO)

    def zero_of(self, witness):
        from s2sad.runtime import helpers
        self.ns["zero_tangent"] = helpers.zero_tangent
        if witness is None:
            raise self.error("internal: a zero cotangent without a shape witness")
        return ir.call(ir.name("zero_tangent"), [ir.name(witness)])

    def ensure_value(self, var, witness, out):
        """Make bar(var) hold a value (an explicit zero where it may not)."""
        s = self.st(var)
        if s == NONZERO:
            return
        if s == ZERO:
            out.append(ir.assign(self.bar(var), self.zero_of(witness), self.loc))
        else:
            out.append(ir.if_(ir.name(s[1]), [gast.Pass()],
                              [ir.assign(self.bar(var), self.zero_of(witness), self.loc)], self.loc))
        self.state[var] = NONZERO

    def accumulate(self, var, contrib, out):
        """bar(var) += contrib (assign at the first write)."""
        if isinstance(contrib, Zero):
            return
        b = self.bar(var)
        s = self.st(var)
        if isinstance(contrib, gast.Name) and contrib.id == b and s == ZERO:
            self.state[var] = NONZERO  # the rule already wrote the first value
            return
        first = contrib
        if var in self.setitem_targets and isinstance(contrib, gast.Name):
            # a cotangent written in place must not share memory with another one
            if var in getattr(self.L, "lists", ()):
                first = ir.call(ir.attr(ir.name(contrib.id), "copy"), [])  # a list: lst.copy()
            else:
                import numpy as np
                self.ns.setdefault("np", np)
                first = ir.call("np.copy", [contrib])
        if var in getattr(self.L, "lists", ()):
            # cotangents of a runtime list add item by item
            from s2sad.runtime import helpers
            self.ns["add_lists"] = helpers.add_lists
            total = ir.call(ir.name("add_lists"), [ir.name(b), ir.clone(contrib)])
        else:
            total = gast.BinOp(left=ir.name(b), op=gast.Add(), right=ir.clone(contrib))
        add = ir.assign(b, total, self.loc)
        if s == ZERO:
            out.append(ir.assign(b, first, self.loc))
        elif s == NONZERO:
            out.append(add)
        else:
            out.append(ir.if_(ir.name(s[1]), [add], [ir.assign(b, ir.clone(first), self.loc)], self.loc))
        self.state[var] = NONZERO

    def is_linear(self, node):
        return isinstance(node, gast.Name) and node.id in self.L.linear

    # ------------------------------------------------------------ control flow
    def safe_witness(self, var):
        """A witness of var usable anywhere in the backward sweep, or None."""
        for w in (self.L.witness.get(var), getattr(self, "cur", {}).get(var)):
            if w is not None and w in getattr(self.L, "safe", ()):
                return w
        return None

    def _resolve_maybe(self, target, states_blocks, pre_block=None):
        """Where a safe witness exists, write explicit zeros instead of keeping a flag."""
        for var, t in list(target.items()):
            if not _maybe(t):
                continue
            w = self.safe_witness(var)
            if w is None:
                continue
            for st, blk in states_blocks:
                if st.get(var, ZERO) == ZERO:
                    blk.append(ir.assign(self.bar(var), self.zero_of(w), self.loc))
                    st[var] = NONZERO
                elif _maybe(st.get(var)):
                    blk.append(ir.if_(ir.name(st[var][1]), [gast.Pass()],
                                      [ir.assign(self.bar(var), self.zero_of(w), self.loc)], self.loc))
                    st[var] = NONZERO
            target[var] = NONZERO

    def _set_flags(self, target, state, block):
        """At the end of a path, set the flags of the variables `target` marks maybe."""
        for var, t in target.items():
            if not _maybe(t):
                continue
            s = state.get(var, ZERO)
            if _maybe(s):
                continue
            block.append(ir.assign(t[1], ir.const(s == NONZERO), self.loc))

    def _join(self, states):
        out = {}
        keys = set()
        for st in states:
            keys.update(st)
        for k in keys:
            vals = [st.get(k, ZERO) for st in states]
            if all(v == ZERO for v in vals):
                continue
            if all(v == NONZERO for v in vals):
                out[k] = NONZERO
            else:
                out[k] = ("maybe", self.flag(k))
        return out

    def if_stmt(self, s, out):
        entry = dict(self.state)
        body = self.block(s.body)
        s_body = self.state
        self.state = dict(entry)
        orelse = self.block(s.orelse)
        s_else = self.state
        joined = self._join([s_body, s_else])
        self._resolve_maybe(joined, [(s_body, body), (s_else, orelse)])
        self._set_flags(joined, s_body, body)
        self._set_flags(joined, s_else, orelse)
        self.state = joined
        if body or orelse:
            out.append(ir.if_(ir.clone(s.test), body or [gast.Pass()], orelse, s))

    def for_stmt(self, s, out):
        args = s.iter.args
        target = s.target.id
        pre = []
        if len(args) == 1:
            last = self.namer.fresh("last")
            pre.append(ir.assign(last, gast.BinOp(left=ir.clone(args[0]), op=gast.Sub(),
                                                  right=ir.const(1)), s))
            riter = ir.call(ir.name("range"), [ir.name(last), ir.const(-1), ir.const(-1)])
        else:
            a = args[0]
            step = args[2] if len(args) > 2 else ir.const(1)
            count = self.namer.fresh("count")
            rng = self.namer.fresh("rng")
            pre.append(ir.assign(rng, ir.call(ir.name("range"), [ir.clone(x) for x in args]), s))
            pre.append(ir.assign(count, ir.call(ir.name("len"), [ir.name(rng)]), s))
            self.ns.setdefault("len", len)
            cm1 = self.namer.fresh("count_1")
            pre.append(ir.assign(cm1, gast.BinOp(left=ir.name(count), op=gast.Sub(), right=ir.const(1)), s))
            span = self.namer.fresh("span")
            pre.append(ir.assign(span, gast.BinOp(left=ir.name(cm1), op=gast.Mult(), right=ir.clone(step)), s))
            hi = self.namer.fresh("hi")
            pre.append(ir.assign(hi, gast.BinOp(left=ir.clone(a), op=gast.Add(), right=ir.name(span)), s))
            lo = self.namer.fresh("lo")
            pre.append(ir.assign(lo, gast.BinOp(left=ir.clone(a), op=gast.Sub(), right=ir.clone(step)), s))
            neg = self.namer.fresh("back")
            pre.append(ir.assign(neg, gast.UnaryOp(op=gast.USub(), operand=ir.clone(step)), s))
            riter = ir.call(ir.name("range"), [ir.name(hi), ir.name(lo), ir.name(neg)])
        self.ns.setdefault("range", range)
        entry = dict(self.state)
        header = dict(entry)
        inits = []
        for _ in range(6):
            self.state = dict(header)
            body = self.block(s.body)
            end = self.state
            new_header = self._join([entry, end])
            # zero at entry but live in the body: an explicit zero before the loop
            for var, t in list(new_header.items()):
                if _maybe(t) and entry.get(var, ZERO) == ZERO and end.get(var, ZERO) == NONZERO:
                    w = self.safe_witness(var)
                    if w is not None:
                        inits.append(ir.assign(self.bar(var), self.zero_of(w), self.loc))
                        entry[var] = NONZERO
                        new_header[var] = NONZERO
            if all(_same_class(new_header.get(k, ZERO), header.get(k, ZERO))
                   for k in set(new_header) | set(header)):
                break
            header = new_header
        else:
            raise self.error("internal: cotangent states of a loop did not settle")
        pre = inits + pre
        self._set_flags(header, entry, pre)
        self._set_flags(header, end, body)
        self.state = header
        if body:
            out.extend(pre)
            out.append(ir.copy_loc(gast.For(target=ir.store(target), iter=riter, body=body,
                                            orelse=[], type_comment=None), s))
        else:
            out.extend([p for p in pre if isinstance(p.targets[0], gast.Name)
                        and p.targets[0].id in self.flags.values()])

    # ----------------------------------------------------------------- blocks
    def block(self, stmts):
        i = 0
        out = []
        while i < len(stmts) and self.ann(stmts[i]).get("prologue"):
            out.extend(self.prologue_stmt(stmts[i]))
            i += 1
        for s in reversed(stmts[i:]):
            saved = self.loc
            self.loc = s
            try:
                self.stmt(s, out)
            except TransformError as e:
                raise e.located(self.filename, getattr(s, "lineno", None))
            finally:
                self.loc = saved
        return out

    def prologue_stmt(self, s):
        rec = self.ann(s).get("record")
        if rec is not None:
            name, tape, cur = rec
            if self.fused:
                return [ir.assign(name, ir.call(ir.attr(ir.name(tape), "pop"), []), s)]
            step = ir.assign(cur, gast.BinOp(left=ir.name(cur), op=gast.Sub(), right=ir.const(1)), s)
            read = ir.assign(name, gast.Subscript(value=ir.name(tape), slice=ir.name(cur),
                                                  ctx=gast.Load()), s)
            return [step, read]
        if self.ann(s).get("cursor_step"):
            return []
        return [ir.clone(s)]

    def stmt(self, s, out):
        if isinstance(s, gast.If):
            self.if_stmt(s, out)
        elif isinstance(s, gast.For):
            self.for_stmt(s, out)
        elif isinstance(s, gast.Assign):
            if self.ann(s).get("mixed") is not None:
                self.mixed(s, out)
            elif isinstance(s.targets[0], gast.Subscript):
                self.setitem(s, out)
            elif isinstance(s.targets[0], gast.Tuple):
                self.multi_assign(s, out)
            else:
                self.assign(s, out)
        elif isinstance(s, gast.Expr):
            if self.ann(s).get("mixed") is not None:
                self.mixed(s, out)
            else:
                self.expr(s, out)
        elif isinstance(s, gast.Pass):
            pass
        else:
            raise self.error(f"internal: cannot transpose {type(s).__name__}")

    # ---------------------------------------------------------- statements
    def assign(self, s, out):
        y = s.targets[0].id
        op = ops.classify(s.value, self.ns)
        prim = op.prim
        self.arg_witness = self.ann(s).get("arg_witness", {})
        self.exact = self.ann(s).get("exact", set())
        if self.st(y) == ZERO:
            return
        if prim.kind == "list" or y in getattr(self.L, "lists", ()):
            self.ensure_list(y, out)
        else:
            # (a popped item is a list only when it is one: a tape of tapes)
            self.ensure_value(y, self.ann(s).get("witness"), out)
        ct = ir.name(self.bar(y))
        if prim.name == "copy":
            x = op.args["x"]
            contrib = {x.id: [ct]} if self.is_linear(x) else {}
        elif prim.kind == "list":
            contrib = {}
            for i, e in enumerate(s.value.elts):
                if self.is_linear(e):
                    item = self.namer.fresh(f"{e.id}_bar_item")
                    out.append(ir.assign(item, gast.Subscript(value=ct, slice=ir.const(i),
                                                              ctx=gast.Load()), s))
                    contrib.setdefault(e.id, []).append(ir.name(item))
        elif prim.name == "method.pop":
            lst = op.args["x"].id
            self.ensure_list(lst, out)
            out.append(ir.expr_stmt(ir.call(ir.attr(ir.name(self.bar(lst)), "append"), [ct]), s))
            contrib = {}
        elif prim.name == "getitem" and isinstance(op.args["x"], gast.Name) \
                and op.args["x"].id in getattr(self.L, "lists", ()):
            # an item of a runtime list: added into the list's cotangent
            lst = op.args["x"].id
            self.ensure_list(lst, out, self.arg_witness.get(lst))
            lb = self.bar(lst)
            idx = ir.clone(op.args["idx"])
            old = self.namer.fresh(f"{lb}_item")
            out.append(ir.assign(old, gast.Subscript(value=ir.name(lb), slice=idx, ctx=gast.Load()), s))
            new = self.namer.fresh(f"{lb}_item")
            lists = getattr(self.L, "lists", ())
            if y in lists or lst in getattr(self.L, "list_params", ()):
                # the item is a list, or may be (a tape passed in records inner tapes)
                from s2sad.runtime import helpers
                helper = "add_lists" if y in lists else "add_items"
                self.ns[helper] = getattr(helpers, helper)
                total = ir.call(ir.name(helper), [ir.name(old), ct])
            else:
                total = gast.BinOp(left=ir.name(old), op=gast.Add(), right=ct)
            out.append(ir.assign(new, total, s))
            out.append(ir.assign(gast.Subscript(value=ir.name(lb), slice=ir.clone(op.args["idx"]),
                                                ctx=gast.Store()), ir.name(new), s))
            contrib = {}
        else:
            contrib = self.rule_contributions(s, op, ct, out, y=y)
        self.state[y] = ZERO
        # contributions to y itself (y = y + t) replace y's cotangent, after the other
        # arguments read it; y's cotangent as it was (the bare name) comes first
        mine = contrib.pop(y, [])
        for var, parts in contrib.items():
            for c in parts:
                self.accumulate(var, c, out)
        b = self.bar(y)
        mine.sort(key=lambda c: not (isinstance(c, gast.Name) and c.id == b))
        for c in mine:
            self.accumulate(y, c, out)

    def ensure_list(self, var, out, witness=None):
        """A list cotangent read before anything was added to it: zeros shaped like the
        list as it is here (`witness`: the list as this statement sees it), or empty when
        its primal is not at hand."""
        s = self.st(var)
        if s == NONZERO:
            return
        from s2sad.runtime import helpers
        w = witness or self.safe_witness(var)
        if w is not None:
            self.ns["zeros_list"] = helpers.zeros_list
            value = ir.call(ir.name("zeros_list"), [ir.name(w)])
        else:
            value = gast.List(elts=[], ctx=gast.Load())
        empty = ir.assign(self.bar(var), value, self.loc)
        if s == ZERO:
            out.append(empty)
        else:
            out.append(ir.if_(ir.name(s[1]), [gast.Pass()], [empty], self.loc))
        self.state[var] = NONZERO

    def multi_assign(self, s, out):
        """``a, b = prim(x)`` (a multi-output linear primitive): the rule gets a tuple of
        output cotangents (explicit zeros for the ones that are zero)."""
        outs = [e.id for e in s.targets[0].elts]
        op = ops.classify(s.value, self.ns)
        self.arg_witness = self.ann(s).get("arg_witness", {})
        if all(self.st(o) == ZERO for o in outs):
            return
        cts = []
        out_w = self.ann(s).get("out_witness", {})
        for o in outs:
            self.ensure_value(o, out_w.get(o) or self.L.witness.get(o), out)
            cts.append(ir.name(self.bar(o)))
        contrib = self.rule_contributions(s, op, ir.tuple_(cts), out)
        for o in outs:
            self.state[o] = ZERO
        for var, parts in contrib.items():
            for c in parts:
                self.accumulate(var, c, out)

    def rule_contributions(self, s, op, ct, out, y=None):
        prim = op.prim
        lin_params = [p for p, a in op.args.items() if any(n in self.L.linear for n in loads(a))]
        contrib = {}
        for p in lin_params:
            tpl = prim.transpose.get(p)
            if tpl is None:
                raise self.error(f"{prim.label()} has no transpose rule for its argument {p!r}",
                                 hint="reverse mode needs one for every linear argument")
            bindings = {"ct": ct}
            for q in tpl.params:
                if q == "ct":
                    continue
                a = op.args.get(q)
                if a is None:
                    continue
                if any(n in self.L.linear for n in loads(a)):
                    bindings[q] = self.witness_atom(a)
                else:
                    bindings[q] = a
            arg = op.args[p]
            target = None
            if isinstance(arg, gast.Name) and arg.id != y and arg.id in self.L.linear \
                    and self.st(arg.id) == ZERO and arg.id not in self.setitem_targets \
                    and sum(1 for a in op.args.values() if isinstance(a, gast.Name) and a.id == arg.id) == 1:
                target = self.bar(arg.id)
            stmts, res = tpl.inline(bindings, self.namer, self.ns, target=target, loc=s,
                                    same_shape=self.same_shape_params(prim, op.args, y))
            out.extend(stmts)
            self._collect(prim, arg, res, contrib)
        return contrib

    def _collect(self, prim, arg, res, contrib):
        """Pair the elements of a (nested) tuple argument with the rule's (nested) result."""
        if isinstance(arg, (gast.Tuple, gast.List)):
            if not isinstance(res, tuple) or len(res) != len(arg.elts):
                raise self.error(f"internal: the transpose of {prim.label()} must return one "
                                 f"cotangent per element")
            for e, r in zip(arg.elts, res):
                self._collect(prim, e, r, contrib)
        elif self.is_linear(arg):
            contrib.setdefault(arg.id, []).append(res)

    def same_shape_params(self, prim, args, y=None):
        """Parameters of an elementwise primitive whose value has the output's shape and
        dtype: every argument is one variable (or the tangents it witnesses) or a real
        scalar literal."""
        if not prim.elementwise or y is None or y in self.L.inexact:
            return ()  # the cotangent may be larger than the output (a JVP temporary's)
        ids = set()
        for a in args.values():
            if isinstance(a, gast.Name):
                if a.id in self.L.linear:
                    # only a witness known to have exactly the tangent's shape
                    w = self.arg_witness.get(a.id) if a.id in self.exact else None
                else:
                    w = a.id
                if w is None:
                    return ()
                ids.add(w)
            elif not (isinstance(a, gast.Constant) and type(a.value) in (int, float, bool)):
                return ()
        if len(ids) != 1:
            return ()
        return tuple(p for p, a in args.items() if isinstance(a, gast.Name))

    def witness_atom(self, a):
        if isinstance(a, gast.Name) and a.id in self.L.linear:
            w = self.arg_witness.get(a.id) or self.L.witness.get(a.id)
            if w is None:
                raise self.error(f"internal: no shape witness for the tangent {a.id}")
            return ir.name(w)
        if isinstance(a, (gast.Tuple, gast.List)):
            return type(a)(elts=[self.witness_atom(e) for e in a.elts], ctx=gast.Load())
        return ir.clone(a)

    def setitem(self, s, out):
        t = s.targets[0]
        x = t.value.id
        v = s.value
        self.arg_witness = self.ann(s).get("arg_witness", {})
        if self.st(x) == ZERO:
            return
        self.ensure_value(x, self.arg_witness.get(x), out)
        if self.is_linear(v):
            from s2sad.runtime import helpers
            item = self.namer.fresh(f"{v.id}_bar_part")
            import numpy as np
            self.ns.setdefault("np", np)
            # a copy: the slot is zeroed right after
            view = self.namer.fresh(f"{v.id}_bar_view")
            read = gast.Subscript(value=ir.name(self.bar(x)), slice=ir.clone(t.slice), ctx=gast.Load())
            out.append(ir.assign(view, read, s))
            out.append(ir.assign(item, ir.call("np.copy", [ir.name(view)]), s))
            self.ns["unbroadcast"] = helpers.unbroadcast
            red = self.namer.fresh(f"{v.id}_bar_sum")
            out.append(ir.assign(red, ir.call(ir.name("unbroadcast"),
                                              [ir.name(item), self.witness_atom(v)]), s))
            self.accumulate(v.id, ir.name(red), out)
        out.append(ir.assign(gast.Subscript(value=ir.name(self.bar(x)), slice=ir.clone(t.slice),
                                            ctx=gast.Store()), ir.const(0.0), s))

    def expr(self, s, out):
        v = s.value
        if isinstance(v, gast.Call) and isinstance(v.func, gast.Attribute) and v.func.attr == "append":
            lst = v.func.value.id
            item = v.args[0]
            if self.st(lst) == ZERO:
                return
            self.ensure_list(lst, out)
            popped = self.namer.fresh(f"{lst}_bar_last")
            out.append(ir.assign(popped, ir.call(ir.attr(ir.name(self.bar(lst)), "pop"), []), s))
            if self.is_linear(item):
                self.accumulate(item.id, ir.name(popped), out)
            return
        raise self.error("internal: unexpected statement in a linear program")

    def mixed(self, s, out):
        split, mask, callee, n_res = self.ann(s)["mixed"]
        call = s.value
        res = call.args[:n_res]
        l_args = call.args[n_res:]
        outs = [n.id for n in gast.walk(s.targets[0]) if isinstance(n, gast.Name)] \
            if isinstance(s, gast.Assign) else []
        if outs and all(self.st(o) == ZERO for o in outs):
            return
        cts = []
        out_w = self.ann(s).get("out_witness", {})
        for o in outs:
            self.ensure_value(o, out_w.get(o) or self.L.witness.get(o), out)
            cts.append(ir.name(self.bar(o)))
        for o in outs:
            self.state[o] = ZERO
        bname = None
        for k, v in self.ns.items():
            if v is split.bwd:
                bname = k
        if bname is None:
            bname = self.namer.fresh(split.bwd.name)
            self.ns[bname] = split.bwd
        targets = [self.namer.fresh(f"{a.id}_bar_part" if isinstance(a, gast.Name) else "unused_bar")
                   for a in l_args]
        call = ir.call(ir.name(bname), [ir.clone(r) for r in res] + cts)
        if not targets:
            out.append(ir.expr_stmt(call, s))
            return
        out.append(ir.assign(ir.tuple_([ir.store(t) for t in targets], gast.Store()), call, s))
        for a, t in zip(l_args, targets):
            if self.is_linear(a):
                self.accumulate(a.id, ir.name(t), out)

    # ------------------------------------------------------------------ run
    def run(self, out_cts):
        """`out_cts`: for each linear output atom, the name holding its cotangent (or None)."""
        out = []
        for atom, ct in zip(self.L.linear_outs, out_cts):
            if ct is None or not self.is_linear(atom):
                continue
            self.accumulate(atom.id, ir.name(ct), out)
        out.extend(self.block(self.L.lin_body))
        results = []
        for p in self.L.linear_params:
            if self.st(p) != NONZERO:
                w = getattr(self.L, "param_witness", {}).get(p) or self.L.witness.get(p)
                self.ensure_value(p, w, out)
            results.append(ir.name(self.bar(p)))
        return out, results


def _same_class(a, b):
    return (a == b) or (_maybe(a) and _maybe(b))

