"""Linearize: split JVP code into its primal part and its linear (tangent) part.

Input: a callee and which of its parameters are *linear* (the tangents of a JVP, or the
tangent arguments of a custom_jvp rule), and which of its outputs are linear. A variable
is linear when it depends on a linear parameter; a statement defining one is a *linear
statement* and must be linear in its linear arguments (checked against the primitives'
`linear` marks) -- otherwise the JVP rule that produced it was not linear.

Output: two functions over the same control structure.

- The *forward sweep*: the primal statements, plus the records the linear part needs.
  A primal value read by the linear part is a *residual*. A residual that is reassigned
  or written in place after its use is snapshotted at the use (``x_1 = x``, or a copy for
  an array written in place). A residual defined inside a loop (or, when the two parts
  become separate functions, inside any branch) is recorded on a tape, a list per
  variable: ``cos_x_tape.append(cos_x)`` right after its definition. Straight-line code
  needs no record. Loops whose trip count cannot be recomputed (``while``, ``break``)
  count their trips; which ``except`` ran is a flag.
- The *linear program*: only the linear statements, in the same control structure over
  residuals; a block starts by reading its records (``cos_x = cos_x_tape[cos_x_at]``).
  `transpose` runs it backwards; run forwards, it is ``linearize``'s ``jvp_fn``.

A call that mixes primal and linear values (``y, y_dot = g_jvp(x, x_dot)``) becomes
``y, g_res = g_fwd(x)`` in the forward sweep and ``y_dot = g_lin(g_res, x_dot)`` in the
linear program (see `vjp.split`).
"""

from __future__ import annotations

import ast

import gast

from s2sad.errors import TransformError
from s2sad.transforms import ir, ops
from s2sad.transforms.activity import targets_of
from s2sad.transforms.naming import Namer, bind_callee, names_in
from s2sad.transforms.restructure import restructure

# primitives whose result may share memory with their (first) argument
_VIEWS = {"copy", "getitem", "reshape", "transpose", "swapaxes", "moveaxis", "squeeze",
          "expand_dims", "broadcast_to", "ravel", "real", "imag", "diagonal", "flip",
          "atleast_1d", "atleast_2d"}


def loads(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name)
            and not isinstance(n.ctx, (gast.Store, gast.Param))]


def stores(node):
    return [n.id for n in gast.walk(node) if isinstance(n, gast.Name)
            and isinstance(n.ctx, (gast.Store, gast.Param))]


def written(node):
    """Names a statement (and the blocks nested in it) rebinds or writes in place."""
    out = set(stores(node))
    for n in gast.walk(node):
        if isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store) \
                and isinstance(n.value, gast.Name):
            out.add(n.value.id)
        elif isinstance(n, gast.Call) and isinstance(n.func, gast.Attribute) \
                and isinstance(n.func.value, gast.Name):
            out.add(n.func.value.id)   # lst.append(v), lst.pop(): the list changes
    return out


def blocks_of(s):
    if isinstance(s, gast.If):
        return [s.body, s.orelse]
    if isinstance(s, (gast.For, gast.While)):
        return [s.body]
    if isinstance(s, gast.Try):
        return [s.body] + [h.body for h in s.handlers]
    return []


class RecordRead:
    """Marker attribute on the linear program's record reads (see `transpose`)."""


class Linearized:
    """Result: forward sweep and linear program, plus what connects them."""

    def __init__(self):
        self.fwd_body = []          # forward sweep (ends without return)
        self.lin_body = []          # linear program (ends without return)
        self.primal_params = []
        self.linear_params = []
        self.primal_outs = []       # atoms returned by the forward sweep
        self.linear_outs = []       # atoms returned by the linear program
        self.out_mask = ()          # per output position: linear?
        self.residuals = []         # names the linear program reads from the forward sweep
        self.tapes = []             # tape variables (lists) created by the forward sweep
        self.cursors = []           # cursor variables of the linear program's record reads
        self.witness = {}           # linear var -> residual with its shape and dtype
        self.namespace = {}
        self.namer = None
        self.linear = set()


class Linearizer:
    def __init__(self, callee, linear_params, linear_out, mode="fused", witness=None):
        self.c = callee
        self.mode = mode
        self.fdef = ir.clone(callee.fdef)
        self.ns = dict(callee.namespace)
        self.namer = Namer(names_in(self.fdef) | set(self.ns))
        restructure(self.fdef, self.namer)
        self.linear_params = list(linear_params)
        self.linear_out = tuple(linear_out) if linear_out is not None else None
        self.filename = getattr(callee, "filename", "<generated>")
        self.witness = dict(witness or {})
        self.primal_of = dict(witness or {})  # tangent -> its primal variable (JVP code)
        # linear variables whose witness may be larger than they are (JVP temporaries)
        self.inexact = set(getattr(callee, "inexact_witness", ()))
        self.meta = {}
        self.fixed_witness = {}
        self.try_stack = []
        self.deferred_depth = 0
        self.loc = None

    def error(self, msg, node=None, hint=None):
        node = node if node is not None else self.loc
        return TransformError(msg, filename=self.filename, lineno=getattr(node, "lineno", None),
                              hint=hint)

    def ann(self, node):
        """Annotations of a linear-program statement (kept beside the tree, by node)."""
        return self.meta.setdefault(id(node), {"node": node})

    def prologue_end(self, block):
        i = 0
        while i < len(block) and self.meta.get(id(block[i]), {}).get("prologue"):
            i += 1
        return i

    # =============================================================== analysis
    def classify(self, split_callee):
        """Linear variables and statements; mixed calls with their callee splits."""
        linear = set(self.linear_params)
        lin_stmts = set()
        mixed = {}
        changed = True

        def visit(block):
            nonlocal changed
            for s in block:
                self.loc = s
                if isinstance(s, gast.Assign):
                    t = s.targets[0]
                    reads = loads(s.value)
                    if isinstance(t, gast.Subscript):
                        base = t.value.id
                        if base in linear or any(n in linear for n in reads):
                            lin_stmts.add(id(s))
                            if base not in linear:
                                linear.add(base)
                                changed = True
                        continue
                    outs = targets_of(s)
                    op = ops.classify(s.value, self.ns)
                    if op.kind == "call":
                        mask = tuple(isinstance(a, gast.Name) and a.id in linear for a in op.call_args)
                        if any(mask):
                            split = split_callee(op.callee, mask, self._witness_pairs(op, mask))
                            mixed[id(s)] = (op, mask, split)
                            for n, m in zip(outs, split.out_mask):
                                if m and n not in linear:
                                    linear.add(n)
                                    changed = True
                        continue
                    if any(n in linear for n in reads):
                        lin_stmts.add(id(s))
                        for n in outs:
                            if n not in linear:
                                linear.add(n)
                                changed = True
                elif isinstance(s, gast.Expr) and isinstance(s.value, gast.Call):
                    v = s.value
                    if isinstance(v.func, gast.Attribute) and v.func.attr == "append" \
                            and isinstance(v.func.value, gast.Name) and v.func.value.id not in self.ns:
                        lst = v.func.value.id
                        if lst in linear or any(n in linear for n in loads(v.args[0])):
                            lin_stmts.add(id(s))
                            if lst not in linear:
                                linear.add(lst)
                                changed = True
                    elif any(n in linear for n in loads(v)):
                        op = ops.classify(v, self.ns)
                        if op.kind != "call":
                            raise self.error(f"a tangent value is passed to {ast_label(v)}, a call "
                                             f"kept for its side effect; reverse mode cannot "
                                             f"transpose it", hint="pass primal values only")
                        mask = tuple(isinstance(a, gast.Name) and a.id in linear for a in op.call_args)
                        mixed[id(s)] = (op, mask, split_callee(op.callee, mask))
                for sub in blocks_of(s):
                    visit(sub)

        while changed:
            changed = False
            visit(self.fdef.body)

        # a linear variable's other definitions (``buf_dot = zero_tangent(buf)``,
        # ``lst_dot = []``: zeros that linear writes fill later) belong to the linear
        # program too
        def defs(block):
            for s in block:
                if isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Name) \
                        and s.targets[0].id in linear and id(s) not in lin_stmts \
                        and id(s) not in mixed:
                    lin_stmts.add(id(s))
                for sub in blocks_of(s):
                    defs(sub)
        defs(self.fdef.body)
        self.linear = linear
        self.lin_stmts = lin_stmts
        self.mixed = mixed
        self._check()

    def _witness_pairs(self, op, mask):
        """For a callee without shape witnesses of its own (a custom_jvp rule): pair each
        linear parameter with the primal parameter that receives the argument's witness."""
        from s2sad.transforms.vjp import _witness_of
        own = _witness_of(op.callee)
        by_arg = {a.id: p for a, p, m in zip(op.call_args, op.callee.params, mask)
                  if not m and isinstance(a, gast.Name)}
        out = []
        for a, p, m in zip(op.call_args, op.callee.params, mask):
            if m and p not in own:
                w = self.primal_of.get(a.id) or self.witness.get(a.id)
                if w in by_arg:
                    out.append((p, by_arg[w]))
        return tuple(out)

    def _check(self):
        def visit(block):
            for s in block:
                self.loc = s
                if isinstance(s, (gast.If, gast.While)) and any(n in self.linear for n in loads(s.test)):
                    raise self.error("control flow depends on a tangent value",
                                     hint="a JVP rule must be linear in its tangents")
                if isinstance(s, gast.For) and any(n in self.linear for n in loads(s.iter)):
                    raise self.error("a loop bound depends on a tangent value",
                                     hint="a JVP rule must be linear in its tangents")
                if id(s) in self.lin_stmts and isinstance(s, gast.Assign):
                    self._check_stmt(s)
                for sub in blocks_of(s):
                    visit(sub)
        visit(self.fdef.body)

    def _check_stmt(self, s):
        t = s.targets[0]
        if isinstance(t, gast.Subscript):
            if any(n in self.linear for n in loads(t.slice)):
                raise self.error("an index depends on a tangent value")
            self._check_flat(s, s.value)
            return
        op = ops.classify(s.value, self.ns)
        if op.kind != "prim":
            for a in op.call_args:
                self._check_flat(s, a)
            return
        prim = op.prim
        lin = [p for p, a in op.args.items() if any(n in self.linear for n in loads(a))]
        for p in lin:
            if p in prim.linear:
                self._check_flat(s, op.args[p])
        if not lin:
            return  # a zero (or constant) definition of a linear variable
        bad = [p for p in lin if p not in prim.linear]
        if prim.nondiff or bad:
            raise self.error(f"in {self._where()}: {prim.label()} is applied to a tangent value, "
                             f"which is not linear (in its argument {', '.join(bad) or lin[0]})",
                             hint="a JVP rule (custom_jvp) must return a tangent that is linear "
                                  "in the input tangents")
        if prim.bilinear and len(lin) > 1:
            raise self.error(f"in {self._where()}: {prim.label()} of two tangent values is not linear",
                             hint="a JVP rule (custom_jvp) must return a tangent that is linear "
                                  "in the input tangents")

    def _check_flat(self, s, arg):
        """A tangent must reach a linear statement as a name (or a list/tuple of names): the
        classification above and the transpose see only atoms, so a tangent inside a nested
        call would be taken for a constant and its cotangent dropped.  Normalization makes
        user code flat; this guards the rule templates and passes that emit linear code."""
        if isinstance(arg, gast.Starred):
            arg = arg.value
        if isinstance(arg, (gast.List, gast.Tuple)):
            for a in arg.elts:
                self._check_flat(s, a)
        elif not isinstance(arg, (gast.Name, gast.Constant)) and any(n in self.linear for n in loads(arg)):
            raise AssertionError(
                f"s2sad internal error: a tangent is nested inside an expression in the linear "
                f"statement `{ast.unparse(gast.gast_to_ast(s)).strip()}` (generated code must be flat); please report it")

    def _where(self):
        """The user function whose tangent code this is (a custom_jvp rule, usually)."""
        c = self.c
        while getattr(c, "base", None) is not None:
            c = c.base
        return getattr(c, "name", "?")

    # ------------------------------------------------------------ residual plan
    def plan(self):
        """Count definitions, find arrays written in place (and their aliases), and which
        statements hold linear content."""
        self.defs = {}
        for n in gast.walk(self.fdef):
            if isinstance(n, gast.Name) and isinstance(n.ctx, (gast.Store, gast.Param)):
                self.defs[n.id] = self.defs.get(n.id, 0) + 1
        # arrays (and lists) modified in place by the primal part, and their aliases
        risky = set()
        links = []
        for n in gast.walk(self.fdef):
            if isinstance(n, gast.Assign) and id(n) not in self.lin_stmts:
                t = n.targets[0]
                if isinstance(t, gast.Subscript):
                    risky.add(t.value.id)
                elif isinstance(t, gast.Name):
                    try:
                        op = ops.classify(n.value, self.ns)
                    except KeyError:
                        continue
                    if op.kind == "prim" and (op.prim.name in _VIEWS or op.prim.name == "method.pop"):
                        src = op.args.get(op.prim.params[0]) if op.prim.params else None
                        if isinstance(src, gast.Name):
                            links.append((t.id, src.id))
            elif isinstance(n, gast.Expr) and isinstance(n.value, gast.Call) and \
                    isinstance(n.value.func, gast.Attribute) and n.value.func.attr in ("append", "pop") \
                    and isinstance(n.value.func.value, gast.Name) and id(n) not in self.lin_stmts:
                risky.add(n.value.func.value.id)
        changed = True
        while changed:
            changed = False
            for a, b in links:
                if (a in risky) != (b in risky):
                    risky.update((a, b))
                    changed = True
        self.risky = risky
        self.copies = set()   # snapshots that are copies of risky arrays

    def has_linear(self, s) -> bool:
        if id(s) in self.lin_stmts or id(s) in self.mixed:
            return True
        return any(self.has_linear(x) for b in blocks_of(s) for x in b)

    # =============================================================== emission
    def run(self, split_callee) -> Linearized:
        self.classify(split_callee)
        self.plan()
        out = Linearized()
        self.out = out
        self.residual_defs = {}   # residual name -> True when it must be taped
        self.tapes = {}           # residual -> tape name
        self.split_lists = set()  # residuals of split calls that are runtime lists
        self.cursor = {}          # residual -> cursor name
        self.used = set()         # residual names the linear program reads
        body = self.fdef.body
        ret = body[-1] if body and isinstance(body[-1], gast.Return) else None
        if ret is not None:
            body = body[:-1]
        # The witnesses of the linear parameters (for their cotangents when they stay zero)
        # are the primal parameters as they come in.
        entry = []
        self.param_witness = {}
        for p in self.linear_params:
            w = self.primal_of.get(p)
            if w is None:
                continue
            if self.defs.get(w, 0) > 1:
                snap = self.namer.fresh(f"{w}_in")
                entry.append(ir.assign(snap, ir.name(w)))
                w = snap
            self.witness[p] = w
            self.param_witness[p] = w   # later definitions of p have witnesses of their own
            self.use(w)
        # names the forward program has assigned so far (in program order): a tangent's
        # primal may be assigned after the tangent (copy propagation merged the tangent
        # of an earlier value into it) and cannot be its witness there
        self.defined = {a.id for a in self.fdef.args.args}
        # Residuals are discovered while emitting; tapes are added in a second pass.
        fwd, lin = self.block(body, depth=0, top=True)
        fwd = entry + fwd
        if ret is not None:
            atoms = list(ret.value.elts) if isinstance(ret.value, gast.Tuple) else [ret.value]
            if self.linear_out is None:  # linear outputs: those that depend on linear inputs
                self.linear_out = tuple(isinstance(a, gast.Name) and a.id in self.linear for a in atoms)
            if len(atoms) != len(self.linear_out):
                atoms = [ret.value] if len(self.linear_out) == 1 else atoms
            for a, m in zip(atoms, self.linear_out):
                if m:
                    out.linear_outs.append(a)
                    for n in loads(a):
                        if n not in self.linear:
                            self.use(n)
                else:
                    out.primal_outs.append(a)
        out.fwd_body = fwd
        out.lin_body = lin
        out.primal_params = [p for p in self.c.params if p not in self.linear_params]
        out.linear_params = list(self.linear_params)
        out.out_mask = self.linear_out
        taped = set(self.tapes)
        out.residuals = sorted(n for n in self.used if n not in taped) + sorted(self.tapes.values())
        out.tapes = sorted(self.tapes.values())
        out.cursors = sorted(self.cursor.values())
        out.witness = self.witness
        out.namespace = self.ns
        out.namer = self.namer
        out.linear = self.linear
        out.meta = self.meta
        out.inexact = self.inexact
        out.param_witness = self.param_witness
        # names defined once at the top level (or parameters): available everywhere in the
        # backward sweep, so they can shape explicit zeros anywhere
        top = {p for p in self.c.params if self.defs.get(p, 0) == 1}
        n_stores = {}
        for st in gast.walk(ir.function_def("f", [], fwd)):
            if isinstance(st, gast.Name) and isinstance(st.ctx, gast.Store):
                n_stores[st.id] = n_stores.get(st.id, 0) + 1
        for st in fwd:
            if isinstance(st, gast.Assign):
                for n in stores(st.targets[0]):
                    if self.defs.get(n, 0) == 1 or (n not in self.defs and n_stores.get(n) == 1):
                        top.add(n)
        out.safe = top
        # runtime lists (built from list literals, or list parameters such as tapes; their
        # cotangents are lists too)
        lists = set(getattr(self.c, "list_params", ())) | self.split_lists
        changed = True
        while changed:
            changed = False
            for n in gast.walk(self.fdef):
                if isinstance(n, gast.Assign) and isinstance(n.targets[0], gast.Tuple):
                    # a call of a generated function whose layout marks runtime lists
                    flags = _list_kinds(n.value, self.ns)
                    elts = n.targets[0].elts
                    if flags and len(flags) == len(elts):
                        for e, k in zip(elts, flags):
                            if k and isinstance(e, gast.Name) and e.id not in lists:
                                lists.add(e.id)
                                changed = True
                    continue
                if isinstance(n, gast.Assign) and isinstance(n.targets[0], gast.Name):
                    t = n.targets[0].id
                    v = n.value
                    is_list = isinstance(v, gast.List) or _list_kinds(v, self.ns) == [True] or \
                        (isinstance(v, gast.Name) and v.id in lists) or \
                        (isinstance(v, gast.Call) and isinstance(v.func, gast.Attribute)
                         and v.func.attr == "copy" and isinstance(v.func.value, gast.Name)
                         and v.func.value.id in lists) or \
                        (isinstance(v, gast.Call) and ir.dotted_name(v.func) == "zero_tangent"
                         and v.args and isinstance(v.args[0], gast.Name) and v.args[0].id in lists)
                    if is_list and t not in lists:
                        lists.add(t)
                        changed = True
        out.lists = lists
        out.list_params = set(getattr(self.c, "list_params", ()))
        return out

    def use(self, name):
        """The linear program reads primal variable `name`."""
        if name in self.ns or name in self.linear:
            return
        self.used.add(name)

    # ------------------------------------------------------------------ blocks
    def block(self, stmts, depth, top=False, deferred=False):
        """Emit a block: returns (forward statements, linear statements).

        In a try body (`deferred`), records are pushed when the block completes or leaves
        by a jump, not right after each definition: an exception in between pushes none."""
        fwd, lin = [], []
        local_res = []   # residuals defined in this block (in order)
        snaps = {}       # residual -> snapshot name valid at this point of the block
        saved_pending = getattr(self, "pending_prologue", [])
        self.pending_prologue = []
        deferred = deferred or self.deferred_depth > 0
        self.deferred_depth += 1 if deferred else 0
        for s in stmts:
            self.loc = s
            if self.try_stack and (id(s) in self.lin_stmts or id(s) in self.mixed):
                fwd.append(ir.assign(self.try_stack[-1][1], ir.const(True), s))
            if self.try_stack and isinstance(s, gast.Raise):
                fwd.append(ir.assign(self.try_stack[-1][0], ir.const(True), s))
            if id(s) in self.lin_stmts:
                new = self.residualize(s, fwd, snaps, local_res)
                lin.append(new)
            elif id(s) in self.mixed:
                self.mixed_call(s, fwd, lin, snaps, local_res)
            elif isinstance(s, gast.If):
                fb, lb = self.block(s.body, depth)
                fo, lo = self.block(s.orelse, depth)
                if lb or lo:
                    # read (a snapshot of) the test before the branches run: a branch that
                    # jumps would skip a record pushed after the `if`
                    test = self.read_residual(s.test, fwd, snaps, local_res)
                    lin.append(ir.copy_loc(gast.If(test=test, body=lb or [gast.Pass()], orelse=lo), s))
                fwd.append(ir.copy_loc(gast.If(test=s.test, body=fb or [gast.Pass()], orelse=fo), s))
            elif isinstance(s, gast.For):
                self.defined.update(stores(s.target))
                self.for_loop(s, fwd, lin, depth, snaps, local_res)
            elif isinstance(s, gast.While):
                self.while_loop(s, fwd, lin, depth, snaps, local_res)
            elif isinstance(s, gast.Try):
                self.try_stmt(s, fwd, lin, depth, snaps, local_res)
            else:
                fwd.append(s)
                # a reassignment or an in-place write invalidates snapshots of that name
                for n in stores(s):
                    snaps.pop(n, None)
                if isinstance(s, gast.Assign) and isinstance(s.targets[0], gast.Subscript):
                    snaps.pop(s.targets[0].value.id, None)
                for n in stores(s):
                    local_res.append((n, s))
            self.defined.update(written(s))
            if isinstance(s, (gast.If, gast.For, gast.While, gast.Try)):
                # a value rebound or written in one of the blocks has a new value after
                # the statement: snapshots taken before it are stale
                for n in written(s):
                    snaps.pop(n, None)
        # record the residuals this block defined, where the linear program needs them
        self.deferred_depth -= 1 if deferred else 0
        self._records(fwd, lin, local_res, depth, top, deferred)
        if self.pending_prologue:
            i = self.prologue_end(lin)
            lin[i:i] = self.pending_prologue
        self.pending_prologue = saved_pending
        return fwd, lin

    def _records(self, fwd, lin, local_res, depth, top, deferred=False):
        needs_tape = depth > 0 or (self.mode == "split" and not top)
        if not needs_tape:
            return
        pushes = []
        reads = []
        seen = set()
        for name, stmt in local_res:
            if name in seen or name not in self.used:
                continue
            seen.add(name)
            tape = self.tapes.get(name)
            if tape is None:
                tape = self.tapes[name] = self.namer.fresh(f"{name}_tape")
                self.cursor[name] = self.namer.fresh(f"{name}_at")
            push = ir.expr_stmt(ir.call(ir.attr(ir.name(tape), "append"), [ir.name(name)]), stmt)
            if deferred:
                pushes.append(push)
            else:
                # push right after the (last) definition of `name` in this block
                fwd.insert(_index_after(fwd, stmt), push)
            reads.append(self._record_read(name, stmt))
            step = ir.assign(self.cursor[name], gast.BinOp(left=ir.name(self.cursor[name]), op=gast.Add(),
                                                           right=ir.const(1)), stmt)
            self.ann(step)['prologue'] = True
            self.ann(step)['cursor_step'] = True
            reads.append(step)
        if pushes:
            # at the end of the block, before a final jump, and before every raise that
            # leaves the block from inside a nested one
            at = len(fwd)
            if fwd and isinstance(fwd[-1], (gast.Raise, gast.Break, gast.Continue, gast.Return)):
                at -= 1
            fwd[at:at] = pushes
            for blk in _nested_blocks(fwd):
                i = 0
                while i < len(blk):
                    if isinstance(blk[i], gast.Raise) and blk is not fwd:
                        blk[i:i] = [ir.clone(p) for p in pushes]
                        i += len(pushes)
                    i += 1
        lin[:0] = reads

    def _record_read(self, name, loc):
        """``name = tape[cursor]`` at the start of a linear block (the cursor advances in
        the statement after it; `transpose` reads the same record backwards)."""
        tape, cur = self.tapes[name], self.cursor[name]
        read = ir.assign(name, gast.Subscript(value=ir.name(tape), slice=ir.name(cur), ctx=gast.Load()), loc)
        self.ann(read)['record'] = (name, tape, cur)
        self.ann(read)['prologue'] = True
        return read

    # ----------------------------------------------------- linear statements
    def read_residual(self, atom, fwd, snaps, local_res, kind="value"):
        """The atom the linear program uses to read primal value `atom` here."""
        if not isinstance(atom, gast.Name) or atom.id in self.ns or atom.id in self.linear:
            return atom
        name = atom.id
        need_snap = self.defs.get(name, 0) > 1 or (kind == "value" and name in self.risky)
        if not need_snap:
            self.use(name)
            return atom
        snap = snaps.get(name)
        copy_needed = kind == "value" and name in self.risky
        if snap is not None and copy_needed and snap not in self.copies:
            snap = None  # a shape witness taken here is a view: values need a copy
        if snap is None:
            snap = self.namer.fresh(name)
            # (own_copy: the value written in place may be a list)
            value = ir.call(ir.name("own_copy"), [ir.name(name)]) if copy_needed else ir.name(name)
            if copy_needed:
                from s2sad.runtime import helpers
                self.ns["own_copy"] = helpers.own_copy
                self.copies.add(snap)
            stmt = ir.assign(snap, value, self.loc)
            fwd.append(stmt)
            local_res.append((snap, stmt))
            snaps[name] = snap
        self.use(snap)
        return ir.name(snap)

    def residualize(self, s, fwd, snaps, local_res):
        """A copy of linear statement `s` reading residuals through snapshots."""
        new = ir.clone(s)

        class Sub(gast.NodeTransformer):
            def visit_Name(inner, node):
                if isinstance(node.ctx, gast.Load) and node.id not in self.linear and node.id not in self.ns:
                    return self.read_residual(node, fwd, snaps, local_res)
                return node
        if isinstance(new, gast.Assign):
            new.value = Sub().visit(new.value)
            t = new.targets[0]
            if isinstance(t, gast.Subscript):
                t.slice = Sub().visit(t.slice)
        elif isinstance(new, gast.Expr):
            new.value = Sub().visit(new.value)
        # witnesses of the linear arguments, as they are at this statement
        arg_w = {}
        reads = loads(new.value) if isinstance(new, (gast.Assign, gast.Expr)) else []
        if isinstance(new, gast.Assign) and isinstance(new.targets[0], gast.Subscript):
            reads += [new.targets[0].value.id]
        for n in reads:
            if n in self.linear and n not in arg_w:
                w = self.witness_at(n, fwd, snaps, local_res)
                if w is not None:
                    arg_w[n] = w
        self.ann(new)['arg_witness'] = arg_w
        self.ann(new)['exact'] = {n for n in arg_w if n not in self.inexact}
        if isinstance(new, gast.Assign) and isinstance(new.targets[0], gast.Tuple):
            for e in new.targets[0].elts:
                w = self.primal_of_here(e.id)
                if e.id in self.linear and w is not None:
                    # saved like any witness (an unused output gets an explicit zero)
                    self.witness[e.id] = self.read_residual(ir.name(w), fwd, snaps, local_res,
                                                            kind="meta").id
        if isinstance(new, gast.Assign) and isinstance(new.targets[0], gast.Name):
            t = new.targets[0].id
            if t in self.linear:
                # the shape witness of the value this statement defines (per definition)
                w = self.primal_of_here(t)
                if w is not None:
                    wa = self.read_residual(ir.name(w), fwd, snaps, local_res, kind="meta")
                    name = wa.id
                else:
                    name = self.derive_witness(t, new, fwd, local_res, arg_w)
                    if any(n in self.inexact for n in reads):
                        self.inexact.add(t)
                    if name is not None and self.defs.get(t, 0) > 1:
                        # one witness variable for every definition of t, so that it is
                        # defined wherever t is
                        fixed = self.fixed_witness.get(t)
                        if fixed is None:
                            fixed = self.fixed_witness[t] = self.namer.fresh(
                                f"{t[:-4] if t.endswith('_dot') else t}_like")
                        st = ir.assign(fixed, ir.name(name), new)
                        fwd.append(st)
                        local_res.append((fixed, st))
                        snaps.pop(fixed, None)
                        self.defs[fixed] = self.defs.get(fixed, 0) + 2
                        name = fixed
                self.ann(new)['witness'] = name
                if name is not None:
                    self.witness[t] = name
                    self.use(name)
        return new

    def primal_of_here(self, t):
        """Tangent `t`'s primal variable, if the forward program has assigned it by now."""
        w = self.primal_of.get(t)
        if w is None or w in self.defined or w in self.ns:
            return w
        return None

    def witness_at(self, n, fwd, snaps, local_res):
        """The witness of linear `n`'s current value, read (snapshotted if needed) here."""
        w = self.primal_of_here(n)
        if w is None or w in self.linear:
            w = self.witness.get(n)
        if w is None:
            return None
        return self.read_residual(ir.name(w), fwd, snaps, local_res, kind="meta").id

    _SAME_SHAPE = {"copy", "neg", "pos", "conj", "method.astype", "np.copy", "method.copy", "own_copy"}
    _REAL = ops.REAL_OUTPUT

    def derive_witness(self, t, stmt, fwd, local_res, arg_w):
        """A shape witness for linear `t` from the witnesses of what defines it."""
        from s2sad.runtime import helpers
        op = ops.classify(stmt.value, self.ns)
        if op.kind != "prim":
            return None
        prim = op.prim

        def wit(a):
            if isinstance(a, gast.Name) and a.id in self.linear:
                w = arg_w.get(a.id)
                return ir.name(w) if w is not None else None
            if isinstance(a, (gast.Tuple, gast.List)):
                elts = [wit(e) for e in a.elts]
                return None if any(e is None for e in elts) else type(a)(elts=elts, ctx=gast.Load())
            return ir.clone(a)
        args = {p: wit(a) for p, a in op.args.items()}
        if any(v is None for p, v in args.items() if p in prim.linear):
            return None
        lin_args = [a for p, a in op.args.items() if p in prim.linear and
                    any(n in self.linear for n in loads(a))]
        if prim.name in self._SAME_SHAPE and len(lin_args) == 1 and isinstance(lin_args[0], gast.Name):
            return arg_w.get(lin_args[0].id)
        base = t[:-4] if t.endswith("_dot") else t
        name = self.namer.fresh(f"{base}_like")
        if prim.name in self._REAL:
            self.ns["real_witness"] = helpers.real_witness
            value = ir.call(ir.name("real_witness"), [args[prim.params[0]]])
        elif prim.elementwise:
            # real scalar constants change neither shape nor dtype kind; complex ones do
            operands = [v for v in args.values() if not isinstance(v, gast.Constant)
                        or isinstance(v.value, complex)]
            ids = {v.id for v in operands if isinstance(v, gast.Name)}
            if len(operands) == 1 or (len(ids) == 1 and all(isinstance(v, gast.Name) for v in operands)):
                if isinstance(operands[0], gast.Name):
                    return operands[0].id
            self.ns["shape_witness"] = helpers.shape_witness
            value = ir.call(ir.name("shape_witness"), operands[:4])
        else:
            value = ops.build(prim, args)
        st = ir.assign(name, value, stmt)
        fwd.append(st)
        local_res.append((name, st))
        self.use(name)
        return name

    def mixed_call(self, s, fwd, lin, snaps, local_res):
        op, mask, split = self.mixed[id(s)]
        outs = targets_of(s) if isinstance(s, gast.Assign) else []
        fname = self._bind(split.fwd)
        lname = self._bind(split.lin)
        p_args = [a for a, m in zip(op.call_args, mask) if not m]
        l_args = [a for a, m in zip(op.call_args, mask) if m]
        p_outs = [n for n, m in zip(outs, split.out_mask) if not m]
        l_outs = [n for n, m in zip(outs, split.out_mask) if m]
        if split.packed or split.n_res is None:
            res = [self.namer.fresh(f"{op.callee.name}_res")]
        else:
            res = [self.namer.fresh(f"{op.callee.name}_res{i}") for i in range(split.n_res)]
        wit = [self.namer.fresh(f"{n[:-4] if n.endswith('_dot') else n}_like")
               for n in l_outs] if getattr(split, "n_wit", 0) == len(l_outs) and l_outs else []
        targets = [ir.store(n) for n in p_outs + res + wit]
        call = ir.call(ir.name(fname), [ir.clone(a) for a in p_args])
        stmt = ir.assign(ir.tuple_(targets, gast.Store()), call, s)
        fwd.append(stmt)
        for n in p_outs + res + wit:
            snaps.pop(n, None)
            local_res.append((n, stmt))
        self.defined.update(p_outs)
        for n, w in zip(l_outs, wit):
            if self.primal_of_here(n) is None and self.witness.get(n) is None:
                self.witness[n] = w
        kinds = [getattr(k, "list", False) for k in getattr(split.fwd.out_skel, "items", ())]
        for r, k in zip(res, kinds[len(p_outs):]):
            if k:
                self.split_lists.add(r)  # a tape (or list) of the callee's forward sweep
        for r in res:
            self.use(r)
        lcall = ir.call(ir.name(lname), [ir.name(r) for r in res] + [ir.clone(a) for a in l_args])
        ltarget = ir.tuple_([ir.store(n) for n in l_outs], gast.Store())
        new = ir.assign(ltarget, lcall, s) if l_outs else ir.expr_stmt(lcall, s)
        self.ann(new)['mixed'] = (split, mask, op.callee, len(res))
        # witnesses of the linear outputs, for explicit zero cotangents (unused ones are
        # dropped once the backward sweep is known)
        out_w = {}
        for n in l_outs:
            w = self.primal_of_here(n) or self.witness.get(n)
            if w is not None and w not in self.linear:
                out_w[n] = self.read_residual(ir.name(w), fwd, snaps, local_res, kind="meta").id
        self.ann(new)['out_witness'] = out_w
        lin.append(new)

    def _bind(self, callee):
        return bind_callee(self.ns, self.namer, callee)

    # ------------------------------------------------------------------- loops
    def for_loop(self, s, fwd, lin, depth, snaps, local_res):
        target_used = s.target.id in self.used if isinstance(s.target, gast.Name) else True
        body_fwd, body_lin = self.block(s.body, depth + 1)
        if not target_used and isinstance(s.target, gast.Name):
            # the linear program's own loop binds the target: reads in the body are not
            # residuals (the forward sweep's last value may not even exist)
            self.used.discard(s.target.id)
        has_break = any(isinstance(n, gast.Break) for n in _direct(s.body))
        if not body_lin:
            fwd.append(ir.copy_loc(gast.For(target=s.target, iter=s.iter, body=body_fwd or [gast.Pass()],
                                            orelse=[], type_comment=None), s))
            return
        rng = s.iter
        if not (isinstance(rng, gast.Call) and ir.dotted_name(rng.func) == "range"):
            raise self.error("internal: loops reach reverse mode as range loops")
        target = s.target.id
        if not has_break:
            args = [self.range_arg(a, fwd, snaps, local_res) for a in rng.args]
            fwd.append(ir.copy_loc(gast.For(target=s.target, iter=s.iter, body=body_fwd,
                                            orelse=[], type_comment=None), s))
            for n in stores(s):
                snaps.pop(n, None)
            lin.append(ir.copy_loc(gast.For(target=ir.store(target), iter=ir.call(ir.name("range"), args),
                                            body=body_lin, orelse=[], type_comment=None), s))
            self.ns.setdefault("range", range)
            return
        # a loop left by `break`: count the iterations, and recompute the index from them
        trips = self.namer.fresh("trips")
        fwd.append(ir.assign(trips, ir.const(0), s))
        body_fwd.insert(0, ir.assign(trips, gast.BinOp(left=ir.name(trips), op=gast.Add(),
                                                       right=ir.const(1)), s))
        fwd.append(ir.copy_loc(gast.For(target=s.target, iter=s.iter, body=body_fwd,
                                        orelse=[], type_comment=None), s))
        n = self.namer.fresh("n_trips")
        stmt = ir.assign(n, ir.name(trips), s)
        fwd.append(stmt)
        local_res.append((n, stmt))
        self.use(n)
        k = self.namer.fresh("k")
        a = rng.args
        start = a[0] if len(a) > 1 else ir.const(0)
        step = a[2] if len(a) > 2 else ir.const(1)
        start = self.range_arg(start, fwd, snaps, local_res)
        step = self.range_arg(step, fwd, snaps, local_res)
        idx = gast.BinOp(left=start, op=gast.Add(),
                         right=gast.BinOp(left=ir.name(k), op=gast.Mult(), right=step))
        recompute = ir.assign(target, idx, s)
        self.ann(recompute)['prologue'] = True
        body_lin.insert(self.prologue_end(body_lin), recompute)
        lin.append(ir.copy_loc(gast.For(target=ir.store(k), iter=ir.call(ir.name("range"), [ir.name(n)]),
                                        body=body_lin, orelse=[], type_comment=None), s))
        self.ns.setdefault("range", range)

    def range_arg(self, a, fwd, snaps, local_res):
        """A bound of a range loop, as the linear program reads it: an expression (the
        lowering of zip/enumerate writes ``range(min(len(a), len(b)))``) is evaluated into a
        residual before the loop."""
        if isinstance(a, (gast.Name, gast.Constant)):
            return self.read_residual(a, fwd, snaps, local_res)
        name = self.namer.fresh("stop")
        stmt = ir.assign(name, ir.clone(a), self.loc)
        fwd.append(stmt)
        local_res.append((name, stmt))
        self.use(name)
        return ir.name(name)

    def while_loop(self, s, fwd, lin, depth, snaps, local_res):
        body_fwd, body_lin = self.block(s.body, depth + 1)
        if not body_lin:
            fwd.append(ir.copy_loc(gast.While(test=s.test, body=body_fwd or [gast.Pass()], orelse=[]), s))
            return
        trips = self.namer.fresh("trips")
        fwd.append(ir.assign(trips, ir.const(0), s))
        body_fwd.insert(0, ir.assign(trips, gast.BinOp(left=ir.name(trips), op=gast.Add(),
                                                       right=ir.const(1)), s))
        fwd.append(ir.copy_loc(gast.While(test=s.test, body=body_fwd, orelse=[]), s))
        n = self.namer.fresh("n_trips")
        stmt = ir.assign(n, ir.name(trips), s)
        fwd.append(stmt)
        local_res.append((n, stmt))
        self.use(n)
        k = self.namer.fresh("k")
        lin.append(ir.copy_loc(gast.For(target=ir.store(k), iter=ir.call(ir.name("range"), [ir.name(n)]),
                                        body=body_lin, orelse=[], type_comment=None), s))
        self.ns.setdefault("range", range)

    def try_stmt(self, s, fwd, lin, depth, snaps, local_res):
        """try/except. The forward sweep records which handler ran. The body's linear part
        is replayed when the body completed or left by an explicit ``raise`` (its path is
        known from its branch records); its records are pushed only at those points. An
        exception from inside a primitive after differentiated work in the body cannot be
        replayed: the forward sweep raises a clear error then (never a wrong derivative)."""
        if not self.has_linear(s):
            fwd.append(s)
            return
        from s2sad.runtime import helpers
        ran = self.namer.fresh("handler")
        explicit = self.namer.fresh("raised")
        partial = self.namer.fresh("started")
        fwd.append(ir.assign(ran, ir.const(0), s))
        fwd.append(ir.assign(explicit, ir.const(False), s))
        fwd.append(ir.assign(partial, ir.const(False), s))
        self.try_stack.append((explicit, partial))
        body_f, body_l = self.block(s.body, depth, deferred=True)
        self.try_stack.pop()
        handlers, hlins = [], []
        self.ns["check_interrupted"] = helpers.check_interrupted
        for i, h in enumerate(s.handlers, 1):
            hf, hl = self.block(h.body, depth)
            check = ir.expr_stmt(ir.call(ir.name("check_interrupted"), [ir.name(partial), ir.name(explicit)]), h)
            hf = [ir.assign(ran, ir.const(i), h), check] + hf
            handlers.append(ir.copy_loc(gast.ExceptHandler(type=h.type, name=h.name, body=hf), h))
            hlins.append(hl)
        fwd.append(ir.copy_loc(gast.Try(body=body_f, handlers=handlers, orelse=[], finalbody=[]), s))
        prologue = []
        if body_l:
            replay = self.namer.fresh("replay")
            fwd.append(ir.assign(replay, gast.Compare(left=ir.name(ran), ops=[gast.Eq()],
                                                      comparators=[ir.const(0)]), s))
            fwd.append(ir.if_(ir.name(explicit), [ir.assign(replay, ir.const(True), s)], [], s))
            self.defs[replay] = 2
            replay_r = self._snapshot_after(replay, s, fwd, local_res)
            lin.append(ir.if_(ir.name(replay_r), body_l, [], s))
        if any(hlins):
            ran_r = self._snapshot_after(ran, s, fwd, local_res)
            for i, hl in enumerate(hlins, 1):
                if not hl:
                    continue
                inside = self.namer.fresh("in_handler")
                test = ir.assign(inside, gast.Compare(left=ir.name(ran_r), ops=[gast.Eq()],
                                                      comparators=[ir.const(i)]), s)
                self.ann(test)['prologue'] = True
                prologue.append(test)
                lin.append(ir.if_(ir.name(inside), hl, [], s))
        self.pending_prologue.extend(prologue)

    def _snapshot_after(self, var, loc, fwd, local_res):
        name = self.namer.fresh(var)
        st = ir.assign(name, ir.name(var), loc)
        fwd.append(st)
        local_res.append((name, st))
        self.use(name)
        return name


def _list_kinds(value, ns):
    """Which leaves of a call's result are runtime lists: a primitive marked
    `returns_list`, or a transformed function whose output layout marks them; None for
    anything else."""
    if not isinstance(value, gast.Call):
        return None
    try:
        op = ops.classify(value, ns)
    except (KeyError, TypeError):
        return None
    if op.kind == "prim":
        return [True] if getattr(op.prim, "returns_list", False) else None
    skel = getattr(op.callee, "out_skel", None) if op.kind == "call" else None
    if skel is None:
        return None
    from s2sad.transforms.specialize import _leaf_kinds
    return _leaf_kinds(skel)


def _nested_blocks(block):
    """`block` and every statement list nested in it, except inside nested try statements
    (their handlers catch what is raised there)."""
    out = [block]
    for s in block:
        if isinstance(s, gast.Try):
            continue
        for b in blocks_of(s):
            out.extend(_nested_blocks(b))
    return out


def _index_after(block, stmt):
    for i in range(len(block) - 1, -1, -1):
        if block[i] is stmt:
            return i + 1
    return len(block)


def _direct(block):
    """Statements of `block` and its branches, not inside nested loops."""
    out = []
    for s in block:
        out.append(s)
        if isinstance(s, (gast.If, gast.Try)):
            for b in blocks_of(s):
                out.extend(_direct(b))
    return out


def ast_label(call):
    return ir.dotted_name(call.func) or "a function"
