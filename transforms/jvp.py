"""JVP: forward mode. Each active statement is followed by its tangent statement(s).

For ``y = prim(x, ...)`` the primitive's JVP template is inlined with the tangents
``x_dot`` of the active arguments (a symbolic zero for the others); a call of another
generated function becomes a call of its JVP (``y, y_dot = g_jvp(x, x_dot)``), specialized
to which arguments are active; a `custom_jvp` function calls its rule; an in-place write
``x[i] = v`` is mirrored by ``x_dot[i] = v_dot``. Control flow is kept as written.

The result is a `Derived` callee: ``f_jvp(*params, *active_param_tangents)`` returning the
primal outputs followed by the tangents of the active outputs.
"""

from __future__ import annotations


import gast

from s2sad.errors import TransformError
from s2sad.transforms import activity as activity_mod
from s2sad.transforms import ir, ops
from s2sad.transforms.naming import Namer, bind_callee, names_in
from s2sad.transforms.simplify import resolve, simplify
from s2sad.transforms.templates import Zero
from s2sad.transforms.values import SConst, SLeaf, STup, count_leaves

_JVPS: dict = {}


class Derived(ops.Callee):
    """A generated function derived from another callee by a transform."""

    def __init__(self, kind, base, name):
        self.kind = kind
        self.base = base
        self.name = name
        self.fdef = None
        self.namespace = {}
        self.params = []
        self.arg_skels = ()
        self.out_skel = None
        self.active_in = ()
        self.active_out = ()
        self.filename = getattr(base, "filename", "<generated>")
        self.custom = None
        self.done = False
        self.deps = []
        self.witness = {}

    def __repr__(self):
        return f"<{self.kind} {self.name}>"


def tangent_skel(out_skel, active_out):
    """Layout of the tangent output: the primal layout with inactive leaves as None."""
    flags = iter(active_out)

    def walk(s):
        if isinstance(s, SLeaf):
            return SLeaf(list=s.list) if next(flags) else SConst(("NoneType", None), None)
        if isinstance(s, STup):
            return STup(s.kind, tuple(walk(i) for i in s.items))
        from s2sad.transforms.values import SDict
        if isinstance(s, SDict):
            return SDict(s.keys, tuple(walk(i) for i in s.items))
        return s
    return walk(out_skel)


def jvp_callee(callee, active_in, reverse=False) -> Derived:
    """The JVP of `callee` for the given active parameters (cached).

    `reverse`: the JVP is only linearized and transposed (reverse mode), never run as
    forward mode: a `custom_vjp` function is then allowed (its tangent is an opaque linear
    call whose transpose is the user's ``bwd``)."""
    active_in = tuple(bool(a) for a in active_in)
    key = (id(callee), active_in, bool(reverse))
    hit = _JVPS.get(key)
    if hit is not None and hit[0] is callee:
        return hit[1]
    custom = getattr(callee, "custom", None)
    from s2sad.runtime.custom import custom_vjp
    if isinstance(custom, custom_vjp):
        raise TypeError("can't apply forward-mode autodiff (jvp) to a custom_vjp function.")
    unruled = getattr(callee, "unruled", None)
    if unruled:
        helper, lineno = unruled
        raise TransformError(f"differentiating this vmap is not supported yet: its batched code runs "
                             f"per example here and needs `{helper}`, which has no derivative rule",
                             filename=callee.filename, lineno=lineno,
                             hint="apply vmap last: vmap(grad(f)) instead of grad(vmap(f))")
    name = f"{callee.name}_jvp"
    if not all(active_in) and any(active_in):
        which = [p for p, a in zip(callee.params, active_in) if a]
        suffix = "_".join(which)
        name += "_" + (suffix if len(suffix) <= 20 else f"{len(which)}args")
    d = Derived("jvp", callee, name)
    d.checkpoint = getattr(callee, "checkpoint", False)
    _JVPS[key] = (callee, d)
    try:
        _JVPPass(callee, d, active_in, reverse).run()
    except BaseException:
        _JVPS.pop(key, None)
        raise
    return d


def _callee_outputs(callee, mask, stmt):
    from s2sad.runtime.custom import custom_vjp
    if isinstance(getattr(callee, "custom", None), custom_vjp):
        # opaque to activity: every output of a custom_vjp call with active inputs is active
        return [True] * max(1, count_leaves(callee.out_skel) if callee.out_skel is not None else 1)
    d = jvp_callee(callee, mask, True)
    if not d.done:  # recursion: assume every output is active
        return [True] * max(1, count_leaves(callee.out_skel) if callee.out_skel is not None else 1)
    return list(d.active_out)


class _JVPPass:
    def __init__(self, callee, derived, active_in, reverse=False):
        self.c = callee
        self.d = derived
        self.active_in = active_in
        self.reverse = reverse
        self.ns = dict(callee.namespace)
        self.namer = Namer(names_in(callee.fdef) | set(self.ns))
        self.dots: dict = {}
        self.temp_witness: dict = {}
        self.exact_witness: dict = {}
        self.folded: list = []   # tangent assignments a rule folded to another tangent
        self.filename = callee.filename
        self.loc = None

    def error(self, msg, hint=None):
        return TransformError(msg, filename=self.filename, lineno=getattr(self.loc, "lineno", None),
                              hint=hint)

    def dot(self, var):
        name = self.dots.get(var)
        if name is None:
            name = self.namer.fresh(f"{var}_dot")
            self.dots[var] = name
        return name

    def run(self):
        c, d = self.c, self.d
        params = list(c.params)
        active_params = {p for p, a in zip(params, self.active_in) if a}
        # work on a copy: statements without tangent parts are emitted as they are, and
        # the passes after this one rewrite them in place
        src = ir.clone(c.fdef)
        self.act = activity_mod.analyze(src, self.ns, active_params, _callee_outputs, self.filename)
        # Which outputs are active: any return of an active variable at that position.
        n_out = count_leaves(c.out_skel)
        flags = [False] * n_out
        for r in _returns(src):
            for i, a in enumerate(_return_atoms(r, n_out)):
                if self.act.is_active_atom(a):
                    flags[i] = True
        d.active_out = tuple(flags)
        d.active_in = self.active_in
        for p in params:
            self.namer.reserve(p)
        tangent_params = [self.dot(p) for p in params if p in active_params]
        # an inactive parameter reassigned an active value later (``x = y * x`` with only
        # y differentiated) has a tangent variable: zero on entry
        entry = []
        for p in params:
            if p not in active_params and p in self.act:
                entry.extend(self.zero_stmts(p))
        body = entry + self.block(src.body)
        fdef = ir.function_def(d.name, params + tangent_params, body, loc=src)
        self.separate_folded(fdef, tangent_params)
        ir.fill_empty_blocks(fdef)
        renames = {}
        simplify(fdef, self.ns, renames, cse=False)
        d.fdef = fdef
        d.namespace = prune_namespace(self.ns, fdef)
        # shape witnesses for reverse mode: a tangent has the shape of its primal (under
        # the names copy propagation left)
        d.witness = {}
        # a tangent's own primal first: copy propagation may have merged another tangent
        # into it (`select_dot` took over `mul_C2_dot` in one branch), whose primal exists on
        # that path only
        pairs = sorted(self.dots.items(), key=lambda pt: resolve(renames, pt[1]) != pt[1])
        for p, t in pairs:
            d.witness.setdefault(resolve(renames, t), resolve(renames, p))
        for t, p in list(self.temp_witness.items()) + list(self.exact_witness.items()):
            d.witness.setdefault(resolve(renames, t), resolve(renames, p))
        # a temporary's witness bounds its shape (the output's) but may be larger
        d.inexact_witness = {resolve(renames, t) for t in self.temp_witness}
        base_lists = set(getattr(c, "list_params", ()))
        d.list_params = base_lists | {self.dots[p] for p in base_lists if p in self.dots}
        d.params = params + tangent_params
        # arguments: the primal ones, then the tangents (same layout when all are active)
        if all(self.active_in) and len(c.params) == sum(count_leaves(a) for a in c.arg_skels):
            d.arg_skels = tuple(c.arg_skels) * 2
        else:
            d.arg_skels = tuple(c.arg_skels) + tuple(SLeaf() for _ in tangent_params)
        d.out_skel = STup(tuple, (c.out_skel, tangent_skel(c.out_skel, d.active_out)))
        d.done = True

    # ------------------------------------------------------------- helpers
    def tangent_of(self, atom, pre=None):
        """Tangent of an argument: its `_dot` variable, a tuple of tangents for a tuple
        literal (zeros made explicit into `pre`), or a symbolic zero."""
        if isinstance(atom, gast.Name) and atom.id in self.act:
            return ir.name(self.dot(atom.id))
        if isinstance(atom, (gast.Tuple, gast.List)):
            elts = [self.tangent_of(e, pre) for e in atom.elts]
            if all(isinstance(e, Zero) for e in elts):
                return Zero(like=atom)
            if pre is None:
                raise self.error("internal: tuple tangent without a statement list")
            out = []
            for e, a in zip(elts, atom.elts):
                if isinstance(e, Zero) and isinstance(a, (gast.Tuple, gast.List)):
                    # a constant row of a nested literal: zeros element by element
                    e = type(a)(elts=[self.materialize(Zero(like=x), pre) for x in a.elts],
                                ctx=gast.Load())
                out.append(self.materialize(e, pre) if isinstance(e, Zero) else e)
            return type(atom)(elts=out, ctx=gast.Load())
        return Zero(like=atom)

    def zero_stmts(self, var, value=None):
        """`var_dot = <zero>` for an active variable assigned an inactive value."""
        if isinstance(value, gast.Constant) and isinstance(value.value, (int, float, complex, bool)):
            z = ir.const(0j if isinstance(value.value, complex) else 0.0)
            return [ir.assign(self.dot(var), z, self.loc)]
        if isinstance(value, gast.List):
            items = [self.zero_atom(e) for e in value.elts]
            return [ir.assign(self.dot(var), gast.List(elts=items, ctx=gast.Load()), self.loc)]
        return [ir.assign(self.dot(var), self.zeros_call(ir.name(var)), self.loc)]

    def zeros_call(self, like):
        from s2sad.runtime import helpers
        self.ns["zero_tangent"] = helpers.zero_tangent
        return ir.call(ir.name("zero_tangent"), [ir.clone(like)])

    def zero_atom(self, atom):
        if isinstance(atom, gast.Name) and atom.id in self.act:
            return ir.name(self.dot(atom.id))
        if isinstance(atom, gast.Constant):
            return ir.const(0j if isinstance(atom.value, complex) else 0.0)
        return self.zeros_call(atom)

    def materialize(self, t, out):
        """A tangent atom for `t` (a Zero becomes an explicit zero)."""
        if isinstance(t, Zero):
            if t.like is None:
                raise self.error("internal: a zero tangent without a shape")
            name = self.namer.fresh("zeros")
            out.append(ir.assign(name, self.zeros_call(t.like) if not isinstance(t.like, gast.Constant)
                                 else ir.const(0.0), self.loc))
            return ir.name(name)
        return t

    # ---------------------------------------------------------------- blocks
    def block(self, stmts):
        out = []
        for s in stmts:
            saved = self.loc
            self.loc = s
            try:
                self.stmt(s, out)
            except TransformError as e:
                raise e.located(self.filename, getattr(s, "lineno", None))
            finally:
                self.loc = saved
        return out

    def stmt(self, s, out):
        if isinstance(s, gast.Assign):
            self.assign(s, out)
        elif isinstance(s, gast.Expr):
            self.expr_stmt(s, out)
        elif isinstance(s, gast.If):
            out.append(ir.copy_loc(gast.If(test=s.test, body=self.block(s.body),
                                           orelse=self.block(s.orelse)), s))
        elif isinstance(s, gast.For):
            out.append(ir.copy_loc(gast.For(target=s.target, iter=s.iter, body=self.block(s.body),
                                            orelse=[], type_comment=None), s))
        elif isinstance(s, gast.While):
            out.append(ir.copy_loc(gast.While(test=s.test, body=self.block(s.body), orelse=[]), s))
        elif isinstance(s, gast.Try):
            handlers = [ir.copy_loc(gast.ExceptHandler(type=h.type, name=h.name, body=self.block(h.body)), h)
                        for h in s.handlers]
            out.append(ir.copy_loc(gast.Try(body=self.block(s.body), handlers=handlers, orelse=[],
                                            finalbody=[]), s))
        elif isinstance(s, gast.Return):
            self.return_stmt(s, out)
        else:
            out.append(s)

    def return_stmt(self, s, out):
        n_out = count_leaves(self.c.out_skel)
        atoms = _return_atoms(s, n_out)
        tangents = []
        for a, flag in zip(atoms, self.d.active_out):
            if flag:
                tangents.append(self.materialize(self.tangent_of(a), out))
        value = ir.tuple_(list(atoms) + tangents)
        out.append(ir.copy_loc(gast.Return(value=value), s))

    def expr_stmt(self, s, out):
        v = s.value
        out.append(s)
        if isinstance(v, gast.Call) and isinstance(v.func, gast.Attribute) and v.func.attr == "append" \
                and isinstance(v.func.value, gast.Name) and v.func.value.id in self.act:
            lst = v.func.value.id
            item = self.zero_atom(v.args[0])
            out.append(ir.expr_stmt(ir.call(ir.attr(ir.name(self.dot(lst)), "append"), [item]), s))
            return
        if isinstance(v, gast.Call):
            try:
                op = ops.classify(v, self.ns)
            except KeyError:
                return
            if op.kind == "call" and any(self.act.call_masks.get(id(s), ())):
                out.pop()
                self.user_call(s, op, [], out)

    def assign(self, s, out):
        target = s.targets[0]
        if isinstance(target, gast.Subscript):
            self.setitem(s, out)
            return
        outs = activity_mod.targets_of(s)
        if not any(n in self.act for n in outs):
            out.append(s)
            return
        op = ops.classify(s.value, self.ns)
        if op.kind == "call":
            if any(self.act.call_masks.get(id(s), ())):
                self.user_call(s, op, outs, out)
            else:
                out.append(s)
                for n in outs:
                    if n in self.act:
                        out.extend(self.zero_stmts(n))
            return
        prim = op.prim
        inputs_active = any(isinstance(n, str) and n in self.act
                            for p, a in op.args.items() if p != "idx"
                            for n in _names(a))
        t = outs[0]
        if prim.nondiff or not inputs_active:
            out.append(s)
            for n in outs:
                if n in self.act:
                    out.extend(self.zero_stmts(n, s.value if len(outs) == 1 else None))
            return
        if prim.kind == "list":
            out.append(s)
            items = [self.zero_atom(e) for e in s.value.elts]
            out.append(ir.assign(self.dot(t), gast.List(elts=items, ctx=gast.Load()), s))
            return
        if prim.name == "method.pop":
            out.append(s)
            lst = op.args["x"].id
            call = ir.call(ir.attr(ir.name(self.dot(lst)), "pop"),
                           [op.args["i"]] if "i" in op.args else [])
            out.append(ir.assign(self.dot(t), call, s))
            return
        if prim.name == "method.copy":
            out.append(s)
            copied = ir.call(ir.attr(ir.name(self.dot(op.args["x"].id)), "copy"), [])
            if isinstance(s.targets[0], gast.Tuple):  # a, b = lst.copy()
                lhs = ir.tuple_([ir.store(self.dot(n)) for n in outs], gast.Store())
                out.append(ir.assign(lhs, copied, s))
            else:
                out.append(ir.assign(self.dot(t), copied, s))
            return
        if prim.jvp is None:
            raise self.error(f"{prim.label()} has no JVP rule")
        self.inline_rule(s, outs, prim, op, out)

    def inline_rule(self, s, outs, prim, op, out):
        """Inline the primitive's JVP template after (or, when the statement overwrites an
        argument, before) the primal statement."""
        tpl = prim.jvp
        pre = []
        bindings = {}
        for p in tpl.params:
            if p == "out":
                continue
            if p.endswith("_dot") and p[:-4] in prim.params:
                a = op.args.get(p[:-4])
                bindings[p] = self.tangent_of(a, pre) if a is not None else Zero()
            elif p in op.args:
                bindings[p] = op.args[p]
        reads = set()
        for a in op.args.values():
            reads.update(_names(a))
        conflict = any(t in reads for t in outs)
        needs_out = "out" in tpl.params
        multi = len(outs) > 1 or isinstance(s.targets[0], gast.Tuple)
        target = None if multi else self.dot(outs[0])
        out.extend(pre)
        if conflict and needs_out:
            tmps = [self.namer.fresh(t) for t in outs]
            lhs = ir.tuple_([ir.store(n) for n in tmps], gast.Store()) if multi else ir.store(tmps[0])
            out.append(ir.assign(lhs, s.value, s))
            bindings["out"] = ir.tuple_([ir.name(n) for n in tmps]) if multi else ir.name(tmps[0])
            stmts, res = tpl.inline(bindings, self.namer, self.ns, target=target, loc=s)
            self.note_folded(stmts)
            if prim.elementwise and not multi and prim.name not in ops.REAL_OUTPUT:
                self.note_temp_witnesses(stmts, tmps[0])
            out.extend(stmts)
            self.finish_tangents(outs, res, out, prim)
            for t, n in zip(outs, tmps):
                out.append(ir.assign(t, ir.name(n), s))
            self.broadcast_tangent(prim, op, stmts, res, outs, out, s, out_name=tmps[0])
            return
        if needs_out:
            bindings["out"] = ir.tuple_([ir.name(t) for t in outs]) if multi else ir.name(outs[0])
        stmts, res = tpl.inline(bindings, self.namer, self.ns, target=target, loc=s)
        self.note_folded(stmts)
        if prim.elementwise and not multi and not conflict and prim.name not in ops.REAL_OUTPUT:
            # the linear temporaries of an elementwise rule have (at most) the output's
            # shape and its dtype: the output is their witness in reverse mode
            self.note_temp_witnesses(stmts, outs[0])
        elif prim.bilinear and not multi and not conflict:
            self.note_product_witnesses(stmts, prim, outs[0])
        if conflict:
            out.extend(stmts)
            self.finish_tangents(outs, res, out, prim)
            out.append(s)
        else:
            out.append(s)
            out.extend(stmts)
            self.finish_tangents(outs, res, out, prim)
        self.broadcast_tangent(prim, op, stmts, res, outs, out, s)

    def broadcast_tangent(self, prim, op, stmts, res, outs, out, s, out_name=None):
        """An elementwise rule whose tangent reads neither the output nor, for some
        operand, the operand or its tangent (`x_dot + 0` when y broadcasts x) may lack the
        output's shape: the tangent is broadcast to it, as the primal was."""
        if not prim.elementwise or len(outs) != 1 or isinstance(res, (Zero, tuple)) \
                or isinstance(s.targets[0], gast.Tuple):
            return
        reads = {}
        for st in stmts:
            if isinstance(st, gast.Assign) and isinstance(st.targets[0], gast.Name):
                reads[st.targets[0].id] = _names(st.value)
        seen, todo = set(), _names(res)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(reads.get(n, ()))
        if (out_name or outs[0]) in seen:
            return
        if all(not isinstance(a, gast.Name) or a.id in seen
               or (a.id in self.act and self.dot(a.id) in seen) for a in op.args.values()):
            return
        from s2sad.runtime import helpers
        self.ns["broadcast_like"] = helpers.broadcast_like
        t_dot = self.dot(outs[0])
        # the rule's value gets a name of its own: a tangent variable keeps one shape
        narrow = self.namer.fresh(t_dot)
        for st in stmts:
            if isinstance(st, gast.Assign) and isinstance(st.targets[0], gast.Name) \
                    and st.targets[0].id == t_dot:
                st.targets[0].id = narrow
                break
        else:
            raise self.error("internal: an elementwise rule did not define its tangent")
        out.append(ir.assign(t_dot, ir.call(ir.name("broadcast_like"),
                                            [ir.name(narrow), ir.name(outs[0])]), s))

    def note_folded(self, stmts):
        """Remember the tangent assignments of a rule whose value is another variable
        (`y_dot = x_dot` for `y = x * 1.0`, `x_dot + 0` folded): the primal's value is
        new, the tangent's is shared."""
        made = set()
        for st in stmts:
            if isinstance(st, gast.Assign) and isinstance(st.targets[0], gast.Name):
                if isinstance(st.value, gast.Name) and st.value.id not in made:
                    self.folded.append(st)
                made.add(st.targets[0].id)

    def separate_folded(self, fdef, tangent_params):
        """A folded tangent shares memory with the tangent it was folded to, where the
        primal values are distinct arrays: when an array in that group is written in
        place (`buf_dot[i] = ...`), or a tangent argument is returned (the caller may
        write either), the folded tangent gets its own copy."""
        if not self.folded:
            return
        parent = {}

        def find(a):
            while parent.get(a, a) != a:
                a = parent[a]
            return a

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb

        written, returned = set(), set()
        for n in gast.walk(fdef):
            if isinstance(n, gast.Assign):
                t = n.targets[0]
                if isinstance(t, gast.Subscript) and isinstance(t.value, gast.Name):
                    written.add(t.value.id)
                elif isinstance(t, gast.Name):
                    v = n.value
                    if isinstance(v, gast.Call) and isinstance(v.func, gast.Name) \
                            and v.func.id == "broadcast_like" and v.args:
                        v = v.args[0]   # the tangent itself when it has the shape already
                    if isinstance(v, gast.Name):
                        union(t.id, v.id)
            elif isinstance(n, gast.Return) and n.value is not None:
                returned.update(x.id for x in gast.walk(n.value) if isinstance(x, gast.Name))
        risky = {find(w) for w in written}
        shared_out = {find(r) for r in returned} & {find(p) for p in tangent_params}
        risky |= shared_out
        from s2sad.runtime import helpers
        for st in self.folded:
            if find(st.targets[0].id) in risky:
                self.ns["own_copy"] = helpers.own_copy
                st.value = ir.call(ir.name("own_copy"), [st.value])

    def note_temp_witnesses(self, stmts, primal):
        tangents = set(self.dots.values())
        linear = set()
        for st in stmts:
            if not (isinstance(st, gast.Assign) and isinstance(st.targets[0], gast.Name)):
                continue
            reads = {n.id for n in gast.walk(st.value) if isinstance(n, gast.Name)}
            if reads & (tangents | linear):
                name = st.targets[0].id
                linear.add(name)
                if name not in tangents:
                    self.temp_witness[name] = primal

    def note_product_witnesses(self, stmts, prim, primal):
        """The terms of a bilinear rule (``x_dot @ y``, ``x @ y_dot``) and their sums have
        exactly the output's shape: the output is their witness (no witness recomputes
        the product in the forward sweep)."""
        same = set()
        for st in stmts:
            if not (isinstance(st, gast.Assign) and isinstance(st.targets[0], gast.Name)):
                continue
            try:
                op = ops.classify(st.value, self.ns)
            except (KeyError, TypeError):
                continue
            if op.kind != "prim":
                continue
            args = [a for a in op.args.values() if isinstance(a, gast.Name)]
            if op.prim is prim or (op.prim.name in ("add", "sub") and args
                                   and all(a.id in same for a in args)):
                name = st.targets[0].id
                same.add(name)
                if name not in self.dots.values():
                    self.exact_witness[name] = primal

    def finish_tangents(self, outs, res, out, prim=None):
        if len(outs) == 1 and not isinstance(res, tuple):
            if isinstance(res, Zero):
                out.extend(self.zero_stmts(outs[0]))
            return
        if prim is not None and prim.returns_list and not isinstance(res, tuple):
            # `a, b = helper(...)` unpacks the list a helper returns: so does its tangent
            if isinstance(res, Zero):
                for t in outs:
                    if t in self.act:
                        out.extend(self.zero_stmts(t))
                return
            lhs = [ir.store(self.dot(t) if t in self.act else "_") for t in outs]
            out.append(ir.assign(ir.tuple_(lhs, gast.Store()), res, self.loc))
            return
        if not isinstance(res, tuple) or len(res) != len(outs):
            raise self.error("internal: a multi-output rule must return one tangent per output")
        for t, r in zip(outs, res):
            if t not in self.act:
                continue
            if isinstance(r, Zero):
                out.extend(self.zero_stmts(t))
            else:
                out.append(ir.assign(self.dot(t), r, self.loc))
                self.note_folded(out[-1:])

    def setitem(self, s, out):
        target = s.targets[0]
        base = target.value.id
        out.append(s)
        if base not in self.act:
            return
        value = self.zero_atom(s.value)
        sub = gast.Subscript(value=ir.name(self.dot(base)), slice=ir.clone(target.slice),
                             ctx=gast.Store())
        out.append(ir.assign(sub, value, s))

    def user_call(self, s, op, outs, out):
        callee = op.callee
        mask = self.act.call_masks.get(id(s))
        custom = getattr(callee, "custom", None)
        if getattr(callee, "batched_custom", None) is not None:
            raise self.error(f"differentiating the vmap of {callee.base.name}, a custom_jvp/custom_vjp "
                             f"function, is not supported yet (its rule would be lost)",
                             hint="apply vmap last: vmap(grad(f)) instead of grad(vmap(f))")
        from s2sad.runtime.custom import custom_jvp, custom_vjp
        if isinstance(custom, custom_vjp):
            if not self.reverse:
                raise TypeError("can't apply forward-mode autodiff (jvp) to a custom_vjp function.")
            self.custom_vjp_call(s, op, outs, mask, custom, out)
            return
        if isinstance(custom, custom_jvp):
            self.custom_call(s, op, outs, mask, custom, out)
            return
        jc = jvp_callee(callee, mask, self.reverse)
        name = self._bind(jc)
        args = list(op.call_args) + [ir.name(self.dot(a.id)) for a, m in zip(op.call_args, mask) if m]
        flags = jc.active_out if jc.done else (True,) * len(outs or [None])
        targets = [ir.store(n) for n in outs]
        tangent_targets = []
        for n, f in zip(outs, flags):
            if f:
                tangent_targets.append(ir.store(self.dot(n) if n in self.act else self.namer.fresh("unused_dot")))
        all_targets = targets + tangent_targets
        call = ir.call(ir.name(name), args)
        if not all_targets:
            out.append(ir.expr_stmt(call, s))
        else:
            # a JVP function returns a tuple of leaves, a 1-tuple too (no active output)
            out.append(ir.assign(ir.tuple_(all_targets, gast.Store()), call, s))
        for n, f in zip(outs, flags):
            if n in self.act and not f:
                out.extend(self.zero_stmts(n))

    def _bind(self, callee):
        return bind_callee(self.ns, self.namer, callee)

    def custom_vjp_call(self, s, op, outs, mask, cv, out):
        """Reverse mode through a custom_vjp function: the user's fwd, then an opaque linear
        call whose transpose is the user's bwd (see `custom_vjp`)."""
        from s2sad.transforms.custom_vjp import VJPCall, atom_of
        from s2sad.transforms.specialize import specialize_call, emitter
        from s2sad.transforms.values import Const, Tup, flatten, unflatten
        spec = op.callee
        if cv.fwd is None or cv.bwd is None:
            raise self.error(f"the custom_vjp function {spec.name} has no VJP rule",
                             hint="define one with .defvjp(fwd, bwd)")
        b = emitter(self.ns, self.namer, self.filename, s)
        leaves = [self._av_of(a) for a in op.call_args]
        pos = [0]
        args = [unflatten(sk, leaves, pos) for sk in spec.arg_skels]
        stmts = []
        fwd_spec, fwd_leaves = specialize_call(b, Const(cv.fwd), args, {}, stmts)
        res = b.emit_call(fwd_spec, fwd_leaves, None, stmts, False)
        out.extend(stmts)
        if not isinstance(res, Tup) or len(res.items) != 2:
            raise self.error(f"the fwd rule of custom_vjp function {spec.name} must return a pair "
                             f"(primal_out, residuals)")
        p_skel, p_leaves = flatten(b.as_leaves(res.items[0]))
        if p_skel != spec.out_skel and count_leaves(p_skel) != count_leaves(spec.out_skel):
            raise self.error(f"the fwd rule of custom_vjp function {spec.name} returns a primal "
                             f"output of another structure than the function")
        r_skel, r_leaves = flatten(b.as_leaves(res.items[1]))
        nondiff = set(cv.nondiff_argnums)
        nd_args = [a for i, a in enumerate(args) if i in nondiff]
        # numbers passed for differentiable arguments are runtime values (they get cotangents)
        diff_args = [b.as_leaves(a) for i, a in enumerate(args) if i not in nondiff]
        nd_skels, nd_leaves, diff_skels, diff_leaves = [], [], [], []
        for a in nd_args:
            sk, lv = flatten(a)
            nd_skels.append(sk)
            nd_leaves.extend(lv)
        for a in diff_args:
            sk, lv = flatten(a)
            diff_skels.append(sk)
            diff_leaves.extend(lv)
        call = VJPCall(cv, spec, r_skel, tuple(nd_skels), tuple(diff_skels), self.filename,
                       getattr(s, "lineno", None))
        name = self._bind(call)
        pre = []
        tangents = [self.materialize(self.tangent_of(atom_of(l)), pre) for l in diff_leaves]
        out.extend(pre)
        c_args = [atom_of(l) for l in r_leaves + nd_leaves + diff_leaves] + list(tangents)
        for n, pl in zip(outs, p_leaves):
            out.append(ir.assign(n, atom_of(pl), s))
        dots = [self.dot(n) if n in self.act else self.namer.fresh("unused_dot") for n in outs]
        if not dots:
            return
        target = ir.store(dots[0]) if len(dots) == 1 else ir.tuple_([ir.store(d) for d in dots], gast.Store())
        out.append(ir.assign(target, ir.call(ir.name(name), c_args), s))

    def _av_of(self, atom):
        from s2sad.transforms.values import Const, Dyn
        if isinstance(atom, gast.Name):
            if atom.id in self.ns:
                return Const(self.ns[atom.id], atom.id)
            return Dyn(atom.id)
        return Const(atom.value)

    def custom_call(self, s, op, outs, mask, cj, out):
        """Forward mode through a custom_jvp function: call its rule."""
        from s2sad.transforms.specialize import specialize_call, emitter
        from s2sad.transforms.values import Const, Dyn, Tup, flatten, unflatten
        spec = op.callee
        if cj.jvp is None:
            raise self.error(f"the custom_jvp function {spec.name} has no JVP rule",
                             hint="define one with .defjvp(rule) or .defjvps(...)")
        b = emitter(self.ns, self.namer, self.filename, s)

        def av_of(atom):
            if isinstance(atom, gast.Name):
                if atom.id in self.ns:
                    return Const(self.ns[atom.id], atom.id)
                return Dyn(atom.id)
            return Const(atom.value)

        leaves = [av_of(a) for a in op.call_args]
        pos = [0]
        args = [unflatten(sk, leaves, pos) for sk in spec.arg_skels]
        nondiff = set(cj.nondiff_argnums)
        pre = []
        tangent_leaves = []
        for a in op.call_args:
            tangent_leaves.append(Dyn(self.materialize(self.tangent_of(a), pre).id))
        out.extend(pre)
        pos = [0]
        tangents = [unflatten(sk, tangent_leaves, pos) for sk in spec.arg_skels]
        nd_args = [a for i, a in enumerate(args) if i in nondiff]
        primals = Tup(tuple(a for i, a in enumerate(args) if i not in nondiff))
        tans = Tup(tuple(a for i, a in enumerate(tangents) if i not in nondiff))
        stmts = []
        try:
            rule_spec, rule_leaves = specialize_call(b, Const(cj.jvp), nd_args + [primals, tans], {}, stmts)
            res = b.emit_call(rule_spec, rule_leaves, None, stmts, False)
        except TransformError as e:
            raise e
        out.extend(stmts)
        if not isinstance(res, Tup) or len(res.items) != 2:
            raise self.error(f"the JVP rule of {spec.name} must return (primal_out, tangent_out)")
        p_skel, p_leaves = flatten(res.items[0])
        t_skel, t_leaves = flatten(res.items[1])
        if len(p_leaves) != len(outs) and outs:
            raise self.error(f"the JVP rule of {spec.name} returns a primal output of another "
                             f"structure than the function")
        if len(t_leaves) != len(p_leaves):
            raise self.error(f"the JVP rule of {spec.name} returns a tangent output whose "
                             f"structure differs from the primal output")
        for n, pl, tl in zip(outs, p_leaves, t_leaves):
            out.append(ir.assign(n, ir.name(pl.var), s))
            if n in self.act:
                out.append(ir.assign(self.dot(n), ir.name(tl.var), s))


def _names(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name)]


def prune_namespace(ns, fdef):
    """Keep only the bindings the function's code refers to."""
    used = {n.id for n in gast.walk(fdef) if isinstance(n, gast.Name)}
    return {k: v for k, v in ns.items() if k in used}


def _returns(fdef):
    out = []
    for n in gast.walk(fdef):
        if isinstance(n, gast.Return):
            out.append(n)
    return out


def _return_atoms(r, n_out):
    v = r.value
    if n_out == 0:
        return []
    atoms = list(v.elts) if isinstance(v, gast.Tuple) and not (n_out == 1 and not isinstance(v, gast.Tuple)) \
        else [v]
    for a in atoms:
        if not ir.is_atom(a):
            raise TransformError("internal: a return of generated code is not in A-normal form")
    return atoms
